#!/bin/sh
# End-to-end checks of `nnq quantize` on the PyTorch fixture models.
# Usage: sh tests/test_cli_quantize.sh BUILD/nnq (from the repo root).
#  1. W8A8 per-channel (defaults: MSE weights, MSE + cross-entropy logits):
#     quantized top-1 within 1 point of float; `nnq eval` of the written QDQ
#     model gives exactly the top-1 the simulation reported (what is
#     simulated is what is exported); the ONNX checker accepts the model;
#  2. W4A4 with 8-bit first/last layers: the bit-widths are in the metadata,
#     4-bit weights are stored as int8 on the 4-bit grid, and ONNX Runtime
#     runs the QDQ model agreeing with nnq's simulation on the predicted
#     class of (almost) every image; so does it for a per-tensor model
#     after CLE, whose ReLU6 became Relu + per-channel Min caps;
#  3. --encodings: valid JSON in the AIMET layout, min = scale * offset;
#     --sym-range restricted (the default) / tight / full reach the weight
#     scales written there (each channel's scale from its float weights by
#     that convention's rule) and the stored integers (-8 used or not);
#  4. bad requests fail with one line, the right exit code, and no output
#     file: usage mistakes (2), a data-free recipe on a model without BN
#     statistics, an unknown layer, a bit-width QDQ cannot store (1).
set -eu

NNQ=${1:?usage: test_cli_quantize.sh PATH/TO/nnq}
FIX=tests/fixtures/models
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

EVAL=500
CALIB=256
[ -n "${NNQ_SANITIZED:-}" ] && EVAL=200 && CALIB=64

# --- 1. W8A8 per-channel ---------------------------------------------------
for m in mnv2s resnets; do
    "$NNQ" quantize "$FIX/$m.onnx" -o "$TMP/$m.w8a8.onnx" --calib-size $CALIB --eval \
        --eval-limit $EVAL --json --quiet >"$TMP/$m.q.json" || fail "$m: quantize W8A8"
    "$NNQ" eval "$TMP/$m.w8a8.onnx" --limit $EVAL --json --quiet >"$TMP/$m.e.json" ||
        fail "$m: eval of the QDQ model"
    "$PY" - "$TMP/$m.q.json" "$TMP/$m.e.json" "$TMP/$m.w8a8.onnx" "$m" <<'PYEOF' || fail "$m: W8A8 checks"
import json, sys, onnx
q = json.load(open(sys.argv[1]))
e = json.load(open(sys.argv[2]))
print(f"{sys.argv[4]}: float {q['float_top1']:.2f}%, W8A8 sim {q['quant_top1']:.2f}%, "
      f"QDQ eval {e['top1']:.2f}%", file=sys.stderr)
assert q["wbits"] == 8 and q["abits"] == 8 and q["per_channel"] is True and q["sym_range"] == "restricted", q
assert q["float_top1"] - q["quant_top1"] <= 1.0, q
assert abs(e["top1"] - q["quant_top1"]) < 1e-9, (e["top1"], q["quant_top1"])
assert [s["name"] for s in q["steps"]][0] == "bn-fold", q["steps"]
m = onnx.load(sys.argv[3])
onnx.checker.check_model(m, full_check=True)
ops = {n.op_type for n in m.graph.node}
assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops, ops
assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 13
PYEOF
done

# --- 2. W4A4, first/last at 8 bits; ONNX Runtime runs it --------------------
"$NNQ" quantize "$FIX/mnv2s.onnx" -o "$TMP/w4a4.onnx" --wbits 4 --abits 4 --first-last-bits 8 \
    --calib-size $CALIB --quiet || fail "quantize W4A4"
"$PY" - "$TMP/w4a4.onnx" "$FIX/golden/mnv2s/input_0.npy" <<'PYEOF' || fail "W4A4 model checks"
import sys, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
meta = {p.key: p.value for p in m.metadata_props}
bits = {k.split(":", 1)[1]: int(v) for k, v in meta.items() if k.startswith("nnq.bits:")}
assert bits, meta
assert sorted(set(bits.values())) == [4, 8], bits
assert bits["logits"] == 8 and bits["input"] == 8, bits
inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
n4 = 0
for name, b in bits.items():
    w = inits.get(name + "_quantized")
    if w is None or w.ndim < 2:
        continue  # activations
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    assert w.dtype.name == "int8" and w.min() >= lo and w.max() <= hi, (name, w.min(), w.max())
    n4 += b == 4
assert n4 > 10, n4
PYEOF
# Per-tensor after CLE: ReLU6 kept exactly as Relu + per-channel Min caps.
"$NNQ" quantize "$FIX/mnv2s.onnx" -o "$TMP/cle.onnx" --per-tensor --cle --calib-size $CALIB \
    --json --quiet >"$TMP/cle.json" || fail "quantize --per-tensor --cle"
"$PY" - "$TMP/cle.onnx" "$TMP/cle.json" <<'PYEOF' || fail "CLE model checks"
import json, sys, onnx
m = onnx.load(sys.argv[1])
q = json.load(open(sys.argv[2]))
mins = [n for n in m.graph.node if n.op_type == "Min"]
assert q["cle_relu6"] == "cap" and q["relu6_converted"] == 18 == len(mins), (q, len(mins))
PYEOF
if command -v node >/dev/null 2>&1 && [ -d bench/node_modules/onnxruntime-node ]; then
    IN=$FIX/golden/mnv2s/input_0.npy
    for q in w4a4 mnv2s.w8a8 cle; do
        node tests/ort/run_model.js "$TMP/$q.onnx" "$IN" "$TMP/$q.ort.npy" || fail "ORT refused $q"
        "$NNQ" run "$TMP/$q.onnx" --input "$IN" -o "$TMP/$q.nnq.npy" || fail "nnq run $q"
        "$PY" - "$TMP/$q.ort.npy" "$TMP/$q.nnq.npy" "$q" <<'PYEOF' || fail "$q: ORT and nnq disagree"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
