#!/bin/sh
# `nnq quantize --wmse`: which criterion --wrange mse used is in --json.
# Usage: sh tests/test_cli_wmse.sh BUILD/nnq (from the repo root).
#  1. default with calibration data: "wmse": "output" on every layer of the
#     resnets fixture (22 layers, none left to plain MSE);
#  2. --wmse plain: "plain", and the weight scales written by --encodings
#     differ from the output-aware ones (the moments are used);
#  3. --wrange minmax: "wmse" is null; --wmse bogus fails with usage (2);
#  4. --recipe data-free (no data): falls back to "plain" (resnet20, whose
#     file has BN statistics).
set -eu

NNQ=${1:?usage: test_cli_wmse.sh PATH/TO/nnq}
FIX=tests/fixtures/models
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

CALIB=64
Q="--wbits 4 --calib-size $CALIB --json --quiet"
# shellcheck disable=SC2086
"$NNQ" quantize "$FIX/resnets.onnx" -o "$TMP/o.onnx" $Q --encodings "$TMP/o.enc.json" \
    >"$TMP/o.json" || fail "quantize (default --wmse)"
# shellcheck disable=SC2086
"$NNQ" quantize "$FIX/resnets.onnx" -o "$TMP/p.onnx" $Q --wmse plain --encodings "$TMP/p.enc.json" \
    >"$TMP/p.json" || fail "quantize --wmse plain"
# shellcheck disable=SC2086
"$NNQ" quantize "$FIX/resnets.onnx" -o "$TMP/m.onnx" $Q --wrange minmax >"$TMP/m.json" ||
    fail "quantize --wrange minmax"
# shellcheck disable=SC2086
"$NNQ" quantize models/resnet20.onnx -o "$TMP/d.onnx" --wbits 8 --recipe data-free --json \
    --quiet >"$TMP/d.json" || fail "quantize --recipe data-free"
"$PY" - "$TMP" <<'PYEOF' || fail "--json wmse fields"
import json, sys
t = sys.argv[1]
o, p, m, d = (json.load(open(f"{t}/{k}.json")) for k in "opmd")
ok = True
def want(cond, what):
    global ok
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        ok = False
want(o["wrange"] == "mse" and o["wmse"] == "output", f"default: {o.get('wmse')}")
want(o["wmse_output_layers"] == o["layers"] == 22 and o["wmse_plain_layers"] == 0,
     f"default: {o['wmse_output_layers']} output / {o['wmse_plain_layers']} plain layers")
want(p["wmse"] == "plain" and p["wmse_output_layers"] == 0, f"--wmse plain: {p.get('wmse')}")
want(m["wrange"] == "minmax" and m["wmse"] is None, f"--wrange minmax: {m.get('wmse')}")
want(d["wmse"] == "plain", f"data-free: {d.get('wmse')}")
def scales(path):
    enc = json.load(open(path))
    return {k: v for k, v in enc["param_encodings"].items()}
eo, ep = scales(f"{t}/o.enc.json"), scales(f"{t}/p.enc.json")
differ = sum(1 for k in eo for a, b in zip(eo[k], ep[k]) if abs(a["scale"] - b["scale"]) > 1e-9 * abs(b["scale"]))
want(eo.keys() == ep.keys() and differ > 0, f"output vs plain: {differ} weight scales differ")
print(f"wmse: output on {o['wmse_output_layers']} layers; {differ} weight channel scales differ from plain")
sys.exit(0 if ok else 1)
PYEOF

# shellcheck disable=SC2086
if "$NNQ" quantize "$FIX/resnets.onnx" -o "$TMP/x.onnx" $Q --wmse bogus 2>"$TMP/x.err"; then
    fail "--wmse bogus accepted"
else
    rc=$?
    [ "$rc" = 2 ] || fail "--wmse bogus: exit $rc, want 2"
    grep -q -- "--wmse" "$TMP/x.err" || fail "--wmse bogus: message does not name the option"
fi
[ ! -f "$TMP/x.onnx" ] || fail "--wmse bogus wrote a model"

[ "$failures" = 0 ] || exit 1
echo "test_cli_wmse: all checks passed"
