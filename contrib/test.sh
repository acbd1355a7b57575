#!/bin/bash
# Install dependencies, build, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/build.sh
make -j"$(nproc)" check
