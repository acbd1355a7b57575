#!/usr/bin/env bash
# tests/soak.sh: a bounded soak, not part of `make check`.
# fio with verify=crc32c (verify_backlog: checked while it runs, and again
# at the end), mixed block sizes, several jobs on disjoint regions of two
# LUNs, for SOAK_SECONDS (default 180); tgtd is SIGKILLed and restarted
# once half-way.  Prints the bytes moved and the verification result; any
# I/O or verify error fails it.
# Run from a build tree:  abs_top_builddir=$PWD abs_top_srcdir=SRC SRC/tests/soak.sh
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib/target.sh"
source "$here/lib/mount.sh"
source "$here/lib/faults.sh"

: "${SOAK_SECONDS:=180}"
: "${SOAK_JOBS:=4}"        # per LUN
LUN_MB=256

require_env
require_iserfs
command -v fio >/dev/null || skip "fio not installed"
target_start
IQN=iqn.2026-01.org.iserfs.test:soak
setup() {
    target_new 1 "$IQN"
    target_lun_keep 1 1 ${LUN_MB}M 512
    target_lun_keep 1 2 ${LUN_MB}M 4096
    target_bind 1
}
TARGET_SETUP=setup
setup
mnt=$(new_mountpoint)
iserfs_mount "$(target_url 1)" "$mnt"

region=$((LUN_MB / SOAK_JOBS))
fio_job() {  # fio_job LUN: one fio with SOAK_JOBS jobs on disjoint regions
    timeout $((SOAK_SECONDS * 3 + 300)) fio --name="soak-lun$1" --filename="$mnt/lun$1" \
        --rw=randwrite --bssplit=4k/30:16k/20:64k/20:256k/20:1m/10 \
        --numjobs="$SOAK_JOBS" --size=${region}M --offset_increment=${region}M \
        --direct=1 --ioengine=libaio --iodepth=8 \
        --verify=crc32c --verify_backlog=256 --verify_fatal=1 --do_verify=1 \
        --time_based --runtime="$SOAK_SECONDS" --group_reporting \
        --verify_state_save=0 \
        --minimal --output="$TARGET_DIR/fio$1.out" 2>"$TARGET_DIR/fio$1.err"
}
echo "soak: ${SOAK_SECONDS}s, $SOAK_JOBS jobs x 2 LUNs of ${LUN_MB} MiB, restart at $((SOAK_SECONDS / 2))s"
t0=$SECONDS
fio_job 1 & f1=$!
fio_job 2 & f2=$!
cleanup_add "kill $f1 $f2 2>/dev/null"
r0=$(stat_value "$mnt" reconnects)
while [ $((SECONDS - t0)) -lt $((SOAK_SECONDS / 2)) ]; do sleep 1; done   # the schedule
step "restart at $((SECONDS - t0))s"
target_restart 2
wait_for "reconnect" 60 eval '[ "$(stat_value "$mnt" reconnects)" -gt "$r0" ]'
rc1=0; wait "$f1" || rc1=$?
rc2=0; wait "$f2" || rc2=$?

# summary LUN: "written-KiB read-KiB error" from fio's terse (v3) line:
# field 5 is the error, 6 the KiB read (verification reads), 47 the KiB
# written.
summary() {
    grep '^3;' "$TARGET_DIR/fio$1.out" | tail -n1 | awk -F';' '{ print $47, $6, $5 }'
}
bad=0
for l in 1 2; do
    rc=rc$l
    if [ "${!rc}" != 0 ] || ! grep -q '^3;' "$TARGET_DIR/fio$l.out"; then
        echo "fio on lun$l exited ${!rc}:"; cat "$TARGET_DIR/fio$l.err"; bad=1; continue
    fi
    read -r w r e < <(summary $l)
    echo "lun$l: fio wrote $((w >> 10)) MiB, read back and verified $((r >> 10)) MiB, error $e"
    [ "$e" = 0 ] || bad=1
    ! grep -qiE 'verify|crc' "$TARGET_DIR/fio$l.err" || { cat "$TARGET_DIR/fio$l.err"; bad=1; }
done
iserfs_stats "$mnt" | grep -E '^(bytes_read|bytes_written|reconnects|failed_cmds|read_failed|write_failed|fuse_ring_requests|read_in_place_bytes)='
[ "$bad" = 0 ] || die "soak: I/O or verification errors"
iserfs_umount "$mnt"
pass "soak: $((SECONDS - t0))s, zero verification errors"
