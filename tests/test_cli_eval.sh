#!/bin/sh
# End-to-end checks of `nnq eval` and `nnq info` on the shipped fixture
# models. Usage: sh tests/test_cli_eval.sh BUILD/nnq (from the repo root).
#  1. eval --json on the full Fashion-MNIST test set matches PyTorch's top-1
#     (tests/fixtures/models/accuracy.json) within 0.05 points;
#  2. info --json: parameter count, op counts and MACs equal values computed
#     independently from the .onnx file with python3-onnx;
#  3. eval on .npy images (preprocessed here by numpy from the raw IDX files)
#     equals eval on the same images through --data fashion-mnist --limit,
#     for several batch sizes (incl. a last partial batch);
#  4. argmax ties go to the lowest index, and a model with a fixed batch
#     dimension pads its last batch without scoring the padding.
set -eu

NNQ=${1:?usage: test_cli_eval.sh PATH/TO/nnq}
FIX=tests/fixtures/models
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

# json_get FILE KEY: one top-level member of a JSON object.
json_get() {
    "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# --- 1. top-1 on the full test set equals PyTorch's ----------------------
# Under sanitizers (NNQ_SANITIZED=1, `make test-asan`) an -O0 build needs
# ~8 min for resnets' 10000 images: there it runs the first 1000 images,
# which exercise the same code, and only the Release suite compares top-1.
for m in mnv2s resnets; do
    limit=0
    [ "$m" = resnets ] && [ -n "${NNQ_SANITIZED:-}" ] && limit=1000
    "$NNQ" eval "$FIX/$m.onnx" --limit "$limit" --json --quiet >"$TMP/$m.eval.json"
    if ! "$PY" - "$TMP/$m.eval.json" "$FIX/accuracy.json" "$m" "$limit" <<'PYEOF'
import json, sys
got = json.load(open(sys.argv[1]))
ref = json.load(open(sys.argv[2]))[sys.argv[3]]
limit = int(sys.argv[4])
print(f"{sys.argv[3]}: nnq top-1 {got['top1']:.2f}% ({got['correct']}/{got['n']}), "
      f"PyTorch {ref['top1']:.2f}% ({ref['n']}), {got['images_per_s']:.0f} images/s",
      file=sys.stderr)
assert set(got) == {"model", "engine", "n", "top1", "correct", "seconds", "images_per_s"}, got
assert got["engine"] == "float", got
assert abs(got["top1"] - 100.0 * got["correct"] / got["n"]) < 1e-9
assert got["seconds"] > 0 and got["images_per_s"] > 0
if limit:
    assert got["n"] == limit, (got["n"], limit)
    assert abs(got["top1"] - ref["top1"]) <= 3.0, (got["top1"], ref["top1"])
else:
    assert got["n"] == ref["n"] == 10000, (got["n"], ref["n"])
    assert abs(got["top1"] - ref["top1"]) <= 0.05, (got["top1"], ref["top1"])
PYEOF
    then
        fail "$m: top-1 differs from PyTorch"
    fi
done

# --- 2. info: params, op counts, MACs from the ONNX file ------------------
cat >"$TMP/expect_info.py" <<'PYEOF'
"""Check `nnq info --json` against python3-onnx: float initializer sizes,
node op types, and MACs from ONNX's own shape inference at batch 1."""
import collections, json, sys
import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

info = json.load(open(sys.argv[1]))
m = onnx.load(sys.argv[2])
fixed_ops = json.loads(sys.argv[3])

params = sum(int(np.prod(t.dims)) for t in m.graph.initializer
             if t.data_type == onnx.TensorProto.FLOAT)
assert info["params"] == params, ("params", info["params"], params)

ops = collections.Counter(n.op_type for n in m.graph.node)
assert info["ops"] == dict(ops), ("ops", info["ops"], dict(ops))
for op, n in fixed_ops.items():  # architecture facts, independent of any tool
    assert ops[op] == n, ("architecture", op, ops[op], n)
assert info["nodes"] == len(m.graph.node)

m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
inferred = shape_inference.infer_shapes(m)
shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
          for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
inits = {t.name: list(t.dims) for t in m.graph.initializer}
macs = 0
for n in m.graph.node:
    if n.op_type == "Conv":
        w = inits[n.input[1]]
        macs += int(np.prod(shapes[n.output[0]])) * int(np.prod(w[1:]))
    elif n.op_type == "Gemm":
        trans_b = any(a.name == "transB" and a.i for a in n.attribute)
        w = inits[n.input[1]]
        k = w[1] if trans_b else w[0]
        macs += int(np.prod(shapes[n.output[0]])) * k
assert info["macs"] == macs, ("macs", info["macs"], macs)

inp = info["inputs"][0]
assert inp["dtype"] == "float32" and inp["shape"] == ["N", 1, 32, 32], inp
assert info["outputs"][0]["shape"] == ["N", 10], info["outputs"]
print(f"{sys.argv[2]}: params {params}, MACs {macs}, ops {dict(ops)}", file=sys.stderr)
PYEOF
# resnets: stem conv + 9 blocks x 2 convs + 2 projection shortcuts.
"$NNQ" info "$FIX/resnets.onnx" --json >"$TMP/resnets.info.json"
"$PY" "$TMP/expect_info.py" "$TMP/resnets.info.json" "$FIX/resnets.onnx" \
    '{"Conv": 21, "Add": 9, "Relu": 19, "Gemm": 1, "GlobalAveragePool": 1}' ||
    fail "resnets: info disagrees with the ONNX file"
# mnv2s: stem + 2 (expansion 1) + 8 blocks x 3 + last 1x1 conv; 3 residual adds.
"$NNQ" info "$FIX/mnv2s.onnx" --json >"$TMP/mnv2s.info.json"
"$PY" "$TMP/expect_info.py" "$TMP/mnv2s.info.json" "$FIX/mnv2s.onnx" \
    '{"Conv": 28, "Add": 3, "Clip": 19, "Gemm": 1, "GlobalAveragePool": 1}' ||
    fail "mnv2s: info disagrees with the ONNX file"
# The human table carries the same numbers.
"$NNQ" info "$FIX/resnets.onnx" >"$TMP/resnets.info.txt"
p=$(json_get "$TMP/resnets.info.json" params)
[ "$(sed -n 's/^params *//p' "$TMP/resnets.info.txt" | tr -d ,)" = "$p" ] ||
    fail "info table: params line does not say $p"

# --- 3. .npy data equals the built-in Fashion-MNIST path ------------------
N=300
"$PY" tests/lib/fmnist_npy.py "$TMP" "$N"
"$NNQ" eval "$FIX/mnv2s.onnx" --limit "$N" --json --quiet >"$TMP/fm.json"
want=$(json_get "$TMP/fm.json" correct)
[ "$(json_get "$TMP/fm.json" n)" = "$N" ] || fail "--limit $N did not give n=$N"
for b in 1 7 64 512; do
    "$NNQ" eval "$FIX/mnv2s.onnx" --data "$TMP/x.npy" --labels "$TMP/y.npy" --batch "$b" \
        --json --quiet >"$TMP/npy.json"
    got=$(json_get "$TMP/npy.json" correct)
    [ "$got" = "$want" ] || fail "npy batch $b: $got correct, fashion-mnist --limit $N: $want"
done
"$NNQ" eval "$FIX/mnv2s.onnx" --data "$TMP/x.npy" --labels "$TMP/y32.npy" --limit 100 \
    --threads 1 --json --quiet >"$TMP/npy100.json"
[ "$(json_get "$TMP/npy100.json" n)" = 100 ] || fail "npy --limit 100 did not give n=100"
echo "npy vs fashion-mnist: $want/$N correct with every batch size" >&2

# --- 4. ties and fixed batch ----------------------------------------------
# Constant logits (bias only): every class ties unless the bias breaks it,
# so the prediction is the lowest index of the largest bias.
"$PY" - "$TMP" <<'PYEOF'
import os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
out = sys.argv[1]
def model(name, batch, bias):
    w = numpy_helper.from_array(np.zeros((10, 1), np.float32), "w")
    b = numpy_helper.from_array(np.array(bias, np.float32), "b")
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])
    g = helper.make_graph(nodes, name, [x], [y], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, os.path.join(out, name + ".onnx"))
