#!/bin/sh
# Every way `nnq` can be handed bad input must end the same way: a non-zero
# exit, exactly one stderr line "nnq: error: <reason>", and no crash or
# sanitizer report. Usage: sh tests/test_cli_errors.sh BUILD/nnq (from the repo root).
# Needs no python: malformed files are committed (tests/fixtures/bad) or
# written here with printf/head.
set -eu

NNQ=${1:?usage: test_cli_errors.sh PATH/TO/nnq}
MODEL=tests/fixtures/models/resnets.onnx
BAD=tests/fixtures/bad
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

# expect_error NAME WANT_RC PATTERN -- ARGS...: run nnq ARGS and judge it.
# WANT_RC is "any" (any failure) or an exact code; PATTERN is an extended
# regex the error line must match ("" for no extra check).
expect_error() {
    name=$1 want_rc=$2 pattern=$3
    shift 4
    rc=0
    "$NNQ" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    lines=$(wc -l <"$TMP/err")
    if [ "$rc" -eq 0 ]; then
        fail "$name: exit 0, expected failure"
    elif [ "$rc" -ge 128 ]; then
        fail "$name: killed by a signal (exit $rc)"
    elif [ "$want_rc" != any ] && [ "$rc" -ne "$want_rc" ]; then
        fail "$name: exit $rc, expected $want_rc"
    fi
    if [ "$lines" -ne 1 ]; then
        fail "$name: $lines stderr lines, expected exactly 1"
    elif ! grep -q '^nnq: error: ' "$TMP/err"; then
        fail "$name: stderr does not start with 'nnq: error:'"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$TMP/err"; then
        fail "$name: message does not match /$pattern/"
    fi
    if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error|core dumped' "$TMP/err"; then
        fail "$name: sanitizer report or crash"
    fi
    if [ -s "$TMP/out" ]; then
        fail "$name: wrote to stdout on failure"
    fi
    sed 's/^/  /' "$TMP/err" >&2
}

# write_npy FILE DESCR SHAPE NBYTES: a zero-filled NumPy v1.0 file. The
# header is padded to 118 bytes so data starts at offset 128 (64-aligned).
write_npy() {
    {
        printf '\223NUMPY\001\000\166\000'
        printf "%-117s\n" "{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
        head -c "$4" /dev/zero
    } >"$1"
}

[ -f "$MODEL" ] || { echo "missing fixture $MODEL" >&2; exit 1; }

# Malformed model files.
size=$(wc -c <"$MODEL")
head -c $((size / 2)) "$MODEL" >"$TMP/truncated.onnx"
expect_error "truncated onnx" 1 "truncated.onnx" -- info "$TMP/truncated.onnx"
expect_error "truncated onnx (eval)" 1 "truncated.onnx" -- eval "$TMP/truncated.onnx" --quiet
# Deterministic "random" bytes (a fixed LCG), so a failure reproduces.
awk 'BEGIN { x = 12345; for (i = 0; i < 4096; i++) { x = (x * 1103515245 + 12345) % 2147483648;
             printf "%c", 1 + int(x / 8388608) % 255 } }' >"$TMP/random.onnx"
expect_error "random bytes" 1 "random.onnx" -- info "$TMP/random.onnx"
expect_error "graph with a cycle" 1 "cycle" -- eval "$BAD/cycle.onnx" --quiet
expect_error "unknown op" 1 "FrobnicateOp.*mystery_node|mystery_node.*FrobnicateOp" \
    -- info "$BAD/unknown_op.onnx"
expect_error "unknown op (eval)" 1 "FrobnicateOp.*mystery_node|mystery_node.*FrobnicateOp" \
    -- eval "$BAD/unknown_op.onnx" --quiet
expect_error "missing model" 1 "no-such-model.onnx" -- info "$TMP/no-such-model.onnx"
expect_error "missing model (eval)" 1 "no-such-model.onnx" -- eval "$TMP/no-such-model.onnx"

# Data that does not fit the model (32x32 input).
write_npy "$TMP/img28.npy" '<f4' '(4, 1, 28, 28)' $((4 * 28 * 28 * 4))
write_npy "$TMP/img32.npy" '<f4' '(4, 1, 32, 32)' $((4 * 32 * 32 * 4))
write_npy "$TMP/lab4.npy" '<i8' '(4,)' 32
write_npy "$TMP/lab3.npy" '<i8' '(3,)' 24
expect_error "wrong input shape" 1 "32, 32.*28, 28" \
    -- eval "$MODEL" --data "$TMP/img28.npy" --labels "$TMP/lab4.npy" --quiet
expect_error "labels count mismatch" 1 "lab3.npy" \
    -- eval "$MODEL" --data "$TMP/img32.npy" --labels "$TMP/lab3.npy" --quiet
expect_error "missing data file" 1 "no-such-images.npy" \
    -- eval "$MODEL" --data "$TMP/no-such-images.npy" --labels "$TMP/lab4.npy" --quiet
expect_error "missing labels file" 1 "no-such-labels.npy" \
    -- eval "$MODEL" --data "$TMP/img32.npy" --labels "$TMP/no-such-labels.npy" --quiet
mkdir "$TMP/empty"
NNQ_FASHION_MNIST_DIR="$TMP/empty" expect_error "missing Fashion-MNIST files" 1 "$TMP/empty" \
    -- eval "$MODEL" --quiet

# Usage errors: exit code 2.
expect_error "unknown option" 2 "--frobnicate" -- eval "$MODEL" --frobnicate
expect_error "unknown command" 2 "frobnicate" -- frobnicate
expect_error "no command" 2 "" --
expect_error "bad integer" 2 "--batch" -- eval "$MODEL" --batch 0
expect_error "missing value" 2 "--limit" -- eval "$MODEL" --limit
expect_error "labels without npy data" 2 "--labels" -- eval "$MODEL" --labels "$TMP/lab4.npy"
expect_error "missing model argument" 2 "MODEL" -- info

if [ "$failures" -ne 0 ]; then
    echo "test_cli_errors: $failures failure(s)" >&2
    exit 1
fi
echo "test_cli_errors: all checks passed" >&2
