#!/bin/sh
# End-to-end checks of `nnq qat`.
# Usage: sh tests/test_cli_qat.sh BUILD/nnq (from the repo root).
#  1. W3A3 LSQ on the mnv2s fixture (512 images, one epoch): the quantized
#     top-1 rises well above its PTQ start; the written QDQ model evaluates
#     (`nnq eval`) to exactly the top-1 reported for the export, which equals
#     the trained simulation's; the ONNX checker accepts it; weights are
#     stored on their 3-bit grid (8 bits for the first and last layer); the
#     encodings JSON has the same bit-widths;
#  2. a model with BatchNorm (`nnq train --arch tiny`): LSQ+ per-channel keeps
#     both BN nodes in training and folds them at export (with BN
#     re-estimation), per-tensor folds them first; both exports evaluate to
#     the reported top-1; --report writes a well-formed page and its JSON
#     (tests/lib/check_report.py: tables equal, SVGs parse) whose quantized
#     top-1 is `nnq eval`'s of the written model, with the float model's
#     top-1 (BN folded), one SQNR row per layer and the integer engine's
#     column filled (INT == SIM);
#  3. --stop-after + --resume gives the same model file as one run, and
#     SIGINT mid-run exits 130 with a checkpoint that --resume completes;
#  4. bad requests fail with one line, the right exit code, no output file.
set -eu

NNQ=${1:?usage: test_cli_qat.sh PATH/TO/nnq}
FIX=tests/fixtures/models
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

TRAIN=512
EVAL=500
[ -n "${NNQ_SANITIZED:-}" ] && TRAIN=128 && EVAL=100

# --- 1. W3A3 LSQ on mnv2s ---------------------------------------------------
"$NNQ" qat "$FIX/mnv2s.onnx" -o "$TMP/w3.onnx" --wbits 3 --abits 3 --method lsq \
    --train-limit $TRAIN --batch 64 --epochs 1 --lr 3e-4 --qlr 3e-5 --calib-size 256 \
    --eval --test-limit $EVAL --encodings "$TMP/w3.json" --json --quiet --threads 2 \
    >"$TMP/w3.out.json" || fail "qat W3A3"
"$NNQ" eval "$TMP/w3.onnx" --limit $EVAL --json --quiet >"$TMP/w3.eval.json" ||
    fail "eval of the QAT model"
"$PY" - "$TMP/w3.out.json" "$TMP/w3.eval.json" "$TMP/w3.onnx" "$TMP/w3.json" $TRAIN <<'PYEOF' || fail "W3A3 checks"
import json, sys, onnx
from onnx import numpy_helper
q = json.load(open(sys.argv[1]))
e = json.load(open(sys.argv[2]))
print(f"mnv2s W3A3 lsq: float {q['float_top1']:.2f}%, start {q['start_top1']:.2f}%, "
      f"trained {q['qat_top1']:.2f}%, export {q['export_top1']:.2f}%, nnq eval {e['top1']:.2f}%, "
      f"{q['images_per_s']:.0f} images/s", file=sys.stderr)
assert q["method"] == "lsq" and q["wbits"] == 3 and q["abits"] == 3 and q["per_channel"], q
assert q["epochs"] == 1 and q["steps"] == (int(sys.argv[5]) + 63) // 64, q
assert q["qat_top1"] >= q["start_top1"] + 5 or sys.argv[5] != "512", q
assert q["qat_top1"] > q["start_top1"], q
assert q["export_top1"] == q["qat_top1"], q          # no BN: trained graph == export
assert abs(e["top1"] - q["export_top1"]) < 1e-9, (e, q)
m = onnx.load(sys.argv[3])
onnx.checker.check_model(m, full_check=True)
bits = {p.key.split(":", 1)[1]: int(p.value) for p in m.metadata_props if p.key.startswith("nnq.bits:")}
assert sorted(set(bits.values())) == [3, 8], bits
inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
n3 = 0
for name, b in bits.items():
    w = inits.get(name + "_quantized")
    if w is None or w.ndim < 2:
        continue
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    assert w.min() >= lo and w.max() <= hi, (name, b, w.min(), w.max())
    n3 += b == 3
