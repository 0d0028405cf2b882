#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a chat completion: installs the packages,
# builds, fetches the default model (SmolLM2-135M-Instruct Q4_1) and asks it a question.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install_deps.sh
bash packaging/build.sh
./build/app/lmstation pull smollm2
./build/app/lmstation run smollm2 --chat --temp 0 -n 128 \
  -p "${1:-In three sentences, why is the sky blue?}"
