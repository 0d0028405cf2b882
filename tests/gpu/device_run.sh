#!/usr/bin/env bash
# The GPU checks, from prebuilt executables, for a machine with an NVIDIA GPU and the CUDA 13
# libraries but none of our build dependencies (nothing is compiled there).
#   On the build machine (a build configured with -DLMS_CUDA=ON):
#     tests/gpu/device_run.sh pack [BUILD_DIR]   copies lms_gpu_tests, lms_nccl_tests (when built),
#                                                bench_cuda, bench_cuda_train, lmstation and the shared
#                                                libraries they need into .dev/
#   On the GPU machine, from the repository root:
#     tests/gpu/device_run.sh run [RESULTS_DIR]  (default $OUT, else gpu-results/)
# `run` writes machine.txt (nvidia-smi, CUDA libraries, ldd of each executable), gpu_tests.txt
# (the GPU test suite), nccl_tests.txt (the NCCL transport; libnccl from the toolkit, else from
# the Python package nvidia.nccl where python3 has it), bench_cuda.txt (speed against the bandwidth roofline), bench_cuda_graphs.txt
# (the same with CUDA graphs for the decode steps), bench_cuda_graphs_greedy.txt (graphs, and the
# greedy choice made on the device), bench_cuda_graphs_greedy_pdl.txt (the same with the decode
# kernels as programmatic dependent launches), bench_cuda_tiled.txt (prefill with the tiled
# attention), bench_cuda_op_times.txt (GPU time per op of prefill and of decode at batch 1) and
# bench_torch.txt (PyTorch + transformers on the same 1B shapes, where python3 has them;
# LMS_TORCH_ARGS=--compile adds torch.compile).
# bench_cuda_train.txt (the CUDA trainer's tokens/s and MFU with flash and with materialised
# attention, and the bubble of 2 and 4 stages on one GPU), bench_cuda_train_op_times.txt (GPU
# time per op of a bf16 step) and bench_train_torch.txt (PyTorch on the same training shape: bf16
# autocast, fused AdamW, torch.compile; where python3 has torch).
# ranks.txt: lmstation train --device cuda as one process and as two (--ranks 2) on one GPU.
# The goal figures alone, each time-boxed, for a short device budget (not in the default):
#   goal-infer (about 6 min at most): goal_decode.txt, the 1B BF16 model's prefill and decode at
#     batch 1, 16 and 64 with graphs and the greedy choice on the device, without and with
#     dependent launches (--pdl); goal_decode_op_times.txt, GPU time per op of its prefill and of
#     decode at batch 1; goal_decode_torch.txt, the PyTorch peer (torch.compile, else eager);
#   goal-train (about 5 min at most): goal_train.txt, the bf16 training step's tokens/s and MFU
#     and the 1F1B/GPipe bubble of 2 and 4 stages; goal_train_op_times.txt, GPU time per op of a
#     bf16 step; goal_train_torch.txt, the PyTorch peer.
# LMS_DEVICE_PARTS picks what runs (default "tests nccl infer train ranks"); LMS_GPU_TEST_FILTER is
# passed to lms_gpu_tests (e.g. "[cuda_train],[train_kernels]"), which stop after LMS_GPU_TEST_TIMEOUT
# seconds (300).
# LMS_TEST_MODEL=PATH runs the SmolLM2 end-to-end tests there too (they skip without the model).
# The model is larger than what one device call may carry (64 MiB), so
#     tests/gpu/device_run.sh pack-model MODEL.gguf
# splits it into .dev-model/part.00, part.01, … (50 MiB each: two for SmolLM2 Q4_1) with its SHA-256: carry one part a
# call on a machine kept warm (an ignored path already there stays), and `run` joins the parts
# and sets LMS_TEST_MODEL when all of them are there and the checksum matches;
# LMS_BENCH_ARGS passes options to bench_cuda, LMS_TRAIN_BENCH_ARGS to bench_cuda_train and the
# PyTorch training peer alike (shape flags), LMS_TORCH_TRAIN_ARGS to the peer alone.
set -uo pipefail
cd "$(dirname "$0")/../.."

