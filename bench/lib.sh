# bench/lib.sh: what bench/run.sh, bench/ab.sh and bench/cpu.sh share
# (sourced; they define die()).

# The workloads, by name, as tests/rawio takes them (read|write BYTES
# DEPTH seq|rand); fio_args turns one into fio's options.  bench/run.sh
# measures all but randread4, randwrite1, seqread64k and seqread256k
# (there for ab.sh and cpu.sh),
# and seqread4m4 with the raw clients only.
declare -A WL=(
  [seqread]="read 1048576 16 seq"
  [seqwrite]="write 1048576 16 seq"
  [randread32]="read 4096 32 rand"
  [randwrite32]="write 4096 32 rand"
  [randread1]="read 4096 1 rand"
  [randread4]="read 4096 4 rand"
  [randwrite1]="write 4096 1 rand"
  [seqread4m4]="read 4194304 4 seq"
  [seqread64k]="read 65536 16 seq"
  [seqread256k]="read 262144 16 seq"
)

# fio_args NAME: fio's options for workload NAME.
fio_args () {
  local dir bytes depth pattern
  read -r dir bytes depth pattern <<<"${WL[$1]}"
  [ "$pattern" = rand ] && dir=rand$dir
  echo "--rw=$dir --bs=$bytes --iodepth=$depth"
}

