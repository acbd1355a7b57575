# tests/lib/mount.sh: mount and unmount iserfs in end-to-end tests.
# Sourced after target.sh (it uses its MOUNTS list, die and the transport
# prefix).  Every iserfs invocation is bounded by a timeout: nothing hangs.

: "${ISERFS:=$abs_top_builddir/fuse/iserfs}"
: "${ISERFS_TIMEOUT:=60}"
: "${IOPROBE:=$abs_top_builddir/tests/ioprobe}"
: "${RWMODEL:=$abs_top_builddir/tests/rwmodel}"

require_iserfs() {
    [ -x "$ISERFS" ] || die "iserfs binary not found at $ISERFS (build it first)"
}

# run_iserfs ARGS...: iserfs under the transport prefix and a timeout.
# Whether iserfs runs over Debian's stock libiscsi 1.19 iSER transport,
# which never re-establishes a lost iSER connection (see BUGS in iserfs(8)).
stock_iser() {
    [ "$ISERFS_TRANSPORT" = iser ] &&
        "$ISERFS" --version 2>/dev/null | grep -q "stock iSER transport"
}

# Tests whose iSER connections are lost on purpose need a library that
# reconnects.
require_iser_reconnect() {
    ! stock_iser ||
        skip "libiscsi 1.19's iSER transport does not re-establish a lost connection"
}

run_iserfs() {
    local prefix
    prefix=$(transport_prefix)
    # shellcheck disable=SC2086
    timeout "$ISERFS_TIMEOUT" $prefix "$ISERFS" "$@"
}

# A fresh empty directory to mount on.
new_mountpoint() {
    local m
    m=$(mktemp -d "$TARGET_DIR/mnt.XXXXXX") || die "cannot create a mount point"
    echo "$m"
}

# Remember a mount point so cleanup unmounts it even if the test fails.
track_mount() { MOUNTS+=("$1"); }

# The pid of the iserfs daemon serving MNT (mount points are unique temp
# paths, so the command line identifies it).
daemon_pid() {
    local p
    for p in $(pgrep -f -- "$1" 2>/dev/null); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = iserfs ] && { echo "$p"; return 0; }
    done
    return 1
}

# iserfs_mount URL MNT [OPTS...]: mount and check it is really mounted.
# iserfs daemonizes once the mount is up, so exit 0 means ready.
iserfs_mount() {
    local url=$1 mnt=$2 rc=0
    shift 2
    track_mount "$mnt"
    echo "+ iserfs $* $url $mnt"
    run_iserfs "$@" "$url" "$mnt" || rc=$?
    [ "$rc" != 124 ] || die "iserfs did not return within ${ISERFS_TIMEOUT}s (mount of $url)"
    [ "$rc" = 0 ] || die "iserfs exited $rc mounting $url on $mnt"
    mountpoint -q "$mnt" || die "iserfs exited 0 but $mnt is not a mount point"
    local pid
    pid=$(daemon_pid "$mnt") || die "no iserfs daemon process serves $mnt"
    DAEMON_PIDS+=("$pid")
    case "$(findmnt -n -o FSTYPE --mountpoint "$mnt")" in
        fuse|fuse.*) ;;
        *) die "$mnt is mounted, but not as a FUSE file system" ;;
    esac
}

# Poll (bounded) until MNT is no longer a mount point.
wait_unmounted() {
    local deadline=$((SECONDS + 20))
    while mountpoint -q "$1" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# iserfs_umount MNT: a clean unmount, and the daemon then exits (while
# the target is still up); fails the test if either does not happen.
iserfs_umount() {
    local pid deadline
    pid=$(daemon_pid "$1") || pid=
    timeout 30 fusermount3 -u "$1" || die "fusermount3 -u $1 failed"
    wait_unmounted "$1" || die "$1 still mounted 20s after fusermount3 -u"
    [ -n "$pid" ] || return 0
    deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] ||
            die "iserfs daemon $pid still runs 20s after $1 was unmounted"
        sleep 0.1
    done
}

# The stats xattr of a mount as "key=value" lines.
iserfs_stats() {
    timeout 30 getfattr --absolute-names -n user.iserfs.stats --only-values "$1" ||
        die "cannot read the user.iserfs.stats xattr of $1"
}

# stat_value MNT KEY: one counter from the stats xattr (dies if absent).
stat_value() {
    local v
    v=$(iserfs_stats "$1" | sed -n "s/^$2=//p" | head -n1)
    [ -n "$v" ] || die "stats of $1 have no '$2'"
    echo "$v"
}

# expect_fail DESC REGEX CMD...: CMD must fail and its stderr match REGEX
# (case-insensitive).  Used to check errno messages like "No space left".
expect_fail() {
    local desc=$1 re=$2 rc=0 err
    shift 2
    err=$("$@" 2>&1 >/dev/null) && rc=0 || rc=$?
    [ "$rc" != 0 ] || die "$desc: '$*' succeeded, expected failure matching /$re/"
    echo "$err" | grep -qiE "$re" ||
        die "$desc: '$*' failed (rc $rc) but said: $err (expected /$re/)"
    echo "ok: $desc -> $(echo "$err" | head -n1)"
}

# same_bytes DESC FILE1 OFF1 FILE2 OFF2 LEN: byte-for-byte equality of ranges.
same_bytes() {
    local out
    out=$(cmp -i "$3:$5" -n "$6" "$2" "$4" 2>&1) ||
        die "$1: $2@$3 and $4@$5 differ over $6 bytes: $out"
}

# expect_probe DESC EXPECTED FILE FLAGS OPS...: run ioprobe (see
# tests/ioprobe.c) and compare its output, lines joined by "; ", with
# EXPECTED, e.g. "open ok 0; pwrite err ENOSPC; close ok 0".
expect_probe() {
    local desc=$1 want=$2 got
    shift 2
    [ -x "$IOPROBE" ] || die "$IOPROBE not built (make check builds it)"
    got=$(timeout 60 "$IOPROBE" "$@" | paste -sd';' | sed 's/;/; /g') ||
        die "$desc: ioprobe $* did not complete"
    [ "$got" = "$want" ] || die "$desc: ioprobe $*: expected '$want', got '$got'"
    echo "ok: $desc -> $got"
}

# sha FILE [OFFSET LENGTH]: sha256 of a file or of a byte range of it.
sha() {
    if [ $# -eq 1 ]; then
        sha256sum < "$1" | cut -d' ' -f1
    else
        dd if="$1" bs=64K skip="$2" count="$3" iflag=skip_bytes,count_bytes status=none |
            sha256sum | cut -d' ' -f1
    fi
}
