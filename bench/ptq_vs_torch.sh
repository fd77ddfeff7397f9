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
# Every row is also compared image by image: nnq's exported QDQ model is run
# (`nnq run`) on the same preprocessed test images PyTorch predicted
# (bench/torch_ptq.py --save-preds), and the table counts the images only
# one of the two classifies correctly, with the two-sided exact McNemar
# p-value of that split: a difference of a few images out of 10000 with a
# large p is noise, not a weakness of either side.
#
# Knobs (environment): NNQ_PTQ_MODELS ("mnv2s resnets"), NNQ_PTQ_ADAROUND_ITERS
# (2000), NNQ_PTQ_EVAL_LIMIT (0 = all 10000 test images; for quick trials),
# NNQ_PTQ_OUT (markdown file, "-" to only print the section),
# NNQ_PTQ_SAVE (bench/results/ptq_vs_torch.jsonl: every run's record, PyTorch's,
# the paired counts and the machine, written after a run), NNQ_PTQ_RENDER_ONLY=1
# (run nothing: render the section again from NNQ_PTQ_SAVE, e.g. after
# editing the notes).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NNQ=${1:-$ROOT/build/nnq}
MODELS=${NNQ_PTQ_MODELS:-"mnv2s resnets"}
ADA_ITERS=${NNQ_PTQ_ADAROUND_ITERS:-2000}
EVAL_LIMIT=${NNQ_PTQ_EVAL_LIMIT:-0}
OUT=${NNQ_PTQ_OUT:-"$ROOT/docs/results.md"}
SAVE=${NNQ_PTQ_SAVE:-"$ROOT/bench/results/ptq_vs_torch.jsonl"}
RENDER_ONLY=${NNQ_PTQ_RENDER_ONLY:-0}
PY=/usr/bin/python3
FIX=tests/fixtures/models

die() { echo "bench/ptq_vs_torch.sh: $*" >&2; exit 1; }
export OUT SAVE RENDER_ONLY
if [ "$RENDER_ONLY" = 1 ]; then
    [ -f "$SAVE" ] || die "NNQ_PTQ_RENDER_ONLY=1 needs $SAVE from an earlier run"
    sed -n '/^# ---- render ----$/,$p' "$0" | sed '1,2d' | sed -n '/^PYEOF$/q;p' | "$PY" -
    exit 0
