# tests/lib/target.sh: a private tgtd for one end-to-end test.
#
# Sourced (not executed) by every tests/*.test script.  It starts nothing
# by itself: call target_start.  It registers an EXIT trap that always
# unmounts what the test mounted, SIGKILLs its tgtd (tgtd ignores SIGTERM)
# and removes its temporary directory, so a failing or interrupted test
# leaves nothing behind.  Tests that need their own cleanup add it with
# cleanup_add "COMMAND" rather than installing another EXIT trap.
#
# Variables set by target_start:
#   TARGET_DIR     temp dir: backing files, tgtd.log, scratch space
#   TARGET_CTL     tgtd control port (every tgtadm call passes -C it)
#   TARGET_PORT    portal port, TARGET_PORTAL "127.0.0.1:PORT"
#   TGTD_PID       the tgtd process
#
# The transport is a parameter so the same suite can later run over iSER:
#   ISERFS_TRANSPORT=iscsi (default) or iser.  transport_scheme prints the
#   URL scheme, transport_prefix the command prefix under which tgtd and
#   iserfs must run (tests/softrdma/softrdma-run for iser).
#
# iSER runs over the user-space emulation tests/softrdma unless
# ISERFS_RDMA=kernel: then tgtd and iserfs use the machine's RDMA stack
# (a NIC, or the kernel's rdma_rxe/siw, set up here when no RDMA device
# exists and the modules do) and the portal is ISERFS_RDMA_ADDR (default
# 127.0.0.1, which only siw can serve).  Without a usable stack the iSER
# tests skip, saying why.

: "${ISERFS_TRANSPORT:=iscsi}"
: "${abs_top_builddir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${abs_top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

TARGET_DIR=
TARGET_CTL=
TARGET_PORT=
TARGET_PORTAL=
TGTD_PID=
declare -A TARGET_IQN=()     # tid -> IQN
declare -A TARGET_BACKING=() # "tid/lun" -> backing file
CLEANUP_CMDS=()
: "${ISERFS_INITIATOR:=iqn.2026-01.org.iserfs:$(hostname -s 2>/dev/null || echo localhost)}"
MOUNTS=()                    # every mount point this test mounted
DAEMON_PIDS=()               # the iserfs daemons serving them

# --- messages --------------------------------------------------------------

die() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
pass() { echo "PASS: $*"; }
step() { echo "--- $*"; }

# Skip only when a requirement of the machine is truly missing.
require_env() {
    [ "$(id -u)" = 0 ] || skip "must run as root (FUSE mounts, tgtd)"
    [ -c /dev/fuse ] || skip "/dev/fuse is missing"
    command -v tgtd >/dev/null && command -v tgtadm >/dev/null ||
        skip "tgtd/tgtadm not installed (Debian package tgt)"
}

# --- transport hook --------------------------------------------------------

transport_scheme() {
    case "$ISERFS_TRANSPORT" in
        iscsi) echo iscsi ;;
        iser) echo iser ;;
        *) die "ISERFS_TRANSPORT must be iscsi or iser, not '$ISERFS_TRANSPORT'" ;;
    esac
}

# The address tgtd's portal and iserfs use.
target_addr() {
    if [ "$ISERFS_TRANSPORT" = iser ] && [ "${ISERFS_RDMA:-}" = kernel ]; then
        echo "${ISERFS_RDMA_ADDR:-127.0.0.1}"
    else
        echo 127.0.0.1
    fi
}

# The network interface holding address $1, or nothing.
addr_dev() {
    ip -o addr show 2>/dev/null | awk -v a="$1" '{ split($4, x, "/"); if (x[1] == a) { print $2; exit } }'
}

