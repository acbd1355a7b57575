#!/usr/bin/env bash
# bench/run.sh: iserfs against raw libiscsi and the other FUSE block exports,
# side by side, in one run, on one memory-backed tgtd LUN.
#
#   sudo bench/run.sh            (from a clean checkout; see docs/bench/README.md)
#   sudo TUNED=1 bench/run.sh    (the same, then once more on a tuned machine)
#
# Only ratios measured in one run mean anything: absolute numbers move with
# the machine.  So every column is measured here, against the same target,
# with the repetitions interleaved (rep 1 of every system, then rep 2, ...)
# so that a burst of load from elsewhere hurts every column alike.
#
# The headline table measures what a user gets: tgtd started plainly, the
# fuse module's enable_uring, the VM's free page reporting and
# fs.pipe-max-size as found.  TUNED=1 measures everything a second time
# with the four tunings of bench/lib.sh applied (tgtd-malloc, fuse-ring,
# no-page-reporting, pipe-max; target and mounts started afresh), and the
# results show that table second, each tuning named above it.  Every column
# says which libiscsi its process mapped (/proc/PID/maps).
#
# Environment knobs: BUILDDIR (an existing configured build to use; else one
# is made under the work dir, against contrib/libiscsi's libiscsi in
# ISERFS_LIBISCSI_PREFIX, default /opt/iserfs/libiscsi, or with
# ISERFS_LIBISCSI=stock against Debian's: contrib/build.sh's knobs),
# OUT (default docs/bench), RAW (a directory to keep the raw data in, for
# bench/report.py), REPS (3), SECS (3, seconds per fio/rawio run),
# LUN_MB (1024), DD_MB (512, MiB per dd run),
# CTL_PORT/ISCSI_PORT (7795/13295), NO_INSTALL=1 (never apt-get), PROFILE=0
# (skip the perf profile), PINNED=0 (skip the runs with tgtd on a core of
# its own, below), ISCSI_PERF (the iscsi-perf to run, default Debian's),
# TUNED=1 (the tuned run too), TGTD_MRDSL (tgtd's MaxRecvDataSegmentLength;
# empty for its default, 8192), and the tunings' own knobs (TGTD_TUNABLES,
# FUSE_RING, PAGE_REPORTING_ORDER with WARM_MB, PIPE_MAX; see bench/lib.sh),
# which, when set, hold for both runs.
#
# Besides the peers, a "FUSE floor": tests/nullfuse, a FUSE file system
# with no backend at all (reads of zeros, writes dropped), set up like
# iserfs.  What it reaches is the most any FUSE file system reaches here.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$srcdir/docs/bench}
REPS=${REPS:-3}
SECS=${SECS:-3}
LUN_MB=${LUN_MB:-1024}
DD_MB=${DD_MB:-512}
CTL_PORT=${CTL_PORT:-7795}
ISCSI_PORT=${ISCSI_PORT:-13295}
PROFILE=${PROFILE:-1}
PINNED=${PINNED:-1}
TUNED=${TUNED:-0}
ISCSI_PERF=${ISCSI_PERF:-iscsi-perf}
IQN=iqn.2026-11.org.iserfs.bench:lun
URL=iscsi://127.0.0.1:$ISCSI_PORT/$IQN

die () { echo "bench: $*" >&2; exit 1; }
say () { echo "bench: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (tgtd, FUSE mounts, drop_caches)"
case "$REPS$SECS$LUN_MB$DD_MB" in *[!0-9]*) die "REPS, SECS, LUN_MB and DD_MB must be numbers" ;; esac
[ "$DD_MB" -le "$LUN_MB" ] || die "DD_MB must not exceed LUN_MB"
case $TUNED in 0|1) ;; *) die "TUNED=$TUNED: expected 0 (the defaults a user gets) or 1 (then a tuned run)" ;; esac
case ${ISERFS_LIBISCSI:-hooked} in hooked|stock) ;; *) die "ISERFS_LIBISCSI=$ISERFS_LIBISCSI: expected 'stock' (Debian's) or 'hooked' (the default)" ;; esac

# ---- requirements: install what is missing, remember what is not there ----
# To build iserfs: what contrib/deps.sh installs (it also runs apt-get
# update when anything is missing, which the installs below then need).
if [ -z "${BUILDDIR:-}" ] && [ "${NO_INSTALL:-0}" != 1 ]; then
  say "installing the build dependencies (contrib/deps.sh)"
  deps_log=$(mktemp /tmp/iserfs-bench-deps.XXXXXX)
  timeout 900 bash "$srcdir/contrib/deps.sh" >"$deps_log" 2>&1 ||
    { tail -20 "$deps_log"; die "contrib/deps.sh failed (its output: $deps_log)"; }
  rm -f "$deps_log"
