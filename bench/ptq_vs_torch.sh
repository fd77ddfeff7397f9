#!/bin/sh
# Issue 4: nnq's post-training quantization against PyTorch 1.13's own (FX
# graph mode) on the PyTorch-trained fixture models, side by side.
#
#   bench/ptq_vs_torch.sh [BUILD_DIR/nnq]          (default build/nnq)
#
# Runs `nnq quantize --eval --json --quiet` for each model x config on the
# exported .onnx, runs bench/torch_ptq.py on the .pt state dicts (same 1024
# calibration images, same 10000 test images), and writes the table between
# <!-- ptq-vs-torch:begin --> and <!-- ptq-vs-torch:end --> in docs/results.md
# (created with a title if absent; the rest of the file is left alone).
# A failing nnq config is recorded as "failed: <first error line>" in its row;
# the run goes on.
#
# Knobs (environment): NNQ_PTQ_MODELS ("mnv2s resnets"), NNQ_PTQ_ADAROUND_ITERS
# (2000), NNQ_PTQ_EVAL_LIMIT (0 = all 10000 test images; for quick trials),
# NNQ_PTQ_OUT (markdown file, "-" to only print the section).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NNQ=${1:-$ROOT/build/nnq}
MODELS=${NNQ_PTQ_MODELS:-"mnv2s resnets"}
ADA_ITERS=${NNQ_PTQ_ADAROUND_ITERS:-2000}
EVAL_LIMIT=${NNQ_PTQ_EVAL_LIMIT:-0}
OUT=${NNQ_PTQ_OUT:-"$ROOT/docs/results.md"}
PY=/usr/bin/python3
FIX=tests/fixtures/models

die() { echo "bench/ptq_vs_torch.sh: $*" >&2; exit 1; }

[ -x "$NNQ" ] || die "no nnq binary at $NNQ (build it: cmake --build BUILD_DIR --target nnq_cli)"
NNQ=$(cd "$(dirname "$NNQ")" && pwd)/$(basename "$NNQ")
[ -x "$PY" ] || die "$PY not found (Debian python3-torch)"
cd "$ROOT"
for m in $MODELS; do
    { [ -f "$FIX/$m.onnx" ] && [ -f "$FIX/$m.pt" ]; } ||
        die "missing $FIX/$m.onnx or .pt (generate: $PY $FIX/make_models.py)"
done

WORK=$(mktemp -d)
export WORK
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

HAVE_ADA=0
if "$NNQ" quantize --help 2>/dev/null | grep -q -- '--adaround-iters'; then HAVE_ADA=1; fi

