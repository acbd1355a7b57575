#!/bin/bash
# Install dependencies, build, and run the whole test suite: first against
# the libiscsi with the allocator hook (what contrib/build.sh builds), then,
# from the distribution tree, against Debian's stock libiscsi, with which
# iserfs must work too.  ISERFS_TEST_STOCK=no skips the second run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/build.sh
echo "=== make check: iserfs with the hooked libiscsi"
make -j"$(nproc)" check
[ "${ISERFS_TEST_STOCK:-yes}" = yes ] || exit 0
echo "=== make check: iserfs with Debian's stock libiscsi (from make distdir)"
top=$(pwd)
work=$(mktemp -d /tmp/iserfs-stock.XXXXXX)
trap 'rm -rf "$work"' EXIT
make distdir distdir=iserfs-stock-tree >/dev/null
mv iserfs-stock-tree "$work/src"
cd "$work/src"
./configure
make -j"$(nproc)"
if ! make -j"$(nproc)" check; then
  # Keep the logs where .ci/run looks for them.
  mkdir -p "$top/tests/stock-logs"
  find . \( -name '*.log' -o -name '*.trs' \) -path '*tests*' -exec cp --parents {} "$top/tests/stock-logs/" \;
  exit 1
fi
