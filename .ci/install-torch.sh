#!/usr/bin/env bash
# Installs Debian's numpy and PyTorch for the CLI's token-file tests (numpy's .npy files, bfloat16 from
# torch) and the side-by-side harness, with the pthread OpenBLAS (without it Debian's torch falls back
# to a reference BLAS and its baselines are far too slow to compare with), and python3-onnx, with which
# the ONNX Runtime tests write their models (tests/onnx/make_models.py).
set -euo pipefail
if /usr/bin/python3 -c 'import numpy, torch, onnx' >/dev/null 2>&1 && dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-numpy python3-torch python3-sklearn python3-onnx libopenblas0-pthread >/dev/null
/usr/bin/python3 -c 'import numpy, torch, onnx; print("numpy", numpy.__version__, "torch", torch.__version__, "onnx", onnx.__version__)'
