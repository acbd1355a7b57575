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

# ---- the machine as a user finds it, or tuned ----
# By default a run measures what a user gets: tgtd started plainly, and the
# fuse module's enable_uring, the VM's free page reporting and
# fs.pipe-max-size left as found.  A tuned run (bench_setup tuned; TUNED=1
# for bench/ab.sh and bench/cpu.sh, and a second table in bench/run.sh)
# changes four things, each put back at the end and each named in the
# results (bench_tunings):
#
#   tgtd-malloc        tgtd's GLIBC_TUNABLES (knob TGTD_TUNABLES)
#   fuse-ring          the fuse module's enable_uring=Y (knob FUSE_RING)
#   no-page-reporting  the VM's free page reporting off (PAGE_REPORTING_ORDER)
#   pipe-max           fs.pipe-max-size 4 MiB (knob PIPE_MAX)
#
# A knob set in the environment holds for every run, default or tuned
# (empty: tgtd plain, or the setting left as found).  What each does and why
# it was measured is below, at the function that applies it.
TUNING_KNOBS=(TGTD_TUNABLES FUSE_RING PAGE_REPORTING_ORDER PIPE_MAX)
declare -A TUNED_VALUE=(
  [TGTD_TUNABLES]=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864
  [FUSE_RING]=Y
  [PAGE_REPORTING_ORDER]=11
  [PIPE_MAX]=4194304
)
declare -A TUNING_FIXED=()
for _k in "${TUNING_KNOBS[@]}"; do
  [ -z "${!_k+set}" ] || TUNING_FIXED[$_k]=${!_k}
done
unset _k

# bench_tuning default|tuned: set the four knobs for that kind of run,
# except those the environment set.
bench_tuning () {
  local k v
  case $1 in default|tuned) ;; *) die "bench_tuning: '$1' is neither default nor tuned" ;; esac
  for k in "${TUNING_KNOBS[@]}"; do
    if [ -n "${TUNING_FIXED[$k]+set}" ]; then
      v=${TUNING_FIXED[$k]}
    elif [ "$1" = tuned ]; then
      v=${TUNED_VALUE[$k]}
    else
      v=
    fi
    printf -v "$k" '%s' "$v"
  done
}

# glibc's malloc settings for tgtd (tgtd-malloc).  tgtd valloc()s a data
# buffer per command.  Stock glibc mmaps every buffer of 1 MiB and unmaps
# it on free, so each 1 MiB read costs tgtd about 250 page faults, until a
# larger request happens to raise malloc's dynamic mmap threshold; after
# that the buffers come from the heap, but the heap is trimmed (and faulted
# back in) whenever enough of it is free, which was measured far more often
# under iserfs than under raw libiscsi.  The target's cost per command then
# depends on what ran before and on the client, not on the client's work.
# With TUNED_VALUE[TGTD_TUNABLES] tgtd's buffers stay in its heap from the
# first command.  See docs/bench/history.md, "The target's malloc".

# tgtd's MaxRecvDataSegmentLength, the largest data segment it takes in
# one PDU, in bytes; empty keeps tgtd's default (8 KiB), which makes a
# 1 MiB WRITE 128 PDUs.  262144 measures a target tuned for large writes
# (docs/bench/history.md, "1 MiB sequential write").  Not one of the
# tunings: set it by hand, in either kind of run.
TGTD_MRDSL=${TGTD_MRDSL-}

# tgtd's backing-store worker threads (tgtd -t), empty for its default
# (16).  Its network work is one event thread whatever this says;
# bench/mpath.sh sets 1 so that one tgtd can be the limit.
TGTD_IOTHREADS=${TGTD_IOTHREADS-}