# config id | nnq method label | nnq options (besides model, -o and the eval flags)
VARIANTS="w8a8-pt|min-max weights and activations (PyTorch's ranges)|--per-tensor --wrange minmax --arange minmax
w8a8-pt|nnq default: MSE weights, MSE activations, CE logits|--per-tensor --wrange mse --arange ce
w8a8-pc|min-max weights and activations (PyTorch's ranges)|--per-channel --wrange minmax --arange minmax
w8a8-pc|nnq default: MSE weights, MSE activations, CE logits|--per-channel --wrange mse --arange ce
w4a8-pc|nearest, min-max weights and activations|--wbits 4 --per-channel --wrange minmax --arange minmax
w4a8-pc|nearest, nnq default: MSE weights, CE logits|--wbits 4 --per-channel --wrange mse --arange ce
w4a8-pc|AdaRound ($ADA_ITERS iters/layer), MSE weights, CE logits|--wbits 4 --per-channel --wrange mse --arange ce --adaround --adaround-iters $ADA_ITERS"

EVAL_OPTS="--eval --json --quiet"
[ "$EVAL_LIMIT" -gt 0 ] && EVAL_OPTS="$EVAL_OPTS --eval-limit $EVAL_LIMIT"

# One JSON line per nnq run: the variant, the exact command, and nnq's own
# JSON report (or the failure).
NNQ_RESULTS="$WORK/nnq.jsonl"
: >"$NNQ_RESULTS"
for m in $MODELS; do
    echo "$VARIANTS" | while IFS='|' read -r cfg label opts; do
        if [ "$HAVE_ADA" = 0 ] && echo "$opts" | grep -q -- '--adaround'; then
            printf '%s\n' "$m|$cfg|$label|$opts" | "$PY" -c '
import json, sys
m, cfg, label, opts = sys.stdin.read().rstrip("\n").split("|")
print(json.dumps(dict(model=m, config=cfg, label=label, command="", failed="AdaRound not in this nnq build")))' >>"$NNQ_RESULTS"
            continue
        fi
        cmd="nnq quantize $FIX/$m.onnx -o OUT.onnx $opts $EVAL_OPTS"
        echo "[$m $cfg] $cmd" >&2
        t0=$(date +%s)
        # shellcheck disable=SC2086  # opts are words on purpose
        if "$NNQ" quantize "$FIX/$m.onnx" -o "$WORK/$m-$cfg.onnx" $opts $EVAL_OPTS \
            >"$WORK/run.out" 2>"$WORK/run.err"; then rc=0; else rc=$?; fi
        echo "    exit $rc after $(($(date +%s) - t0)) s" >&2
        rm -f "$WORK/$m-$cfg.onnx"
        M="$m" CFG="$cfg" LABEL="$label" CMD="$cmd" RC="$rc" "$PY" -c '
import json, os
out = open(os.environ["WORK"] + "/run.out").read().strip()
err = open(os.environ["WORK"] + "/run.err").read().strip()
rec = dict(model=os.environ["M"], config=os.environ["CFG"], label=os.environ["LABEL"],
           command=os.environ["CMD"])
rc = int(os.environ["RC"])
try:
    rep = json.loads(out.splitlines()[-1]) if rc == 0 and out else None
except ValueError:
    rep = None
if rep is None or "quant_top1" not in rep:
    first = err.splitlines()[0] if err else (f"exit status {rc}, no JSON report" if rc else "no JSON report")
    rec["failed"] = first
else:
    rec["report"] = rep
print(json.dumps(rec))' >>"$NNQ_RESULTS"
    done
done

# PyTorch's PTQ (one JSON line per model x config).
TORCH_RESULTS="$WORK/torch.jsonl"
TORCH_CMD="/usr/bin/python3 bench/torch_ptq.py --models $(echo "$MODELS" | tr ' ' ',')"
[ "$EVAL_LIMIT" -gt 0 ] && TORCH_CMD="$TORCH_CMD --eval-limit $EVAL_LIMIT"
echo "[torch] $TORCH_CMD" >&2
# shellcheck disable=SC2086
$TORCH_CMD >"$TORCH_RESULTS" 2>"$WORK/torch.err" ||
    { grep -v -i 'warn' "$WORK/torch.err" | tail -n 20 >&2; die "bench/torch_ptq.py failed"; }

# Machine and provenance for the section header.
CPU=$(grep -m 1 'model name' /proc/cpuinfo | sed 's/.*: *//')
GITREV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    GITREV="$GITREV (with uncommitted changes)"
fi

export NNQ_RESULTS TORCH_RESULTS OUT TORCH_CMD CPU GITREV EVAL_LIMIT
NPROC=$(nproc)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export NPROC DATE
"$PY" - <<'PYEOF'
import json, os

BEGIN, END = "<!-- ptq-vs-torch:begin -->", "<!-- ptq-vs-torch:end -->"
CONFIG_NAMES = {"w8a8-pt": "W8A8 per-tensor", "w8a8-pc": "W8A8 per-channel",
                "w4a8-pc": "W4A8 per-channel"}
env = os.environ
nnq = [json.loads(l) for l in open(env["NNQ_RESULTS"]) if l.strip()]
torch = {(r["model"], r["config"]): r for r in
         (json.loads(l) for l in open(env["TORCH_RESULTS"]) if l.strip().startswith("{"))}

def pct(v):
    return "–" if v is None else f"{v:.2f}"

nnq_fp32 = {}
for r in nnq:
    if "report" in r:
        nnq_fp32.setdefault(r["model"], r["report"]["float_top1"])

rows, wins, compared = [], 0, 0
for r in nnq:
    t = torch.get((r["model"], r["config"]))
    t_top1 = t["top1"] if t else None
    if "report" in r:
        q = r["report"]["quant_top1"]
        nnq_cell = f"{q:.2f}"
        diff = None if t_top1 is None else q - t_top1
        secs = f"{r['report']['seconds']:.0f}"
    else:
        nnq_cell = f"failed: {r['failed']}".replace("|", "\\|")
        diff, secs = None, "–"
    if diff is not None:
        compared += 1
        wins += diff >= -1e-9
    t_secs = f"{t['calib_seconds']:.0f}" if t else "–"
    rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        r["model"], CONFIG_NAMES[r["config"]], pct(t["fp32_top1"] if t else None),
        pct(r["report"]["float_top1"] if "report" in r else nnq_fp32.get(r["model"])),
        pct(t_top1), pct(t["sim_top1"] if t else None), nnq_cell, r["label"],
        "–" if diff is None else f"{diff:+.2f}", secs, t_secs))