fi
# cmd:package pairs; a peer whose package cannot be installed becomes an
# "n/a (reason)" column, the rest still runs.
declare -A NA=()
need () {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "${NO_INSTALL:-0}" != 1 ]; then
    say "installing $pkg (for $cmd)"
    timeout 600 apt-get install -y -q --no-install-recommends "$pkg" \
      >/dev/null 2>&1 || true
  fi
  command -v "$cmd" >/dev/null 2>&1
}
for p in tgtd:tgt tgtadm:tgt fio:fio python3:python3-minimal \
         fusermount3:fuse3 getfattr:attr; do
  need "${p%%:*}" "${p#*:}" || die "${p%%:*} is missing (Debian package ${p#*:})"
done
[ -x /usr/bin/time ] || need /usr/bin/time time || die "/usr/bin/time is missing (Debian package time)"
need gnuplot gnuplot-nox || say "gnuplot missing: no plot"
if [ "$ISCSI_PERF" = iscsi-perf ]; then
  need iscsi-perf libiscsi-bin || NA[iscsiperf]="n/a (iscsi-perf not installed)"
elif [ ! -x "$ISCSI_PERF" ]; then
  NA[iscsiperf]="n/a ($ISCSI_PERF is not executable)"
fi
if ! need qemu-storage-daemon qemu-system-common; then
  NA[qsd]="n/a (qemu-storage-daemon not installed)"
elif ! ls /usr/lib/*/qemu/block-iscsi.so >/dev/null 2>&1 \
     && ! { [ "${NO_INSTALL:-0}" != 1 ] && timeout 600 apt-get install -y -q \
            --no-install-recommends qemu-block-extra >/dev/null 2>&1; }; then
  NA[qsd]="n/a (qemu-block-extra, the iscsi driver, not installed)"
fi
need nbdkit nbdkit || NA[nbdfuse]="n/a (nbdkit not installed)"
# Debian 12 ships nbdfuse inside libnbd-bin (there is no nbdfuse package).
need nbdfuse libnbd-bin || NA[nbdfuse]="n/a (nbdfuse not in Debian's libnbd-bin)"
need nbdcopy libnbd-bin || NA[nbdfuse]="n/a (nbdcopy not installed)"

# ---- work area and cleanup ----
work=$(mktemp -d /tmp/iserfs-bench.XXXXXX)
lunfile=$(mktemp /dev/shm/iserfs-bench.XXXXXX)
declare -a PIDS=() MOUNTS=()
# shellcheck source=bench/lib.sh
. "$srcdir/bench/lib.sh"
# teardown: the end of one run (the defaults' or the tuned one): unmount
# the exports, stop what the run started, put the machine's settings back.
teardown () {
  local - m p alive
  set +e
  for m in "${MOUNTS[@]}"; do
    mountpoint -q "$m" 2>/dev/null && timeout 10 fusermount3 -u -z "$m"
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  # Bounded wait; whatever ignores SIGTERM (tgtd does) gets SIGKILL.
  for _ in $(seq 50); do
    alive=0
    for p in "${PIDS[@]}"; do running "$p" && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  PIDS=() MOUNTS=()
  bench_restore
  return 0
}
cleanup () {
  local rc=$?
  set +e
  teardown
  rm -f "$lunfile"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build (or use $BUILDDIR) ----
# As contrib/build.sh (the README's first command) builds it: against
# libiscsi 1.20 with the patches of contrib/libiscsi, in ISERFS_LIBISCSI_PREFIX,
# built there first if it is not (about 20 s); the committed results were
# measured so.  ISERFS_LIBISCSI=stock builds against Debian's libiscsi 1.19
# (the same knobs as contrib/build.sh's).
if [ -z "${BUILDDIR:-}" ]; then
  BUILDDIR=$work/build
  cfg=()
  if [ "${ISERFS_LIBISCSI:-hooked}" != stock ]; then
    prefix=${ISERFS_LIBISCSI_PREFIX:-/opt/iserfs/libiscsi}
    [ "${NO_INSTALL:-0}" != 1 ] || [ -f "$prefix/lib/pkgconfig/libiscsi.pc" ] ||
      die "NO_INSTALL=1, and no libiscsi in $prefix: make it with contrib/libiscsi/build.sh, or set ISERFS_LIBISCSI=stock"
    say "libiscsi with the patches of contrib/libiscsi in $prefix"
    timeout 900 sh "$srcdir/contrib/libiscsi/build.sh" "$prefix" >"$work/libiscsi.log" 2>&1 ||
      { tail -20 "$work/libiscsi.log"; die "contrib/libiscsi/build.sh failed (ISERFS_LIBISCSI=stock uses Debian's libiscsi)"; }
    cfg+=("--with-libiscsi=$prefix")
  fi
  say "building iserfs in $BUILDDIR"
  mkdir -p "$BUILDDIR"
  ( cd "$srcdir" && { [ -x configure ] || timeout 300 ./autogen.sh; } ) \
    >"$work/build.log" 2>&1 || die "autogen failed, see $work/build.log"
  ( cd "$BUILDDIR" && timeout 300 "$srcdir/configure" -q "${cfg[@]}" \
      && timeout 900 make -j"$(nproc)" \
      && timeout 300 make -C tests rawio mempool_bench nullfuse ) \
    >>"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; die "build failed"; }
fi
ISERFS=$BUILDDIR/fuse/iserfs
RAWIO=$BUILDDIR/tests/rawio
MEMPOOL_BENCH=$BUILDDIR/tests/mempool_bench
NULLFUSE=$BUILDDIR/tests/nullfuse
if [ ! -x "$RAWIO" ] || [ ! -x "$MEMPOOL_BENCH" ] || [ ! -x "$NULLFUSE" ]; then
  make -C "$BUILDDIR/tests" rawio mempool_bench nullfuse >/dev/null
fi
for f in "$ISERFS" "$RAWIO" "$MEMPOOL_BENCH" "$NULLFUSE"; do
  [ -x "$f" ] || die "$f not built"
done

# What iserfs does at one command in flight: its session thread polls for
# poll_us before it sleeps in poll(), where raw libiscsi sleeps at once.
# From iserfs --help, so that the results say it only while it is so.
poll_us=$("$ISERFS" --help 2>&1 | grep -A1 -e '-o poll_us=' |
          sed -n 's/.*default \([0-9][0-9]*\).*/\1/p' | head -1) || poll_us=