fi

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
# (symmetric weight scales: --sym-range tight, which never clips, unless a row says)
VARIANTS="w8a8-pt|min-max weights and activations (PyTorch's ranges)|--per-tensor --wrange minmax --arange minmax --sym-range tight
w8a8-pt|MSE weights (output-aware), MSE activations, CE logits|--per-tensor --wrange mse --arange ce --sym-range tight
w8a8-pc|min-max weights and activations (PyTorch's ranges)|--per-channel --wrange minmax --arange minmax --sym-range tight
w8a8-pc|MSE weights (output-aware), MSE activations, CE logits|--per-channel --wrange mse --arange ce --sym-range tight
w4a8-pc|nearest, min-max weights and activations|--wbits 4 --per-channel --wrange minmax --arange minmax --sym-range tight
w4a8-pc|nearest, min-max, PyTorch's full-range weight scale|--wbits 4 --per-channel --wrange minmax --arange minmax --sym-range full
w4a8-pc|nearest, MSE weights (output-aware), CE logits|--wbits 4 --per-channel --wrange mse --arange ce --sym-range tight
w4a8-pc|AdaRound ($ADA_ITERS iters/layer), MSE weights (output-aware), CE logits|--wbits 4 --per-channel --wrange mse --arange ce --sym-range tight --adaround --adaround-iters $ADA_ITERS
w8a8-pt|standard recipe (CLE, MSE weights, AdaRound $ADA_ITERS iters/layer, MSE activations, CE logits)|--per-tensor --recipe standard --adaround-iters $ADA_ITERS --sym-range tight
w8a8-pc|standard recipe (CLE, MSE weights, AdaRound $ADA_ITERS iters/layer, MSE activations, CE logits)|--per-channel --recipe standard --adaround-iters $ADA_ITERS --sym-range tight
w4a8-pc|standard recipe (CLE, MSE weights, AdaRound $ADA_ITERS iters/layer, MSE activations, CE logits)|--wbits 4 --per-channel --recipe standard --adaround-iters $ADA_ITERS --sym-range tight"

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
        key="$m-$cfg-$(echo "$opts" | cksum | cut -d ' ' -f 1)"
        echo "[$m $cfg] $cmd" >&2
        t0=$(date +%s)
        # shellcheck disable=SC2086  # opts are words on purpose
        if "$NNQ" quantize "$FIX/$m.onnx" -o "$WORK/$key.onnx" $opts $EVAL_OPTS \
            >"$WORK/run.out" 2>"$WORK/run.err"; then rc=0; else rc=$?; fi
        echo "    exit $rc after $(($(date +%s) - t0)) s" >&2
        M="$m" CFG="$cfg" LABEL="$label" CMD="$cmd" RC="$rc" KEY="$key" "$PY" -c '
import json, os
out = open(os.environ["WORK"] + "/run.out").read().strip()
err = open(os.environ["WORK"] + "/run.err").read().strip()
rec = dict(model=os.environ["M"], config=os.environ["CFG"], label=os.environ["LABEL"],
           command=os.environ["CMD"], key=os.environ["KEY"])
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
PREDS="$WORK/preds"
# shellcheck disable=SC2086
$TORCH_CMD --save-preds "$PREDS" >"$TORCH_RESULTS" 2>"$WORK/torch.err" ||
    { grep -v -i 'warn' "$WORK/torch.err" | tail -n 20 >&2; die "bench/torch_ptq.py failed"; }

# nnq's predictions on the same images, from the exported QDQ models.
for f in "$WORK"/*.onnx; do
    [ -f "$f" ] || continue
    k=$(basename "$f" .onnx)
    "$NNQ" run "$f" --input "$PREDS/test_x.npy" -o "$PREDS/nnq-$k.npy" --quiet ||
        echo "    nnq run $k failed: no paired comparison for that row" >&2
    rm -f "$f"
done
export PREDS

# Machine and provenance for the section header.
CPU=$(grep -m 1 'model name' /proc/cpuinfo | sed 's/.*: *//')
GITREV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    GITREV="$GITREV (with uncommitted changes)"
fi

export NNQ_RESULTS TORCH_RESULTS TORCH_CMD CPU GITREV EVAL_LIMIT
NPROC=$(nproc)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export NPROC DATE
# (the render step below is also run on its own by NNQ_PTQ_RENDER_ONLY=1)
# ---- render ----
"$PY" - <<'PYEOF'
import json, math, os
from fractions import Fraction

import numpy as np

BEGIN, END = "<!-- ptq-vs-torch:begin -->", "<!-- ptq-vs-torch:end -->"
CONFIG_NAMES = {"w8a8-pt": "W8A8 per-tensor", "w8a8-pc": "W8A8 per-channel",
                "w4a8-pc": "W4A8 per-channel"}
META_KEYS = ("DATE", "NPROC", "CPU", "GITREV", "TORCH_CMD", "EVAL_LIMIT")
env = dict(os.environ)
if env.get("RENDER_ONLY") == "1":
    saved = [json.loads(l) for l in open(env["SAVE"]) if l.strip()]
    env.update(next(r for r in saved if r["kind"] == "meta")["env"])
    nnq = [r["rec"] for r in saved if r["kind"] == "nnq"]
    torch = {(r["rec"]["model"], r["rec"]["config"]): r["rec"] for r in saved
             if r["kind"] == "torch"}
else:
    nnq = [json.loads(l) for l in open(env["NNQ_RESULTS"]) if l.strip()]
    torch = {(r["model"], r["config"]): r for r in
             (json.loads(l) for l in open(env["TORCH_RESULTS"]) if l.strip().startswith("{"))}

# What is known about rows where nnq is below PyTorch (kept with the table;
# measured by hand on the run of 2026-11-26, commands given).
NOTES = [
    "What changed since the previous runs:",
    "",
    "- **The standard recipe in every configuration** (run of 2026-11-26 16:16 UTC): nnq's full "
    "pipeline (`--recipe standard`: CLE, MSE weights, AdaRound, MSE activations, CE logits) is "
    "now a row of each configuration, as AdaRound already was at W4A8, so the per-configuration "
    "verdict compares nnq's best pipeline with PyTorch's standard PTQ. (The fixtures' BN is folded "
    "at export, so bias absorption has no BN statistics and is skipped, as the recipe reports.)",
    "- **MSE weights are output-aware** (`--wmse output`, nnq's default with calibration data "
    "since this run; docs/ptq.md): each weight channel's clip minimises the expected squared "
    "error of the layer's output, E[((w − ŵ)·x)²] from the mean and channel covariance of the "
    "layer's input on the calibration images, not the weights' own squared error. Plain weight "
    "MSE (`--wmse plain`) clips each channel's largest weights, which shifts the mean output of "
    "every layer; in the resnets W4A8 nearest row nothing corrected that (no bias correction, no "
    "AdaRound) and it gave 88.14, 2.03 points below PyTorch (150 images right only for nnq, 353 "
    "only for PyTorch, p = 6.6e-20): `nnq quantize tests/fixtures/models/resnets.onnx -o OUT.onnx "
    "--wbits 4 --per-channel --wrange mse --wmse plain --arange ce --sym-range tight`. The "
    "output-aware clip keeps that shift in its objective: the row is now 90.95, above PyTorch. "
    "Its cost on the other rows is within noise (mnv2s W4A8 nearest 90.26 against 90.54 with "
    "plain MSE, p = 0.12 paired; W8A8 rows within 0.07; AdaRound rows within 0.06).",
    "",
    "Why the rows below PyTorch are below:",
    "",
    "- **mnv2s W8A8 per-channel** (a few images; with the standard recipe one image: 38 right "
    "only for nnq, 39 only for PyTorch, p = 1): PyTorch's int8 kernels (onednn) score 0.10 "
    "above PyTorch's own fake-quant simulation of the same quantizers (the *sim* column) and "
    "0.09 above FP32; nnq's rows are at or above that simulation and at FP32. The paired splits "
    "are noise: a tie.",
    "- **mnv2s W4A8, min-max with PyTorch's full-range scale**: this row uses PyTorch's weight "
    "rule on purpose, to show what it costs: its clipped positive maxima are what bring both "
    "PyTorch and this row down to ~84–85 (nnq's tight rule on the same ranges: the "
    "min-max row above). The remaining difference to PyTorch is in the activation ranges "
    "(nnq min-max here vs PyTorch's HistogramObserver; with `--arange mse` the row gives "
    "84.47) and in where PyTorch observes around its unfused ReLU6; not investigated further.",
]


def pct(v):
    return "–" if v is None else f"{v:.2f}"


def mcnemar_p(b, c):
    """Two-sided exact McNemar test: b, c images right on one side only."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, float(Fraction(2 * tail, 2 ** n)))  # exact: n may pass 1023


def paired(r):
    """(only nnq right, only PyTorch right, p, nnq top-1 from its QDQ model) or None."""
    if env.get("RENDER_ONLY") == "1":
        return tuple(r["paired"]) if r.get("paired") else None
    labels = np.load(os.path.join(env["PREDS"], "test_y.npy"))
    lp = os.path.join(env["PREDS"], f"nnq-{r.get('key')}.npy")
    tp = os.path.join(env["PREDS"], f"{r['model']}-{r['config']}.npy")
    if "report" not in r or not os.path.exists(lp) or not os.path.exists(tp):
        return None
    logits = np.load(lp)
    pn, pt = logits.reshape(len(logits), -1).argmax(1), np.load(tp)
    if len(pn) != len(labels) or len(pt) != len(labels):
        return None
    rn, rt = pn == labels, pt == labels
    b, c = int((rn & ~rt).sum()), int((rt & ~rn).sum())
    return b, c, mcnemar_p(b, c), 100.0 * rn.mean()

nnq_fp32 = {}
for r in nnq:
    if "report" in r:
        nnq_fp32.setdefault(r["model"], r["report"]["float_top1"])

rows, wins, compared, below = [], 0, 0, []
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
    pr = paired(r) if t else None
    r["paired"] = list(pr) if pr else None
    pair_cell = "–"
    if pr:
        b, c, p, q_run = pr
        pair_cell = f"{b} / {c} (p = {p:.2g})"
        if abs(q_run - r["report"]["quant_top1"]) > 1e-6:  # the QDQ model is the simulation
            pair_cell += f" ⚠ QDQ model {q_run:.2f}"
    if diff is not None:
        compared += 1
        wins += diff >= -1e-9
        if diff < -1e-9:
            below.append((r, diff, pr))
    t_secs = f"{t['calib_seconds']:.0f}" if t else "–"
    rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        r["model"], CONFIG_NAMES[r["config"]], pct(t["fp32_top1"] if t else None),
        pct(r["report"]["float_top1"] if "report" in r else nnq_fp32.get(r["model"])),
        pct(t_top1), pct(t["sim_top1"] if t else None), nnq_cell, r["label"],
        "–" if diff is None else f"{diff:+.2f}", pair_cell, secs, t_secs))

# Per configuration (model x config): nnq's best row against PyTorch. Some
# rows are ablations (e.g. PyTorch's own weight rule), not nnq's answer to
# the configuration; the best row is.
best = {}
for r in nnq:
    key = (r["model"], r["config"])
    if "report" in r and key in torch:
        if key not in best or r["report"]["quant_top1"] > best[key]["report"]["quant_top1"]:
            best[key] = r
cfg_lines, cfg_wins = [], 0
for key, r in best.items():
    diff = r["report"]["quant_top1"] - torch[key]["top1"]
    cfg_wins += diff >= -1e-9
    if diff < -1e-9:
        pr = r.get("paired")
        sig = ""
        if pr:
            sig = (f"; {pr[0]} / {pr[1]} images, p = {pr[2]:.2g}, "
                   + ("not significant at 5 %: a tie" if pr[2] >= 0.05 else "significant at 5 %"))
        cfg_lines.append(f"- Best nnq row below PyTorch: {key[0]} {CONFIG_NAMES[key[1]]} "
                         f"({r['label']}): {diff:+.2f} points{sig}.")

below_lines = []
for r, diff, pr in below:
    what = f"{r['model']} {CONFIG_NAMES[r['config']]}, {r['label']}: {diff:+.2f} points"
    if pr:
        b, c, p, _ = pr
        what += (f"; {b} images right only for nnq, {c} only for PyTorch, exact McNemar "
                 f"p = {p:.2g}" + (" (not significant at 5 %)" if p >= 0.05 else
                                   " (significant at 5 %)"))
    below_lines.append(f"- Below PyTorch: {what}.")

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
    "| nnq | nnq method | nnq − PyTorch | images right only for nnq / only for PyTorch "
    "| nnq s | PyTorch s |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    *rows,
    "",
    f"nnq at or above PyTorch's PTQ in {wins} of {compared} compared rows"
    + (f" ({len(rows) - compared} row(s) without a comparison)." if len(rows) > compared else "."),
    f"Per configuration (model × config, nnq's best row): nnq at or above PyTorch in {cfg_wins} "
    f"of {len(best)}.",
    "",
    *cfg_lines,
    *([""] if cfg_lines else []),
    *below_lines,
    *([""] if below_lines else []),
    *NOTES,
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
    "- Difference = nnq − PyTorch PTQ, in points. *Images right only for nnq / only for "
    "PyTorch*: the same test images, nnq's exported QDQ model (`nnq run`, which gives exactly "
    "nnq's simulated top-1) against PyTorch's predictions; p is the two-sided exact McNemar "
    "test of that split (a large p: the two differ by noise).",
    "- **Symmetric weight scale.** Every nnq row but one uses `--sym-range tight`, which gives each weight channel "
    "the smallest scale whose grid −2^(b−1)..2^(b−1)−1 holds its [min, max]: max/7 at 4 bits "
    "when the largest magnitude is positive, |min|/8 when it is negative, so nothing is clipped "
    "and −8 is used. PyTorch's symmetric observers use max|w|/7.5 (`--sym-range full`): finer, "
    "but a positive maximum is clipped by half a step; nnq's default, max|w|/7 "
    "(`--sym-range restricted`, AIMET's and TFLite's), never uses −8. docs/ptq.md has the "
    "measurements of all three.",
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

if env.get("RENDER_ONLY") != "1":  # keep what the table came from, to render it again
    os.makedirs(os.path.dirname(os.path.abspath(env["SAVE"])), exist_ok=True)
    with open(env["SAVE"] + ".tmp", "w") as f:
        f.write(json.dumps(dict(kind="meta", env={k: env[k] for k in META_KEYS})) + "\n")
        for r in nnq:
            f.write(json.dumps(dict(kind="nnq", rec=r)) + "\n")
        for r in torch.values():
            f.write(json.dumps(dict(kind="torch", rec=r)) + "\n")
    os.replace(env["SAVE"] + ".tmp", env["SAVE"])

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