assert n3 > 10, n3
enc = json.load(open(sys.argv[4]))
for section in ("activation_encodings", "param_encodings"):
    for name, encs in enc[section].items():
        assert encs[0]["bitwidth"] == bits[name], (name, encs[0], bits.get(name))
PYEOF

# --- 2. BatchNorm kept (per-channel) or folded (per-tensor) -----------------
"$NNQ" train --arch tiny --limit 1024 --epochs 1 --batch 64 --no-eval --quiet --threads 2 \
    -o "$TMP/tiny.onnx" || fail "train tiny"
for mode in per-channel per-tensor; do
    extra=""
    [ "$mode" = per-channel ] && extra="--bn-reestimate 256"
    # shellcheck disable=SC2086
    "$NNQ" qat "$TMP/tiny.onnx" -o "$TMP/tiny.$mode.onnx" --method lsq+ --init lsq --$mode \
        --train-limit 256 --batch 64 --epochs 1 --lr 1e-3 --calib-size 128 --eval \
        --test-limit 200 --json --quiet --threads 2 $extra --report "$TMP/tiny.$mode.report.html" \
        >"$TMP/tiny.$mode.json" || fail "qat tiny $mode"
    [ -s "$TMP/tiny.$mode.report.html" ] && [ -s "$TMP/tiny.$mode.report.json" ] ||
        fail "qat --report $mode: page or JSON missing"
    "$PY" tests/lib/check_report.py "$TMP/tiny.$mode.report.json" "$TMP/tiny.$mode.report.html" 3 ||
        fail "qat --report $mode: page and JSON disagree"
    "$NNQ" eval "$TMP/tiny.$mode.onnx" --limit 200 --json --quiet >"$TMP/tiny.$mode.eval.json" ||
        fail "eval tiny $mode"
    "$PY" - "$TMP/tiny.$mode.json" "$TMP/tiny.$mode.eval.json" $mode "$TMP/tiny.$mode.report.json" \
        "$TMP/tiny.$mode.report.html" <<'PYEOF' || fail "tiny $mode checks"
import json, sys
q = json.load(open(sys.argv[1]))
e = json.load(open(sys.argv[2]))
print(f"tiny lsq+ {sys.argv[3]}: BN folded {q['bn_folded']}, kept {q['bn_kept']}; start "
      f"{q['start_top1']:.2f}%, trained {q['qat_top1']:.2f}%, export {q['export_top1']:.2f}%",
      file=sys.stderr)
assert q["method"] == "lsq+" and q["init"] == "lsq" and q["bn_folded"] == 2, q
assert q["bn_kept"] == (2 if sys.argv[3] == "per-channel" else 0), q
assert q["export_clamped"] == 0, q
assert abs(e["top1"] - q["export_top1"]) < 1e-9, (e, q)
if sys.argv[3] == "per-tensor":
    assert q["export_top1"] == q["qat_top1"], q
else:  # BN folded into the scales: the same integers, float rounding aside
    assert abs(q["export_top1"] - q["qat_top1"]) <= 2.0, q
# the report: the same images (--test-limit 200), the written model's top-1
r = json.load(open(sys.argv[4]))
page = open(sys.argv[5], encoding="utf-8").read()
heads = {h["label"]: h["value"] for h in r["summary"]["headlines"]}
assert abs(heads["quantized top-1"] - e["top1"]) < 0.005, (heads, e["top1"])
assert abs(heads["float top-1"] - q["float_top1"]) < 0.005, (heads, q["float_top1"])
assert f'{e["top1"]:.2f}' in page and "QAT lsq+" in page, "summary not on the page"
sec = next(s for s in r["sections"] if s["title"] == "Quantization error per layer (SQNR)")
tables = {i["caption"]: i for i in sec["items"] if i["type"] == "table"}
sq, eng = tables["SQNR per layer, graph order"], tables["Integer engine per layer, graph order"]
assert [x["cells"][0] for x in sq["rows"]] == ["conv1", "conv2", "fc"], sq["rows"]
for rs, re_ in zip(sq["rows"], eng["rows"]):
    assert all(v is not None for v in rs["cells"][6:9]), rs  # weights, sim, int: all measured
    assert re_["cells"][1] == "int" and re_["cells"][3] == 0, re_  # lowered, INT == SIM
    assert abs(rs["cells"][7] - rs["cells"][8]) <= 1.0, rs
