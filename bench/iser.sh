#!/usr/bin/env bash
# bench/iser.sh: iserfs over iSER with Debian's stock libiscsi and with the
# hooked one (contrib/libiscsi), side by side, and over TCP on the same tgtd,
# under the user-space RDMA emulation (tests/softrdma).  The emulation copies
# every RDMA transfer through a socket, so absolute numbers say nothing
# about RDMA hardware; what the columns show is what iserfs itself spends:
# CPU seconds per GiB of the iserfs process, and the copies and
# registrations it avoids with the hook.
#
#   bench/iser.sh STOCK_BUILDDIR HOOKED_BUILDDIR     (configured, built trees)
#
# Writes docs/bench/iser.md (OUT=... to change) and prints it.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/iser.sh STOCK_BUILDDIR HOOKED_BUILDDIR" >&2; exit 2; }
srcdir=$(cd "$(dirname "$0")/.." && pwd)
stock=$(cd "$1" && pwd) hooked=$(cd "$2" && pwd)
OUT=${OUT:-$srcdir/docs/bench/iser.md}
SECS=${SECS:-5}
CTL=${CTL_PORT:-7796} PORT=${ISER_PORT:-13296}
IQN=iqn.2026-11.org.iserfs.bench:iser
for b in "$stock" "$hooked"; do
    [ -x "$b/fuse/iserfs" ] || { echo "bench/iser.sh: no $b/fuse/iserfs" >&2; exit 1; }
done
"$hooked/fuse/iserfs" --version | grep -q "allocator hook" ||
    { echo "bench/iser.sh: $hooked is not built with the hooked libiscsi" >&2; exit 1; }