# bench_target CTL_PORT ISCSI_PORT IQN LUN_MB LUNFILE LOG: fill LUNFILE with
# LUN_MB MiB of random bytes (not a sparse file: tmpfs holes read back as the
# zero page, which flatters every reader; LUN_MB "keep" serves LUNFILE as it
# is), start tgtd on 127.0.0.1 with it
# as LUN 1 of IQN, open to every initiator, its malloc set by
# TGTD_TUNABLES (empty: started plainly, without GLIBC_TUNABLES), its
# MaxRecvDataSegmentLength by TGTD_MRDSL and its I/O threads by
# TGTD_IOTHREADS.  Sets TGTD_PID.
bench_target () {
  local ctl=$1 port=$2 iqn=$3 mb=$4 lun=$5 log=$6
  local args=(-f -C "$ctl" --iscsi portal=127.0.0.1:"$port")
  [ -z "$TGTD_IOTHREADS" ] || args+=(-t "$TGTD_IOTHREADS")
  timeout 10 tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 &&
    die "control port $ctl is taken; set CTL_PORT and ISCSI_PORT"
  [ "$mb" = keep ] ||
    timeout 120 dd if=/dev/urandom of="$lun" bs=1M count="$mb" status=none
  if [ -n "${TGTD_TUNABLES:-}" ]; then
    GLIBC_TUNABLES=$TGTD_TUNABLES tgtd "${args[@]}" >"$log" 2>&1 &
  else
    env -u GLIBC_TUNABLES tgtd "${args[@]}" >"$log" 2>&1 &
  fi
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

# pipe-max: iserfs splices READ data through pipes twice the size of the
# READ (iserfs(8), -o splice); without CAP_SYS_RESOURCE, as in some
# containers, pipes stop at fs.pipe-max-size, 1 MiB by default, and only
# READs of up to 512 KiB are spliced.  bench_pipe_max raises it to PIPE_MAX
# (4194304 when tuned; empty leaves it alone) for the run, as iserfs(8)
# suggests; bench_pipe_max_restore puts the old value back.
bench_pipe_max () {
  PIPE_MAX_WAS=
  local want=${PIPE_MAX:-}
  [ -n "$want" ] || return 0
  PIPE_MAX_WAS=$(cat /proc/sys/fs/pipe-max-size)
  [ "$PIPE_MAX_WAS" -ge "$want" ] || sysctl -q -w fs.pipe-max-size="$want"
}
bench_pipe_max_restore () {
  [ -z "${PIPE_MAX_WAS:-}" ] || sysctl -q -w fs.pipe-max-size="$PIPE_MAX_WAS"
}

# fuse-ring: iserfs takes FUSE requests from an io_uring where the fuse
# module's enable_uring is Y (iserfs(8), -o fuse_ring); it is N unless
# someone switched it on.  bench_fuse_ring sets it to FUSE_RING (Y when
# tuned; empty leaves it alone) for the run, where the kernel has it;
# bench_fuse_ring_restore puts the old value back.  Of the peers only
# iserfs registers a ring (libfuse 3.14 and qemu 7.2 have no support), so
# the setting changes nothing for them.
FUSE_RING_PARAM=/sys/module/fuse/parameters/enable_uring
bench_fuse_ring () {
  FUSE_RING_WAS=
  local want=${FUSE_RING:-}
  [ -n "$want" ] && [ -w "$FUSE_RING_PARAM" ] || return 0
  FUSE_RING_WAS=$(cat "$FUSE_RING_PARAM")
  echo "$want" > "$FUSE_RING_PARAM"
}
bench_fuse_ring_restore () {
  [ -z "${FUSE_RING_WAS:-}" ] || echo "$FUSE_RING_WAS" > "$FUSE_RING_PARAM"
}

# no-page-reporting: this VM hands free memory back to its host (free page
# reporting), and a page the host took back costs a fault on the host when
# it is touched again: here 4 GiB written to /dev/shm ran at 367 MB/s the first time.
# Every page a buffered read puts in the page cache is such a page, so a
# dd read through a FUSE file system ran at 570-620 MB/s when its pages
# had been handed back and at 1.3-1.5 GB/s when not, with the daemon's
# CPU (the kernel's copy into the page cache runs in it) at 1.3-1.5 s
# against 0.34-0.43 s per GiB (docs/bench/history.md, "The VM's free page
# reporting").  Raw libiscsi has no page cache and does not pay it.
# bench_page_reporting stops the reporting for the run by raising its
# order to PAGE_REPORTING_ORDER (11 when tuned, above the largest free
# block, so nothing is reported; empty leaves it alone) and then writes
# and deletes WARM_MB (default 2048) MiB in /dev/shm, so that the memory
# the run takes next is backed; bench_page_reporting_restore puts the old
# order back, and the host takes the memory back afterwards.
PAGE_REPORTING_PARAM=/sys/module/page_reporting/parameters/page_reporting_order
bench_page_reporting () {
  PAGE_REPORTING_WAS=
  local want=${PAGE_REPORTING_ORDER:-} warm=${WARM_MB:-2048}
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

# bench_setup [default|tuned]: what every benchmark script sets for its
# run (the kind of run: the argument, else TUNED=1 for tuned), put back by
# bench_restore at its end or before the next bench_setup.
# shellcheck disable=SC2120 # the argument is optional
# bench_scratch NAME: a scratch directory $work and a LUN file $lun in
# /dev/shm, the arrays pids and mounts for what the script starts, and an
# EXIT trap (bench_cleanup) that unmounts those, kills these, removes both
# files and puts the tunings back.
bench_scratch () {
  work=$(mktemp -d "/tmp/iserfs-$1.XXXXXX")
  lun=$(mktemp "/dev/shm/iserfs-$1.XXXXXX")
  pids=() mounts=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup () {
  set +e
  for m in "${mounts[@]}"; do
    mountpoint -q "$m" && timeout 10 fusermount3 -u -z "$m"
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -f "$lun"
  rm -rf "$work"
  bench_restore
}

bench_setup () {
  local mode=${1:-}
  [ -n "$mode" ] || { [ "${TUNED:-0}" = 1 ] && mode=tuned || mode=default; }
  bench_tuning "$mode"
  bench_pipe_max
  bench_fuse_ring
  bench_page_reporting
}
bench_restore () {
  bench_pipe_max_restore
  bench_fuse_ring_restore
  bench_page_reporting_restore
  PIPE_MAX_WAS='' FUSE_RING_WAS='' PAGE_REPORTING_WAS='' WARM_FILE=
}

# was_is BEFORE NOW: "NOW, BEFORE before", or "NOW, as found".
was_is () {
  if [ "$1" = "$2" ]; then echo "$2, as found"; else echo "$2, $1 before"; fi
}

# bench_tunings: one line per tuning this run applied, "NAME<TAB>what",
# read back from the machine after bench_setup; nothing for a run that
# applied none.  The results list them above the run's tables.
bench_tunings () {
  [ -z "${TGTD_TUNABLES:-}" ] ||
    printf 'tgtd-malloc\ttgtd started with GLIBC_TUNABLES=%s (its 1 MiB buffers stay in its heap)\n' "$TGTD_TUNABLES"
  if [ -n "${FUSE_RING:-}" ]; then
    if [ -n "${FUSE_RING_WAS:-}" ]; then
      printf 'fuse-ring\tthe fuse module'"'"'s enable_uring %s (iserfs takes FUSE requests from an io_uring)\n' \
        "$(was_is "$FUSE_RING_WAS" "$(cat "$FUSE_RING_PARAM")")"
    else
      printf 'fuse-ring\tnot applied: this kernel has no writable %s\n' "$FUSE_RING_PARAM"
    fi
  fi
  if [ -n "${PAGE_REPORTING_ORDER:-}" ]; then
    if [ -n "${PAGE_REPORTING_WAS:-}" ]; then
      printf 'no-page-reporting\tfree page reporting order %s (above 10: the VM hands no free memory back to its host), %s MiB touched first\n' \
        "$(was_is "$PAGE_REPORTING_WAS" "$(cat "$PAGE_REPORTING_PARAM")")" "${WARM_MB:-2048}"
    else
      printf 'no-page-reporting\tnot applied: no free page reporting here (%s)\n' "$PAGE_REPORTING_PARAM"
    fi
  fi
  [ -z "${PIPE_MAX_WAS:-}" ] ||
    printf 'pipe-max\tfs.pipe-max-size %s (iserfs splices READs of up to half of it)\n' \
      "$(was_is "$PIPE_MAX_WAS" "$(cat /proc/sys/fs/pipe-max-size)")"
  [ -z "${TGTD_MRDSL:-}" ] ||
    printf 'tgtd-mrdsl\ttgtd'"'"'s MaxRecvDataSegmentLength %s (its default is 8192)\n' "$TGTD_MRDSL"
  [ -z "${TGTD_IOTHREADS:-}" ] ||
    printf 'tgtd-iothreads\ttgtd -t %s: %s backing-store thread(s) beside its one event thread (its default is 16)\n' \
      "$TGTD_IOTHREADS" "$TGTD_IOTHREADS"
}

# bench_say_tunings: the tunings of this run for a script's output, as
# comment lines, or that it measures the machine as found.
bench_say_tunings () {
  local t
  t=$(bench_tunings)
  if [ -n "$t" ]; then
    echo "$t" | sed 's/^/# tuning /; s/\t/: /'
  else
    echo "# no tuning: the machine as found (TUNED=1 for the tunings of bench/lib.sh)"
  fi
}

# bench_found: the settings a run left as found, one line each, for the
# results' header.
bench_found () {
  [ -n "${TGTD_TUNABLES:-}" ] || echo "tgtd started plainly (no GLIBC_TUNABLES)"
  [ -n "${FUSE_RING:-}" ] ||
    echo "fuse enable_uring $(cat "$FUSE_RING_PARAM" 2>/dev/null || echo "absent (kernel before 6.14)"), as found (Y: iserfs takes FUSE requests from an io_uring, else it reads /dev/fuse)"
  [ -n "${PAGE_REPORTING_ORDER:-}" ] || [ ! -r "$PAGE_REPORTING_PARAM" ] ||
    echo "free page reporting order $(cat "$PAGE_REPORTING_PARAM"), as found (10 or less: the VM hands free memory back to its host)"
  [ -n "${PIPE_MAX:-}" ] ||
    echo "fs.pipe-max-size $(cat /proc/sys/fs/pipe-max-size), as found (iserfs splices READs of up to half of it)"
}

# ---- which libiscsi a process loaded ----
BENCH_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# libiscsi_mapped PID: the path of the libiscsi shared object PID has
# mapped (from /proc/PID/maps: what it really loaded, whatever ldd says),
# or nothing.
libiscsi_mapped () {
  awk '$6 ~ /\/libiscsi\.so/ { print $6; exit }' "/proc/$1/maps" 2>/dev/null || true
}

# libiscsi_label PATH: what the libiscsi at PATH is, in a few words:
# "Debian libiscsi VERSION" for Debian's package; "libiscsi VERSION +
# contrib patches 0001-00NN" for one contrib/libiscsi/build.sh made (its
# stamp in the prefix says which patches: those of this tree, or others);
# else the package that owns it, or just its file name.
libiscsi_label () {
  local path=$1 owner pkg prefix ver want sha
  [ -n "$path" ] || { echo "none seen"; return; }
  if owner=$(dpkg-query -S "$path" 2>/dev/null) && [ -n "$owner" ]; then
    owner=${owner%%$'\n'*}
    pkg=${owner%%:*}
    ver=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null)
    case $pkg in
      libiscsi[0-9]*) echo "Debian libiscsi $ver" ;;
      *) echo "libiscsi of Debian package $pkg $ver" ;;
    esac
    return
  fi
  prefix=$(dirname "$(dirname "$path")")
  if [ -f "$prefix/.iserfs-build" ]; then
    ver=$(sed -n 's/^Version: *//p' "$prefix/lib/pkgconfig/libiscsi.pc" 2>/dev/null)
    local here=$BENCH_SRCDIR/contrib/libiscsi patches
    patches=$(cd "$here" && ls [0-9][0-9][0-9][0-9]-*.patch 2>/dev/null) || patches=
    sha=$(sed -n 's/^sha256=//p' "$here/build.sh" 2>/dev/null)
    # shellcheck disable=SC2086 # one file name a line, as build.sh does
    want=$( (echo "$sha"; cd "$here" && cat $patches build.sh) 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ -n "$patches" ] && [ "$(cat "$prefix/.iserfs-build")" = "$want" ]; then
      echo "libiscsi ${ver:-?} + contrib patches $(echo "$patches" | head -1 | cut -c1-4)-$(echo "$patches" | tail -1 | cut -c1-4)"
    else
      echo "libiscsi ${ver:-?} + contrib patches other than this tree's"
    fi
    return
  fi
  echo "${path##*/}"
}

# running PID: PID is there and not a zombie.
running () {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ]
}

# libiscsi_probe CMD...: start CMD (a libiscsi client that runs until
# stopped, or for a second or two), print the libiscsi it mapped, stop it.
# Bounded: 10 s to see the mapping (it is there once the loader is done,
# before the client logs in), 5 s after SIGTERM (not SIGINT, which a
# command started in the background ignores), then SIGKILL.
libiscsi_probe () {
  local pid lib=
  "$@" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    lib=$(libiscsi_mapped "$pid")
    if [ -n "$lib" ] || ! running "$pid"; then break; fi
    sleep 0.1   # poll interval
  done
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    running "$pid" || break
    sleep 0.1   # poll interval
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$lib"
}
