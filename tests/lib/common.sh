# Shared preamble of the shell tests (tests/*.sh), sourced from the repo
# root: Debian's python3 (with numpy/onnx), a scratch directory removed on
# exit, and fail() counting failures so one run reports all of them.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# ONNX Runtime (onnxruntime-node in bench/node_modules) is a test dependency
# like the Debian packages: a test that needs it fails, never skips, when it
# is missing, and says how to install it.
require_ort() {
    if ! command -v node >/dev/null 2>&1; then
        echo "FAIL: node (Node.js) not found; run scripts/deps.sh" >&2
        exit 1
    fi
    if [ ! -d bench/node_modules/onnxruntime-node ]; then
        echo "FAIL: bench/node_modules/onnxruntime-node is missing; run scripts/deps.sh" >&2
        exit 1
    fi
}