# The peers that are missing for every run, kept apart from a run's own.
declare -A BASE_NA=() FILE=() DAEMON=() TARGET=()
for k in "${!NA[@]}"; do BASE_NA[$k]=${NA[$k]}; done

# ---- measuring ----
# One line per run in runs.tsv (in the run's directory):
#   system workload rep MBps IOPS lat_us GiB cpu_s target_cpu_s wait_pct
# cpu_s = CPU seconds of the client (fio/dd/rawio, user+sys, from wait4) plus
# the export daemon's (user+sys over all its threads, /proc/PID/stat).
# target_cpu_s = the target's (tgtd, or nbdkit for nbdfuse) over the same
# run, kept apart: on 2 cores the target's share of the CPU bounds what any
# client reaches (see report.py's "CPU bound" lines).
# wait_pct = the share of the run that tgtd's event thread (its main
# thread, which reads every command and sends every answer) spent ready to
# run but waiting for a CPU (/proc/PID/task/PID/schedstat); "-" for nbdkit
# or when the kernel does not say.  It shows how much the client's own CPU
# holds the target back.
tck=$(getconf CLK_TCK)

daemon_ticks () {
  local pid=$1
  [ -n "$pid" ] || { echo 0; return; }
  # Fields after the ")" that closes comm: utime is the 12th, stime the 13th.
  sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

# Nanoseconds tgtd's event thread has waited on a run queue, and the
# clock; "- -" for any other target, or if the kernel does not say.
event_wait () {
  local tpid=$1 ns
  if [ "$tpid" = "$tgtd_pid" ] \
     && ns=$(cut -d' ' -f2 "/proc/$tpid/task/$tpid/schedstat" 2>/dev/null) \
     && [ -n "$ns" ]; then
    echo "$ns $(date +%s%N)"
  else
    echo "- -"
  fi
}

# measure SYSTEM WORKLOAD REP PARSER CMD...: runs CMD under /usr/bin/time,
# then PARSER turns its output into "MBps IOPS lat_us GiB".
measure () {
  local sys=$1 wl=$2 rep=$3 parser=$4; shift 4
  local d0 d1 t0 t1 w0 w1 res cpu tcpu wpct pid=${DAEMON[$sys]:-} tpid=${TARGET[$sys]:-}
  d0=$(daemon_ticks "$pid"); t0=$(daemon_ticks "$tpid"); w0=$(event_wait "$tpid")
  if ! /usr/bin/time -f '%U %S' -o "$work/time.out" "$@" >"$work/out" 2>"$work/err"; then
    say "$sys $wl rep $rep failed: $(tail -n 2 "$work/err" | tr '\n' ' ')"
    return 0
  fi
  d1=$(daemon_ticks "$pid"); t1=$(daemon_ticks "$tpid"); w1=$(event_wait "$tpid")
  res=$("$parser" "$work/out" "$work/err") \
    || { say "$sys $wl: cannot parse output: $(head -c 300 "$work/out" "$work/err")"; return 0; }
  cpu=$(awk -v d=$((d1 - d0)) -v t="$tck" '{ printf "%.3f", $1 + $2 + d / t }' "$work/time.out")
  tcpu=$(awk -v d=$((t1 - t0)) -v t="$tck" 'BEGIN { printf "%.3f", d / t }')
  wpct=$(echo "$w0 $w1" | awk '
    NF == 4 && $1 $3 ~ /^[0-9]+$/ && $4 > $2 && $3 >= $1 {
      printf "%.1f", 100 * ($3 - $1) / ($4 - $2); next }
    { print "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$wl" "$rep" "$res" "$cpu" "$tcpu" "$wpct" | tr ' ' '\t' >>"$runs"
  say "$(printf '%-13s %-11s rep %s: %s cpu %s target %s waiting %s' "$sys" "$wl" "$rep" "$res" "$cpu" "$tcpu" "$wpct%")"
}

# fio counts bytes only after its ramp, while the CPU is counted over the
# whole run: the GiB column adds the ramp's share at the measured rate, so
# that CPU per GiB compares with rawio's and dd's, which have no ramp.
parse_fio () {
  python3 -c '
import json, sys
ramp = float(sys.argv[1])
j = json.load(sys.stdin)["jobs"][0]
by = j["read"]["io_bytes"] + j["write"]["io_bytes"]
ops = j["read"]["total_ios"] + j["write"]["total_ios"]
d = j["read"] if j["read"]["total_ios"] else j["write"]
lat = d.get("lat_ns", {}).get("percentile", {}).get("50.000000", 0) / 1e3
secs = max(j["read"]["runtime"], j["write"]["runtime"]) / 1e3
print("%.1f %.0f %.1f %.4f" % (by / secs / 1e6, ops / secs, lat,
                               by * (secs + ramp) / secs / 2**30))' "$FIO_RAMP" <"$1"
}
parse_rawio () {
  tr ' ' '\n' <"$1" | awk -F= '{ v[$1] = $2 } END {
    if (!v["ios"]) exit 1
    printf "%s %s %s %.4f\n", v["MBps"], v["IOPS"], v["lat_median_us"],
      v["MBps"] * v["seconds"] * 1e6 / 2^30 }'
}
# iscsi-perf prints a progress line a second; the last "iops average" holds.
parse_iscsiperf () {
  tr '\r' '\n' <"$1" | awk -v s="$SECS" '/iops average/ { l = $0 } END {
    if (!l) exit 1
    match(l, /iops average [0-9]+ \([0-9]+ MB\/s\)/)
    split(substr(l, RSTART, RLENGTH), f, /[ (]+/)
    printf "%s %s %.1f %.4f\n", f[4], f[3], 1e6 / f[3], f[4] * 1e6 * (s + 1) / 2^30 }'
}
# dd: "N bytes (...) copied, S s, R MB/s"
parse_dd () {
  awk '/copied/ { b = $1; for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i - 1) }
       END { if (!s) exit 1; printf "%.1f 0 0 %.4f\n", b / s / 1e6, b / 2^30 }' "$2"
}

FIO_RAMP=1
FIO_COMMON=(--ioengine=libaio --direct=1 --numjobs=1 --time_based
            --runtime="$SECS" --ramp_time="$FIO_RAMP" --lat_percentiles=1 --randrepeat=0
            --norandommap --output-format=json --name=bench)
# WL (workload name -> rawio args) and fio_args are in bench/lib.sh.
# workload name, iscsi-perf args (-b counts 512-byte blocks)
declare -A PERF_WL=(
  [seqread]="-m 16 -b 2048"
  [randread32]="-m 32 -b 8 -r"
  [randread1]="-m 1 -b 8 -r"
  [seqread4m4]="-m 4 -b 8192"
)
WORKLOADS=(seqread seqwrite ddread ddwrite randread32 randwrite32 randread1 seqread4m4)
FUSE_SYSTEMS=(iserfs qsd nbdfuse nullfuse)

# run_one SYSTEM WORKLOAD REP [AS]: one run, recorded as AS (default
# SYSTEM); the rawio and fio runs start under the command in RUN_UNDER
# (empty, or the pinned runs' taskset below).
RUN_UNDER=()
run_one () {
  local sys=$1 wl=$2 rep=$3 as=${4:-$1} f
  case $sys in
    rawio)
      [ -n "${WL[$wl]:-}" ] || return 0
      # shellcheck disable=SC2046,SC2086
      measure "$as" "$wl" "$rep" parse_rawio "${RUN_UNDER[@]}" \
        timeout $((SECS + 60)) "$RAWIO" "$URL/1" ${WL[$wl]} "$SECS" ;;
    iscsiperf)
      [ -n "${PERF_WL[$wl]:-}" ] && [ -z "${NA[iscsiperf]:-}" ] || return 0
      # iscsi-perf runs until SIGINT and then prints its totals, but its
      # exit status after SIGINT is not reliably 0; the parser decides.
      # shellcheck disable=SC2016,SC2086
      measure iscsiperf "$wl" "$rep" parse_iscsiperf sh -c \
        'secs=$0 perf=$1; shift; timeout -s INT -k 10 "$secs" "$perf" "$@"; exit 0' \
        $((SECS + 1)) "$ISCSI_PERF" ${PERF_WL[$wl]} "$URL/1" ;;
    *)
      f=${FILE[$sys]:-}
      [ -n "$f" ] || return 0
      case $wl in
        ddread)
          timeout 60 sync; echo 3 >/proc/sys/vm/drop_caches
          measure "$sys" "$wl" "$rep" parse_dd \
            timeout 120 dd if="$f" of=/dev/null bs=1M count="$DD_MB" ;;
        ddwrite)
          measure "$sys" "$wl" "$rep" parse_dd \
            timeout 120 dd if=/dev/zero of="$f" bs=1M count="$DD_MB" conv=notrunc,fsync ;;
        seqread4m4) ;;
        *)
          # shellcheck disable=SC2046,SC2086
          measure "$as" "$wl" "$rep" parse_fio "${RUN_UNDER[@]}" \
            timeout $((SECS + 60)) fio "${FIO_COMMON[@]}" --filename="$f" $(fio_args "$wl") ;;
      esac ;;
  esac
}

