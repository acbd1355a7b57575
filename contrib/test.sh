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
# and reads /dev/fuse, and then runs fuse-ring.test alone with the ring on.
# The setting is put back on exit.
#
# Both runs happen even when the first fails; each prints why any test was
# skipped, and the script ends with one line per run and exit status 1 if
# either failed.  The second run's logs are kept in tests/stock-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/build.sh
rm -rf tests/stock-logs

# skip_reasons DIR: the "SKIP: why" line of every skipped test under DIR.
skip_reasons () {
  local trs log why
  while IFS= read -r trs; do
    grep -q '^:test-result: SKIP' "$trs" || continue
    log=${trs%.trs}.log
    why=$(grep -m1 -h '^SKIP: ' "$log" 2>/dev/null || echo "SKIP: (no reason printed)")
    echo "  ${trs#"$1"/}: ${why#SKIP: }"
  done < <(find "$1" -name '*.trs' -path '*tests*' | sort)
}
results=()
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
if make -j"$(nproc)" check; then
  results+=("hooked libiscsi: passed")
else
  results+=("hooked libiscsi: FAILED (logs under tests/)")
fi
echo "=== skipped with the hooked libiscsi:"
skip_reasons .
restore_ring
if [ "${ISERFS_TEST_STOCK:-yes}" = yes ]; then
  echo "=== make check: iserfs with Debian's stock libiscsi (from make distdir)"
  top=$(pwd)
  work=$(mktemp -d /tmp/iserfs-stock.XXXXXX)
  trap 'rm -rf "$work"; restore_ring' EXIT
  make distdir distdir=iserfs-stock-tree >/dev/null
  mv iserfs-stock-tree "$work/src"
  # The package does not depend on which libiscsi the tree was configured
  # with: deb.test installs the one the first run built instead of
  # building the same package again.
  deb=$(ls "$top"/tests/deb-build/*/iserfs_*.deb 2>/dev/null | grep -v dbgsym | head -n1 || true)
  if (cd "$work/src" && ./configure && make -j"$(nproc)" &&
      ISERFS_DEB="$deb" make -j"$(nproc)" check); then
    results+=("stock libiscsi: passed")
  else
    results+=("stock libiscsi: FAILED (logs in tests/stock-logs/)")
  fi
  # That run read /dev/fuse, so fuse-ring.test skipped: run it once more
  # with the ring switched on (alone, since the switch is machine-wide).
  if [ -n "$ring_was" ] && [ -f "$work/src/tests/Makefile" ]; then
    echo "=== fuse-ring.test with Debian's stock libiscsi, FUSE over io_uring"
    echo Y > "$ring"
    if (cd "$work/src/tests" && make check TESTS=fuse-ring.test TEST_SUITE_LOG=ring-suite.log); then
      results+=("stock libiscsi, fuse-ring.test with io_uring: passed")
    else
      results+=("stock libiscsi, fuse-ring.test with io_uring: FAILED (logs in tests/stock-logs/)")
    fi
    restore_ring
  fi
  # Keep the logs where .ci/run looks for them.
  mkdir -p "$top/tests/stock-logs"
  (cd "$work/src" && find . \( -name '*.log' -o -name '*.trs' \) -path '*tests*' \
     -exec cp --parents {} "$top/tests/stock-logs/" \;)
  echo "=== skipped with the stock libiscsi:"
  skip_reasons "$top/tests/stock-logs"
fi
echo "=== results"
printf '  %s\n' "${results[@]}"
case "${results[*]}" in *FAILED*) exit 1 ;; esac
exit 0