case "${1:-}" in
  pack)
    build=${2:-build-cuda}
    pack=${LMS_PACK_SCRIPT:-../shared/device/pack.sh}
    rm -rf .dev
    exes=("$build/tests/lms_gpu_tests" "$build/tests/bench/bench_cuda" "$build/tests/bench/bench_cuda_train")
    [ -x "$build/tests/lms_nccl_tests" ] && exes+=("$build/tests/lms_nccl_tests")
    [ -x "$build/app/lmstation" ] && exes+=("$build/app/lmstation")
    bash "$pack" .dev "${exes[@]}" || exit 1
    echo "packed into .dev/ ($(du -sh .dev | cut -f1)); run there: tests/gpu/device_run.sh run"
    ;;
  pack-model)
    model=${2:?usage: tests/gpu/device_run.sh pack-model MODEL.gguf}
    rm -rf .dev-model && mkdir -p .dev-model
    split -b 50M -d "$model" .dev-model/part. || exit 1
    sha256sum <"$model" | cut -d' ' -f1 >.dev-model/sha256
    ls -l .dev-model
    echo "carry each of .dev-model/part.* (with .dev-model/sha256) in its own call; run joins them"
    ;;
  run)
    out=${2:-${OUT:-gpu-results}}
    mkdir -p "$out"
    if [ -z "${LMS_TEST_MODEL:-}" ] && [ -s .dev-model/sha256 ] && compgen -G ".dev-model/part.*" >/dev/null; then
      joined=${TMPDIR:-/tmp}/lms-test-model.gguf
      cat .dev-model/part.* >"$joined"
      if [ "$(sha256sum <"$joined" | cut -d' ' -f1)" = "$(cat .dev-model/sha256)" ]; then
        export LMS_TEST_MODEL=$joined
        echo "test model: joined from $(ls .dev-model/part.* | wc -l) parts"
      else
        echo "test model: .dev-model parts incomplete or corrupt (checksum differs); the model tests will skip"
      fi
    fi
    [ -x .dev/bin/lms_gpu_tests ] || { echo "no .dev/bin/lms_gpu_tests: run 'tests/gpu/device_run.sh pack' on the build machine" >&2; exit 2; }
    {
      echo "== nvidia-smi -L"; nvidia-smi -L
      nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv
      echo "== CUDA libraries"; ls /usr/local/cuda/lib64 /usr/local/cuda/lib 2>/dev/null | grep -E 'cudart|cublas|nccl'
      for exe in .dev/bin/*; do echo "== ldd $exe"; LD_LIBRARY_PATH=$PWD/.dev/lib:/usr/local/cuda/lib64 ldd "$exe"; done
    } >"$out/machine.txt" 2>&1
    cat "$out/machine.txt"
    export LD_LIBRARY_PATH=$PWD/.dev/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
    rc=0
    parts=" ${LMS_DEVICE_PARTS:-tests nccl infer train ranks} "
    if [[ $parts == *" goal-infer "* ]]; then
      # shellcheck disable=SC2086
      { timeout 100 .dev/bin/bench_cuda --graphs --greedy --models llama1b-bf16 --reps 3 ${LMS_BENCH_ARGS:-}
        timeout 70 .dev/bin/bench_cuda --graphs --greedy --pdl --models llama1b-bf16 --reps 3 ${LMS_BENCH_ARGS:-}
      } >"$out/goal_decode.txt" 2>&1 || rc=1
      cat "$out/goal_decode.txt"
      # Where a decode step's time goes: each op's GPU time against the step's.
      # shellcheck disable=SC2086
      timeout 45 .dev/bin/bench_cuda --op-times --models llama1b-bf16 --reps 1 --steps 16 ${LMS_BENCH_ARGS:-} \
        >"$out/goal_decode_op_times.txt" 2>&1 || rc=1
      cat "$out/goal_decode_op_times.txt"
      if python3 -c "import torch, transformers" 2>/dev/null; then
        PYTHONUNBUFFERED=1 timeout 140 python3 tests/bench/bench_cuda_torch.py --compile --reps 3 \
          >"$out/goal_decode_torch.txt" 2>&1 ||
          { echo "== torch.compile failed or ran out of time: eager"
            PYTHONUNBUFFERED=1 timeout 60 python3 tests/bench/bench_cuda_torch.py --reps 3; } \
          >>"$out/goal_decode_torch.txt" 2>&1 || rc=1
      else
        echo "no torch/transformers here: the PyTorch peer was not run" >"$out/goal_decode_torch.txt"
      fi
      cat "$out/goal_decode_torch.txt"
    fi
    if [[ $parts == *" goal-train "* ]]; then
      # shellcheck disable=SC2086
      timeout 100 .dev/bin/bench_cuda_train --precision bf16 --pipeline 2,4 ${LMS_TRAIN_BENCH_ARGS:-} \
        >"$out/goal_train.txt" 2>&1 || rc=1
      cat "$out/goal_train.txt"
      # shellcheck disable=SC2086
      timeout 60 .dev/bin/bench_cuda_train --precision bf16 --pipeline , --op-times --steps 3 ${LMS_TRAIN_BENCH_ARGS:-} \
        >"$out/goal_train_op_times.txt" 2>&1 || rc=1
      cat "$out/goal_train_op_times.txt"
      if python3 -c "import torch" 2>/dev/null; then
        # shellcheck disable=SC2086
        PYTHONUNBUFFERED=1 timeout 140 python3 tests/bench/bench_train_torch_gpu.py ${LMS_TRAIN_BENCH_ARGS:-} \
          ${LMS_TORCH_TRAIN_ARGS:-} >"$out/goal_train_torch.txt" 2>&1 || rc=1
      else
        echo "no torch here: the PyTorch training peer was not run" >"$out/goal_train_torch.txt"
      fi
      cat "$out/goal_train_torch.txt"
    fi
    if [[ $parts == *" tests "* ]]; then
      # shellcheck disable=SC2086
      timeout "${LMS_GPU_TEST_TIMEOUT:-300}" .dev/bin/lms_gpu_tests --durations yes ${LMS_GPU_TEST_FILTER:-} \
        >"$out/gpu_tests.txt" 2>&1 || rc=1
      echo "== lms_gpu_tests: exit ${rc}" | tee -a "$out/gpu_tests.txt"
      grep -E '^flash attention' "$out/gpu_tests.txt" || true
      tail -n 60 "$out/gpu_tests.txt"
    fi
    if [[ $parts == *" nccl "* ]] && [ -x .dev/bin/lms_nccl_tests ]; then
      nccl_lib=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))" 2>/dev/null || true)
      LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/cuda/lib${nccl_lib:+:$nccl_lib} timeout 300 .dev/bin/lms_nccl_tests \
        >"$out/nccl_tests.txt" 2>&1 || rc=1
      echo "== lms_nccl_tests: exit ${rc}" | tee -a "$out/nccl_tests.txt"
      tail -n 20 "$out/nccl_tests.txt"
    fi
    if [[ $parts == *" train "* ]]; then
      # shellcheck disable=SC2086
      timeout 300 .dev/bin/bench_cuda_train ${LMS_TRAIN_BENCH_ARGS:-} >"$out/bench_cuda_train.txt" 2>&1 || rc=1
      cat "$out/bench_cuda_train.txt"
      # Where a training step's time goes: GPU time per op of one stage in bf16.
      timeout 120 .dev/bin/bench_cuda_train ${LMS_TRAIN_BENCH_ARGS:-} --precision bf16 --pipeline , --op-times \
        >"$out/bench_cuda_train_op_times.txt" 2>&1 || rc=1
      cat "$out/bench_cuda_train_op_times.txt"
      if python3 -c "import torch" 2>/dev/null; then
        # shellcheck disable=SC2086
        PYTHONUNBUFFERED=1 timeout 300 python3 tests/bench/bench_train_torch_gpu.py ${LMS_TRAIN_BENCH_ARGS:-} \
          ${LMS_TORCH_TRAIN_ARGS:-} >"$out/bench_train_torch.txt" 2>&1 || rc=1
        cat "$out/bench_train_torch.txt"
      else
        echo "no torch here: the PyTorch training peer was not run" | tee "$out/bench_train_torch.txt"
      fi
    fi
    if [[ $parts == *" ranks "* ]] && [ -x .dev/bin/lmstation ]; then
      # lmstation train on the GPU as one process, then as two processes of one stage each on
      # the same GPU (messages through the host): the same losses are expected.
      {
        cfg=assets/examples/train_tiny.toml
        tmp=${TMPDIR:-/tmp}/lms-ranks
        rm -rf "$tmp"
        timeout 120 .dev/bin/lmstation train $cfg --device cuda --steps 20 --out "$tmp/one" --db "" --json 2>&1 | tail -n 1
        timeout 120 .dev/bin/lmstation train $cfg --device cuda --steps 20 --out "$tmp/two" --ranks 2 --rank 1 \
          --rendezvous 127.0.0.1:29733 >"$tmp.rank1" 2>&1 &
        timeout 120 .dev/bin/lmstation train $cfg --device cuda --steps 20 --out "$tmp/two" --ranks 2 --rank 0 \
          --rendezvous 127.0.0.1:29733 --db "" --json 2>&1 | tail -n 3
        wait
        echo "== rank 1:"; tail -n 3 "$tmp.rank1"
        cmp "$tmp/one/model.gguf" "$tmp/two/model.gguf" && echo "model.gguf: the same bytes"
      } >"$out/ranks.txt" 2>&1 || rc=1
      cat "$out/ranks.txt"
    fi
    if [[ $parts == *" infer "* ]]; then
      # shellcheck disable=SC2086
      timeout 420 .dev/bin/bench_cuda ${LMS_BENCH_ARGS:-} >"$out/bench_cuda.txt" 2>&1 || rc=1
      cat "$out/bench_cuda.txt"
      # Decode again with CUDA graphs (off by default in the backend until checked here).
      timeout 300 .dev/bin/bench_cuda --graphs --models smollm2-q4_1,llama1b-bf16 >"$out/bench_cuda_graphs.txt" 2>&1 || rc=1
      cat "$out/bench_cuda_graphs.txt"
      # Graphs and the greedy choice on the device (ids, not logits, to the host): the fastest decode.
      timeout 200 .dev/bin/bench_cuda --graphs --greedy --models smollm2-q4_1,llama1b-bf16 \
        >"$out/bench_cuda_graphs_greedy.txt" 2>&1 || rc=1
      cat "$out/bench_cuda_graphs_greedy.txt"
      # The same with the decode kernels as programmatic dependent launches (off by default until checked here).
      timeout 200 .dev/bin/bench_cuda --graphs --greedy --pdl --models smollm2-q4_1,llama1b-bf16 \
        >"$out/bench_cuda_graphs_greedy_pdl.txt" 2>&1 || rc=1
      cat "$out/bench_cuda_graphs_greedy_pdl.txt"
      # Prefill with the tiled tensor-core attention (off by default until checked here).
      timeout 200 .dev/bin/bench_cuda --tiled-prefill --prefill-only >"$out/bench_cuda_tiled.txt" 2>&1 || rc=1
      cat "$out/bench_cuda_tiled.txt"
      # Where the time goes: GPU time per op of prefill and of decode at batch 1.
      timeout 200 .dev/bin/bench_cuda --op-times --reps 2 --steps 16 --models smollm2-q4_1,llama1b-bf16 \
        >"$out/bench_cuda_op_times.txt" 2>&1 || rc=1
      cat "$out/bench_cuda_op_times.txt"
      # The PyTorch + transformers peer on the same shapes, where python3 has them.
      if python3 -c "import torch, transformers" 2>/dev/null; then
        # shellcheck disable=SC2086
        PYTHONUNBUFFERED=1 timeout 300 python3 tests/bench/bench_cuda_torch.py ${LMS_TORCH_ARGS:-} >"$out/bench_torch.txt" 2>&1 || rc=1
        cat "$out/bench_torch.txt"
      else
        echo "no torch/transformers here: the PyTorch peer was not run" | tee "$out/bench_torch.txt"
      fi
    fi
    exit $rc
    ;;
  *)
    echo "usage: tests/gpu/device_run.sh pack [BUILD_DIR] | pack-model MODEL.gguf | run [RESULTS_DIR]" >&2
    exit 2
    ;;
esac
