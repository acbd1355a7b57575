#!/bin/bash
# Install dependencies and build iserfs in the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh
[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure
make -j"$(nproc)"