command -v fio >/dev/null || { echo "bench/iser.sh: fio is not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/iserfs-iserbench.XXXXXX)
export SOFTRDMA_DIR=$work/softrdma
mkdir -p "$SOFTRDMA_DIR" "$work/mnt"
run="$hooked/tests/softrdma/softrdma-run"
tgtd_pid=
cleanup() {
    fusermount3 -u "$work/mnt" 2>/dev/null || fusermount3 -uz "$work/mnt" 2>/dev/null || true
    [ -z "$tgtd_pid" ] || kill -9 "$tgtd_pid" 2>/dev/null || true
    rm -rf "$work" /dev/shm/iserfs-iserbench.img
}
trap cleanup EXIT

"$run" tgtd -f -C "$CTL" --iscsi portal=127.0.0.1:$PORT --iser port=$PORT \
    > "$work/tgtd.log" 2>&1 &
tgtd_pid=$!
deadline=$((SECONDS + 20))
until tgtadm -C "$CTL" --op show --mode sys >/dev/null 2>&1 &&
      [ -S "$SOFTRDMA_DIR/0.0.0.0-$PORT" ]; do
    [ $SECONDS -lt $deadline ] || { echo "tgtd did not start" >&2; exit 1; }
    sleep 0.1   # poll interval
done
truncate -s 1G /dev/shm/iserfs-iserbench.img
ini=iqn.2026-01.org.iserfs:$(hostname -s)
for lld in iser iscsi; do
    tid=$([ $lld = iser ] && echo 1 || echo 2)
    tgtadm -C "$CTL" --lld $lld --op new --mode target --tid $tid -T "$IQN-$lld"
    tgtadm -C "$CTL" --lld $lld --op new --mode logicalunit --tid $tid --lun 1 \
        -b /dev/shm/iserfs-iserbench.img
    tgtadm -C "$CTL" --lld $lld --op bind --mode target --tid $tid -I ALL
    tgtadm -C "$CTL" --lld $lld --op bind --mode target --tid $tid -Q "$ini"
done

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # clock ticks
hz=$(getconf CLK_TCK)

# measure LABEL RW BS DEPTH: one fio run; prints "MB/s cpu_s_per_GiB"
measure() {
    local pid=$1 rw=$2 bs=$3 depth=$4 c0 c1 out bytes mbs
    c0=$(cpu_of "$pid")
    out=$(timeout $((SECS + 60)) fio --name=b --filename="$work/mnt/lun1" --rw="$rw" \
        --bs="$bs" --iodepth="$depth" --ioengine=libaio --direct=1 \
        --runtime="$SECS" --time_based --size=512M --output-format=terse \
        --terse-version=3 2>/dev/null)
    c1=$(cpu_of "$pid")
    # terse v3: field 6 read KiB, field 47 write KiB (io_kbytes)
    bytes=$(awk -F';' '{print ($6 + $47) * 1024}' <<< "$out")
    mbs=$(awk -v b="$bytes" -v s="$SECS" 'BEGIN{printf "%.0f", b / s / 1e6}')
    awk -v c=$((c1 - c0)) -v hz="$hz" -v b="$bytes" -v m="$mbs" \
        'BEGIN{ if (b > 0) printf "%s %.2f\n", m, c / hz / (b / 2^30); else print "0 -" }'
}

declare -A res stats
for cfg in tcp stock hooked; do
    case $cfg in
        tcp)    bin=$stock/fuse/iserfs;  url=iscsi://127.0.0.1:$PORT/$IQN-iscsi ;;
        stock)  bin=$stock/fuse/iserfs;  url=iser://127.0.0.1:$PORT/$IQN-iser ;;
        hooked) bin=$hooked/fuse/iserfs; url=iser://127.0.0.1:$PORT/$IQN-iser ;;
    esac
    timeout 60 "$run" "$bin" -f "$url" "$work/mnt" 2> "$work/iserfs-$cfg.log" &
    ipid=$!
    deadline=$((SECONDS + 30))
    until mountpoint -q "$work/mnt"; do
        kill -0 $ipid 2>/dev/null && [ $SECONDS -lt $deadline ] ||
            { cat "$work/iserfs-$cfg.log" >&2; echo "mount ($cfg) failed" >&2; exit 1; }
        sleep 0.1   # poll interval
    done
    # timeout(1) forks: the iserfs process is its child.
    pid=$(pgrep -P $ipid -x iserfs || echo $ipid)
    for w in "read 1M 16" "write 1M 16" "randread 4k 32" "randwrite 4k 32"; do
        res[$cfg,$w]=$(measure "$pid" $w)
    done
    stats[$cfg]=$(getfattr --absolute-names -n user.iserfs.stats --only-values "$work/mnt" |
        grep -E '^(transport_registrations|zero_copy_bytes|bounce_bytes|write_cmds|bytes_written|write_in_place_bytes|write_copied_bytes)=' | tr '\n' ' ')
    fusermount3 -u "$work/mnt"
    wait $ipid 2>/dev/null || true
done

{
    echo "# iserfs over iSER (RDMA emulation) and TCP, one tgtd, LUN in /dev/shm"
    echo
    echo "Produced by \`bench/iser.sh\` on $(date -u +%F), $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "fio, libaio, O_DIRECT, ${SECS}s per cell, one run each.  Each cell: MB/s, then iserfs CPU seconds per GiB moved (process only)."
    echo "The emulation moves RDMA data through AF_UNIX sockets: compare the iSER columns with each other, not with hardware."
    echo
    echo "| workload | TCP (stock libiscsi 1.19) | iSER, stock libiscsi 1.19 | iSER, hooked libiscsi 1.20 |"
    echo "|---|---|---|---|"
    for w in "read 1M 16" "write 1M 16" "randread 4k 32" "randwrite 4k 32"; do
        row="| $w |"
        for cfg in tcp stock hooked; do
            set -- ${res[$cfg,$w]}
            row="$row $1 MB/s, $2 s/GiB |"
        done
        echo "$row"
    done
    echo
    for cfg in tcp stock hooked; do
        echo "- $cfg: ${stats[$cfg]}"
    done
} > "$OUT"
cat "$OUT"
