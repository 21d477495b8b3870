#!/usr/bin/env bash
# Installs the CUDA 11.8 compiler from Debian's non-free section plus g++-11 (its supported host
# compiler) when nvcc is missing. The non-free source entry is derived from the machine's own Debian
# deb822 source file, so no mirror host is named here.
set -euo pipefail
if command -v nvcc >/dev/null 2>&1 && command -v g++-11 >/dev/null 2>&1; then
  exit 0
fi
src=/etc/apt/sources.list.d/debian.sources
nonfree=/etc/apt/sources.list.d/tokenkernels-nonfree.sources
if [ ! -f "$nonfree" ]; then
  [ -f "$src" ] || { echo "install-cuda: $src not found; cannot derive a non-free source entry" >&2; exit 1; }
  sed -E 's/^Components:.*/Components: contrib non-free/' "$src" > "$nonfree"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit g++-11 >/dev/null
nvcc --version | tail -n 2
