#!/usr/bin/env bash
# bench/cpu.sh: who spends the CPU, per I/O, when raw libiscsi and when
# iserfs is the client of one tgtd.
#
#   sudo bench/cpu.sh BUILDDIR [WORKLOAD...]
#
# BUILDDIR is a built tree (fuse/iserfs, tests/rawio).  WORKLOADs are names
# of WL in bench/lib.sh (default: randread32 seqread).  For
# each workload, REPS rounds (3) of: tests/rawio for SECS seconds (6), then
# fio for as long on an iserfs mount, both against one tgtd with a LUN of
# random bytes in /dev/shm.  One line per run:
#
#   WORKLOAD CLIENT  IOPS  MB/s  tgtd-loop  tgtd  client  iserfs-session  iserfs  machine  [inflight]
#
# CPU columns are microseconds of CPU per I/O (user+system, from
# /proc/PID/task/*/stat and, for the client, wait4 through /usr/bin/time or
# rawio's own count): tgtd's main thread (its event loop), all of tgtd,
# the client (rawio or fio), iserfs's busiest thread (its session thread),
# all of iserfs ("-" on rawio's rows), and the whole machine (/proc/stat: user, nice, system,
# irq, softirq) over the run.  For iserfs, `inflight` is the mean of
# user.iserfs.stats' inflight (commands at the target) read every 0.1 s
# during the run; each read is a getfattr process, a small load of its own.
#
# Knobs: REPS (3), SECS (6), LUN_MB (1024), CTL_PORT/ISCSI_PORT (7831/13331),
# TUNED=1 (apply bench/lib.sh's four tunings for the run; by default the
# machine is measured as found), the tunings' own knobs TGTD_TUNABLES,
# FUSE_RING, PAGE_REPORTING_ORDER with WARM_MB, PIPE_MAX, and TGTD_MRDSL
# (tgtd's data segment size); see bench/lib.sh.
set -euo pipefail
export LC_ALL=C   # printf's %f and python's output agree on the decimal point

REPS=${REPS:-3}
SECS=${SECS:-6}
LUN_MB=${LUN_MB:-1024}
CTL_PORT=${CTL_PORT:-7831}
ISCSI_PORT=${ISCSI_PORT:-13331}
IQN=iqn.2026-11.org.iserfs.cpu:lun

die () { echo "cpu: $*" >&2; exit 1; }
[ "$#" -ge 1 ] || die "usage: bench/cpu.sh BUILDDIR [WORKLOAD...]"
B=$(cd "$1" && pwd); shift
W=${*:-randread32 seqread}
[ "$(id -u)" = 0 ] || die "must run as root (tgtd, FUSE mounts)"
for f in fuse/iserfs tests/rawio; do [ -x "$B/$f" ] || die "$B/$f is not built"; done
for c in tgtd tgtadm fio fusermount3 getfattr python3 /usr/bin/time; do
  command -v "$c" >/dev/null || die "$c is missing"
done
# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
for w in $W; do
  [ -n "${WL[$w]:-}" ] || die "unknown workload $w"
done

work=$(mktemp -d /tmp/iserfs-cpu.XXXXXX)
lun=$(mktemp /dev/shm/iserfs-cpu.XXXXXX)
pids=()
cleanup () {
  set +e
  mountpoint -q "$work/m" && timeout 10 fusermount3 -u -z "$work/m"
  for p in "${pids[@]}" ${TGTD_PID:-} ${fio_pid:-}; do
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  rm -f "$lun"
  rm -rf "$work"
  declare -F bench_restore >/dev/null && bench_restore
}
trap cleanup EXIT
bench_setup
bench_say_tunings
trap 'exit 130' INT TERM

bench_target "$CTL_PORT" "$ISCSI_PORT" "$IQN" "$LUN_MB" "$lun" "$work/tgtd.log"
pids+=("$TGTD_PID")
URL=iscsi://127.0.0.1:$ISCSI_PORT/$IQN
bench_iserfs "$B/fuse/iserfs" "$URL" "$work/m" pids