# ISERFS_RDMA=kernel: make sure an RDMA device can reach ISERFS_RDMA_ADDR,
# adding a software one (siw on loopback, rxe or siw elsewhere) when the
# kernel has the modules; skip with the reason otherwise.  In this shell.
rdma_kernel_check() {
    local addr dev why=
    addr=$(target_addr)
    dev=$(addr_dev "$addr")
    [ -n "$dev" ] || skip "ISERFS_RDMA=kernel: no network interface has ISERFS_RDMA_ADDR=$addr"
    command -v rdma >/dev/null || skip "ISERFS_RDMA=kernel: the rdma tool (iproute2) is missing"
    if [ -z "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
        # rxe cannot use the loopback device; siw can.
        if [ "$dev" != lo ] && modprobe rdma_rxe 2>/dev/null; then
            rdma link add iserfs_rxe type rxe netdev "$dev" 2>/dev/null || why="rdma link add rxe on $dev failed"
        elif modprobe siw 2>/dev/null; then
            rdma link add iserfs_siw type siw netdev "$dev" 2>/dev/null || why="rdma link add siw on $dev failed"
        else
            why="no RDMA device, and this kernel has neither the rdma_rxe nor the siw module"
        fi
        modprobe rdma_ucm 2>/dev/null || why=${why:-"the rdma_ucm module is missing"}
    fi
    [ -z "$why" ] || skip "ISERFS_RDMA=kernel: $why (unset ISERFS_RDMA to run over the emulation)"
    [ -n "$(ls /sys/class/infiniband 2>/dev/null)" ] ||
        skip "ISERFS_RDMA=kernel: no RDMA device appeared"
    [ -e /dev/infiniband/rdma_cm ] || skip "ISERFS_RDMA=kernel: /dev/infiniband/rdma_cm is missing"
}

# Tests that read the emulation's counters or use its fault injection.
require_softrdma() {
    [ "${ISERFS_RDMA:-}" != kernel ] ||
        skip "needs the RDMA emulation (its counters or fault injection), not ISERFS_RDMA=kernel"
}

# Prints the command prefix (possibly empty) that tgtd and iserfs run under.
transport_prefix() {
    case "$ISERFS_TRANSPORT" in
        iscsi) ;;
        iser)
            [ "${ISERFS_RDMA:-}" = kernel ] && return 0
            local run="$abs_top_builddir/tests/softrdma/softrdma-run"
            [ -x "$run" ] || skip "iSER needs $run (not built)"
            echo "$run" ;;
        *) die "ISERFS_TRANSPORT must be iscsi or iser, not '$ISERFS_TRANSPORT'" ;;
    esac
}

# Validate the transport in the test's own shell (not in a $(...)
# subshell), so a skip or an error really ends the test.
transport_check() {
    case "$ISERFS_TRANSPORT" in
        iscsi) ;;
        iser)
            if [ "${ISERFS_RDMA:-}" = kernel ]; then
                rdma_kernel_check
            else
                [ -x "$abs_top_builddir/tests/softrdma/softrdma-run" ] ||
                    skip "iSER needs tests/softrdma/softrdma-run (not built)"
            fi ;;
        *) die "ISERFS_TRANSPORT must be iscsi or iser, not '$ISERFS_TRANSPORT'" ;;
    esac
}

# The tgtadm --lld for targets of this transport.
transport_lld() {
    case "$ISERFS_TRANSPORT" in
        iscsi) echo iscsi ;; iser) echo iser ;;
        *) die "ISERFS_TRANSPORT must be iscsi or iser, not '$ISERFS_TRANSPORT'" ;;
    esac
}

# --- cleanup ---------------------------------------------------------------

cleanup_add() { CLEANUP_CMDS+=("$1"); }

# timing_lock: make -j check runs tests side by side on few cores.  The
# tests that load the CPU hard (short-send.test, whose tiny socket buffers
# cost a core of system time; parallel-writes.test's four writers) and
# poll.test (and its iSER form) take turns, each holding this lock for its
# whole run.  Their assertions bear load (a busy loop on each core, or
# another suite beside them); the lock only keeps them from slowing each
# other down.  Once, before poll.test's assertions were made to bear it:
# with short-send.test alongside, iser-poll.iser saw no poll hit at one
# request in flight (at poll_us=50), and 2297 polling turns for 16384
# commands at 16 in flight.
# The lock is the build tree's: another tree's suite on the same machine is
# load like any other, and waiting for it (a whole suite may hold it for
# long) would fail a test for nothing.
timing_lock() {
    local lock="${abs_top_builddir:-${TMPDIR:-/tmp}}/tests/.timing.lock"
    mkdir -p "$(dirname "$lock")"
    exec 9>"$lock"
    flock -w 900 9 || die "waited 15 minutes for $lock"
}

