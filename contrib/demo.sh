#!/bin/bash
# iserfs demo: build iserfs, install it in /usr/local (so that `iserfs` and
# `mount -t fuse.iserfs` work afterwards; `make uninstall` removes it), start
# a local iSCSI target (tgtd) with two LUNs, and mount it.  tgtd and the
# mount stay up in the background afterwards.
#
#   contrib/demo.sh [MOUNTPOINT]        set up (or show) the demo; default /tmp/iserfs-demo
#   contrib/demo.sh status              show the running demo
#   contrib/demo.sh stop                unmount and stop the demo target
#
# Running it again while the demo is up only shows its status.  The LUNs'
# backing files live in /var/tmp/iserfs-demo/ and survive "stop" (delete
# the directory to free the space); the next start reuses them.
#
# For tests (tests/demo.test): ISERFS_DEMO_DIR replaces /var/tmp/iserfs-demo,
# ISERFS_DEMO_NO_SETUP=1 skips installing packages, building and installing
# iserfs (then ISERFS names the iserfs binary, or the tree must be built
# already).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
STATE_DIR=${ISERFS_DEMO_DIR:-/var/tmp/iserfs-demo}
STATE=$STATE_DIR/state
IQN=iqn.2026-01.org.iserfs:demo
DEFAULT_MNT=/tmp/iserfs-demo

