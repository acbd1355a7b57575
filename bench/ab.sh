#!/usr/bin/env bash
# bench/ab.sh: two (or more) iserfs builds side by side on one tgtd, for
# deciding whether a change is worth keeping.
#
#   sudo bench/ab.sh OLD_BUILD/fuse/iserfs NEW_BUILD/fuse/iserfs
#
# Each argument is an iserfs binary (or a wrapper script adding options).
# All are mounted at once on one memory-backed LUN; every workload runs
# REPS times with the binaries interleaved (rep 1 of each, then rep 2, ...),
# so that load from elsewhere hits all of them alike.  Prints one line per
# run: workload, binary index, MB/s, IOPS, mean latency, submit to completion
# (µs), and beside it the µs of CPU per I/O of fio and that binary's iserfs
# (user+sys; fio's ramp counted at the measured rate, as bench/run.sh does).
#
# Knobs: W (workloads: names of WL in bench/lib.sh, default the five
# fio workloads of bench/run.sh; also randread4 and randwrite1;
# also ddwrite: dd bs=1M conv=notrunc,fsync, ddread: dd bs=1M from a
# cold page cache -- it drops the whole machine's page cache first --,
# and pwrite8: 8 threads each writing 4 KiB at random offsets with
# O_DIRECT pwrite(2), one write at a time, as a database's writers or
# qemu's aio=threads do),
# REPS (3), SECS (3), LUN_MB (1024), CTL_PORT/ISCSI_PORT (7811/13311),
# TUNED=1 (apply bench/lib.sh's four tunings for the run; by default the
# machine is measured as found), the tunings' own knobs TGTD_TUNABLES,
# FUSE_RING (FUSE_RING=Y alone puts iserfs on the FUSE io_uring),
# PAGE_REPORTING_ORDER with WARM_MB, PIPE_MAX, and TGTD_MRDSL (tgtd's
# data segment size); see bench/lib.sh.
set -euo pipefail

W=${W:-"seqread seqwrite randread32 randwrite32 randread1"}
REPS=${REPS:-3}
SECS=${SECS:-3}
LUN_MB=${LUN_MB:-1024}
CTL_PORT=${CTL_PORT:-7811}
ISCSI_PORT=${ISCSI_PORT:-13311}
IQN=iqn.2026-11.org.iserfs.ab:lun

die () { echo "ab: $*" >&2; exit 1; }
[ "$#" -ge 1 ] || die "usage: bench/ab.sh ISERFS [ISERFS...]"
[ "$(id -u)" = 0 ] || die "must run as root (tgtd, FUSE mounts)"
for b in "$@"; do [ -x "$b" ] || die "$b is not executable"; done
for c in tgtd tgtadm fio fusermount3 /usr/bin/time; do
  command -v "$c" >/dev/null || die "$c is missing"
done

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_scratch ab
bench_setup
bench_say_tunings
for w in $W; do
  case $w in ddwrite|ddread|pwrite8) continue ;; esac
  [ -n "${WL[$w]:-}" ] || die "unknown workload $w"
done
bench_target "$CTL_PORT" "$ISCSI_PORT" "$IQN" "$LUN_MB" "$lun" "$work/tgtd.log"
pids+=("$TGTD_PID")

n=0 daemons=()
for b in "$@"; do
  mounts+=("$work/m$n")
  bench_iserfs "$b" "iscsi://127.0.0.1:$ISCSI_PORT/$IQN" "$work/m$n" pids
  daemons+=("$ISERFS_PID")
  n=$((n + 1))
done

# ticks PID: user+system clock ticks of PID so far (all its threads).
ticks () { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# ddwrite: dd bs=1M conv=notrunc,fsync of 256 MiB; MB/s from the wall time.
ddwrite () {
  local t0 t1
  t0=$(date +%s%N)
  timeout 120 dd if="$lun" of="$work/m$1/lun1" bs=1M count=256 conv=notrunc,fsync \
    status=none || die "dd to mount $1 failed"
  t1=$(date +%s%N)
  awk -v i="$1" -v r="$2" -v ns=$((t1 - t0)) \
    'BEGIN { printf "%-12s bin%d rep%d %8.0f MB/s\n", "ddwrite", i, r, 256 * 1048576 * 1000 / ns }'
}

# ddread: dd bs=1M of 512 MiB (the LUN if smaller) through the page cache,
# dropped first.
ddread () {
  local t0 t1 mb=$((LUN_MB < 512 ? LUN_MB : 512))
  timeout 60 sync
  echo 3 > /proc/sys/vm/drop_caches
  t0=$(date +%s%N)
  timeout 120 dd if="$work/m$1/lun1" of=/dev/null bs=1M count="$mb" status=none ||
    die "dd from mount $1 failed"
  t1=$(date +%s%N)
  awk -v i="$1" -v r="$2" -v mb="$mb" -v ns=$((t1 - t0)) \
    'BEGIN { printf "%-12s bin%d rep%d %8.0f MB/s\n", "ddread", i, r, mb * 1048576 * 1000 / ns }'
}

# fio_run W I R FIO_OPTION...: one fio run of workload W on mount I, its
# result as one line.
fio_run () {
  local w=$1 i=$2 r=$3 t0 t1
  shift 3
  t0=$(ticks "${daemons[$i]}")
  timeout $((SECS + 60)) /usr/bin/time -f '%U %S' -o "$work/time" fio --name=ab \
    --filename="$work/m$i/lun1" "$@" \
    --direct=1 --ramp_time=1 --runtime="$SECS" --time_based \
    --size="${LUN_MB}M" --output-format=terse --terse-version=3 >"$work/terse" 2>/dev/null ||
    die "fio on mount $i failed"
  t1=$(ticks "${daemons[$i]}")
  # terse v3: read KB/s 7, IOPS 8, total latency mean 40 (µs); write 48, 49, 81.
  awk -F';' -v w="$w" -v i="$i" -v r="$r" -v secs="$SECS" -v hz="$(getconf CLK_TCK)" \
      -v dticks=$((t1 - t0)) -v cpu="$(cat "$work/time")" '{
    if ($49 > $8) { bw = $48; iops = $49; lat = $81 } else { bw = $7; iops = $8; lat = $40 }
    split(cpu, c, " ")
    ios = iops * (secs + 1)
    printf "%-12s bin%d rep%d %8.0f MB/s %8d IOPS %8.0f us %8.1f us CPU/IO\n", w, i, r,
      bw / 1024, iops, lat, ios ? (c[1] + c[2] + dticks / hz) / ios * 1e6 : 0 }' "$work/terse"
}

for w in $W; do
  for r in $(seq "$REPS"); do
    for i in $(seq 0 $((n - 1))); do
      # shellcheck disable=SC2046
      case $w in
        ddwrite|ddread) "$w" "$i" "$r" ;;
        pwrite8) fio_run "$w" "$i" "$r" --ioengine=psync --rw=randwrite --bs=4k \
                   --numjobs=8 --group_reporting ;;
        *) fio_run "$w" "$i" "$r" $(fio_args "$w") --ioengine=libaio ;;
      esac
    done
  done
done
