#!/usr/bin/env bash
# Runs the whole test suite: installs the packages, builds with tests, fetches the default model,
# sets up the Python reference (llama-cpp-python, built once into a cached virtualenv), and runs
# ctest. Unit tests, conformance tests on shared data and the llama.cpp comparisons all run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install_deps.sh
bash packaging/build.sh -DLMS_TESTS=ON
./build/app/lmstation pull smollm2

# Python peer for the reference tests: a virtualenv kept in the user's cache so llama.cpp is
# compiled once per machine, not once per checkout.
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/lmstation"
VENV="$CACHE/pyenv"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
if ! "$VENV/bin/python" -c "import llama_cpp, numpy, jinja2" 2>/dev/null; then
  echo "run_all: building llama-cpp-python (about 10 minutes on 2 cores, once)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "llama-cpp-python==0.3.36" numpy jinja2
fi
export LMS_PYTHON="$VENV/bin/python"

cd build
ctest --output-on-failure -j"$(nproc)" "$@"