# Poll CMD... until it succeeds, at most $1 tenths of a second.
wait_for () {
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# glibc's malloc settings for tgtd.  tgtd valloc()s a data buffer per
# command.  Stock glibc mmaps every buffer of 1 MiB and unmaps it on free,
# so each 1 MiB read costs tgtd about 250 page faults, until a larger
# request happens to raise malloc's dynamic mmap threshold; after that the
# buffers come from the heap, but the heap is trimmed (and faulted back in)
# whenever enough of it is free, which was measured far more often under
# iserfs than under raw libiscsi.  The target's cost per command then
# depends on what ran before and on the client, not on the client's work.
# With these settings tgtd's buffers stay in its heap from the first
# command.  TGTD_TUNABLES= (empty) measures stock tgtd.  See
# docs/bench/README.md, "The target's malloc".
TGTD_TUNABLES=${TGTD_TUNABLES-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864}

# tgtd's MaxRecvDataSegmentLength, the largest data segment it takes in
# one PDU, in bytes; empty keeps tgtd's default (8 KiB), which makes a
# 1 MiB WRITE 128 PDUs.  262144 measures a target tuned for large writes
# (docs/bench/README.md, "1 MiB sequential write").
TGTD_MRDSL=${TGTD_MRDSL-}

# bench_target CTL_PORT ISCSI_PORT IQN LUN_MB LUNFILE LOG: fill LUNFILE with
# LUN_MB MiB of random bytes (not a sparse file: tmpfs holes read back as the
# zero page, which flatters every reader), start tgtd on 127.0.0.1 with it
# as LUN 1 of IQN, open to every initiator, its malloc set by
# TGTD_TUNABLES and its MaxRecvDataSegmentLength by TGTD_MRDSL.  Sets
# TGTD_PID.
bench_target () {
  local ctl=$1 port=$2 iqn=$3 mb=$4 lun=$5 log=$6
  timeout 10 tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 &&
    die "control port $ctl is taken; set CTL_PORT and ISCSI_PORT"
  timeout 120 dd if=/dev/urandom of="$lun" bs=1M count="$mb" status=none
  GLIBC_TUNABLES=$TGTD_TUNABLES tgtd -f -C "$ctl" --iscsi portal=127.0.0.1:"$port" >"$log" 2>&1 &
  TGTD_PID=$!
  wait_for 100 timeout 5 tgtadm -C "$ctl" --op show --mode sys || die "tgtd did not start"
  timeout 10 tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
  if [ -n "$TGTD_MRDSL" ]; then
    timeout 10 tgtadm -C "$ctl" --lld iscsi --op update --mode target --tid 1 \
      --name MaxRecvDataSegmentLength --value "$TGTD_MRDSL" ||
      die "tgtd refused MaxRecvDataSegmentLength=$TGTD_MRDSL"
  fi
  timeout 10 tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$lun"
  timeout 10 tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
}

# bench_iserfs BIN URL DIR PIDS: mount URL on DIR (created) with iserfs BIN
# (or a wrapper adding options) in the foreground, its output in DIR.log;
# append its pid to the array named PIDS (the caller's cleanup kills those)
# and set ISERFS_PID; wait until DIR/lun1 appears.
bench_iserfs () {
  local bin=$1 url=$2 dir=$3
  local -n pid_list=$4
  mkdir -p "$dir"
  "$bin" -f "$url" "$dir" >"$dir.log" 2>&1 &
  ISERFS_PID=$!
  pid_list+=("$ISERFS_PID")
  wait_for 100 test -e "$dir/lun1" || { cat "$dir.log" >&2; die "$bin did not mount $url"; }
}

# iserfs splices READ data through pipes twice the size of the READ
# (iserfs(8), -o splice); without CAP_SYS_RESOURCE, as in some containers,
# pipes stop at fs.pipe-max-size, 1 MiB by default, and only READs of up
# to 512 KiB are spliced.  bench_pipe_max raises it to PIPE_MAX (default
# 4194304; PIPE_MAX= leaves it alone) for the run, as iserfs(8) suggests;
# bench_pipe_max_restore puts the old value back.
bench_pipe_max () {
  PIPE_MAX_WAS=$(cat /proc/sys/fs/pipe-max-size)
  local want=${PIPE_MAX-4194304}
  if [ -n "$want" ] && [ "$PIPE_MAX_WAS" -lt "$want" ]; then
    sysctl -q -w fs.pipe-max-size="$want"
  fi
}
bench_pipe_max_restore () {
  [ -z "${PIPE_MAX_WAS:-}" ] || sysctl -q -w fs.pipe-max-size="$PIPE_MAX_WAS"
}

# iserfs takes FUSE requests from an io_uring where the fuse module's
# enable_uring is Y (iserfs(8), -o fuse_ring); it is N unless someone
# switched it on.  bench_fuse_ring sets it to FUSE_RING (default Y;
# FUSE_RING= leaves it alone) for the run, where the kernel has it;
# bench_fuse_ring_restore puts the old value back.  Of the peers only
# iserfs registers a ring (libfuse 3.14 and qemu 7.2 have no support), so
# the setting changes nothing for them.
FUSE_RING_PARAM=/sys/module/fuse/parameters/enable_uring
bench_fuse_ring () {
  FUSE_RING_WAS=
  local want=${FUSE_RING-Y}
  [ -n "$want" ] && [ -w "$FUSE_RING_PARAM" ] || return 0
  FUSE_RING_WAS=$(cat "$FUSE_RING_PARAM")
  echo "$want" > "$FUSE_RING_PARAM"
}
bench_fuse_ring_restore () {
  [ -z "${FUSE_RING_WAS:-}" ] || echo "$FUSE_RING_WAS" > "$FUSE_RING_PARAM"
}

# This VM hands free memory back to its host (free page reporting), and a
# page the host took back costs a fault on the host when it is touched
# again: here 4 GiB written to /dev/shm ran at 367 MB/s the first time.
# Every page a buffered read puts in the page cache is such a page, so a
# dd read through a FUSE file system ran at 570-620 MB/s when its pages
# had been handed back and at 1.3-1.5 GB/s when not, with the daemon's
# CPU (the kernel's copy into the page cache runs in it) at 1.3-1.5 s
# against 0.34-0.43 s per GiB (docs/bench/README.md, "The VM's free page
# reporting").  Raw libiscsi has no page cache and does not pay it.
# bench_page_reporting stops the reporting for the run by raising its
# order to PAGE_REPORTING_ORDER (default 11, above the largest free
# block, so nothing is reported; empty leaves it alone) and then writes
# and deletes WARM_MB (default 2048) MiB in /dev/shm, so that the memory
# the run takes next is backed; bench_page_reporting_restore puts the old
# order back, and the host takes the memory back afterwards.
PAGE_REPORTING_PARAM=/sys/module/page_reporting/parameters/page_reporting_order
bench_page_reporting () {
  PAGE_REPORTING_WAS=
  local want=${PAGE_REPORTING_ORDER-11} warm=${WARM_MB:-2048}
  [ -n "$want" ] && [ -w "$PAGE_REPORTING_PARAM" ] || return 0
  PAGE_REPORTING_WAS=$(cat "$PAGE_REPORTING_PARAM")
  echo "$want" > "$PAGE_REPORTING_PARAM"
  WARM_FILE=$(mktemp /dev/shm/iserfs-warm.XXXXXX)
  dd if=/dev/zero of="$WARM_FILE" bs=1M count="$warm" status=none 2>/dev/null || true
  rm -f "$WARM_FILE"
}
bench_page_reporting_restore () {
  # The warm-up's file too, should the run have been stopped during it.
  [ -z "${WARM_FILE:-}" ] || rm -f "$WARM_FILE"
  [ -z "${PAGE_REPORTING_WAS:-}" ] || echo "$PAGE_REPORTING_WAS" > "$PAGE_REPORTING_PARAM"
}

# What every benchmark script sets for its run, and puts back at its end.
bench_setup () {
  bench_pipe_max
  bench_fuse_ring
  bench_page_reporting
}
bench_restore () {
  bench_pipe_max_restore
  bench_fuse_ring_restore
  bench_page_reporting_restore
}
