#!/usr/bin/env bash
# Configures and builds lmstation into build/ (Release, CPU; CUDA when nvcc is found unless
# LMS_CUDA is set). Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLMS_CUDA="${LMS_CUDA:-OFF}" "$@" >/dev/null
cmake --build build -j"$(nproc)"
