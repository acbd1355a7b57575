#!/bin/sh
# Build libiscsi 1.20.0 with our patch series (iSER allocator hook, TCP
# sends of several PDUs per system call, a DATA-IN sink for splicing TCP
# reads) into a private prefix (nothing outside PREFIX is touched).
#
#   contrib/libiscsi/build.sh [PREFIX]        default: /opt/iserfs/libiscsi
#
# The source is Debian trixie's libiscsi_1.20.0.orig.tar.gz, fetched with
# `apt-get source --download-only` (needs a deb-src entry for trixie, see
# README.md) or taken from $LIBISCSI_TARBALL when that names a file.  Its
# sha256 is checked either way.  The unpacked, patched tree and the build
# live in PREFIX/src.  Running it again is quick: when PREFIX already
# holds a build of the same tarball, patches and script, nothing is done.
#
# Result: PREFIX/lib/libiscsi.so.10, PREFIX/include/iscsi/iscsi.h (with
# LIBISCSI_FEATURE_RDMA_ALLOCATOR), PREFIX/lib/pkgconfig/libiscsi.pc.
set -eu

version=1.20.0
debversion=1.20.0-4
tarball_name=libiscsi_$version.orig.tar.gz
sha256=6321d802103f2a363d3afd9a5ae772de0b4052c84fe6a301ecb576b34e853caa

here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/opt/iserfs/libiscsi}
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac
src=$prefix/src
stamp=$prefix/.iserfs-build

die() {
    echo "libiscsi/build.sh: $*" >&2
    exit 1
}

for tool in sha256sum tar patch autoreconf make cc; do
    command -v $tool >/dev/null 2>&1 || die "$tool is not installed"
done

patches=$(ls "$here"/[0-9][0-9][0-9][0-9]-*.patch 2>/dev/null) ||
    die "no patches found in $here"

# Everything the result depends on; a change in any of it rebuilds.
want=$( (echo "$sha256"; cat $patches "$here/build.sh") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   [ -e "$prefix/lib/libiscsi.so" ] &&
   grep -q LIBISCSI_FEATURE_RDMA_ALLOCATOR "$prefix/include/iscsi/iscsi.h" 2>/dev/null; then
    echo "libiscsi $version with the iserfs patches is already in $prefix"
    exit 0
fi

mkdir -p "$src" || die "cannot create $src"

# ---- fetch and verify the source tarball
tarball=$src/$tarball_name
check() { [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]; }

if [ -f "$tarball" ] && ! check "$tarball"; then
    rm -f "$tarball"
fi
if [ ! -f "$tarball" ] && [ -n "${LIBISCSI_TARBALL:-}" ]; then
    [ -f "$LIBISCSI_TARBALL" ] || die "LIBISCSI_TARBALL=$LIBISCSI_TARBALL is not a file"
    check "$LIBISCSI_TARBALL" || die "$LIBISCSI_TARBALL: sha256 is not $sha256"
    cp "$LIBISCSI_TARBALL" "$tarball"
fi
if [ ! -f "$tarball" ]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found: set LIBISCSI_TARBALL to a copy of $tarball_name"
    echo "fetching $tarball_name with apt-get source"
    # Only the orig tarball matters: the .dsc and .debian.tar.xz of
    # $debversion are gone from the mirrors (404), so apt-get fails
    # after having fetched it.  Judge by the file, not the exit status.
    (cd "$src" && apt-get source --download-only -q "libiscsi=$debversion") \
        >"$src/apt-get.log" 2>&1 || true
    [ -f "$tarball" ] || {
        tail -5 "$src/apt-get.log" >&2
        die "cannot download $tarball_name: add the trixie deb-src entry (contrib/libiscsi/README.md) or set LIBISCSI_TARBALL"
    }
fi
check "$tarball" || die "$tarball: sha256 is not $sha256"

# ---- unpack into a fresh tree and apply the series
tree=$src/libiscsi-$version
rm -rf "$tree"
tar -xzf "$tarball" -C "$src" || die "cannot unpack $tarball"
[ -d "$tree" ] || die "$tarball did not contain libiscsi-$version/"
for p in $patches; do
    echo "applying $(basename "$p")"
    patch -d "$tree" -p1 --quiet --forward <"$p" ||
        die "$(basename "$p") does not apply"
done

# ---- build and install
log=$src/build.log
echo "building libiscsi $version into $prefix (log: $log)"
(
    cd "$tree" &&
    ./autogen.sh &&
    ./configure --prefix="$prefix" --disable-werror --disable-static \
        --disable-manpages &&
    make -j"${JOBS:-2}" &&
    make install
) >"$log" 2>&1 || {
    tail -20 "$log" >&2
    die "build failed, see $log"
}
grep -q LIBISCSI_FEATURE_RDMA_ALLOCATOR "$prefix/include/iscsi/iscsi.h" ||
    die "installed iscsi.h lacks the allocator hook"
grep -q 'HAVE_LINUX_ISER 1' "$tree/config.h" ||
    die "libiscsi was built without iSER: install libibverbs-dev and librdmacm-dev"
echo "$want" >"$stamp"
echo "done: libiscsi $version with the allocator hook in $prefix (PKG_CONFIG_PATH=$prefix/lib/pkgconfig)"
