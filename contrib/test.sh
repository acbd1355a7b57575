#!/bin/bash
# Install dependencies, build, and run the whole test suite: first against
# the libiscsi with the allocator hook (what contrib/build.sh builds), then,
# from the distribution tree, against Debian's stock libiscsi, with which
# iserfs must work too.  ISERFS_TEST_STOCK=no skips the second run.
#
# Where the kernel has FUSE over io_uring, the first run switches it on
# (the fuse module's enable_uring), so that every test there takes its
# requests from the ring (iserfs -o fuse_ring=auto, the default); the
# second run has the machine's own setting, N unless someone changed it,
# and reads /dev/fuse.  The setting is put back on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/build.sh
ring=/sys/module/fuse/parameters/enable_uring
ring_was=
if [ -w "$ring" ]; then
  ring_was=$(cat "$ring")
fi
restore_ring () {
  if [ -n "$ring_was" ]; then echo "$ring_was" > "$ring"; fi
}
trap restore_ring EXIT
if [ -n "$ring_was" ]; then
  echo Y > "$ring"
  echo "=== make check: iserfs with the hooked libiscsi, FUSE over io_uring"
else
  echo "=== make check: iserfs with the hooked libiscsi (no FUSE io_uring in this kernel)"
fi
make -j"$(nproc)" check
restore_ring
[ "${ISERFS_TEST_STOCK:-yes}" = yes ] || exit 0
echo "=== make check: iserfs with Debian's stock libiscsi (from make distdir)"
top=$(pwd)
work=$(mktemp -d /tmp/iserfs-stock.XXXXXX)
trap 'rm -rf "$work"; restore_ring' EXIT
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
