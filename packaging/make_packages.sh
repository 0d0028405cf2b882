#!/usr/bin/env bash
# Builds the relocatable tarball and the .deb into build/packages/ (after packaging/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/build.sh >/dev/null
cd build
cpack -G TGZ -B "$PWD/packages" >/dev/null
cpack -G DEB -B "$PWD/packages" >/dev/null
ls -1 "$PWD"/packages/*.tar.gz "$PWD"/packages/*.deb