# ticks FILE: user+system clock ticks from a /proc stat file (fields after
# the name, which may hold spaces); nothing if it is gone.
ticks () { sed 's/.*) //' "$1" 2>/dev/null | awk '{ print $12 + $13 }'; }
# cpu PID: "all TICKS" for the process (its own count keeps the time of
# threads that have exited), then "TID TICKS" for each live thread.
cpu () {
  local t n
  echo "all $(ticks "/proc/$1/stat")"
  for t in /proc/"$1"/task/*; do
    n=$(ticks "$t/stat") && [ -n "$n" ] && echo "${t##*/} $n"
  done
}
# machine: busy clock ticks of all CPUs so far.
machine () { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# Before a run: snapshot tgtd's and iserfs's threads and the machine.
snap_before () {
  cpu "$TGTD_PID" >"$work/t0"; cpu "$ISERFS_PID" >"$work/i0"; m0=$(machine)
}
# After a run: the CPU columns for IOS I/Os, CLIENT_S seconds of client CPU;
# CLIENT (rawio or iserfs) says whether iserfs's columns mean anything.
columns () {
  local ios=$1 client_s=$2 client=$3
  cpu "$TGTD_PID" >"$work/t1"; cpu "$ISERFS_PID" >"$work/i1"
  python3 - "$work" "$ios" "$client_s" $(( $(machine) - m0 )) "$(getconf CLK_TCK)" \
    "$TGTD_PID" "$client" <<'EOF'
import sys
work, ios, client_s, busy, hz, tgtd, client = sys.argv[1:]
ios, client_s, busy, hz = int(ios), float(client_s), int(busy), int(hz)
def load(name):
    return {k: int(v) for k, v in (l.split() for l in open(f"{work}/{name}"))}
def delta(a, b, thread=None):
    # (ticks of THREAD, or of the busiest thread; ticks of the process)
    old, new = load(a), load(b)
    per = {t: v - old.get(t, 0) for t, v in new.items() if t != "all"}
    one = per.get(thread, 0) if thread else max(per.values(), default=0)
    return one, new["all"] - old["all"]
us = lambda ticks: "%9.1f" % (ticks / hz / ios * 1e6)
tl, ta = delta("t0", "t1", tgtd)
il, ia = delta("i0", "i1")
cols = [us(tl), us(ta), "%9.1f" % (client_s / ios * 1e6)]
cols += [us(il), us(ia)] if client == "iserfs" else ["%9s" % "-"] * 2
cols.append(us(busy))
print(" ".join(cols), end="")
EOF
}

printf '%-12s %-7s %8s %8s %9s %9s %9s %9s %9s %9s %9s\n' workload client IOPS MB/s \
  tgtd-loop tgtd client is-sess iserfs machine inflight
for w in $W; do
  for r in $(seq "$REPS"); do
    # rawio: it counts its own I/Os and CPU.
    snap_before
    out=$(timeout $((SECS + 60)) "$B/tests/rawio" "$URL/1" ${WL[$w]} "$SECS") ||
      die "rawio failed: $out"
    ios=$(sed -n 's/.*ios=\([0-9]*\).*/\1/p' <<<"$out")
    iops=$(sed -n 's/.*IOPS=\([0-9.]*\).*/\1/p' <<<"$out")
    mbps=$(sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' <<<"$out")
    cpu=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<<"$out")
    printf '%-12s %-7s %8.0f %8.0f ' "$w" rawio "$iops" "$mbps"
    columns "$ios" "$cpu" rawio; echo
    # fio on the mount; inflight sampled while it runs.
    snap_before
    # shellcheck disable=SC2086
    /usr/bin/time -f "%U %S" -o "$work/time" timeout $((SECS + 60)) fio --name=cpu \
      --filename="$work/m/lun1" $(fio_args "$w") --ioengine=libaio --direct=1 \
      --runtime="$SECS" --time_based --size="${LUN_MB}M" --output-format=json \
      --output="$work/fio.json" &
    fio_pid=$!
    : >"$work/inflight"
    while kill -0 "$fio_pid" 2>/dev/null; do
      { getfattr --only-values -n user.iserfs.stats "$work/m" 2>/dev/null |
          sed -n 's/^inflight=//p' >>"$work/inflight"; } || true
      sleep 0.1   # the sampling interval, not a wait for an event
    done
    wait "$fio_pid" || { fio_pid=; die "fio failed"; }
    fio_pid=   # reaped: cleanup must not kill a pid that may be reused
    read -r ios iops mbps < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
iops = j["read"]["iops"] + j["write"]["iops"]
mbps = (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6
print(ios, iops, mbps)' "$work/fio.json")
    printf '%-12s %-7s %8.0f %8.0f ' "$w" iserfs "$iops" "$mbps"
    columns "$ios" "$(awk '{ print $1 + $2 }' "$work/time")" iserfs
    awk '{ s += $1; n++ } END { if (n) printf " %9.1f", s / n }' "$work/inflight"; echo
  done
done
