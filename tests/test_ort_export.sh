#!/bin/sh
# Models exported by nnq load and run in ONNX Runtime (CPU, onnxruntime-node
# from bench/node_modules) and give nnq's outputs. For each model:
#  1. `nnq convert` writes it; the ONNX checker (full_check: strict shape
#     inference included) accepts the result; converting that again gives
#     the same bytes (export is stable); legacy models come out at opset 11;
#  2. ORT runs the converted model (and a model `nnq train` wrote, as
#     written) on an input .npy; `nnq run` runs the same file on the same
#     input; normalised error mse(ort, nnq) / mse(ort, 0) <= 1e-10, and the
#     classifiers pick the same class for every image.
# Models: the PyTorch fixtures (mnv2s, resnets), freshly trained `tiny`
# (keeps BatchNormalization) and `mobilenetv2-hswish` (HardSwish), and
# legacy (opset < 11) conformance models from Debian's libonnx-testdata.
# Also: `nnq run` on a model with a fixed batch takes any row count, and its
# errors name the shapes involved.
# Usage: sh tests/test_ort_export.sh BUILD/nnq (from the repo root).
set -eu

NNQ=${1:?usage: test_ort_export.sh PATH/TO/nnq}
FIX=tests/fixtures/models
CONF=/usr/share/libonnx-testdata/data/pytorch-converted
RUN_ORT=tests/ort/run_model.js
. tests/lib/common.sh # PY, TMP (removed on exit), fail()
require_ort # fails, never skips, without node and onnxruntime-node

# Under the sanitizers nnq is ~10x slower: train on fewer images.
LIMIT=1000
LIMIT_MNV2=256
[ -n "${NNQ_SANITIZED:-}" ] && LIMIT=500 && LIMIT_MNV2=64

# Cases, one line each: NAME MODEL INPUT.npy KIND (classifier | legacy | plain).
: > "$TMP/cases"
case_add() { echo "$1 $2 $3 $4" >> "$TMP/cases"; }

IMAGES=$FIX/golden/mnv2s/input_0.npy # 16 preprocessed Fashion-MNIST test images
for m in mnv2s resnets; do
    "$NNQ" convert "$FIX/$m.onnx" -o "$TMP/$m.onnx" --quiet || fail "nnq convert $m.onnx"
    case_add "$m" "$TMP/$m.onnx" "$FIX/golden/$m/input_0.npy" classifier
done

# The same fixtures with the output's shape (mnv2s) or whole type (resnets)
# stripped: convert must put back float32 [N, 10], as shape inference gives.
"$PY" - "$FIX" "$TMP" <<'PYEOF'
import sys, onnx
fix, tmp = sys.argv[1:3]
m = onnx.load(f"{fix}/mnv2s.onnx")
m.graph.output[0].type.tensor_type.ClearField("shape")
onnx.save(m, f"{tmp}/mnv2s.noshape.src.onnx")
m = onnx.load(f"{fix}/resnets.onnx")
m.graph.output[0].ClearField("type")
onnx.save(m, f"{tmp}/resnets.notype.src.onnx")
PYEOF
for m in mnv2s.noshape resnets.notype; do
    "$NNQ" convert "$TMP/$m.src.onnx" -o "$TMP/$m.onnx" --quiet || fail "nnq convert $m"
    case_add "$m" "$TMP/$m.onnx" "$IMAGES" classifier
done

# Freshly trained models: ORT runs the file `nnq train` wrote and its
# conversion. A batch of 5 random images exercises a batch size the
# fixtures do not use.
"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(3).standard_normal((5, 1, 32, 32)).astype(np.float32))' "$TMP/rand5.npy"
"$NNQ" train --arch tiny --epochs 1 --limit $LIMIT --test-limit 100 --threads 2 --quiet \
    -o "$TMP/tiny.onnx" || fail "nnq train --arch tiny"
"$NNQ" train --arch mobilenetv2-hswish --epochs 1 --limit $LIMIT_MNV2 --no-eval --threads 2 \
    --quiet -o "$TMP/mnv2h.onnx" || fail "nnq train --arch mobilenetv2-hswish"