n_eval = next(iter(torch.values()))["n_eval"] if torch else 10000
engine = next(iter(torch.values()))["engine"] if torch else "?"
tver = next(iter(torch.values()))["torch"] if torch else "?"
cmds = sorted({r["command"] for r in nnq if r["command"]}, key=[r["command"] for r in nnq].index)
lines = [
    BEGIN,
    "## PTQ: nnq vs PyTorch 1.13 FX post-training quantization (issue 4)",
    "",
    "Generated by `bench/ptq_vs_torch.sh` on {} — {} cores ({}), nnq {}, torch {} "
    "(quantized engine `{}`).".format(env["DATE"], env["NPROC"], env["CPU"], env["GITREV"],
                                       tver, engine),
    "Fixture models `tests/fixtures/models/{mnv2s,resnets}` (PyTorch-trained on Fashion-MNIST); "
    "both sides calibrate on the first 1024 training images (nnq's preprocessing) and report "
    f"top-1 (%) on {n_eval} test images.",
    "",
    "| model | config | FP32 (PyTorch) | FP32 (nnq, .onnx) | PyTorch PTQ | PyTorch fake-quant sim "
    "| nnq | nnq method | nnq − PyTorch | nnq s | PyTorch s |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    *rows,
    "",
    f"nnq at or above PyTorch's PTQ in {wins} of {compared} compared rows"
    + (f" ({len(rows) - compared} row(s) without a comparison)." if len(rows) > compared else "."),
    "",
    "- **PyTorch PTQ**: FX graph mode (`prepare_fx` → calibrate → `convert_fx`), one global "
    "QConfig: activations `HistogramObserver` (quint8, per-tensor affine, 0..255, "
    "`reduce_range=False`), weights `MinMaxObserver` (per-tensor) or `PerChannelMinMaxObserver` "
    "(axis 0), qint8 symmetric; BN folded by FX fusion. W8A8 runs the integer kernels of the "
    f"`{engine}` engine (this Debian torch has no FBGEMM; native backend config). W4A8 cannot run "
    "on those kernels, so it is the fake-quant simulation: `prepare_qat_fx` with the same "
    "observers in `FakeQuantize` (weights on the 4-bit grid −8..7), eval mode (BN running "
    "statistics), calibrated with fake-quant off, then observers frozen and fake-quant on. The "
    "*PyTorch fake-quant sim* column is that simulation for every config (a check on the int8 "
    "number). PyTorch keeps ReLU6 unfused (it shares the observer of the conv output before it).",
    "- **nnq**: `nnq quantize --eval` on the exported .onnx (BN already folded at export, so "
    "passes that need BN statistics are not used); quantized top-1 in nnq's simulation. "
    "*nnq s* is nnq's quantization time (without evaluation); *PyTorch s* is "
    "prepare + calibration + convert.",
    "- Difference = nnq − PyTorch PTQ, in points.",
    "",
    "Commands (from the repo root; `nnq` is the binary given to the script, OUT.onnx a temporary):",
    "",
    "```sh",
    *cmds,
    env["TORCH_CMD"],
    "```",
    END,
]
section = "\n".join(lines)

out = env["OUT"]
if out == "-":
    print(section)
else:
    text = open(out).read() if os.path.exists(out) else "# nnq results\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        a = text.index(BEGIN)
        b = text.index(END) + len(END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    print(section)
PYEOF