# ---- the same clients with tgtd on a core of its own ----
# On this machine tgtd and the client share the cores, so every CPU second
# the client spends is one tgtd's event thread may wait for, and a FUSE
# client spends more than raw libiscsi does (the application's requests
# and answers cross the kernel to the daemon and back).  So in every
# repetition raw libiscsi and iserfs run once more with tgtd (all its
# threads) on one core and the client (and iserfs's threads) on the
# others: the client's CPU is then no longer the target's.  It is not a
# target on another machine: tgtd has one core for its event thread and
# its backing-store threads, and loopback TCP still runs on the sender's
# core.  Four workloads, the ones whose goal compares iserfs with raw.
PIN_WORKLOADS=(seqread seqwrite randread32 randwrite32)
# The CPUs this script may use (a cpuset may leave out some), as a list.
cpu_list () {
  local r a b
  for r in $(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status | tr ',' ' '); do
    a=${r%-*} b=${r#*-}
    seq "$a" "$b"
  done
}
mapfile -t cpus < <(cpu_list)

# pin CPUS PID: every thread of PID, and so the threads they make later.
pin () {
  timeout 10 taskset -a -p -c "$1" "$2" >/dev/null
}

# One repetition of the pinned runs; the affinity is put back after it.
pinned_runs () {
  local rep=$1 wl
  if pin "$target_cpu" "$tgtd_pid" && pin "$client_cpus" "${DAEMON[iserfs]}"; then
    RUN_UNDER=(taskset -c "$client_cpus")
    for wl in "${PIN_WORKLOADS[@]}"; do
      run_one rawio "$wl" "$rep" rawio-pinned
      run_one iserfs "$wl" "$rep" iserfs-pinned
    done
    RUN_UNDER=()
  else
    pin_note="stopped at repetition $rep: taskset could not pin tgtd or iserfs"
  fi
  pin "$all_cpus" "$tgtd_pid" || true
  pin "$all_cpus" "${DAEMON[iserfs]}" || true
}

# ---- where iserfs spends its time: context switches and a profile ----
# Not part of the table: a separate 4 KiB random-read run per FUSE daemon
# under perf stat, and one under perf record for iserfs.
profile () {
  local sys pst prec ops
  : >"$pdir/profile.txt"
  if [ "$PROFILE" = 1 ] && command -v perf >/dev/null 2>&1; then
    for sys in "${FUSE_SYSTEMS[@]}"; do
      [ -n "${FILE[$sys]:-}" ] || continue
      timeout -k 5 -s INT $((SECS + 2)) perf stat -x, -e task-clock,context-switches,cpu-migrations \
        -p "${DAEMON[$sys]}" -o "$work/pstat.$sys" &
      pst=$!
      # shellcheck disable=SC2046,SC2086
      timeout $((SECS + 60)) fio "${FIO_COMMON[@]}" --filename="${FILE[$sys]}" \
        $(fio_args randread32) >"$work/pfio.$sys" 2>/dev/null || true
      wait "$pst" || true
      # perf stat counts the ramp too (see parse_fio)
      ops=$(parse_fio "$work/pfio.$sys" | awk -v s="$((SECS + FIO_RAMP))" '{ print $2 * s }')
      awk -F, -v sys="$sys" -v ops="${ops:-0}" '
        $3 == "task-clock" { cpu = $1 } $3 == "context-switches" { cs = $1 }
        $3 == "cpu-migrations" { mig = $1 }
        END { if (ops > 0) printf "%-8s daemon: %.1f context switches per I/O, %.1f us CPU per I/O, %d migrations\n", sys, cs / ops, cpu * 1000 / ops, mig }' \
        "$work/pstat.$sys" >>"$pdir/profile.txt" || true
    done
    timeout -k 5 -s INT $((SECS + 2)) perf record -q -F 2999 -g -p "${DAEMON[iserfs]}" \
      -o "$work/perf.data" >/dev/null 2>&1 &
    prec=$!
    # shellcheck disable=SC2046,SC2086
    timeout $((SECS + 60)) fio "${FIO_COMMON[@]}" --filename="${FILE[iserfs]}" \
      $(fio_args randread32) >/dev/null 2>&1 || true
    wait "$prec" || true
    { echo; echo "iserfs, 4 KiB random read, 32 in flight: perf report --no-children (top 30)";
      timeout 120 perf report -i "$work/perf.data" --stdio --no-children -g none \
        --percent-limit 0.7 --sort dso,symbol 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | sed 's/[[:space:]-]*$//' | head -30
      echo; echo "same profile by library (perf report --sort dso)"
      timeout 120 perf report -i "$work/perf.data" --stdio --no-children -g none \
        --percent-limit 0.5 --sort dso 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | sed 's/[[:space:]-]*$//' | head -12
    } >>"$pdir/profile.txt" || true
  fi
}

# ---- one run: the target, the exports, the measurements ----
# start_exports: tgtd with the LUN, then every FUSE export on it, all
# mounted at once and idle between measurements; sets tgtd_pid, FILE,
# DAEMON, TARGET, and NA for the peers that did not start.
start_exports () {
  say "starting tgtd on 127.0.0.1:$ISCSI_PORT (control port $CTL_PORT)"
  bench_target "$CTL_PORT" "$ISCSI_PORT" "$IQN" "$LUN_MB" "$lunfile" "$work/tgtd.log"
  PIDS+=("$TGTD_PID"); tgtd_pid=$TGTD_PID
  FILE=() DAEMON=()
  TARGET=([rawio]=$tgtd_pid [iscsiperf]=$tgtd_pid [iserfs]=$tgtd_pid [qsd]=$tgtd_pid)

  MOUNTS+=("$work/iserfs")
  bench_iserfs "$ISERFS" "$URL" "$work/iserfs" PIDS
  DAEMON[iserfs]=$ISERFS_PID
  FILE[iserfs]=$work/iserfs/lun1

  if [ -z "${NA[qsd]:-}" ]; then
    rm -f "$work/qsd.img"; touch "$work/qsd.img"
    qemu-storage-daemon \
      --blockdev driver=iscsi,node-name=disk,transport=tcp,portal=127.0.0.1:"$ISCSI_PORT",target="$IQN",lun=1 \
      --export type=fuse,id=exp0,node-name=disk,mountpoint="$work/qsd.img",writable=on \
      >"$work/qsd.log" 2>&1 &
    PIDS+=($!); DAEMON[qsd]=$!; MOUNTS+=("$work/qsd.img")
    if wait_for 100 mountpoint -q "$work/qsd.img"; then
      FILE[qsd]=$work/qsd.img
    else
      NA[qsd]="n/a (qemu-storage-daemon failed: $(head -c 200 "$work/qsd.log" | tr '\n' ' '))"
    fi
  fi

  if [ -z "${NA[nbdfuse]:-}" ]; then
    mkdir -p "$work/nbd"
    rm -f "$work/nbd.sock"
    nbdkit -f -U "$work/nbd.sock" memory "${LUN_MB}M" >"$work/nbdkit.log" 2>&1 &
    PIDS+=($!); TARGET[nbdfuse]=$!
    if wait_for 100 test -S "$work/nbd.sock" \
       && timeout 120 nbdcopy "$lunfile" "nbd+unix:///?socket=$work/nbd.sock"; then
      nbdfuse "$work/nbd/disk" --unix "$work/nbd.sock" >"$work/nbdfuse.log" 2>&1 &
      PIDS+=($!); DAEMON[nbdfuse]=$!; MOUNTS+=("$work/nbd")
      if wait_for 100 test -e "$work/nbd/disk"; then
        FILE[nbdfuse]=$work/nbd/disk
      else
        NA[nbdfuse]="n/a (nbdfuse did not mount)"
      fi
    else
      NA[nbdfuse]="n/a (nbdkit did not start)"
    fi
  fi

  # The FUSE floor: same size as the LUN, nothing behind it.
  mkdir -p "$work/null"
  "$NULLFUSE" "$((LUN_MB * 1048576))" "$work/null" >"$work/nullfuse.log" 2>&1 &
  PIDS+=($!); DAEMON[nullfuse]=$!; MOUNTS+=("$work/null")
  if wait_for 100 test -e "$work/null/disk"; then
    FILE[nullfuse]=$work/null/disk
  else
    NA[nullfuse]="n/a (nullfuse did not mount: $(head -c 200 "$work/nullfuse.log" | tr '\n' ' '))"
  fi
}

# libiscsi_columns: "SYSTEM<TAB>what libiscsi<TAB>its path" for every
# column that runs libiscsi, read from the running process's mappings:
# the daemons as they serve their mounts, the raw clients in a short run of
# their own (rawio reads for a second; iscsi-perf until stopped).
libiscsi_columns () {
  local sys lib
  for sys in rawio iscsiperf iserfs qsd; do
    [ -z "${NA[$sys]:-}" ] || continue
    case $sys in
      rawio) lib=$(libiscsi_probe "$RAWIO" "$URL/1" read 4096 1 rand 1) ;;
      iscsiperf) lib=$(libiscsi_probe "$ISCSI_PERF" -m 1 -b 8 -r "$URL/1") ;;
      *) [ -n "${DAEMON[$sys]:-}" ] || continue
         lib=$(libiscsi_mapped "${DAEMON[$sys]}") ;;
    esac
    printf '%s\t%s\t%s\n' "$sys" "$(libiscsi_label "$lib")" "${lib:-(none mapped)}"
  done
}