assert any(s["title"] == "Per-layer sensitivity" for s in r["sections"])
PYEOF
done

# --- 3. resume and SIGINT ---------------------------------------------------
RUN="$TMP/tiny.onnx --train-limit 256 --batch 32 --epochs 2 --lr 1e-3 --calib-size 64 --quiet --threads 1"
# shellcheck disable=SC2086
"$NNQ" qat $RUN -o "$TMP/straight.onnx" || fail "qat straight"
# shellcheck disable=SC2086
"$NNQ" qat $RUN -o "$TMP/half.onnx" --checkpoint "$TMP/ck" --stop-after 1 || fail "qat stop-after"
# shellcheck disable=SC2086
"$NNQ" qat $RUN -o "$TMP/resumed.onnx" --resume "$TMP/ck" || fail "qat resume"
cmp -s "$TMP/straight.onnx" "$TMP/resumed.onnx" || fail "resumed model differs from a straight run"
"$PY" - "$NNQ" "$TMP" <<'PYEOF' || fail "SIGINT checks"
import os, signal, subprocess, sys, time
nnq, tmp = sys.argv[1], sys.argv[2]
args = [nnq, "qat", f"{tmp}/tiny.onnx", "-o", f"{tmp}/int.onnx", "--train-limit", "6000",
        "--batch", "32", "--epochs", "1", "--calib-size", "64", "--threads", "1"]
p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
line = ""
t0 = time.time()
while "qat epoch" not in line and time.time() - t0 < 60:  # training has started
    line = p.stderr.readline()
    if not line and p.poll() is not None:
        break
time.sleep(0.5)
p.send_signal(signal.SIGINT)
err = p.stderr.read()
rc = p.wait()
assert rc == 130, (rc, err)
assert "interrupted by SIGINT" in err and f"{tmp}/int.onnx.ckpt" in err, err
assert not os.path.exists(f"{tmp}/int.onnx"), "model written after an interrupt"
r = subprocess.run(args[:5] + ["--train-limit", "6000", "--batch", "32", "--epochs", "1",
                   "--calib-size", "64", "--threads", "2", "--quiet", "--resume",
                   f"{tmp}/int.onnx.ckpt"], capture_output=True, text=True)
assert r.returncode == 0 and os.path.exists(f"{tmp}/int.onnx"), r.stderr
PYEOF

# --- 4. errors: one line, exit code, no output written ----------------------
expect_error() { expect_cli_error qat "$@"; } # CODE PATTERN ARGS...
M="$FIX/mnv2s.onnx"
expect_error 2 "-o OUT.onnx" "$M"
expect_error 2 "method" "$M" -o "$TMP/bad.onnx" --method lsq2
expect_error 2 "init" "$M" -o "$TMP/bad.onnx" --init max
expect_error 2 "wbits" "$M" -o "$TMP/bad.onnx" --wbits 9
expect_error 2 "optimizer" "$M" -o "$TMP/bad.onnx" --optimizer rmsprop
expect_error 2 "exclude" "$M" -o "$TMP/bad.onnx" --per-tensor --per-channel
expect_error 2 "ste only" "$M" -o "$TMP/bad.onnx" --method lsq --ema 0.01
expect_error 2 "lr" "$M" -o "$TMP/bad.onnx" --lr fast
expect_error 2 "labels" "$M" -o "$TMP/bad.onnx" --data images.npy
expect_error 2 "checkpoint" "$M" -o "$TMP/bad.onnx" --checkpoint-every 10
expect_error 1 "no_such.onnx" "$TMP/no_such.onnx" -o "$TMP/bad.onnx"
echo "not a checkpoint" >"$TMP/junk.ckpt"
expect_error 1 "junk.ckpt" "$M" -o "$TMP/bad.onnx" --train-limit 64 --calib-size 16 \
    --resume "$TMP/junk.ckpt" --quiet

if [ "$failures" -ne 0 ]; then
    echo "test_cli_qat: $failures failure(s)" >&2
    exit 1
fi
echo "test_cli_qat: all checks passed" >&2
