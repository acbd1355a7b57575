#!/bin/bash
# Install every Debian package iserfs needs to build, test and demonstrate.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential autoconf automake libtool pkg-config
  libfuse3-dev fuse3 libiscsi-dev libiscsi-bin
  libibverbs-dev librdmacm-dev check liburing-dev
  tgt attr procps iproute2 util-linux python3 clang valgrind fio
  libclang-rt-dev
  python3-prometheus-client
  debhelper dpkg-dev lintian binutils
)
# libclang-rt-dev: clang's sanitizer and libFuzzer runtimes (libclang_rt.*),
# only recommended by clang, so --no-install-recommends leaves them out and
# tests/fuzz.test could not link its harnesses.
# libiscsi 1.20's source (for contrib/libiscsi/build.sh) comes from
# Debian trixie's source packages; no binary package changes suite.
added_src=no
src_list=/etc/apt/sources.list.d/libiscsi-trixie-src.sources
if [ ! -f "$src_list" ]; then
  cp "$(dirname "$0")/libiscsi/trixie-src.sources" "$src_list"
  added_src=yes
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ $added_src = yes ]; then
  apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