# run_phase default|tuned DIR: one whole run, its raw data in DIR.
run_phase () {
  local mode=$1 pdir=$2 k rep wl sys start elapsed load_before load_after busy_before strays
  mkdir -p "$pdir"
  bench_setup "$mode"
  echo "$mode" >"$pdir/mode"
  bench_tunings >"$pdir/tunings.txt"
  if [ "$mode" = default ]; then
    say "---- the machine as a user finds it ----"
  else
    say "---- tuned: $(cut -f1 "$pdir/tunings.txt" | tr '\n' ' ')----"
  fi
  NA=()
  for k in "${!BASE_NA[@]}"; do NA[$k]=${BASE_NA[$k]}; done

  # Machine state: other clients halve every number on 2 cores.
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  # The busiest processes over their lifetime, to explain a noisy run.
  busy_before=$(ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{ printf "%s %s%%; ", $2, $1 }')
  strays=$( { pgrep -a -x iscsi-perf; pgrep -a qemu-storage-d; pgrep -a -x fio; } || true)
  [ -z "$strays" ] || say "WARNING: other clients are running, numbers will be low:
$strays"

  start_exports
  libiscsi_columns >"$pdir/libiscsi.txt"
  say "libiscsi: $(cut -f1,2 "$pdir/libiscsi.txt" | tr '\t\n' ' ;')"

  runs=$pdir/runs.tsv
  : >"$runs"
  pin_note=""
  if [ "$PINNED" = 1 ] && [ "${#cpus[@]}" -ge 2 ] && command -v taskset >/dev/null; then
    all_cpus=$(IFS=,; echo "${cpus[*]}")
    target_cpu=${cpus[-1]}
    client_cpus=$(IFS=,; echo "${cpus[*]:0:${#cpus[@]}-1}")
    DAEMON[iserfs-pinned]=${DAEMON[iserfs]}
    TARGET[rawio-pinned]=$tgtd_pid TARGET[iserfs-pinned]=$tgtd_pid
    pin_note="tgtd on CPU $target_cpu, the clients and iserfs on CPU $client_cpus, in every repetition after the runs on shared cores"
  elif [ "$PINNED" = 1 ]; then
    pin_note="not run: needs 2 CPUs and taskset"
  fi

  start=$(date +%s)
  for rep in $(seq "$REPS"); do
    for wl in "${WORKLOADS[@]}"; do
      for sys in rawio iscsiperf "${FUSE_SYSTEMS[@]}"; do
        run_one "$sys" "$wl" "$rep"
      done
    done
    case $pin_note in tgtd*) pinned_runs "$rep" ;; esac
  done
  elapsed=$(( $(date +%s) - start ))
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)

  timeout 10 getfattr --absolute-names --only-values -n user.iserfs.stats "$work/iserfs" >"$pdir/iserfs-stats.txt" 2>&1 || true
  profile

  for k in "${!NA[@]}"; do printf '%s\t%s\n' "$k" "${NA[$k]}"; done >"$pdir/na.txt"
  {
    echo "machine: $(nproc) cores, $(uname -r), load average before $load_before, after $load_after"
    echo "measured in ${elapsed}s, $REPS repetitions, ${SECS}s per fio/rawio run, LUN ${LUN_MB} MiB in /dev/shm, dd ${DD_MB} MiB (tgtd, 512-byte blocks, ${TGTD_TUNABLES:+GLIBC_TUNABLES=$TGTD_TUNABLES, }MaxRecvDataSegmentLength ${TGTD_MRDSL:-8192 (default)})"
    while IFS=$'\t' read -r sys what path; do
      echo "libiscsi of $sys: $what ($path)"
    done <"$pdir/libiscsi.txt"
    bench_found
    [ -z "$poll_us" ] || echo "iserfs poll_us: $poll_us µs (its default): at most one command in flight, its session thread polls this long before it sleeps; raw libiscsi sleeps in poll() at once"
    [ -z "$pin_note" ] || echo "tgtd on a core of its own: $pin_note"
    echo "versions: $("$ISERFS" --version | head -1); $(dpkg-query -W -f '${Package} ${Version}, ' tgt libiscsi7 fio qemu-system-common nbdkit libnbd-bin 2>/dev/null | sed 's/, $//')"
    echo "busiest processes at the start (lifetime %CPU): $busy_before"
    echo "busiest processes at the end: $(ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{ printf "%s %s%%; ", $2, $1 }')"
    [ -z "$strays" ] || echo "other clients were running at the start: $(echo "$strays" | tr '\n' ';')"
  } >"$pdir/meta.txt"
  teardown
}