die() { echo "demo: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# The state of a running demo: TGTD_PID CTL PORT MNT.
load_state() {
    TGTD_PID= CTL= PORT= MNT=
    [ -r "$STATE" ] || return 1
    # shellcheck disable=SC1090
    . "$STATE"
}

tgtd_alive() {
    [ -n "${TGTD_PID:-}" ] && [ "$(cat "/proc/$TGTD_PID/comm" 2>/dev/null)" = tgtd ] &&
        timeout 10 tgtadm -C "$CTL" --op show --mode sys >/dev/null 2>&1
}

free_tcp_port() { [ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }

pick_ports() {
    local i
    PORT=3260
    free_tcp_port "$PORT" || PORT=
    for i in $(seq 1 100); do
        [ -z "$PORT" ] || break
        PORT=$((20000 + ((RANDOM << 15) | RANDOM) % 40001))
        free_tcp_port "$PORT" || PORT=
    done
    [ -n "$PORT" ] || die "no free TCP port for the iSCSI portal"
    # tgtd's control "port" names a unix socket and must be <= 32767.
    for i in $(seq 1 100); do
        CTL=$((20000 + ((RANDOM << 15) | RANDOM) % 12768))
        ss -xlH 2>/dev/null | grep -qE "/tgtd/socket\\.$CTL( |$)" || return 0
    done
    die "no free tgtd control port"
}

start_target() {
    local deadline lun
    pick_ports
    mkdir -p "$STATE_DIR"
    say "starting tgtd on 127.0.0.1:$PORT (control port $CTL, log $STATE_DIR/tgtd.log)"
    # Keep tgtd's 1 MiB data buffers in its heap instead of mapping and
    # faulting one in for every command (iserfs(8), TARGET SETTINGS).
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864 \
        setsid tgtd -f -C "$CTL" --iscsi "portal=127.0.0.1:$PORT" \
        </dev/null >>"$STATE_DIR/tgtd.log" 2>&1 &
    TGTD_PID=$!
    deadline=$((SECONDS + 15))
    until timeout 5 tgtadm -C "$CTL" --op show --mode sys >/dev/null 2>&1 &&
          ! free_tcp_port "$PORT"; do
        kill -0 "$TGTD_PID" 2>/dev/null || die "tgtd exited; see $STATE_DIR/tgtd.log"
        [ "$SECONDS" -lt "$deadline" ] || { kill -KILL "$TGTD_PID"; die "tgtd did not come up"; }
        sleep 0.2
    done
    tgtadm -C "$CTL" --lld iscsi --op new --mode target --tid 1 -T "$IQN"
    # Take write data in 256 KiB pieces, not tgtd's default 8 KiB: large
    # writes are then about 1.5 times as fast (iserfs(8), TARGET SETTINGS;
    # the figures are in docs/history.md).
    tgtadm -C "$CTL" --lld iscsi --op update --mode target --tid 1 \
        --name MaxRecvDataSegmentLength --value 262144
    # Sparse backing files; existing ones keep their data across restarts.
    [ -e "$STATE_DIR/lun1.img" ] || truncate -s 256M "$STATE_DIR/lun1.img"
    [ -e "$STATE_DIR/lun2.img" ] || truncate -s 64M "$STATE_DIR/lun2.img"
    tgtadm -C "$CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 \
        -b "$STATE_DIR/lun1.img" --blocksize 512
    tgtadm -C "$CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 2 \
        -b "$STATE_DIR/lun2.img" --blocksize 4096
    tgtadm -C "$CTL" --lld iscsi --op bind --mode target --tid 1 -I ALL
    printf 'TGTD_PID=%s\nCTL=%s\nPORT=%s\nMNT=%s\n' "$TGTD_PID" "$CTL" "$PORT" "$MNT" > "$STATE"
}

find_iserfs() {
    # The installed iserfs, as a person would type it, once the demo put it
    # there; else the build tree's.
    if [ -z "${ISERFS:-}" ] && [ "$(command -v iserfs 2>/dev/null)" = /usr/local/bin/iserfs ] &&
       cmp -s /usr/local/bin/iserfs "$top/fuse/iserfs"; then
        ISERFS=iserfs
        return 0
    fi
    ISERFS=${ISERFS:-$top/fuse/iserfs}
    [ -x "$ISERFS" ] || die "no iserfs binary at $ISERFS (did the build fail?)"
}

mount_demo() {
    mkdir -p "$MNT"
    say "mounting iscsi://127.0.0.1:$PORT/$IQN on $MNT"
    timeout 60 "$ISERFS" "iscsi://127.0.0.1:$PORT/$IQN" "$MNT" ||
        die "iserfs could not mount the demo target"
    mountpoint -q "$MNT" || die "iserfs returned but $MNT is not mounted"
}

show_status() {
    say "demo target $IQN on 127.0.0.1:$PORT (tgtd pid $TGTD_PID), mounted on $MNT"
    echo "\$ ls -l $MNT"
    ls -l "$MNT"
    echo
    echo "\$ getfattr --absolute-names -n user.iserfs.stats --only-values $MNT"
    getfattr --absolute-names -n user.iserfs.stats --only-values "$MNT" || true
    cat <<TIPS

Things to try:
  # write 16 MiB to LUN 1, then see it on the target's backing file
  dd if=/dev/urandom of=$MNT/lun1 bs=1M count=16 conv=notrunc,fsync
  cmp -n 16M $MNT/lun1 $STATE_DIR/lun1.img
  # copy a disk image onto a LUN (holes are zeroed, the LUN keeps its size)
  cp --sparse=always some-disk.img $MNT/lun1
  # capacity, block size, counters, discovery
  stat -c '%n: %s bytes, block size %o' $MNT/lun1 $MNT/lun2
  getfattr --absolute-names -n user.iserfs.stats --only-values $MNT
  df -h $MNT
  $ISERFS --list iscsi://127.0.0.1:$PORT
  # unmount (the target keeps running; run the demo again to remount)
  umount $MNT
TIPS
    if [ "$ISERFS" = iserfs ]; then
        cat <<TIPS
  # mount again as mount(8) and /etc/fstab do (type fuse.iserfs)
  mount -t fuse.iserfs iscsi://127.0.0.1:$PORT/$IQN $MNT
TIPS
    fi
    cat <<TIPS
  # unmount and stop the demo target
  $top/contrib/demo.sh stop
TIPS
}

stop_demo() {
    if ! load_state; then
        echo "demo: not running"
        return 0
    fi
    if mountpoint -q "$MNT" 2>/dev/null; then
        say "unmounting $MNT"
        timeout 30 fusermount3 -u "$MNT" || timeout 30 fusermount3 -uz "$MNT" || true
    fi
    if [ -n "$TGTD_PID" ] && [ "$(cat "/proc/$TGTD_PID/comm" 2>/dev/null)" = tgtd ]; then
        say "stopping tgtd (pid $TGTD_PID)"
        kill -KILL "$TGTD_PID"   # tgtd ignores SIGTERM
    fi
    rm -f "/var/run/tgtd/socket.$CTL" "/var/run/tgtd/socket.$CTL.lock" "$STATE"
    say "stopped; LUN images kept in $STATE_DIR (rm -rf it to free the space)"
}

case "${1:-}" in
    stop) stop_demo; exit 0 ;;
    status)
        load_state && tgtd_alive && mountpoint -q "$MNT" || die "the demo is not running"
        find_iserfs; show_status; exit 0 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (try --help)" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (it installs packages, starts tgtd and mounts)"

if load_state && tgtd_alive && mountpoint -q "$MNT"; then
    find_iserfs
    show_status
    exit 0
fi

if [ "${ISERFS_DEMO_NO_SETUP:-}" != 1 ]; then
    say "installing dependencies"
    bash "$top/contrib/deps.sh"
    say "building"
    bash "$top/contrib/build.sh"
    say "installing iserfs in /usr/local (make install; 'make uninstall' removes it)"
    make -C "$top" -s install >/dev/null
fi
find_iserfs

REQ_MNT=${1:-}
if load_state && tgtd_alive; then
    say "tgtd already running (pid $TGTD_PID)"
    MNT=${REQ_MNT:-${MNT:-$DEFAULT_MNT}}
    printf 'TGTD_PID=%s\nCTL=%s\nPORT=%s\nMNT=%s\n' "$TGTD_PID" "$CTL" "$PORT" "$MNT" > "$STATE"
else
    MNT=${REQ_MNT:-$DEFAULT_MNT}
    start_target
fi
mountpoint -q "$MNT" || mount_demo
show_status
