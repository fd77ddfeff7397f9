#!/bin/sh
# nnq's main job, end to end: inspect and evaluate the shipped float models
# on the full Fashion-MNIST test set, then summarise them in one table next
# to PyTorch's accuracy for the same weights.
#   scripts/demo.sh BUILD/nnq        (from anywhere; `make demo` runs it)
# Then post-training quantization of the models nnq trained itself (models/):
# W8A8 per-channel from 1024 calibration images, and W8A8 with no data at all
# (the data-free recipe), each exported as ONNX QDQ and evaluated.
# Later stages (QAT, the integer engine) add sections and table columns.
set -eu

NNQ=${1:?usage: scripts/demo.sh PATH/TO/nnq}
case $NNQ in
    /*) ;;
    */*) NNQ=$(pwd)/$NNQ ;; # relative to the caller: keep it valid after the cd below
esac
cd "$(dirname "$0")/.."     # repo root: model paths print short and relative
FIX=tests/fixtures/models
MODELS="mnv2s resnets"
PY=/usr/bin/python3            # Debian's python3: only its stdlib json is used
[ -x "$PY" ] || PY=python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

# json_get FILE KEY...: a (nested) member of a JSON file, e.g. json_get a.json mnv2s top1.
json_get() {
    "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$@"
}

section() {
    printf '\n==== %s\n\n' "$*"
}

command -v "$NNQ" >/dev/null || { echo "demo: no nnq at $NNQ (build first: make build)" >&2; exit 1; }
for m in $MODELS; do
    [ -f "$FIX/$m.onnx" ] || { echo "demo: missing $FIX/$m.onnx" >&2; exit 1; }
done

# ---------------------------------------------------------------- models
for m in $MODELS; do
    section "nnq info $m"
    "$NNQ" info "$FIX/$m.onnx"
    "$NNQ" info "$FIX/$m.onnx" --json >"$WORK/$m.info.json"
done

# ------------------------------------------------------ float accuracy
for m in $MODELS; do
    section "nnq eval $m (Fashion-MNIST test set, float32)"
    "$NNQ" eval "$FIX/$m.onnx" --json >"$WORK/$m.eval.json"
done

# ---------------------------------------------------------------- table
section "Results (Fashion-MNIST test set, 10000 images)"
printf '%-10s %10s %10s %11s %15s %10s\n' model params MACs "top-1 nnq" "top-1 PyTorch" images/s
for m in $MODELS; do
    params=$(json_get "$WORK/$m.info.json" params)
    macs=$(json_get "$WORK/$m.info.json" macs)
    top1=$(json_get "$WORK/$m.eval.json" top1)
    rate=$(json_get "$WORK/$m.eval.json" images_per_s)
    ref=$(json_get "$FIX/accuracy.json" "$m" top1 2>/dev/null || echo "")
    awk -v m="$m" -v p="$params" -v macs="$macs" -v t="$top1" -v r="$ref" -v ips="$rate" 'BEGIN {
        ref = (r == "") ? "n/a" : sprintf("%.2f%%", r)
        printf "%-10s %10d %9.2fM %10.2f%% %15s %10.0f\n", m, p, macs / 1e6, t, ref, ips
    }'
done

# ------------------------------------------- post-training quantization
SHIPPED="resnet20 mobilenetv2 mobilenetv2-hswish"
for m in $SHIPPED; do
    [ -f "models/$m.onnx" ] || { echo "demo: missing models/$m.onnx" >&2; exit 1; }
    section "nnq quantize $m: W8A8 per-channel, 1024 calibration images"
    "$NNQ" quantize "models/$m.onnx" -o "$WORK/$m.w8a8.onnx" --eval --json >"$WORK/$m.w8a8.json"
    section "nnq quantize $m: W8A8, data-free recipe (no images)"
    "$NNQ" quantize "models/$m.onnx" -o "$WORK/$m.df.onnx" --recipe data-free --eval \
        --json >"$WORK/$m.df.json"
done

section "Post-training quantization (Fashion-MNIST test set, 10000 images, top-1)"
printf '%-20s %9s %20s %20s\n' model float "W8A8 per-channel" "W8A8 data-free"
for m in $SHIPPED; do
    f=$(json_get "$WORK/$m.w8a8.json" float_top1)
    q=$(json_get "$WORK/$m.w8a8.json" quant_top1)
    d=$(json_get "$WORK/$m.df.json" quant_top1)
    awk -v m="$m" -v f="$f" -v q="$q" -v d="$d" 'BEGIN {
        printf "%-20s %8.2f%% %11.2f%% (%+.2f) %11.2f%% (%+.2f)\n", m, f, q, q - f, d, d - f
    }'
done
echo
echo "More configurations (per-tensor, CLE, AdaRound, W4): docs/results.md"
