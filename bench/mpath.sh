#!/usr/bin/env bash
# bench/mpath.sh: one path against two, where the target is the limit.
#
#   sudo bench/mpath.sh [ISERFS]
#
# ISERFS is an iserfs binary (default: fuse/iserfs of this tree).  Two tgtd
# daemons on 127.0.0.1, each with one event thread and TGTD_IOTHREADS (1)
# backing-store thread, export one file of random bytes in /dev/shm as the
# same LUN: the same IQN, tid 1, LUN 1, scsi_id and scsi_sn, so that iserfs
# finds the same identity (VPD 0x83/0x80) through both portals.  Mounted
# at once: "one", through the first daemon only, and for each policy of
# POLICIES "two/POLICY", through both (-o portal=,path_policy=).  Every
# workload runs REPS times with the mounts interleaved (one, two, one,
# two, ...), so that load from elsewhere hits them alike.  TCP only: iSER
# runs here under an emulation that copies through sockets, which says
# nothing about throughput.
#
# One line per run, then per workload and mount: the rate, median (min-max)
# of the repetitions, its ratio to one path's median, the µs of CPU per I/O
# of iserfs (all its threads) and of fio + iserfs (fio's ramp counted at
# the measured rate, as bench/ab.sh does), how busy each tgtd's event
# thread and both daemons whole were (% of one core) and the machine (% of
# all its cores, everyone's load counted), medians, and the commands each
# path carried over all repetitions (from user.iserfs.stats: its "path"
# lines; a mount of one path has none, so its READ commands).  Before it,
# each mount's read counters (READs, bytes, spliced bytes, polls).  The
# summary is a Markdown table.  A READ that failed, a command moved to another
# path or a reconnect during the run stops it: the figures would not be
# of healthy paths.
#
# Knobs: W (workloads of bench/lib.sh, default "seqread randread32": 1 MiB
# sequential reads, 16 in flight, and 4 KiB random reads, 32 in flight),
# REPS (3), SECS (3), LUN_MB (1024), POLICIES ("queue-length"; e.g.
# "queue-length round-robin"), TGTD_IOTHREADS (1; empty for tgtd's 16),
# CTL_PORT/ISCSI_PORT (7841/13341, the first daemon),
# CTL_PORT2/ISCSI_PORT2 (7842/13342, the second), TUNED=1 and the tunings'
# own knobs of bench/lib.sh.
set -euo pipefail
export LC_ALL=C

W=${W:-"seqread randread32"}
REPS=${REPS:-3}
SECS=${SECS:-3}
LUN_MB=${LUN_MB:-1024}
POLICIES=${POLICIES:-queue-length}
TGTD_IOTHREADS=${TGTD_IOTHREADS-1}
CTL_PORT=${CTL_PORT:-7841}
ISCSI_PORT=${ISCSI_PORT:-13341}
CTL_PORT2=${CTL_PORT2:-7842}
ISCSI_PORT2=${ISCSI_PORT2:-13342}
IQN=iqn.2026-12.org.iserfs.mpath:lun
SCSI_ID=iserfs-mpath-bench-01
SCSI_SN=MPBENCH01

die () { echo "mpath: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
ISERFS=${1:-$here/../fuse/iserfs}
[ "$(id -u)" = 0 ] || die "must run as root (tgtd, FUSE mounts)"
[ -x "$ISERFS" ] || die "$ISERFS is not executable (build the tree, or name a binary)"
ISERFS=$(cd "$(dirname "$ISERFS")" && pwd)/$(basename "$ISERFS")
for c in tgtd tgtadm fio fusermount3 getfattr python3 /usr/bin/time; do
  command -v "$c" >/dev/null || die "$c is missing"
done
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
for w in $W; do
  [ -n "${WL[$w]:-}" ] || die "unknown workload $w"
done
for p in $POLICIES; do
  case $p in failover|round-robin|queue-length) ;; *) die "unknown policy $p" ;; esac
done

bench_scratch mpath
bench_setup
bench_say_tunings

