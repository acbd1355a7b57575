#!/bin/bash
# Install dependencies and build iserfs in the source tree, against the
# libiscsi with the RDMA allocator hook (contrib/libiscsi, installed in
# /opt/iserfs/libiscsi), so that iSER data goes to the wire from iserfs's
# pool.  ISERFS_LIBISCSI=stock builds against Debian's libiscsi instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh
args=()
if [ "${ISERFS_LIBISCSI:-hooked}" != stock ]; then
  prefix=${ISERFS_LIBISCSI_PREFIX:-/opt/iserfs/libiscsi}
  bash contrib/libiscsi/build.sh "$prefix"
  args+=("--with-libiscsi=$prefix")
fi
[ -x configure ] || ./autogen.sh
# Configure again whenever the choice of libiscsi changed.
want="${args[*]:-}"
if [ ! -f Makefile ] || [ "$(cat .configure-args 2>/dev/null)" != "$want" ]; then
  ./configure "${args[@]}"
  echo "$want" > .configure-args
fi
make -j"$(nproc)"
