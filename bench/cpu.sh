#!/usr/bin/env bash
# bench/cpu.sh: who spends the CPU, per I/O, when raw libiscsi and when
# iserfs is the client of one tgtd.
#
#   sudo bench/cpu.sh BUILDDIR [WORKLOAD...]
#
# BUILDDIR is a built tree (fuse/iserfs, tests/rawio).  WORKLOADs are names
# of FIO_WL and RAW_WL in bench/lib.sh (default: randread32 seqread).  For
# each workload, REPS rounds (3) of: tests/rawio for SECS seconds (6), then
# fio for as long on an iserfs mount, both against one tgtd with a LUN of
# random bytes in /dev/shm.  One line per run:
#
#   WORKLOAD CLIENT  IOPS  MB/s  tgtd-loop  tgtd  client  iserfs-session  iserfs  machine  [inflight]
#
# CPU columns are microseconds of CPU per I/O (user+system, from
# /proc/PID/task/*/stat and, for the client, wait4 through /usr/bin/time or
# rawio's own count): tgtd's busiest thread (its event loop), all of tgtd,
# the client (rawio or fio), iserfs's busiest thread (its session thread),
# all of iserfs, and the whole machine (/proc/stat: user, nice, system,
# irq, softirq) over the run.  For iserfs, `inflight` is the mean of
# user.iserfs.stats' inflight (commands at the target) read every 0.1 s
# during the run; each read is a getfattr process, a small load of its own.
#
# Knobs: REPS (3), SECS (6), LUN_MB (1024), CTL_PORT/ISCSI_PORT (7831/13331).
set -euo pipefail

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
  [ -n "${FIO_WL[$w]:-}" ] && [ -n "${RAW_WL[$w]:-}" ] || die "unknown workload $w"
done

work=$(mktemp -d /tmp/iserfs-cpu.XXXXXX)
lun=$(mktemp /dev/shm/iserfs-cpu.XXXXXX)
pids=()
cleanup () {
  set +e
  mountpoint -q "$work/m" && timeout 10 fusermount3 -u -z "$work/m"
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -f "$lun"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_target "$CTL_PORT" "$ISCSI_PORT" "$IQN" "$LUN_MB" "$lun" "$work/tgtd.log"
pids+=("$TGTD_PID")
URL=iscsi://127.0.0.1:$ISCSI_PORT/$IQN
mkdir "$work/m"
"$B/fuse/iserfs" -f "$URL" "$work/m" >"$work/iserfs.log" 2>&1 &
ISERFS_PID=$!
pids+=("$ISERFS_PID")
wait_for 100 test -e "$work/m/lun1" || { cat "$work/iserfs.log" >&2; die "iserfs did not mount"; }

# threads PID: "TID TICKS" for each thread, ticks of user+system.
threads () { for t in /proc/"$1"/task/*; do echo "${t##*/} $(awk '{ print $14 + $15 }' "$t/stat")"; done; }
# machine: busy clock ticks of all CPUs so far.
machine () { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# Before a run: snapshot tgtd's and iserfs's threads and the machine.
snap_before () {
  threads "$TGTD_PID" >"$work/t0"; threads "$ISERFS_PID" >"$work/i0"; m0=$(machine)
}
# After a run: the CPU columns for IOS I/Os, CLIENT_S seconds of client CPU.
columns () {
  local ios=$1 client_s=$2
  threads "$TGTD_PID" >"$work/t1"; threads "$ISERFS_PID" >"$work/i1"
  python3 - "$work" "$ios" "$client_s" $(( $(machine) - m0 )) "$(getconf CLK_TCK)" <<'EOF'
import sys
work, ios, client, busy, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def delta(a, b):
    old = dict(l.split() for l in open(f"{work}/{a}"))
    new = dict(l.split() for l in open(f"{work}/{b}"))
    d = [int(v) - int(old.get(t, 0)) for t, v in new.items()]
    return max(d), sum(d)
us = lambda ticks: ticks / hz / ios * 1e6
tl, ta = delta("t0", "t1")
il, ia = delta("i0", "i1")
print("%9.1f %9.1f %9.1f %9.1f %9.1f %9.1f" % (us(tl), us(ta), client / ios * 1e6, us(il), us(ia), us(busy)), end="")
EOF
}

printf '%-12s %-7s %8s %8s %9s %9s %9s %9s %9s %9s %9s\n' workload client IOPS MB/s \
  tgtd-loop tgtd client is-sess iserfs machine inflight
for w in $W; do
  for r in $(seq "$REPS"); do
    # rawio: it counts its own I/Os and CPU.
    snap_before
    out=$(timeout $((SECS + 60)) "$B/tests/rawio" "$URL/1" ${RAW_WL[$w]} "$SECS") ||
      die "rawio failed: $out"
    ios=$(sed -n 's/.*ios=\([0-9]*\).*/\1/p' <<<"$out")
    iops=$(sed -n 's/.*IOPS=\([0-9.]*\).*/\1/p' <<<"$out")
    mbps=$(sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' <<<"$out")
    cpu=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<<"$out")
    printf '%-12s %-7s %8.0f %8.0f ' "$w" rawio "$iops" "$mbps"
    columns "$ios" "$cpu"; echo
    # fio on the mount; inflight sampled while it runs.
    snap_before
    # shellcheck disable=SC2086
    /usr/bin/time -f "%U %S" -o "$work/time" timeout $((SECS + 60)) fio --name=cpu \
      --filename="$work/m/lun1" ${FIO_WL[$w]} --ioengine=libaio --direct=1 \
      --runtime="$SECS" --time_based --size="${LUN_MB}M" --output-format=json \
      --output="$work/fio.json" &
    fio_pid=$!
    : >"$work/inflight"
    while kill -0 "$fio_pid" 2>/dev/null; do
      getfattr --only-values -n user.iserfs.stats "$work/m" 2>/dev/null |
        sed -n 's/^inflight=//p' >>"$work/inflight"
      sleep 0.1   # the sampling interval, not a wait for an event
    done
    wait "$fio_pid" || die "fio failed"
    read -r ios iops mbps < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
iops = j["read"]["iops"] + j["write"]["iops"]
mbps = (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6
print(ios, iops, mbps)' "$work/fio.json")
    printf '%-12s %-7s %8.0f %8.0f ' "$w" iserfs "$iops" "$mbps"
    columns "$ios" "$(awk '{ print $1 + $2 }' "$work/time")"
    awk '{ s += $1; n++ } END { if (n) printf " %9.1f", s / n }' "$work/inflight"; echo
  done
done