# Two daemons, one file, one identity.  tgtd's VPD 0x83 of a LUN is built
# from tid and LUN number (NAA-3) and scsi_id (T10 vendor id, NAA-6), 0x80
# is scsi_sn: equal on both, iserfs takes them for one LUN.
tgtds=()
start_tgtd () {
  local ctl=$1 port=$2 mb=$3
  bench_target "$ctl" "$port" "$IQN" "$mb" "$lun" "$work/tgtd-$port.log"
  pids+=("$TGTD_PID")
  tgtds+=("$TGTD_PID")
  timeout 10 tgtadm -C "$ctl" --lld iscsi --op update --mode logicalunit --tid 1 --lun 1 \
    --params "scsi_id=$SCSI_ID,scsi_sn=$SCSI_SN" ||
    die "tgtadm refused scsi_id/scsi_sn on the daemon at port $port"
}
start_tgtd "$CTL_PORT" "$ISCSI_PORT" "$LUN_MB"
start_tgtd "$CTL_PORT2" "$ISCSI_PORT2" keep
threads=("/proc/${tgtds[0]}/task"/*)
echo "# tgtd pids ${tgtds[*]} at 127.0.0.1:$ISCSI_PORT and :$ISCSI_PORT2, threads each: ${#threads[@]} (1 event + ${TGTD_IOTHREADS:-16} I/O)"

# The mounts: a wrapper per multipath one adds its options (bench_iserfs
# runs BIN -f URL DIR).
URL=iscsi://127.0.0.1:$ISCSI_PORT/$IQN
labels=(one) daemons=()
# two_up DIR: the mount at DIR has two paths, both up.
two_up () {
  [ "$(getfattr --absolute-names -n user.iserfs.stats --only-values "$1" |
        grep -c '^path .* state=up')" = 2 ]
}
mounts+=("$work/m0")
bench_iserfs "$ISERFS" "$URL" "$work/m0" pids
daemons+=("$ISERFS_PID")
echo "# one: $ISERFS -f $URL"
n=1
for p in $POLICIES; do
  opts="portal=127.0.0.1:$ISCSI_PORT2,path_policy=$p"
  printf '#!/bin/sh\nexec %q -o %q "$@"\n' "$ISERFS" "$opts" > "$work/iserfs-$p"
  chmod +x "$work/iserfs-$p"
  mounts+=("$work/m$n")
  bench_iserfs "$work/iserfs-$p" "$URL" "$work/m$n" pids
  daemons+=("$ISERFS_PID")
  labels+=("two/$p")
  echo "# two/$p: $ISERFS -f $URL -o $opts"
  ! grep -q "not the same LUN" "$work/m$n.log" ||
    die "iserfs did not take the two daemons' LUNs for one: $(cat "$work/m$n.log")"
  wait_for 100 two_up "$work/m$n" ||
    die "two/$p: not both paths up: $(getfattr --absolute-names -n user.iserfs.stats \
          --only-values "$work/m$n" | grep '^path ') $(cat "$work/m$n.log")"
  n=$((n + 1))
done

# ticks FILE: user+system clock ticks from a /proc stat file.
ticks () { sed 's/.*) //' "$1" | awk '{ print $12 + $13 }'; }
# paths I: "PORTAL=COMMANDS ..." of mount I, or "read_cmds=N" for one path.
paths () {
  getfattr --absolute-names -n user.iserfs.stats --only-values "$work/m$1" |
    awk '$1 == "path" { for (i = 4; i <= NF; i++) if ($i ~ /^commands=/) {
           sub(/^commands=/, "", $i); printf "%s=%s ", $3, $i; p = 1 } }
         /^read_cmds=/ { r = $0 }
         END { if (!p) printf "%s", r }'
}

# machine: "BUSY TOTAL" clock ticks of all CPUs so far (busy: all but
# idle and iowait).
machine () { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# tgtd_all: clock ticks of both tgtd daemons, all their threads.
tgtd_all () { echo $(( $(ticks "/proc/${tgtds[0]}/stat") + $(ticks "/proc/${tgtds[1]}/stat") )); }

# fio_run W I R: one run of workload W on mount I; appends a record to
# $work/runs and prints a line.
fio_run () {
  local w=$1 i=$2 r=$3 t0 t1 e0 e1 a0 a1 b0 b1 g0 g1 m0 m1 p0 p1
  p0=$(paths "$i")
  t0=$(ticks "/proc/${daemons[$i]}/stat")
  a0=$(ticks "/proc/${tgtds[0]}/task/${tgtds[0]}/stat")
  b0=$(ticks "/proc/${tgtds[1]}/task/${tgtds[1]}/stat")
  g0=$(tgtd_all)
  m0=$(machine)
  e0=$(date +%s%N)
  # shellcheck disable=SC2046 # fio_args gives several options
  timeout $((SECS + 60)) /usr/bin/time -f '%U %S' -o "$work/time" fio --name=mpath \
    --filename="$work/m$i/lun1" $(fio_args "$w") --ioengine=libaio \
    --direct=1 --ramp_time=1 --runtime="$SECS" --time_based \
    --size="${LUN_MB}M" --output-format=terse --terse-version=3 >"$work/terse" 2>"$work/fio.err" ||
    die "fio on ${labels[$i]} failed: $(cat "$work/fio.err" "$work/m$i.log")"
  e1=$(date +%s%N)
  t1=$(ticks "/proc/${daemons[$i]}/stat")
  a1=$(ticks "/proc/${tgtds[0]}/task/${tgtds[0]}/stat")
  b1=$(ticks "/proc/${tgtds[1]}/task/${tgtds[1]}/stat")
  g1=$(tgtd_all)
  m1=$(machine)
  p1=$(paths "$i")
  # terse v3: read KB/s 7, IOPS 8, total latency mean 40 (µs).
  awk -F';' -v w="$w" -v m="${labels[$i]}" -v r="$r" -v secs="$SECS" \
      -v hz="$(getconf CLK_TCK)" -v dt=$((t1 - t0)) -v da=$((a1 - a0)) -v db=$((b1 - b0)) \
      -v dg=$((g1 - g0)) -v m0="$m0" -v m1="$m1" \
      -v wall=$((e1 - e0)) -v cpu="$(cat "$work/time")" -v p0="$p0" -v p1="$p1" '
    function cmds(s, a,   n, f, i, kv) {
      n = split(s, f, " ")
      for (i = 1; i <= n; i++) { split(f[i], kv, "="); a[kv[1]] = kv[2] }
    }
    {
      split(cpu, c, " ")
      ios = $8 * (secs + 1)
      cmds(p0, x); cmds(p1, y); d = ""
      for (k in y) d = d sprintf("%s%s=%d", d == "" ? "" : ",", k, y[k] - x[k])
      split(m0, u, " "); split(m1, v, " ")
      s = wall / 1e9
      printf "%s\t%s\t%d\t%.3f\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\n", w, m, r,
        $7 / 1024, $8, $40,
        ios ? dt / hz / ios * 1e6 : 0, ios ? (c[1] + c[2] + dt / hz) / ios * 1e6 : 0,
        da / hz / s * 100, db / hz / s * 100, dg / hz / s * 100,
        (v[2] > u[2] ? (v[1] - u[1]) / (v[2] - u[2]) * 100 : 0), d
    }' "$work/terse" | tee -a "$work/runs" |
    awk -F'\t' '{ printf "%-10s %-16s %d %6.0f MB/s %6d IOPS %6.0f us  %6.1f us  %3.0f%% %3.0f%% %4.0f%%  %3.0f%%  %s\n",
                  $1, $2, $3, $4, $5, $6, $7, $9, $10, $11, $12, $13 }'
}

echo "# per run: workload, mount, rep, MB/s, IOPS, mean latency, iserfs's CPU per I/O, each tgtd's event"
echo "# thread and both tgtd whole (% of a core), the machine busy (% of all cores), commands per path"
for w in $W; do
  for r in $(seq "$REPS"); do
    for i in $(seq 0 $((n - 1))); do
      fio_run "$w" "$i" "$r"
    done
  done
done

# Errors or failovers during the run would make the figures meaningless.
for i in $(seq 0 $((n - 1))); do
  getfattr --absolute-names -n user.iserfs.stats --only-values "$work/m$i" |
    awk -v m="${labels[$i]}" -F= '$1 ~ /^(read_failed|failovers|reconnects)$/ && $2 > 0 {
      print "mpath: " m ": " $0 " during the run"; bad = 1 } END { exit bad }' >&2 ||
    die "the run is not clean (see above); the mount logs: $(cat "$work"/m*.log)"
done

# What each mount's counters say of where its reads went.
for i in $(seq 0 $((n - 1))); do
  echo "# ${labels[$i]}: $(getfattr --absolute-names -n user.iserfs.stats --only-values "$work/m$i" |
    grep -E '^(read_cmds|bytes_read|spliced_read_bytes|splice_spilled|poll_hits|poll_misses)=' |
    paste -sd' ')"
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
python3 - "$work/runs" <<'PY'
import statistics, sys
runs = {}
order = []
for line in open(sys.argv[1]):
    w, m, r, mbs, iops, lat, cpu_i, cpu_fi, ta, tb, tg, mach, cmds = line.rstrip("\n").split("\t")
    if (w, m) not in runs:
        runs[(w, m)] = []
        order.append((w, m))
    runs[(w, m)].append(dict(mbs=float(mbs), iops=float(iops), cpu_i=float(cpu_i),
                             cpu_fi=float(cpu_fi), ta=float(ta), tb=float(tb),
                             tg=float(tg), mach=float(mach), cmds=cmds))
def fmt(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v
def med(rs, k):
    return statistics.median(x[k] for x in rs)
print("| workload | paths | rate: median (min-max) | vs one | iserfs µs CPU/IO | fio+iserfs µs CPU/IO "
      "| tgtd event threads, % of a core | tgtd all, % | machine busy, % | commands per path, all reps |")
print("|---|---|---|---|---|---|---|---|---|---|")
for w, m in order:
    rs = runs[(w, m)]
    key, unit = ("mbs", "MB/s") if w.startswith("seq") else ("iops", "IOPS")
    vals = [x[key] for x in rs]
    one = med(runs[(w, "one")], key)
    tot = {}
    for x in rs:
        for kv in filter(None, x["cmds"].split(",")):
            k, v = kv.rsplit("=", 1)
            tot[k] = tot.get(k, 0) + int(v)
    print("| %s | %s | %s %s (%s-%s) | %.2f | %.1f | %.1f | %.0f, %.0f | %.0f | %.0f | %s |" % (
        w, m, fmt(med(rs, key)), unit, fmt(min(vals)), fmt(max(vals)),
        med(rs, key) / one if one else 0, med(rs, "cpu_i"), med(rs, "cpu_fi"),
        med(rs, "ta"), med(rs, "tb"), med(rs, "tg"), med(rs, "mach"),
        ", ".join("%s %d" % kv for kv in sorted(tot.items()))))
PY
