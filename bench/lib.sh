# bench/lib.sh: what bench/run.sh and bench/ab.sh share (sourced; they
# define die()).

# The fio workloads, by name: fio args (bench/run.sh's columns, ab.sh's W).
declare -A FIO_WL=(
  [seqread]="--rw=read --bs=1M --iodepth=16"
  [seqwrite]="--rw=write --bs=1M --iodepth=16"
  [randread32]="--rw=randread --bs=4k --iodepth=32"
  [randwrite32]="--rw=randwrite --bs=4k --iodepth=32"
  [randread1]="--rw=randread --bs=4k --iodepth=1"
  # Not in bench/run.sh; for bench/ab.sh.
  [randread4]="--rw=randread --bs=4k --iodepth=4"
  [randwrite1]="--rw=randwrite --bs=4k --iodepth=1"
)

# The same workloads for tests/rawio (bench/run.sh, bench/cpu.sh): workload
# name -> rawio args (read|write BYTES DEPTH seq|rand).
declare -A RAW_WL=(
  [seqread]="read 1048576 16 seq"
  [seqwrite]="write 1048576 16 seq"
  [randread32]="read 4096 32 rand"
  [randwrite32]="write 4096 32 rand"
  [randread1]="read 4096 1 rand"
  [seqread4m4]="read 4194304 4 seq"
)

# Poll CMD... until it succeeds, at most $1 tenths of a second.
wait_for () {
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# bench_target CTL_PORT ISCSI_PORT IQN LUN_MB LUNFILE LOG: fill LUNFILE with
# LUN_MB MiB of random bytes (not a sparse file: tmpfs holes read back as the
# zero page, which flatters every reader), start tgtd on 127.0.0.1 with it
# as LUN 1 of IQN, open to every initiator.  Sets TGTD_PID.
bench_target () {
  local ctl=$1 port=$2 iqn=$3 mb=$4 lun=$5 log=$6
  timeout 10 tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 &&
    die "control port $ctl is taken; set CTL_PORT and ISCSI_PORT"
  timeout 120 dd if=/dev/urandom of="$lun" bs=1M count="$mb" status=none
  tgtd -f -C "$ctl" --iscsi portal=127.0.0.1:"$port" >"$log" 2>&1 &
  TGTD_PID=$!
  wait_for 100 timeout 5 tgtadm -C "$ctl" --op show --mode sys || die "tgtd did not start"
  timeout 10 tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
  timeout 10 tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$lun"
  timeout 10 tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
}