run_phase default "$work/default"
phases=("$work/default")
if [ "$TUNED" = 1 ]; then
  run_phase tuned "$work/tuned"
  phases+=("$work/tuned")
fi

timeout 300 "$MEMPOOL_BENCH" >"$work/mempool-bench.txt" 2>&1 || echo "mempool_bench failed" >>"$work/mempool-bench.txt"

# ---- report: Markdown tables, gnuplot data, ratios against the goals ----
mkdir -p "$OUT"
if [ -n "${RAW:-}" ]; then
  mkdir -p "$RAW"
  cp -r "${phases[@]}" "$work/mempool-bench.txt" "$RAW"/
  say "raw data in $RAW: bench/report.py OUTDIR $RAW/mempool-bench.txt $(printf '%s ' "${phases[@]/#$work/$RAW}")"
fi
timeout 60 python3 "$srcdir/bench/report.py" "$OUT" "$work/mempool-bench.txt" "${phases[@]}"
if command -v gnuplot >/dev/null 2>&1; then
  timeout 60 gnuplot -e "datafile='$OUT/results.dat'; outfile='$OUT/results.png'" \
    "$srcdir/bench/plot.gp" || say "gnuplot failed"
fi
rm -f "$OUT/results.dat"
cat "$OUT/ratios.txt"
rm -f "$OUT/ratios.txt"
say "wrote $OUT/results.md and $OUT/results.png"
