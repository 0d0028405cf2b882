#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the whole loop: installs the packages, builds,
# fetches the default model (SmolLM2-135M-Instruct Q4_1), asks it a question, then runs the loop
# job (fine-tune it briefly, export, answer a question set with the base and fine-tuned models,
# judge them pairwise and print the leaderboard; everything recorded in lmstation-loop/loop.db).
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install_deps.sh
bash packaging/build.sh
./build/app/lmstation pull smollm2
./build/app/lmstation run smollm2 --chat --temp 0 -n 128 \
  -p "${1:-In three sentences, why is the sky blue?}"
./build/app/lmstation --batch assets/examples/loop_smollm2.toml
