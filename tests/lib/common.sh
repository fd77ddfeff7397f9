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
