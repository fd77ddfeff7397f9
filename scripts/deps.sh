#!/bin/sh
# Install the Debian packages nnq needs, only those that are missing, then
# ONNX Runtime from npm into bench/node_modules when it is missing.
# Idempotent and quiet when everything is present.
#   scripts/deps.sh            build + test + demo dependencies
#   scripts/deps.sh --peers    also the comparison peers (PyTorch, clang for fuzzing)
#   scripts/deps.sh --fuzz     also clang + libFuzzer only (scripts/fuzz.sh)
set -eu

PKGS="build-essential cmake pkg-config zlib1g-dev
protobuf-c-compiler libprotobuf-c-dev libonnx-dev
libopenblas-openmp-dev
libonnx-testdata dataset-fashion-mnist
python3-onnx python3-numpy"

if [ "${1:-}" = "--peers" ]; then
    PKGS="$PKGS python3-torch python3-torchvision clang libclang-rt-14-dev nodejs chromium"
fi
if [ "${1:-}" = "--fuzz" ]; then
    # libFuzzer ships in libclang-rt; clang's omp.h comes with libomp-dev.
    PKGS="$PKGS clang libclang-rt-14-dev libomp-14-dev"
fi

# Node.js + npm install ONNX Runtime (below). A machine that has npm keeps
# it: NodeSource's nodejs, the one preinstalled here, bundles npm and
# conflicts with Debian's npm package. Only a machine with neither gets
# Debian's nodejs and npm.
if ! command -v npm >/dev/null 2>&1 &&
    ! dpkg-query -W -f='${Provides}' nodejs 2>/dev/null | grep -qw npm; then
    PKGS="$PKGS nodejs npm"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "deps: installing$missing" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# ONNX Runtime (onnxruntime-node, pinned by bench/package-lock.json; its CPU
# library ships in the package, so no install script runs): the peer that
# tests/test_ort_export.sh and the benchmarks run nnq's models in. Without
# it those fail and say so; the rest of the build and tests do not need it,
# so a failure here is a warning.
BENCH="$(cd "$(dirname "$0")/.." && pwd)/bench"
if [ ! -d "$BENCH/node_modules/onnxruntime-node" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "deps: warning: npm not found, ONNX Runtime not installed (its tests will fail)" >&2
    else
        echo "deps: installing onnxruntime-node (npm ci in bench/)" >&2
        (cd "$BENCH" && npm ci --ignore-scripts --silent --no-audit --no-fund >/dev/null 2>&1) ||
            echo "deps: warning: 'npm ci' in bench/ failed, ONNX Runtime not installed" \
                "(its tests will fail)" >&2
    fi
fi
