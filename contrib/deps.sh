#!/bin/bash
# Install every Debian package iserfs needs to build, test and demonstrate.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential autoconf automake libtool pkg-config
  libfuse3-dev fuse3 libiscsi-dev libiscsi-bin
  libibverbs-dev librdmacm-dev check
  tgt attr procps iproute2 util-linux python3 clang
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
