#!/usr/bin/env bash
# End-to-end MT-Bench run on one machine, all in one SQLite file (not part of CI: it takes hours on
# two busy cores; every phase resumes, so it can be run again until done):
#   1. re-quantize SmolLM2 Q4_1 to Q8_0 with `lmstation quantize`;
#   2. three contestants answer all 80 MT-Bench questions, both turns (turn 2 sees turn 1):
#      smollm2-q4_1 (greedy), smollm2-q8_0 (greedy), smollm2-q4_1-t1.2 (temperature 1.2);
#   3. the Q4_1 model judges every pair on every question in both orders (turn 1, reference-guided
#      for math/reasoning/coding with the MT-Bench reference answers);
#   4. leaderboard with bootstrap intervals from the recorded battles, saved as a snapshot.
# Every job is resumable: rerunning the script continues where it stopped.
#
# Usage: tests/bench/e2e_mtbench.sh OUT_DIR [MT_BENCH_DIR]
# Environment: LMS (lmstation binary, default build/app/lmstation), MODEL (Q4_1 GGUF),
# ANSWER_TOKENS (192), JUDGE_TOKENS (128), THREADS (1 per answer job; the three run at once, each
# with its own serving engine), JUDGE_THREADS (2), PARALLEL (16: conversations a job runs at once,
# batched on its engine), VERDICT (text: generate and parse as FastChat does; logprob: forced
# choice; both: one run each).
set -euo pipefail
OUT=${1:?usage: e2e_mtbench.sh OUT_DIR [MT_BENCH_DIR]}
MTB=${2:-../shared/data/eval/mt_bench_fastchat/mt_bench}
LMS=${LMS:-build/app/lmstation}
MODEL=${MODEL:-$HOME/.cache/lmstation/models/SmolLM2-135M-Instruct.Q4_1.gguf}
ANSWER_TOKENS=${ANSWER_TOKENS:-192}
JUDGE_TOKENS=${JUDGE_TOKENS:-128}
THREADS=${THREADS:-1}
JUDGE_THREADS=${JUDGE_THREADS:-2}
PARALLEL=${PARALLEL:-16}
VERDICT=${VERDICT:-text}
Q=$MTB/question.jsonl
REF=$MTB/reference_answer/gpt-4.jsonl
DB=$OUT/mtbench.db
mkdir -p "$OUT"
C="smollm2-q4_1,smollm2-q8_0,smollm2-q4_1-t1.2"

phase() {  # phase NAME COMMAND…: runs and logs it, printing its wall time
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  local t1; t1=$(date +%s.%N)
  awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN { printf "phase %-16s %8.1f s\n", n, b - a }' | tee -a "$OUT/phases.txt"
}

answer() {  # answer NAME MODEL [sampling flags…]
  local name=$1 model=$2; shift 2
  "$LMS" answer --questions "$Q" --contestant "$name" --model "$model" -n "$ANSWER_TOKENS" -t "$THREADS" --parallel "$PARALLEL" \
    --db "$DB" --export "$OUT/model_answer_$name.jsonl" "$@" > "$OUT/answer_$name.log" 2>&1
}

answers() {
  answer smollm2-q4_1 "$MODEL" --temp 0 &
  local p1=$!
  answer smollm2-q8_0 "$OUT/SmolLM2-135M-Instruct.Q8_0.gguf" --temp 0 &
  local p2=$!
  answer smollm2-q4_1-t1.2 "$MODEL" --temp 1.2 --seed 1 &
  local p3=$!
  local rc=0 p
  for p in $p1 $p2 $p3; do wait "$p" || rc=1; done  # all three finish (or fail) before the next phase
  return $rc
}

judge() {  # judge METHOD
  local extra=()
  [ "$1" = logprob ] && extra=(--verdict logprob)
  "$LMS" judge --questions "$Q" --references "$REF" --contestants "$C" --judge "smollm2-q4_1-judge-$1" \
    --model "$MODEL" -n "$JUDGE_TOKENS" -t "$JUDGE_THREADS" --parallel "$PARALLEL" --db "$DB" "${extra[@]}"
}

leaderboard() {  # leaderboard METHOD
  local run
  run=$(sqlite3 "$DB" "SELECT id FROM runs WHERE kind = 'judge' AND config LIKE '%smollm2-q4_1-judge-$1%' ORDER BY id DESC LIMIT 1")
  "$LMS" leaderboard --from-db --run "$run" --db "$DB" --bootstrap 1000 --seed 1 --save -t "$THREADS"
  "$LMS" leaderboard --from-db --run "$run" --db "$DB" --bootstrap 1000 --seed 1 --json -t "$THREADS" > "$OUT/leaderboard_$1.json"
}

[ -f "$OUT/SmolLM2-135M-Instruct.Q8_0.gguf" ] || phase quantize "$LMS" quantize "$MODEL" "$OUT/SmolLM2-135M-Instruct.Q8_0.gguf" Q8_0
"$LMS" db --db "$DB" runs > /dev/null  # creates the schema once, before the parallel jobs
phase answers answers
methods=("$VERDICT")
[ "$VERDICT" = both ] && methods=(text logprob)
for m in "${methods[@]}"; do
  phase "judge_$m" judge "$m"
  phase "leaderboard_$m" leaderboard "$m"
  cat "$OUT/judge_$m.log" | grep -E '^(run|battles)' || true
  cat "$OUT/leaderboard_$m.log"
done
echo "answers per contestant and turn:"
sqlite3 "$DB" "SELECT c.name, a.turn, COUNT(*), ROUND(AVG(a.tokens),1), ROUND(AVG(a.latency_ms)) FROM answers a JOIN contestants c ON c.id = a.contestant_id GROUP BY 1, 2"
echo "judgments (judge, method, parsed, count):"
sqlite3 "$DB" "SELECT c.name, j.mode, j.parsed, COUNT(*) FROM judgments j JOIN contestants c ON c.id = j.judge_id GROUP BY 1, 2, 3"
