#!/usr/bin/env bash
# tests/fuzz/build.sh SRCDIR BUILDDIR OUTDIR: build the libFuzzer harnesses
# with clang (-fsanitize=fuzzer,address,undefined) into OUTDIR.
#   fuzz_mempool  links mempool/*.c
#   fuzz_options  links fuse/options.c, src/log.c, src/portal.c, src/url.c and
#                 src/path_policy.c with
#                 libfuse3/libiscsi
# BUILDDIR is a configured build tree (for config.h).  Exits 77 if clang
# cannot build a fuzzer here, so a caller can skip; 1 on a real build error.
# Run a harness by hand, e.g. for ten minutes:
#   OUTDIR/fuzz_options -max_total_time=600 -close_fd_mask=2 \
#       -dict=... CORPUSDIR SRCDIR/tests/fuzz/corpus/options
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 SRCDIR BUILDDIR OUTDIR" >&2; exit 2; }
src=$1 build=$2 out=$3
CLANG=${CLANG:-clang}
mkdir -p "$out"

command -v "$CLANG" >/dev/null || { echo "fuzz: $CLANG not found" >&2; exit 77; }
probe="$out/probe.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);
int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}' > "$probe"
"$CLANG" -fsanitize=fuzzer "$probe" -o "$out/probe" 2>/dev/null ||
    { echo "fuzz: $CLANG cannot link with -fsanitize=fuzzer" >&2; exit 77; }
rm -f "$probe" "$out/probe"

CFLAGS=(-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined -fno-omit-frame-pointer
        -Wall -Wextra -Werror -I"$build" -I"$src/mempool" -I"$src/src" -I"$src/fuse")

# shellcheck disable=SC2046
"$CLANG" "${CFLAGS[@]}" -o "$out/fuzz_mempool" "$src/tests/fuzz/fuzz_mempool.c" \
    $(ls "$src"/mempool/*.c | grep -v '/pooltool\.c$') -lpthread
# shellcheck disable=SC2046
"$CLANG" "${CFLAGS[@]}" $(pkg-config --cflags fuse3 libiscsi) -o "$out/fuzz_options" \
    "$src/tests/fuzz/fuzz_options.c" "$src/fuse/options.c" "$src/src/log.c" \
    "$src/src/portal.c" "$src/src/url.c" "$src/src/path_policy.c" \
    $(pkg-config --libs fuse3 libiscsi)
echo "fuzz: built $out/fuzz_mempool $out/fuzz_options"