for m in tiny mnv2h; do
    "$NNQ" convert "$TMP/$m.onnx" -o "$TMP/$m.conv.onnx" --quiet || fail "nnq convert $m.onnx"
    case_add "$m" "$TMP/$m.onnx" "$IMAGES" classifier
    case_add "$m.conv" "$TMP/$m.conv.onnx" "$IMAGES" classifier
    case_add "$m.rand5" "$TMP/$m.onnx" "$TMP/rand5.npy" classifier
done

# Legacy conformance models (opset < 11, upgraded on import), fed with
# their own test input.
LEGACY="test_Conv2d_depthwise_padded test_Conv2d_dilated test_Conv2d_groups
test_BatchNorm2d_eval test_BatchNorm1d_3d_input_eval test_PReLU_2d_multiparam
test_AvgPool2d test_MaxPool2d test_Linear test_ReLU test_Softmax test_Sigmoid"
for t in $LEGACY; do
    "$NNQ" convert "$CONF/$t/model.onnx" -o "$TMP/$t.onnx" --quiet || fail "nnq convert $t"
    case_add "$t" "$TMP/$t.onnx" "$TMP/$t.in.npy" legacy
done
"$PY" - "$CONF" "$TMP" $LEGACY <<'PYEOF'
import sys, numpy as np, onnx
from onnx import numpy_helper
conf, tmp = sys.argv[1:3]
for t in sys.argv[3:]:
    p = onnx.TensorProto()
    with open(f"{conf}/{t}/test_data_set_0/input_0.pb", "rb") as f:
        p.ParseFromString(f.read())
    np.save(f"{tmp}/{t}.in.npy", numpy_helper.to_array(p).astype(np.float32))
PYEOF

# Convert again: the same bytes (nnq's export is a fixed point).
while read -r name model input kind; do
    [ -f "$model" ] || continue
    case $name in tiny | mnv2h | *.rand5) continue ;; esac # as trained, not converted
    "$NNQ" convert "$model" -o "$TMP/$name.again.onnx" --quiet &&
        cmp -s "$model" "$TMP/$name.again.onnx" ||
        fail "$name: converting the converted model changed it"
done < "$TMP/cases"

# ORT and nnq on every case.
while read -r name model input kind; do
    [ -f "$model" ] || continue
    node "$RUN_ORT" "$model" "$input" "$TMP/$name.ort.npy" ||
        fail "$name: ONNX Runtime could not run $(basename "$model")"
    "$NNQ" run "$model" --input "$input" -o "$TMP/$name.nnq.npy" --threads 2 --quiet ||
        fail "$name: nnq run"
done < "$TMP/cases"

# Checker, opsets and comparisons, in one Python process.
"$PY" - "$TMP" "$CONF" <<'PYEOF' || fail "checker or ORT/nnq comparison (see above)"
import sys, numpy as np, onnx
tmp, conf = sys.argv[1:3]
bad = 0
def report(msg):
    global bad
    print("FAIL: " + msg, file=sys.stderr)
    bad += 1
def opset(m):
    return max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