agree = (a.argmax(1) == b.argmax(1)).mean()
err = ((a - b) ** 2).mean() / (b ** 2).mean()
print(f"{sys.argv[3]}: ORT vs nnq simulation: class agreement {agree:.3f}, nmse {err:.2e}",
      file=sys.stderr)
# ORT executes QDQ with integer kernels; nnq's simulation rounds in float:
# the two may differ by a step here and there, never in substance.
assert agree >= 15 / 16 and err < 1e-2, (agree, err)
PYEOF
    done
else
    fail "ONNX Runtime (bench/node_modules/onnxruntime-node) missing; run scripts/deps.sh"
fi

# --- 3. encodings -----------------------------------------------------------
"$NNQ" quantize "$FIX/resnets.onnx" -o "$TMP/enc.onnx" --per-tensor --wrange minmax \
    --arange minmax --calib-size 64 --encodings "$TMP/enc.json" --quiet || fail "quantize --encodings"
"$PY" - "$TMP/enc.json" <<'PYEOF' || fail "encodings JSON"
import json, sys
e = json.load(open(sys.argv[1]))
assert set(e) == {"version", "activation_encodings", "param_encodings"}, e.keys()
assert len(e["param_encodings"]) > 10 and len(e["activation_encodings"]) > 10
for section in ("activation_encodings", "param_encodings"):
    for name, encs in e[section].items():
        for x in encs:
            assert set(x) == {"bitwidth", "dtype", "is_symmetric", "min", "max", "offset", "scale"}, x
            assert x["scale"] > 0 and x["bitwidth"] == 8
            assert abs(x["min"] - x["scale"] * x["offset"]) <= 1e-6 * max(1, abs(x["min"])), x
            assert abs(x["max"] - x["scale"] * (x["offset"] + 255)) <= 1e-5 * max(1, abs(x["max"])), x
        if section == "param_encodings":
            assert len(encs) == 1 and encs[0]["is_symmetric"] == "True", (name, encs)
PYEOF

# Symmetric-range conventions, W4 per-channel min-max: flag -> encodings.
for r in default tight full restricted; do
    flag="--sym-range $r"
    [ $r = default ] && flag=""
    # shellcheck disable=SC2086
    "$NNQ" quantize "$FIX/resnets.onnx" -o "$TMP/sym-$r.onnx" --wbits 4 --wrange minmax \
        --arange minmax --calib-size 16 --encodings "$TMP/sym-$r.json" --quiet $flag ||
        fail "quantize --sym-range $r"
done
"$PY" - "$FIX/resnets.onnx" "$TMP" <<'PYEOF' || fail "--sym-range in the encodings"
import json, sys, onnx, numpy as np
from onnx import numpy_helper
w = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[1]).graph.initializer}
rule = {"tight": lambda lo, hi: max(-lo / 8, hi / 7), "full": lambda lo, hi: max(-lo, hi) / 7.5,
        "restricted": lambda lo, hi: max(-lo, hi) / 7}
enc = {r: json.load(open(f"{sys.argv[2]}/sym-{r}.json"))["param_encodings"]
       for r in ("default", *rule)}
assert enc["default"] == enc["restricted"], "the default is not restricted"
for r, f in rule.items():
    n = 0
    for name, encs in enc[r].items():
        x = w[name].reshape(len(encs), -1)
        for c, e in enumerate(encs):
            lo, hi = min(float(x[c].min()), 0.0), max(float(x[c].max()), 0.0)
            if hi - lo == 0:
                continue
            assert e["bitwidth"] == 4 and e["offset"] == -8 and e["is_symmetric"] == "True", e
            want = f(lo, hi)
            assert abs(e["scale"] - want) <= 1e-6 * want, (r, name, c, e["scale"], want)
            n += 1
    assert n > 500, (r, n)
    q = {t.name: numpy_helper.to_array(t) for t in onnx.load(f"{sys.argv[2]}/sym-{r}.onnx").graph.initializer}
    ints = np.concatenate([q[k + "_quantized"].ravel() for k in enc[r]])
    assert ints.min() == (-7 if r == "restricted" else -8) and ints.max() == 7, (r, ints.min(), ints.max())
print("sym-range: restricted (default), tight, full scales match their rules", file=sys.stderr)
PYEOF

# --- 4. errors: one line, exit code, no output written ----------------------
expect_error() { expect_cli_error quantize "$@"; } # CODE PATTERN ARGS...
expect_error 2 "-o OUT.onnx" "$FIX/mnv2s.onnx"
expect_error 2 "wbits" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --wbits 1
expect_error 2 "arange" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --arange foo
expect_error 2 "sym-range" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --sym-range wide
expect_error 2 "recipe" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --recipe fast
expect_error 2 "exclude" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --adaround --bias-correct empirical
expect_error 1 "BatchNorm" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --recipe data-free --quiet
expect_error 1 "no_such_layer" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --float-layers no_such_layer \
    --calib-size 16 --quiet
expect_error 1 "at most 8" "$FIX/mnv2s.onnx" -o "$TMP/bad.onnx" --wbits 12 --calib-size 16 --quiet
expect_error 1 "no_such.onnx" "$TMP/no_such.onnx" -o "$TMP/bad.onnx"

if [ "$failures" -ne 0 ]; then
    echo "test_cli_quantize: $failures failure(s)" >&2
    exit 1
fi
echo "test_cli_quantize: all checks passed" >&2
