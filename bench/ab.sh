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
# run: workload, binary index, MB/s, IOPS, mean latency, submit to
# completion (µs), and the iserfs process's CPU time (user + system, from
# /proc) per I/O in µs -- over fio's 1 s ramp and the run, divided by
# IOPS × (SECS + 1) -- or, for ddwrite and ddread, per GiB in seconds.
# A wrapper script must exec iserfs, so that its pid is the process's.
#
# Knobs: W (workloads: names of WL in bench/lib.sh, default the five
# fio workloads of bench/run.sh; also randread4 and randwrite1;
# also ddwrite: dd bs=1M conv=notrunc,fsync, ddread: dd bs=1M from a
# cold page cache -- it drops the whole machine's page cache first --,
# and pwrite8: 8 threads each writing 4 KiB at random offsets with
# O_DIRECT pwrite(2), one write at a time, as a database's writers or
# qemu's aio=threads do),
# REPS (3), SECS (3), LUN_MB (1024), CTL_PORT/ISCSI_PORT (7811/13311),
# TGTD_TUNABLES, TGTD_MRDSL (tgtd's malloc and data segment size, see
# bench/lib.sh), PIPE_MAX (fs.pipe-max-size, see bench/lib.sh),
# FUSE_RING (the fuse module's enable_uring for the run, default Y, see
# bench/lib.sh), PAGE_REPORTING_ORDER and WARM_MB (the VM's free page
# reporting, off for the run, see bench/lib.sh).
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
for c in tgtd tgtadm fio fusermount3; do
  command -v "$c" >/dev/null || die "$c is missing"
done

work=$(mktemp -d /tmp/iserfs-ab.XXXXXX)
lun=$(mktemp /dev/shm/iserfs-ab.XXXXXX)
pids=() mounts=()
cleanup () {
  set +e
  for m in "${mounts[@]}"; do
    mountpoint -q "$m" && timeout 10 fusermount3 -u -z "$m"
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -f "$lun"
  rm -rf "$work"
  declare -F bench_restore >/dev/null && bench_restore
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_setup
for w in $W; do
  case $w in ddwrite|ddread|pwrite8) continue ;; esac
  [ -n "${WL[$w]:-}" ] || die "unknown workload $w"
done
bench_target "$CTL_PORT" "$ISCSI_PORT" "$IQN" "$LUN_MB" "$lun" "$work/tgtd.log"
pids+=("$TGTD_PID")

n=0 ipids=()
for b in "$@"; do
  mounts+=("$work/m$n")
  bench_iserfs "$b" "iscsi://127.0.0.1:$ISCSI_PORT/$IQN" "$work/m$n" pids
  ipids+=("$ISERFS_PID")
  n=$((n + 1))
done

# cpu_ticks I: user + system clock ticks of mount I's iserfs so far.
cpu_ticks () { awk '{ print $14 + $15 }' "/proc/${ipids[$1]}/stat"; }
HZ=$(getconf CLK_TCK)

# ddwrite: dd bs=1M conv=notrunc,fsync of 256 MiB; MB/s from the wall time.
ddwrite () {
  local t0 t1 c0 c1
  c0=$(cpu_ticks "$1")
  t0=$(date +%s%N)
  timeout 120 dd if="$lun" of="$work/m$1/lun1" bs=1M count=256 conv=notrunc,fsync \
    status=none || die "dd to mount $1 failed"
  t1=$(date +%s%N)
  c1=$(cpu_ticks "$1")
  awk -v i="$1" -v r="$2" -v ns=$((t1 - t0)) -v c=$((c1 - c0)) -v hz="$HZ" \
    'BEGIN { printf "%-12s bin%d rep%d %8.0f MB/s %6.2f s/GiB cpu\n", "ddwrite", i, r,
             256 * 1048576 * 1000 / ns, c / hz * 4 }'
}

# ddread: dd bs=1M of 512 MiB (the LUN if smaller) through the page cache,
# dropped first.
ddread () {
  local t0 t1 c0 c1 mb=$((LUN_MB < 512 ? LUN_MB : 512))
  timeout 60 sync
  echo 3 > /proc/sys/vm/drop_caches
  c0=$(cpu_ticks "$1")
  t0=$(date +%s%N)
  timeout 120 dd if="$work/m$1/lun1" of=/dev/null bs=1M count="$mb" status=none ||
    die "dd from mount $1 failed"
  t1=$(date +%s%N)
  c1=$(cpu_ticks "$1")
  awk -v i="$1" -v r="$2" -v mb="$mb" -v ns=$((t1 - t0)) -v c=$((c1 - c0)) -v hz="$HZ" \
    'BEGIN { printf "%-12s bin%d rep%d %8.0f MB/s %6.2f s/GiB cpu\n", "ddread", i, r,
             mb * 1048576 * 1000 / ns, c / hz * 1024 / mb }'
}

# fio_run W I R FIO_OPTION...: one fio run of workload W on mount I, its
# result as one line.
fio_run () {
  local w=$1 i=$2 r=$3 out c0 c1
  shift 3
  c0=$(cpu_ticks "$i")
  out=$(timeout $((SECS + 60)) fio --name=ab --filename="$work/m$i/lun1" "$@" \
    --direct=1 --ramp_time=1 --runtime="$SECS" --time_based \
    --size="${LUN_MB}M" --output-format=terse --terse-version=3 2>/dev/null)
  c1=$(cpu_ticks "$i")
  # terse v3: read KB/s 7, IOPS 8, total latency mean 40 (µs); write 48, 49, 81.
  awk -F';' -v w="$w" -v i="$i" -v r="$r" -v c=$((c1 - c0)) -v hz="$HZ" \
      -v secs="$SECS" '{
    if ($49 > $8) { bw = $48; iops = $49; lat = $81 } else { bw = $7; iops = $8; lat = $40 }
    cpu = iops > 0 ? c / hz * 1e6 / (iops * (secs + 1)) : 0
    printf "%-12s bin%d rep%d %8.0f MB/s %8d IOPS %8.0f us %6.1f us/IO cpu\n", w, i, r,
      bw / 1024, iops, lat, cpu }' <<<"$out"
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
