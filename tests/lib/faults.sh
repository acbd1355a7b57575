# tests/lib/faults.sh: what the fault and security tests add to target.sh
# and mount.sh (source those first): stopping and restarting tgtd on the
# same ports with the same backing files, the fault-injecting proxy, CHAP
# accounts, iserfs in the foreground (to know its pid and stderr), and a
# bounded poll.
#
# A test that restarts its target describes the target once, in a function
# named by TARGET_SETUP, that uses only target_new / target_lun_keep /
# target_bind / target_account_*; target_resume replays it on the new tgtd.

: "${FAULTPROXY:=$abs_top_builddir/tests/faultproxy}"
TARGET_SETUP=
FG_PIDS=()

# wait_for DESC SECONDS CMD...: poll CMD until it succeeds; die after SECONDS.
wait_for() {
    local desc=$1 secs=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${secs}s waiting for: $desc"
        sleep 0.1   # poll interval, not synchronisation
    done
}

# target_lun_keep TID LUN SIZE [BLOCKSIZE]: like target_lun, but an existing
# backing file keeps its contents (a restarted target must serve the same
# bytes).  Prints the path.
target_lun_keep() {
    local tid=$1 lun=$2 size=$3 bs=${4:-} f
    f="$TARGET_DIR/t$tid-lun$lun.img"
    [ -e "$f" ] || truncate -s "$size" "$f" || die "cannot create backing file $f"
    tgtadm_ --lld "$(transport_lld)" --op new --mode logicalunit --tid "$tid" \
        --lun "$lun" -b "$f" ${bs:+--blocksize "$bs"} ||
        die "tgtadm: cannot create LUN $tid/$lun"
    TARGET_BACKING[$tid/$lun]=$f
    echo "$f"
}

# target_stop: the target vanishes (SIGKILL: tgtd ignores SIGTERM).
target_stop() {
    [ -n "$TGTD_PID" ] || die "target_stop: no tgtd running"
    kill -KILL "$TGTD_PID" 2>/dev/null || true
    wait "$TGTD_PID" 2>/dev/null || true
    rm -f "/var/run/tgtd/socket.$TARGET_CTL" "/var/run/tgtd/socket.$TARGET_CTL.lock"
    TGTD_PID=
    echo "tgtd stopped"
}

# target_resume: tgtd again on the same control port and portal, and the
# same targets and LUNs (TARGET_SETUP).  The port may still be held for a
# moment by the dead process's sockets, so starting is retried (bounded).
target_resume() {
    local prefix deadline=$((SECONDS + 20)) extra
    prefix=$(transport_prefix)
    [ -n "$TARGET_SETUP" ] || die "target_resume needs TARGET_SETUP"
    if [ "$ISERFS_TRANSPORT" = iser ]; then
        extra=(--iscsi "portal=$(target_addr):$TARGET_PORT" --iser "port=$TARGET_PORT")
    else
        extra=(--iscsi "portal=127.0.0.1:$TARGET_PORT")
    fi
    while :; do
        # shellcheck disable=SC2086
        $prefix tgtd -f -C "$TARGET_CTL" "${extra[@]}" >>"$TARGET_DIR/tgtd.log" 2>&1 &
        TGTD_PID=$!
        wait_tgtd_ready && break
        kill -KILL "$TGTD_PID" 2>/dev/null || true; wait "$TGTD_PID" 2>/dev/null || true
        TGTD_PID=
        [ "$SECONDS" -lt "$deadline" ] || die "could not restart tgtd on $TARGET_PORTAL"
        sleep 0.2   # retry interval
    done
    "$TARGET_SETUP" >/dev/null
    echo "tgtd restarted: pid $TGTD_PID portal $TARGET_PORTAL"
}

# target_restart PAUSE: stop, stay away PAUSE seconds, come back.
target_restart() {
    target_stop
    sleep "$1"   # the outage itself, not synchronisation
    target_resume
}

# --- CHAP accounts ----------------------------------------------------------

# target_account_in TID USER PASSWORD: the initiator must log in as USER.
target_account_in() {
    tgtadm_ --lld "$(transport_lld)" --op new --mode account --user "$2" --password "$3" ||
        die "tgtadm: cannot create account $2"
    tgtadm_ --lld "$(transport_lld)" --op bind --mode account --tid "$1" --user "$2" ||
        die "tgtadm: cannot bind account $2 to target $1"
}

# target_account_out TID USER PASSWORD: the target proves itself as USER
# (mutual CHAP).
target_account_out() {
    tgtadm_ --lld "$(transport_lld)" --op new --mode account --user "$2" --password "$3" ||
        die "tgtadm: cannot create account $2"
    tgtadm_ --lld "$(transport_lld)" --op bind --mode account --tid "$1" --user "$2" --outgoing ||
        die "tgtadm: cannot bind outgoing account $2 to target $1"
}

# --- the fault-injecting proxy ----------------------------------------------