# Abort a FUSE connection whose daemon no longer answers, so nothing that
# touches the mount point (including our own umount) can block forever.
fuse_abort() {
    local minor
    # From mountinfo, not stat(): stat of the root of a mount whose daemon
    # does not answer would block too.
    minor=$(awk -v m="$1" '$5 == m { split($3, d, ":"); print d[2] }' /proc/self/mountinfo |
        tail -n 1)
    [ -n "$minor" ] || return 0
    # systemd mounts fusectl at boot; a bare machine may not have it.
    [ -d "/sys/fs/fuse/connections/$minor" ] ||
        mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
    [ -w "/sys/fs/fuse/connections/$minor/abort" ] &&
        echo 1 > "/sys/fs/fuse/connections/$minor/abort" 2>/dev/null
    return 0
}

unmount_one() {
    local m=$1
    mountpoint -q "$m" 2>/dev/null || return 0
    timeout 20 fusermount3 -u "$m" 2>/dev/null ||
        timeout 20 umount "$m" 2>/dev/null || true
    mountpoint -q "$m" 2>/dev/null || return 0
    echo "cleanup: $m still mounted: aborting the FUSE connection" >&2
    fuse_abort "$m"
    timeout 20 fusermount3 -uz "$m" 2>/dev/null ||
        timeout 20 umount -l "$m" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    set +e
    cd /
    for ((i = ${#CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUP_CMDS[i]}"
    done
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        unmount_one "${MOUNTS[i]}"
    done
    # A daemon that outlived its unmount (a bug the tests report) must not
    # outlive the test either.
    for i in "${DAEMON_PIDS[@]}"; do
        if [ "$(cat "/proc/$i/comm" 2>/dev/null)" = iserfs ]; then
            echo "cleanup: iserfs daemon $i still running: killing it" >&2
            kill -KILL "$i" 2>/dev/null
        fi
    done
    if [ -n "$TGTD_PID" ]; then
        kill -KILL "$TGTD_PID" 2>/dev/null
        wait "$TGTD_PID" 2>/dev/null
        # SIGKILL leaves tgtd's control socket files behind.
        rm -f "/var/run/tgtd/socket.$TARGET_CTL" "/var/run/tgtd/socket.$TARGET_CTL.lock"
    fi
    if [ -n "$TARGET_DIR" ] && [ -d "$TARGET_DIR" ]; then
        if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -s "$TARGET_DIR/tgtd.log" ]; then
            echo "=== tail of tgtd.log" >&2; tail -n 20 "$TARGET_DIR/tgtd.log" >&2
        fi
        # Never rm -rf through a mount point that failed to go away.
        if grep -qF "$TARGET_DIR" <<< "$(findmnt -rn -o TARGET)"; then
            echo "cleanup: something is still mounted under $TARGET_DIR; leaving it" >&2
        else
            rm -rf "$TARGET_DIR"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tgtd ------------------------------------------------------------------

# pick_free LO HI IS_FREE WHAT: a random number in LO-HI for which the
# command IS_FREE N succeeds (100 tries).
pick_free() {
    local p i
    for i in $(seq 1 100); do
        p=$(($1 + ((RANDOM << 15) | RANDOM) % ($2 - $1 + 1)))
        "$3" "$p" && { echo "$p"; return 0; }
    done
    die "no free $4 found in $1-$2"
}

# A TCP port nobody listens on, random in 20000-60000.
port_is_free() { [ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }
pick_port() { pick_free 20000 60000 port_is_free "TCP port"; }

# tgtd's "control port" is not TCP: it names the unix socket
# /var/run/tgtd/socket.N, and tgtd refuses N > 32767.  Pick one no tgtd
# listens on (a killed tgtd leaves its socket file behind, so the file
# alone proves nothing; a live one holding it makes our tgtd fail, and
# target_start retries).
# (grep reads a here-string: with pipefail, grep -q leaving a pipe early
# would make the writer's SIGPIPE the pipeline's status.)
ctl_is_free() { ! grep -qE "/tgtd/socket\.$1( |$)" <<< "$(ss -xlH 2>/dev/null)"; }
pick_ctl_port() { pick_free 20000 32767 ctl_is_free "tgtd control port"; }

tgtadm_() { tgtadm -C "$TARGET_CTL" "$@"; }

# Poll until tgtd answers on its control port and listens on its portal.
# Fails (returns 1) if tgtd died, e.g. because it lost a port race.
wait_tgtd_ready() {
    local deadline=$((SECONDS + 15))
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$TGTD_PID" 2>/dev/null || return 1
        # tgtd goes on running when it cannot bind its portal.
        grep -q "unable to bind" "$TARGET_DIR/tgtd.log" 2>/dev/null && return 1
        if tgtadm_ --op show --mode sys >/dev/null 2>&1 &&
           if [ "$ISERFS_TRANSPORT" = iser ] && [ "${ISERFS_RDMA:-}" = kernel ]; then
               grep -qi "iser.*ready" <<< "$(tgtadm_ --op show --mode sys 2>/dev/null)"
           elif [ "$ISERFS_TRANSPORT" = iser ]; then
               [ -S "$SOFTRDMA_DIR/0.0.0.0-$TARGET_PORT" ]
           else
               # Listening, and by our tgtd: another process may have
               # taken the port since pick_port found it free.
               grep -q "pid=$TGTD_PID," <<< "$(ss -ltnpH "sport = :$TARGET_PORT" 2>/dev/null)"
           fi; then
            return 0
        fi
        sleep 0.1   # poll interval, not synchronisation
    done
    return 1
}

target_start() {
    local attempt prefix extra
    require_env
    transport_check
    TARGET_DIR=$(mktemp -d /tmp/iserfs-test.XXXXXX)
    prefix=$(transport_prefix)
    for attempt in 1 2 3 4 5; do
        TARGET_CTL=$(pick_ctl_port)
        TARGET_PORT=$(pick_port)
        if [ "$ISERFS_TRANSPORT" = iser ]; then
            # iSER listens on the same port number as TCP, as a real target
            # does (discovery runs over TCP, logins over iSER); with the
            # emulation that port is a name in our private SOFTRDMA_DIR.
            # tgtd parses the iSER port as a short: keep it below 32768.
            TARGET_PORT=$((20000 + TARGET_PORT % 12000))
            if [ "${ISERFS_RDMA:-}" != kernel ]; then
                export SOFTRDMA_DIR="$TARGET_DIR/softrdma"
                mkdir -p "$SOFTRDMA_DIR"
            fi
            extra=(--iscsi "portal=$(target_addr):$TARGET_PORT" --iser "port=$TARGET_PORT")
        else
            extra=(--iscsi "portal=127.0.0.1:$TARGET_PORT")
        fi
        # shellcheck disable=SC2086
        $prefix tgtd -f -C "$TARGET_CTL" "${extra[@]}" >"$TARGET_DIR/tgtd.log" 2>&1 &
        TGTD_PID=$!
        if wait_tgtd_ready; then
            TARGET_PORTAL="$(target_addr):$TARGET_PORT"
            echo "tgtd pid $TGTD_PID control $TARGET_CTL portal $TARGET_PORTAL ($ISERFS_TRANSPORT)"
            return 0
        fi
        echo "tgtd attempt $attempt failed (ports $TARGET_CTL/$TARGET_PORT), retrying" >&2
        # Under set -e: a tgtd that already exited, and the status of one
        # killed here (137), must not end the test before its retry.
        kill -KILL "$TGTD_PID" 2>/dev/null || true
        wait "$TGTD_PID" 2>/dev/null || true
        TGTD_PID=
        cat "$TARGET_DIR/tgtd.log" >&2
    done
    cat "$TARGET_DIR/tgtd.log" >&2
    die "could not start tgtd"
}

# target_new TID IQN: create a target (no LUNs, no access yet).
target_new() {
    tgtadm_ --lld "$(transport_lld)" --op new --mode target --tid "$1" -T "$2" ||
        die "tgtadm: cannot create target $1 $2"
    TARGET_IQN[$1]=$2
}

# target_lun TID LUN SIZE [BLOCKSIZE]: a LUN backed by a fresh sparse file
# of SIZE (truncate(1) syntax, e.g. 64M) under TARGET_DIR; prints its path.
target_lun() {
    local tid=$1 lun=$2 size=$3 bs=${4:-} f
    f="$TARGET_DIR/t$tid-lun$lun.img"
    truncate -s "$size" "$f" || die "cannot create backing file $f"
    tgtadm_ --lld "$(transport_lld)" --op new --mode logicalunit --tid "$tid" \
        --lun "$lun" -b "$f" ${bs:+--blocksize "$bs"} ||
        die "tgtadm: cannot create LUN $tid/$lun"
    TARGET_BACKING[$tid/$lun]=$f
    echo "$f"
}

# The backing file of TID/LUN (same path target_lun printed).
target_backing() { echo "$TARGET_DIR/t$1-lun$2.img"; }

# Print one field ("Readonly", "Thin-provisioning", ...) of a LUN as tgtd
# itself reports it.
target_lun_field() {
    # "--op show --mode target" lists every target with its LUNs
    # (with --tid it shows only the target's parameters).
    tgtadm_ --lld "$(transport_lld)" --op show --mode target |
        awk -v tgt="Target $1:" -v lun="LUN: $2" -v f="$3:" '
            /^Target / { intgt = ($1 " " $2 == tgt); inlun = 0 }
            intgt && $0 ~ /^ *LUN: / { inlun = ($0 ~ "^ *" lun "$") }
            intgt && inlun && $1 == f { $1 = ""; sub(/^ /, ""); print; exit }'
}

# target_lun_set TID LUN PARAM FIELD WHAT: set a LUN parameter to 1 and
# check that tgtd's own listing shows FIELD: Yes.
target_lun_set() {
    tgtadm_ --lld "$(transport_lld)" --op update --mode logicalunit \
        --tid "$1" --lun "$2" --params "$3=1" ||
        die "tgtadm: cannot set $5 on LUN $1/$2"
    [ "$(target_lun_field "$1" "$2" "$4")" = Yes ] ||
        die "tgtd does not report $5 on LUN $1/$2 after $3=1"
}

# target_readonly TID LUN: write-protect a LUN.
target_readonly() { target_lun_set "$1" "$2" readonly Readonly "write protection"; }

# target_thin TID LUN: advertise thin provisioning (UNMAP) on a LUN.
target_thin() { target_lun_set "$1" "$2" thin_provisioning Thin-provisioning "thin provisioning"; }

# target_bind TID [INITIATOR-IQN]: allow every initiator, or only one.
target_bind() {
    if [ -n "${2:-}" ]; then
        tgtadm_ --lld "$(transport_lld)" --op bind --mode target --tid "$1" \
            --initiator-name "$2" || die "tgtadm: cannot bind target $1 to $2"
    else
        tgtadm_ --lld "$(transport_lld)" --op bind --mode target --tid "$1" -I ALL ||
            die "tgtadm: cannot bind target $1"
        if [ "$ISERFS_TRANSPORT" = iser ]; then
            tgtadm_ --lld iser --op bind --mode target --tid "$1" \
                --initiator-name "$ISERFS_INITIATOR" ||
                die "tgtadm: cannot bind target $1 to $ISERFS_INITIATOR"
        fi
    fi
}

# target_url [TID [LUN]]: the iserfs URL of the portal, a target, or a LUN.
target_url() {
    local u
    u="$(transport_scheme)://$TARGET_PORTAL"
    [ -z "${1:-}" ] || u="$u/${TARGET_IQN[$1]}"
    [ -z "${2:-}" ] || u="$u/$2"
    echo "$u"
}
