#!/bin/sh
# `nnq analyze` and `nnq quantize --report` on the PyTorch fixture models:
#  1. analyze writes a self-contained page (no http, no script) and prints
#     the same data as JSON; tests/lib/check_report.py finds the page's
#     tables equal to the JSON's and every SVG well formed;
#  2. the content is what was measured: one sensitivity row and one SQNR
#     row per layer, ranked most sensitive first; 8-bit weights have a
#     weight SQNR above 30 dB in every layer; the bit-width sweep's top-1
#     falls from 8 to 2 bits; the summary's top-1 numbers equal the JSON's
#     headline values and those of `nnq quantize --eval` on the same
#     images and options;
#     the integer engine (the exported QDQ model, lowered) fills its SQNR
#     column for every layer, finite and within 1 dB of the simulation's,
#     and its per-layer table says each layer runs on the integer kernels
#     with INT == SIM exactly;
#  3. unlabelled images (--eval-data without labels is refused; here an
#     unlabelled .npy goes in --data only) still give a report;
#  4. quantize --report writes the page and PATH.json; a layer left in float
#     (--float-layers) is marked "float" in the engine table, and still
#     INT == SIM; quantize --eval shows its evaluation progress as plain
#     lines when stderr is not a terminal, and nothing with --quiet; usage
#     errors exit 2.
# Usage: sh tests/test_cli_analyze.sh BUILD/nnq (from the repo root).
set -eu

NNQ=${1:?usage: test_cli_analyze.sh PATH/TO/nnq}
FIX=tests/fixtures/models
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

EVAL=200
CALIB=64
[ -n "${NNQ_SANITIZED:-}" ] && EVAL=64 && CALIB=32

# --- 1 + 2. analyze -------------------------------------------------------------
"$NNQ" analyze "$FIX/mnv2s.onnx" -o "$TMP/a.html" --per-tensor --calib-size $CALIB \
    --eval-limit $EVAL --json --quiet >"$TMP/a.json" || fail "analyze"
"$NNQ" quantize "$FIX/mnv2s.onnx" -o "$TMP/q.onnx" --per-tensor --calib-size $CALIB \
    --eval --eval-limit $EVAL --json --quiet >"$TMP/q.json" 2>"$TMP/q.err" || fail "quantize --eval"
[ ! -s "$TMP/q.err" ] || fail "quantize --quiet wrote to stderr: $(cat "$TMP/q.err")"
"$PY" tests/lib/check_report.py "$TMP/a.json" "$TMP/a.html" 5 || fail "page and JSON disagree"
"$PY" - "$TMP/a.json" "$TMP/a.html" "$TMP/q.json" <<'PYEOF' || fail "analyze content"
import json, math, sys
a = json.load(open(sys.argv[1]))
page = open(sys.argv[2], encoding="utf-8").read()
q = json.load(open(sys.argv[3]))
assert "http" not in page and "<script" not in page, "not self-contained"
titles = [s["title"] for s in a["sections"]]
for want in ["Per-layer sensitivity", "Quantization error per layer (SQNR)",
             "Per-channel weight ranges and cross-layer equalization",
             "Activation histograms and clipping ranges", "Accuracy against bit-width",
             "Time and memory per step"]:
    assert want in titles, (want, titles)
    assert want in page, want
def table(title, caption_start):
    sec = next(s for s in a["sections"] if s["title"] == title)
    return next(i for i in sec["items"] if i["type"] == "table" and i["caption"].startswith(caption_start))
sens = table("Per-layer sensitivity", "Top-1 drop")
sq = table("Quantization error per layer (SQNR)", "SQNR per layer")
layers = 29  # mnv2s: 28 convs + the classifier
assert len(sens["rows"]) == layers and len(sq["rows"]) == layers, (len(sens["rows"]), len(sq["rows"]))
ranks = [r["cells"][0] for r in sens["rows"]]
assert ranks == list(range(1, layers + 1)), ranks
worst = [max(x for x in r["cells"][5:7] if x is not None) for r in sens["rows"]]
assert worst == sorted(worst, reverse=True), worst
wsqnr = [r["cells"][6] for r in sq["rows"]]
assert all(v is not None and v > 30 for v in wsqnr), wsqnr
# the integer engine: every layer lowered, its SQNR close to the simulation's, INT == SIM
eng = table("Quantization error per layer (SQNR)", "Integer engine per layer")
assert len(eng["rows"]) == layers, len(eng["rows"])
for rs, re_ in zip(sq["rows"], eng["rows"]):
    name, sim_db, int_db = rs["cells"][0], rs["cells"][7], rs["cells"][8]
    assert re_["cells"][0] == name and re_["cells"][1] == "int", re_
    assert int_db is not None and math.isfinite(int_db) and int_db == re_["cells"][2], (name, int_db)
    assert abs(int_db - sim_db) <= 1.0, (name, sim_db, int_db)
    assert re_["cells"][3] == 0, ("INT != SIM", re_)
    assert 0 <= re_["cells"][4] < 25 and re_["cells"][5] is not None, re_
