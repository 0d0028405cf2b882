#!/usr/bin/env bash
# Runs the whole test suite: installs the packages, sets up the Python reference peer
# (llama-cpp-python, built once into a cached virtualenv), builds with tests, fetches the default
# model, and runs ctest: unit tests, conformance tests on shared data, CLI tests and the
# comparisons with llama.cpp. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install_deps.sh

# The peer lives in a virtualenv in the user's cache so llama.cpp is compiled once per
# machine (about 10 minutes on 2 cores), not once per checkout.
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/lmstation"
VENV="$CACHE/pyenv"
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import llama_cpp, numpy, jinja2, autograd, openai" 2>/dev/null; then
  echo "run_all: installing the Python peers into $VENV (llama-cpp-python is built once; about 10 minutes on 2 cores)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "llama-cpp-python==0.3.36" numpy jinja2 "autograd==1.9.1" "openai==3.57.0"
fi

bash packaging/build.sh -DLMS_TESTS=ON -DLMS_REFERENCE_PYTHON="$VENV/bin/python"
./build/app/lmstation pull smollm2

cd build
ctest --output-on-failure -j"$(nproc)" "$@"
