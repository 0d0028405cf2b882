#!/usr/bin/env bash
# Builds llama.cpp's own HTTP server (`llama-server`) from the llama.cpp sources that the PyPI
# package llama-cpp-python==0.3.36 bundles, once, into $XDG_CACHE_HOME/lmstation/llama-server/.
# It is the peer of `lmstation serve` in tests/bench/bench_serve.py (continuous batching with
# -np slots, which the Python llama_cpp.server lacks). Prints the binary's path.
# Needs cmake, a C++ compiler and pip (about 10 minutes on 2 cores).
set -euo pipefail
VERSION=0.3.36
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/lmstation/llama-server"
BIN="$CACHE/bin/llama-server"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$CACHE/src"
cd "$CACHE/src"
if [ ! -f "llama_cpp_python-$VERSION.tar.gz" ]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d . >&2
fi
tar xzf "llama_cpp_python-$VERSION.tar.gz"
SRC="$CACHE/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$SRC" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON >&2
cmake --build "$CACHE/build" --target llama-server -j"$(nproc)" >&2
mkdir -p "$CACHE/bin"
cp "$CACHE/build/bin/llama-server" "$BIN"
echo "$BIN"