# proxy_start ARGS...: faultproxy in front of TARGET_PORT; sets PROXY_PID,
# PROXY_PORT, PROXY_PORTAL and PROXY_LOG.
proxy_start() {
    local pf="$TARGET_DIR/proxy.port"
    [ -x "$FAULTPROXY" ] || die "$FAULTPROXY not built (make check builds it)"
    rm -f "$pf"
    PROXY_LOG="$TARGET_DIR/proxy.log"
    "$FAULTPROXY" --connect "127.0.0.1:$TARGET_PORT" --port-file "$pf" "$@" \
        >>"$PROXY_LOG" 2>&1 &
    PROXY_PID=$!
    # (rc is cleanup's exit status: show what the proxy did if we failed.)
    cleanup_add 'kill -TERM $PROXY_PID 2>/dev/null; wait $PROXY_PID 2>/dev/null;
        [ "$rc" = 0 ] || [ "$rc" = 77 ] || { echo "=== tail of proxy.log" >&2; tail -n 30 "$PROXY_LOG" >&2; }'
    wait_for "faultproxy to listen" 10 test -s "$pf"
    PROXY_PORT=$(cat "$pf")
    PROXY_PORTAL="127.0.0.1:$PROXY_PORT"
    echo "faultproxy pid $PROXY_PID on $PROXY_PORTAL ($*)"
}

# --- iserfs in the foreground -----------------------------------------------

# iserfs_mount_fg URL MNT [OPTS...]: iserfs -f in the background, its stderr
# in $TARGET_DIR/iserfs.PID.err; sets ISERFS_PID and ISERFS_ERR.  Waits
# (bounded) until MNT is a FUSE mount; dies if iserfs exits first.
iserfs_mount_fg() {
    local url=$1 mnt=$2 prefix err
    shift 2
    prefix=$(transport_prefix)
    track_mount "$mnt"
    err=$(mktemp "$TARGET_DIR/iserfs.err.XXXXXX")
    echo "+ iserfs -f $* $url $mnt"
    # ISERFS_WRAP: a command iserfs runs under, e.g. valgrind.
    # shellcheck disable=SC2086
    $prefix ${ISERFS_WRAP:-} "$ISERFS" -f "$@" "$url" "$mnt" 2>"$err" &
    ISERFS_PID=$!
    ISERFS_ERR=$err
    FG_PIDS+=("$ISERFS_PID")
    local deadline=$((SECONDS + ISERFS_TIMEOUT))
    until mountpoint -q "$mnt"; do
        if ! kill -0 "$ISERFS_PID" 2>/dev/null; then
            cat "$err" >&2
            die "iserfs -f exited before $mnt was mounted"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$mnt not mounted after ${ISERFS_TIMEOUT}s"
        sleep 0.1   # poll interval
    done
}

# wait_exit PID SECONDS: wait (bounded) for a child of this shell to exit
# and set EXIT_RC to its status.  Returns 1 if it still runs at the
# deadline.  Call it directly, not in $(...): only this shell can reap it.
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    EXIT_RC=
    while kill -0 "$pid" 2>/dev/null; do
        # A zombie child still answers kill -0; wait reaps it below.
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1   # poll interval
    done
    EXIT_RC=0
    wait "$pid" 2>/dev/null || EXIT_RC=$?
}

# Any foreground iserfs still running at the end is killed, after the
# mounts are gone (cleanup runs CLEANUP_CMDS first, so unmount here too).
kill_fg_iserfs() {
    local p m
    for m in "${MOUNTS[@]}"; do unmount_one "$m"; done
    for p in "${FG_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    return 0
}
cleanup_add kill_fg_iserfs

# stalled_target_keeps_acking: for tests that SIGSTOP tgtd to model a
# target whose software is stuck while its connection stays up.  Over
# iSER a stopped tgtd under the emulation also stops acknowledging
# (tests/softrdma answers from the process itself), so after the QP's
# retries (about 4 s by default) the connection would drop -- what a
# vanished host does, not a stuck target: an RDMA NIC, or rxe in the
# kernel, keeps acknowledging for a stopped process.  A long ACK timeout
# (4.096 us * 2^20, 8 tries: about 34 s) keeps the connection up through
# the stall.  libiscsi 1.19 cannot set it and never reconnects over iSER.
stalled_target_keeps_acking() {
    [ "$ISERFS_TRANSPORT" = iser ] || return 0
    stock_iser &&
        skip "libiscsi 1.19 cannot lengthen the RDMA ACK timeout (LIBISCSI_RDMA_ACK_TIMEOUT), so a stopped target's connection drops and its iSER transport never reconnects"
    # STALL_ACK_TIMEOUT= (empty) keeps the default: the host vanishes.
    if [ -n "${STALL_ACK_TIMEOUT-20}" ]; then
        export LIBISCSI_RDMA_ACK_TIMEOUT=${STALL_ACK_TIMEOUT-20}
    else
        unset LIBISCSI_RDMA_ACK_TIMEOUT
    fi
}