checked = set()
for line in open(f"{tmp}/cases"):
    name, model, inp, kind = line.split()
    try:
        m = onnx.load(model)
    except Exception as e:
        report(f"{name}: {model} missing or unreadable ({e})")
        continue
    if model not in checked:
        checked.add(model)
        try:
            onnx.checker.check_model(m, full_check=True)
        except Exception as e:
            report(f"{name}: ONNX checker: {str(e).splitlines()[0]}")
        for v in list(m.graph.input) + list(m.graph.output):
            if not v.type.tensor_type.HasField("shape"):
                report(f"{name}: graph input/output '{v.name}' has no shape")
    out_dims = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    if name.endswith(("noshape", "notype")) and (
            out_dims != ["N", 10] or m.graph.output[0].type.tensor_type.elem_type != 1):
        report(f"{name}: output restored as {out_dims}, expected float32 ['N', 10]")
    if kind == "legacy":
        src = onnx.load(f"{conf}/{name}/model.onnx")
        if not (opset(src) < 11 and opset(m) == 11):
            report(f"{name}: opset {opset(src)} converted to {opset(m)}, expected < 11 -> 11")
    try:
        a = np.load(f"{tmp}/{name}.ort.npy").astype(np.float64)
        b = np.load(f"{tmp}/{name}.nnq.npy").astype(np.float64)
    except OSError as e:
        report(f"{name}: no output to compare ({e})")
        continue
    if a.shape != b.shape:
        report(f"{name}: ORT output {a.shape}, nnq output {b.shape}")
        continue
    if len(out_dims) != a.ndim or any(isinstance(d, int) and d != n for d, n in zip(out_dims, a.shape)):
        report(f"{name}: declared output shape {out_dims}, ORT gives {a.shape}")
    den = float((a * a).sum())
    nmse = float(((a - b) ** 2).sum()) / den if den > 0 else float(((a - b) ** 2).sum())
    if not nmse <= 1e-10 or den == 0:
        report(f"{name}: nmse(ORT, nnq) = {nmse:.3g} (|ORT|^2 = {den:.3g}), expected <= 1e-10")
    line = f"{name:34s} {str(a.shape):18s} nmse {nmse:.2e}"
    if kind == "classifier":
        a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        # A near-tie may legitimately flip under float32 reordering.
        top2 = np.sort(a2, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-5 * np.abs(a2).max()
        same = a2.argmax(1) == b2.argmax(1)
        if not same[clear].all():
            report(f"{name}: ORT and nnq pick different classes for images "
                   f"{np.flatnonzero(clear & ~same).tolist()}")
        line += f"  argmax equal {int(same.sum())}/{len(same)}"
    print(line)
sys.exit(1 if bad else 0)
PYEOF

# `nnq run` on a model with a fixed batch (2): 5 rows run as 2 + 2 + 1
# padded, giving exactly the rows of the 2-row runs.
t=test_Conv2d_depthwise_padded
"$PY" -c 'import numpy as np, sys; x = np.load(sys.argv[1]); np.save(sys.argv[2], np.concatenate([x, x[::-1], x[:1]]))' \
    "$TMP/$t.in.npy" "$TMP/rows5.npy"
if "$NNQ" run "$TMP/$t.onnx" --input "$TMP/rows5.npy" -o "$TMP/rows5.out.npy" --quiet; then
    "$PY" -c 'import numpy as np, sys; y = np.load(sys.argv[1]); z = np.load(sys.argv[2]); sys.exit(0 if z.shape == (5,) + y.shape[1:] and (z == np.concatenate([y, y[::-1], y[:1]])).all() else 1)' \
        "$TMP/$t.nnq.npy" "$TMP/rows5.out.npy" || fail "nnq run of 5 rows on a fixed batch of 2 differs from the 2-row runs"
else
    fail "nnq run of 5 rows on a model with a fixed batch of 2"
fi

# Errors: one line naming both shapes / the dtype; nothing written.
"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.zeros((3, 2, 32, 32), np.float32)); np.save(sys.argv[2], np.zeros((3, 1, 32, 32)))' \
    "$TMP/bad_shape.npy" "$TMP/f64.npy"
expect_error() { # WHAT PATTERN COMMAND...
    what=$1 pattern=$2
    shift 2
    if "$@" > "$TMP/err.out" 2> "$TMP/err.txt"; then
        fail "$what: succeeded, expected an error"
    elif [ "$(wc -l < "$TMP/err.txt")" -ne 1 ] || ! grep -q -e "$pattern" "$TMP/err.txt"; then
        fail "$what: expected one line matching '$pattern', got: $(cat "$TMP/err.txt")"
    fi
}
expect_error "wrong shape" "bad_shape.npy has shape \[3, 2, 32, 32\] but input 'input' of .* has shape \[N, 1, 32, 32\]" \
    "$NNQ" run "$TMP/mnv2s.onnx" --input "$TMP/bad_shape.npy" -o "$TMP/never.npy"
expect_error "float64 input" "f64.npy holds float64; run needs float32" \
    "$NNQ" run "$TMP/mnv2s.onnx" --input "$TMP/f64.npy" -o "$TMP/never.npy"
expect_error "missing -o" "-o Y.npy is required" "$NNQ" run "$TMP/mnv2s.onnx" --input "$IMAGES"
expect_error "unsupported op" "unsupported op 'Elu'" \
    "$NNQ" convert "$CONF/test_ELU/model.onnx" -o "$TMP/never.onnx"
[ -e "$TMP/never.npy" ] || [ -e "$TMP/never.onnx" ] && fail "a failed command left an output file"
ls "$TMP" | grep -q '\.tmp\.' && fail "a temporary file was left behind"

if [ "$failures" -ne 0 ]; then
    echo "test_ort_export: $failures failure(s)" >&2
    exit 1
fi
echo "test_ort_export: all checks passed"
