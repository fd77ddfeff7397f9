#!/bin/sh
# Install the Debian packages nnq needs, only those that are missing.
# Idempotent and quiet when everything is present.
#   scripts/deps.sh            build + test + demo dependencies
#   scripts/deps.sh --peers    also the comparison peers (PyTorch, ONNX, Chromium)
set -eu

PKGS="build-essential cmake pkg-config zlib1g-dev
protobuf-c-compiler libprotobuf-c-dev libonnx-dev
libopenblas-openmp-dev
libonnx-testdata dataset-fashion-mnist
python3-onnx python3-numpy"

if [ "${1:-}" = "--peers" ]; then
    PKGS="$PKGS python3-torch python3-torchvision clang libclang-rt-14-dev nodejs"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