model("ties", "N", [0] * 10)                          # all tie -> class 0
model("ties3", "N", [0, 0, 0, 1, 0, 0, 0, 1, 0, 0])   # 3 and 7 tie -> class 3
model("fixed5", 5, [0, 0, 0, 0, 0, 0, 0, 0, 0, 2])    # fixed batch 5 -> class 9
y = np.load(os.path.join(out, "y.npy"))
for c in (0, 3, 9):
    with open(os.path.join(out, f"count{c}_12"), "w") as f:
        f.write(str(int((y[:12] == c).sum())))
    with open(os.path.join(out, f"count{c}_all"), "w") as f:
        f.write(str(int((y == c).sum())))
PYEOF
check_count() { # MODEL CLASS LIMIT-OR-all
    if [ "$3" = all ]; then lim=""; else lim="--limit $3"; fi
    # shellcheck disable=SC2086
    "$NNQ" eval "$TMP/$1.onnx" --data "$TMP/x.npy" --labels "$TMP/y.npy" $lim --json --quiet \
        >"$TMP/c.json" || { fail "$1: eval failed"; return; }
    got=$(json_get "$TMP/c.json" correct)
    want=$(cat "$TMP/count$2_$3")
    [ "$got" = "$want" ] || fail "$1: $got correct, expected $want (always class $2)"
}
check_count ties 0 all
check_count ties3 3 all
check_count fixed5 9 12
"$NNQ" eval "$TMP/fixed5.onnx" --data "$TMP/x.npy" --labels "$TMP/y.npy" --limit 12 --json \
    --quiet >"$TMP/c.json"
[ "$(json_get "$TMP/c.json" n)" = 12 ] || fail "fixed batch: n is not 12"

if [ "$failures" -ne 0 ]; then
    echo "test_cli_eval: $failures failure(s)" >&2
    exit 1
fi
echo "test_cli_eval: all checks passed" >&2