assert f"INT equals SIM in {layers} of {layers} layers" in page
bits = table("Accuracy against bit-width", "Top-1")
top = {r["cells"][0]: r["cells"][2] for r in bits["rows"]}
assert top[8] > top[2] + 20, top
heads = {h["label"]: h["value"] for h in a["summary"]["headlines"]}
assert abs(heads["float top-1"] - q["float_top1"]) < 0.005, (heads, q["float_top1"])
assert abs(heads["quantized top-1"] - q["quant_top1"]) < 0.005, (heads, q["quant_top1"])
ranges = next(s for s in a["sections"] if s["title"].startswith("Per-channel"))
charts = [i for i in ranges["items"] if i["type"] == "range_chart"]
assert charts and all(len(c["series"]) == 2 for c in charts), "before/after CLE panels"
print(f"analyze: {layers} layers, float {heads['float top-1']}%, per-tensor W8A8 "
      f"{heads['quantized top-1']}%, W2A2 {top[2]}%", file=sys.stderr)
PYEOF

# --- 3. unlabelled calibration and evaluation images --------------------------
"$PY" -c "import numpy as np; np.save('$TMP/x.npy', np.random.RandomState(0).randn(48, 1, 32, 32).astype(np.float32))"
"$NNQ" analyze "$FIX/resnets.onnx" -o "$TMP/u.html" --data "$TMP/x.npy" --calib-size 48 \
    --eval-data "$TMP/x.npy" --eval-labels "$TMP/x.npy" --quiet 2>"$TMP/u.err" &&
    fail "float labels accepted"
"$NNQ" analyze "$FIX/resnets.onnx" -o "$TMP/u.html" --data "$TMP/x.npy" --calib-size 48 \
    --no-bit-sweep --no-sensitivity --eval-limit 48 --json --quiet >"$TMP/u.json" ||
    fail "analyze with unlabelled calibration data"
"$PY" tests/lib/check_report.py "$TMP/u.json" "$TMP/u.html" 2 || fail "unlabelled report"

# --- 4. quantize --report, --eval progress, usage errors --------------------------
FL=/features/features.3/body/body.0/Conv
"$NNQ" quantize "$FIX/resnets.onnx" -o "$TMP/r.onnx" --calib-size $CALIB --eval-limit $EVAL \
    --float-layers $FL --eval --report "$TMP/r.html" 2>"$TMP/r.err" || fail "quantize --report"
[ -s "$TMP/r.html" ] && [ -s "$TMP/r.json" ] || fail "quantize --report: files missing"
"$PY" tests/lib/check_report.py "$TMP/r.json" "$TMP/r.html" 4 || fail "quantize report"
grep -q "^eval float: $EVAL/$EVAL images (100%)$" "$TMP/r.err" &&
    grep -q "^eval quantized: $EVAL/$EVAL images (100%)$" "$TMP/r.err" ||
    fail "quantize --eval: no progress lines in: $(cat "$TMP/r.err")"
! grep -q "$(printf '\033')" "$TMP/r.err" || fail "terminal escapes in a log"
"$PY" - "$TMP/r.json" "$FL" <<'PYEOF' || fail "engine table with a float layer"
import json, sys
a = json.load(open(sys.argv[1]))
sec = next(s for s in a["sections"] if s["title"] == "Quantization error per layer (SQNR)")
eng = next(i for i in sec["items"] if i["type"] == "table" and i["caption"].startswith("Integer engine"))
kind = {r["cells"][0]: r["cells"][1] for r in eng["rows"]}
assert kind[sys.argv[2]] == "float", kind
assert list(kind.values()).count("int") >= len(kind) - 2, kind  # its reader may follow it into float
assert all(r["cells"][3] == 0 for r in eng["rows"]), "INT != SIM"
PYEOF
set +e
"$NNQ" analyze "$FIX/resnets.onnx" --quiet 2>"$TMP/e1"; rc=$?
set -e
[ $rc -eq 2 ] && [ "$(wc -l <"$TMP/e1")" -eq 1 ] || fail "analyze without -o: exit $rc"

[ "$failures" -eq 0 ] || exit 1
echo "test_cli_analyze: all checks passed" >&2
