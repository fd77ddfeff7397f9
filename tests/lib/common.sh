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

# `nnq SUBCOMMAND ARGS...` must exit with CODE and one stderr line matching
# PATTERN, and leave no $TMP/bad.onnx (the output path the tests pass).
expect_cli_error() { # SUBCOMMAND CODE PATTERN ARGS...
    sub=$1 code=$2 pattern=$3
    shift 3
    rm -f "$TMP/bad.onnx"
    set +e
    "$NNQ" "$sub" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    set -e
    [ "$rc" -eq "$code" ] || fail "exit $rc, expected $code: $sub $*"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "not one line: $sub $* -> $(cat "$TMP/err")"
    grep -q -e "$pattern" "$TMP/err" || fail "no '$pattern' in: $(cat "$TMP/err")"
    [ ! -e "$TMP/bad.onnx" ] || fail "output written despite the error: $sub $*"
}
