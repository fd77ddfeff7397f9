#!/bin/sh
# Issue 5: nnq's quantization-aware training against PyTorch 1.13's (FakeQuantize,
# _LearnableFakeQuantize) on the PyTorch-trained fixture models, side by side,
# plus QAT training throughput and peak memory of both.
#
#   bench/qat_vs_torch.sh [BUILD_DIR/nnq]          (default build/nnq)
#
# Accuracy: for each model x width x method, `nnq qat --eval --json` on the
# fixture .onnx (BN folded at export) and bench/torch_qat.py on the .pt state
# dict (BN folded the same way), same epochs, training images, test images,
# batch, optimizer, learning rates and schedule. Table between
# <!-- qat-vs-torch:begin --> and <!-- qat-vs-torch:end --> in docs/results.md.
# Throughput: the lsq recipe at W4A4, timing only, at 1 and 2 threads, both
# sides; table between <!-- qat-vs-torch-speed:begin/end --> inside BENCHMARKS.md's
# "## QAT training throughput and memory (issue 5)" section.
#
# Knobs (environment): NNQ_QAT_MODELS ("mnv2s resnets"), NNQ_QAT_WIDTHS ("4"),
# NNQ_QAT_METHODS ("ste lsq lsq+"), NNQ_QAT_INITS ("paper mse minmax": nnq runs each
# recipe from the method's paper init -- ste from PTQ ranges --, from --init mse, nnq's
# default, and from --init minmax, the start PyTorch's observers give; the table ends
# with a verdict per configuration for each), NNQ_QAT_EPOCHS (1), NNQ_QAT_TRAIN_LIMIT (3072),
# NNQ_QAT_TEST_LIMIT (2000; 0 = all 10000), NNQ_QAT_SPEED_IMAGES (1024),
# NNQ_QAT_SPEED_THREADS ("1 2"; empty: skip), NNQ_QAT_ACCURACY (1; 0: skip),
# NNQ_QAT_OUT (docs/results.md, "-" to only print), NNQ_QAT_BENCH (BENCHMARKS.md),
# NNQ_QAT_KEEP (directory to keep the raw JSON lines in; default bench/results),
# NNQ_QAT_REUSE (0; 1: keep nnq runs already in the kept JSON lines with the same model
# and options, and the kept PyTorch results if there are any -- to add rows cheaply).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NNQ=${1:-$ROOT/build/nnq}
MODELS=${NNQ_QAT_MODELS:-"mnv2s resnets"}
WIDTHS=${NNQ_QAT_WIDTHS:-"4"}
METHODS=${NNQ_QAT_METHODS:-"ste lsq lsq+"}
INITS=${NNQ_QAT_INITS:-"paper mse minmax"}
EPOCHS=${NNQ_QAT_EPOCHS:-1}
TRAIN_LIMIT=${NNQ_QAT_TRAIN_LIMIT:-3072}
TEST_LIMIT=${NNQ_QAT_TEST_LIMIT:-2000}
SPEED_IMAGES=${NNQ_QAT_SPEED_IMAGES:-1024}
SPEED_THREADS=${NNQ_QAT_SPEED_THREADS-"1 2"}
ACCURACY=${NNQ_QAT_ACCURACY:-1}
REUSE=${NNQ_QAT_REUSE:-0}
OUT=${NNQ_QAT_OUT:-"$ROOT/docs/results.md"}
BENCH=${NNQ_QAT_BENCH:-"$ROOT/BENCHMARKS.md"}
KEEP=${NNQ_QAT_KEEP:-"$ROOT/bench/results"}
PY=/usr/bin/python3
FIX=tests/fixtures/models

die() { echo "bench/qat_vs_torch.sh: $*" >&2; exit 1; }

[ -x "$NNQ" ] || die "no nnq binary at $NNQ (build it: cmake --build BUILD_DIR --target nnq_cli)"
NNQ=$(cd "$(dirname "$NNQ")" && pwd)/$(basename "$NNQ")
[ -x "$PY" ] || die "$PY not found (Debian python3-torch)"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found"
cd "$ROOT"
for m in $MODELS; do
    { [ -f "$FIX/$m.onnx" ] && [ -f "$FIX/$m.pt" ]; } ||
        die "missing $FIX/$m.onnx or .pt (generate: $PY $FIX/make_models.py)"
done
mkdir -p "$KEEP"
WORK=$(mktemp -d)
export WORK
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

# nnq's per-method initialisation, as bench/qat_results.py: ste from PTQ
# ranges, lsq / lsq+ from their papers'.
init_of() { case $1 in ste) echo mse ;; *) echo lsq ;; esac; }

# One JSON line: nnq's report plus the run's labels and peak RSS (GNU time).
nnq_run() { # tag threads model opts...
    tag=$1 th=$2 m=$3
    shift 3
    echo "[nnq $tag $m] nnq qat $FIX/$m.onnx $*" >&2
    if OMP_NUM_THREADS=$th /usr/bin/time -f %M -o "$WORK/rss" "$NNQ" qat "$FIX/$m.onnx" \
        -o "$WORK/out.onnx" --threads "$th" --json --quiet "$@" >"$WORK/run.out" 2>"$WORK/run.err"
    then rc=0; else rc=$?; fi
    TAG="$tag" M="$m" TH="$th" RC="$rc" OPTS="$*" "$PY" -c '
import json, os
w = os.environ["WORK"]
rec = dict(tag=os.environ["TAG"], model=os.environ["M"], threads=int(os.environ["TH"]),
           options=os.environ["OPTS"])
out = open(w + "/run.out").read().strip()
if int(os.environ["RC"]) == 0 and out:
    rec["report"] = json.loads(out.splitlines()[-1])
    try:
        rec["report"]["peak_rss_mb"] = int(open(w + "/rss").read().split()[-1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
else:
    err = open(w + "/run.err").read().strip().splitlines()
    rec["failed"] = err[-1] if err else "exit status " + os.environ["RC"]
print(json.dumps(rec))'
}

NNQ_RESULTS="$KEEP/qat_vs_torch_nnq.jsonl"
TORCH_RESULTS="$KEEP/qat_vs_torch_torch.jsonl"
SPEED_RESULTS="$KEEP/qat_vs_torch_speed.jsonl"
MODELS_CSV=$(echo "$MODELS" | tr ' ' ',')
METHODS_CSV=$(echo "$METHODS" | tr ' ' ',')
TORCH_CMD="$PY bench/torch_qat.py --models $MODELS_CSV --methods $METHODS_CSV --epochs $EPOCHS --train-limit $TRAIN_LIMIT --test-limit $TEST_LIMIT --threads 1"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$ACCURACY" = 1 ]; then
    if [ "$REUSE" != 1 ] || [ ! -f "$NNQ_RESULTS" ]; then : >"$NNQ_RESULTS"; fi
    for m in $MODELS; do
        for b in $WIDTHS; do
            for meth in $METHODS; do
                seen=""
                for init in $INITS; do
                    [ "$init" = paper ] && init=$(init_of "$meth")
                    case " $seen " in *" $init "*) continue ;; esac # ste: paper = mse
                    seen="$seen $init"
                    opts="--wbits $b --abits $b --method $meth --init $init --epochs $EPOCHS --train-limit $TRAIN_LIMIT --test-limit $TEST_LIMIT --eval"
                    [ "$REUSE" = 1 ] && grep -F -q "\"model\": \"$m\", \"threads\": 1, \"options\": \"$opts\"" "$NNQ_RESULTS" && continue
                    nnq_run acc 1 "$m" --wbits "$b" --abits "$b" --method "$meth" \
                        --init "$init" --epochs "$EPOCHS" --train-limit "$TRAIN_LIMIT" \
                        --test-limit "$TEST_LIMIT" --eval >>"$NNQ_RESULTS"
                done
            done
        done
    done
    if [ "$REUSE" != 1 ] || [ ! -f "$TORCH_RESULTS" ]; then : >"$TORCH_RESULTS"; fi
    for b in $WIDTHS; do
        if [ "$REUSE" = 1 ] && grep -q "\"wbits\": $b," "$TORCH_RESULTS"; then
            echo "[torch W${b}A$b] kept from $TORCH_RESULTS" >&2
            continue
        fi
        echo "[torch W${b}A$b] $TORCH_CMD (--widths $b)" >&2
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=1 $TORCH_CMD --widths "$b" >>"$TORCH_RESULTS" 2>"$WORK/torch.err" ||
            { grep -v -i 'warn' "$WORK/torch.err" | tail -n 20 >&2; die "bench/torch_qat.py failed"; }
    done
fi

if [ -n "$SPEED_THREADS" ]; then
    : >"$SPEED_RESULTS"
    for th in $SPEED_THREADS; do
        for m in $MODELS; do
            nnq_run speed "$th" "$m" --wbits 4 --abits 4 --method lsq --init lsq --epochs 1 \
                --train-limit "$SPEED_IMAGES" --calib-size 256 >>"$SPEED_RESULTS"
            echo "[torch speed $th $m]" >&2
            OMP_NUM_THREADS=$th "$PY" bench/torch_qat.py --models "$m" --widths 4 --methods lsq \
                --epochs 1 --train-limit "$SPEED_IMAGES" --calib-size 256 --threads "$th" \
                --no-eval 2>"$WORK/torch.err" | sed 's/^{/{"tag": "torch-speed", /' \
                >>"$SPEED_RESULTS" ||
                { tail -n 5 "$WORK/torch.err" >&2; die "bench/torch_qat.py (speed) failed"; }
        done
    done
fi

CPU=$(grep -m 1 'model name' /proc/cpuinfo | sed 's/.*: *//')
GITREV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    GITREV="$GITREV (with uncommitted changes)"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
NPROC=$(nproc)
export MODELS METHODS WIDTHS NNQ_RESULTS TORCH_RESULTS SPEED_RESULTS OUT BENCH TORCH_CMD CPU GITREV DATE NPROC
export REUSE LOAD_BEFORE LOAD_AFTER EPOCHS TRAIN_LIMIT TEST_LIMIT SPEED_IMAGES ACCURACY SPEED_THREADS
export PYTHONPATH="$ROOT/bench"
"$PY" - <<'PYEOF'
import json, os
from benchlib import replace_section, write_atomic

env = os.environ
BENCH_SECTION = "## QAT training throughput and memory (issue 5)"


def jl(path):
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip().startswith("{")]


def pct(v):
    return "–" if v is None else f"{v:.2f}"


n_train = "all 60000" if env["TRAIN_LIMIT"] == "0" else env["TRAIN_LIMIT"]
n_test = "all 10000" if env["TEST_LIMIT"] == "0" else f"the first {env['TEST_LIMIT']}"

if env["ACCURACY"] == "1":
    torch = {(r["model"], r["wbits"], r["method"]): r for r in jl(env["TORCH_RESULTS"])}
    rows, wins, compared = [], 0, 0
    by_init = {}  # (model, width, method) -> {init: nnq - PyTorch}
    models = env["MODELS"].split()
    methods = env["METHODS"].split()

    INIT_ORDER = {"lsq": 0, "mse": 1, "minmax": 2}

    def order(r):
        o = r["options"].split()
        return (models.index(r["model"]) if r["model"] in models else 99,
                -int(o[o.index("--wbits") + 1]),
                methods.index(o[o.index("--method") + 1]) if o[o.index("--method") + 1] in methods
                else 99, INIT_ORDER.get(o[o.index("--init") + 1], 99))

    for r in sorted(jl(env["NNQ_RESULTS"]), key=order):
        rep = r.get("report")
        o = r["options"].split()
        b, meth = int(o[o.index("--wbits") + 1]), o[o.index("--method") + 1]
        init = o[o.index("--init") + 1]
        t = torch.get((r["model"], b, meth))
        if rep and "export_top1" in rep:
            nnq_cell = f"{rep['export_top1']:.2f}"
            diff = None if t is None else rep["export_top1"] - t["top1"]
        else:
            nnq_cell = "failed: " + r.get("failed", "?").replace("|", "/")
            diff = None
        if diff is not None:
            compared += 1
            wins += diff >= -1e-9
            by_init.setdefault((r["model"], b, meth), {})[init] = diff
        rows.append("| {} | W{}A{} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["model"], b, b, meth, init, pct(rep["float_top1"] if rep else None),
            pct(t["fp32_top1"] if t else None),
            pct(rep["start_top1"] if rep else None), nnq_cell,
            pct(t["start_top1"] if t else None), pct(t["top1"] if t else None))
            + (" – |" if diff is None else f" {diff:+.2f} |"))
    tver = next(iter(torch.values()))["torch"] if torch else "?"

    def verdicts(by_init):
        """Per model x width x method: nnq from PyTorch's own start (min-max), from
        nnq's default (mse), and its best initialisation, each against PyTorch."""
        out = []
        for label, pick in (("from min-max ranges (`--init minmax`: the extremes over all "
                             "calibration images, where PyTorch's observers keep a moving "
                             "average of per-batch extremes with constant 0.01, in effect "
                             "the first batch's, and weights at max|w| / (2^(b-1) - 1/2) "
                             "against nnq's max|w| / (2^(b-1) - 1))",
                             lambda d: d.get("minmax")),
                            ("from nnq's default start (`--init mse`)", lambda d: d.get("mse")),
                            ("with nnq's best initialisation of the recipe",
                             lambda d: max(d.values()))):
            got = [(k, pick(d)) for k, d in sorted(by_init.items()) if pick(d) is not None]
            if not got:
                continue
            below = [f"{k[0]} W{k[1]}A{k[1]} {k[2]} ({v:+.2f})" for k, v in got if v < -1e-9]
            out += ["", f"Per configuration, {label}: nnq at or above PyTorch in "
                    f"{len(got) - len(below)} of {len(got)}"
                    + (f"; below: {', '.join(below)}." if below else ".")]
        return out
    lines = [
        "<!-- qat-vs-torch:begin -->",
        "## QAT: nnq vs PyTorch 1.13 quantization-aware training (issue 5)",
        "",
        f"Generated by `bench/qat_vs_torch.sh` on {env['DATE']} — {env['NPROC']} cores "
        f"({env['CPU']}, load average {env['LOAD_BEFORE']} at the start: other jobs were "
        f"running), nnq {env['GITREV']}, torch {tver}, one thread each."
        + (" Rows accumulated over several runs of the script (`NNQ_QAT_REUSE=1` keeps "
           "earlier rows; date and load are the last run's)." if env["REUSE"] == "1" else "")
        + " Raw JSON: `bench/results/qat_vs_torch_{nnq,torch}.jsonl`.",
        "Fixture models `tests/fixtures/models/{mnv2s,resnets}` (PyTorch-trained on "
        f"Fashion-MNIST). **Budget, both sides: {env['EPOCHS']} epoch(s) over the first "
        f"{n_train} training images**, batch 128, Adam (lr 3e-4 weights, 3e-5 quantizer "
        "scales), cosine schedule per step, no weight decay, no augmentation; per-channel "
        "symmetric weights, asymmetric per-tensor activations, first and last layer at 8 "
        "bits; BN folded (as in the .onnx) on both sides. Calibration: the first 1024 "
        f"training images. Top-1 (%) on {n_test} test images.",
        "",
        "| model | W/A | method | nnq init | FP32 (nnq, .onnx) | FP32 (PyTorch) | nnq start "
        "| nnq QAT | PyTorch start | PyTorch QAT | nnq − PyTorch |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"nnq at or above PyTorch in {wins} of {compared} compared rows.",
        *verdicts(by_init),
        "",
        "- **nnq**: `nnq qat --eval` on the fixture .onnx; *nnq QAT* is the exported QDQ "
        "model's top-1 (what `nnq eval` of the file gives). *nnq init*: `lsq` is the "
        "method's paper initialisation (`--init lsq`), `mse` PTQ's MSE ranges (`--init mse`, "
        "nnq's default; `ste`'s usual start), `minmax` min-max ranges (`--init minmax`, the "
        "kind of start PyTorch's observers give, not the same numbers: see below). `ste` keeps its ranges fixed (nnq's default).",
        "- **PyTorch** (`bench/torch_qat.py`): `ste` = `FakeQuantize` with "
        "`MovingAverageMinMaxObserver` / `MovingAveragePerChannelMinMaxObserver` (observers "
        "running during training, PyTorch's standard QAT); `lsq` = `_LearnableFakeQuantize` "
        "(scale learned, `use_grad_scaling=True`), `lsq+` = the same with the zero point "
        "learned (at 3e-5 / mean activation scale, nnq's offset rate). All start from the "
        "observers' min-max estimate on the calibration images. Quantizers are placed where "
        "nnq places them (input, weights, every conv output after its activation, every "
        "residual add, pooling on its input's grid, logits), so the two sides differ in "
        "implementation and initialisation only; PyTorch's FX `prepare_qat_fx` would place "
        "them differently (e.g. ReLU6 sharing the conv output's observer).",
        "- *start*: the quantized model before training (after calibration).",
        "",
        "```sh",
        "bench/qat_vs_torch.sh BUILD/nnq   # runs, for each model x width x method:",
        "nnq qat tests/fixtures/models/MODEL.onnx -o OUT.onnx --wbits B --abits B --method M "
        f"--init I --epochs {env['EPOCHS']} --train-limit {env['TRAIN_LIMIT']} "
        f"--test-limit {env['TEST_LIMIT']} --eval --threads 1 --json --quiet",
        env["TORCH_CMD"] + " --widths " + ",".join(env["WIDTHS"].split()),
        "```",
        "<!-- qat-vs-torch:end -->",
    ]
    section = "\n".join(lines) + "\n"
    if env["OUT"] == "-":
        print(section)
    else:
        replace_section(env["OUT"], "<!-- qat-vs-torch:begin -->", "<!-- qat-vs-torch:end -->",
                        section)
        print(section)

speed = jl(env["SPEED_RESULTS"]) if env["SPEED_THREADS"].strip() else []
if speed:
    nnq_s = {(r["model"], r["threads"]): r for r in speed if r.get("tag") == "speed"}
    tor_s = {(r["model"], r["threads"]): r for r in speed if r.get("tag") == "torch-speed"}
    rows = []
    for k in sorted(set(nnq_s) | set(tor_s)):
        n, t = nnq_s.get(k, {}).get("report"), tor_s.get(k)
        ni = n["images_per_s"] if n else None
        ti = t["images_per_s"] if t else None
        rows.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            k[0], k[1], "–" if ni is None else f"{ni:.0f}", "–" if ti is None else f"{ti:.0f}",
            "–" if ni is None or ti is None else f"{ni / ti:.2f}x",
            "–" if not n else f"{n.get('peak_rss_mb', float('nan')):.0f}",
            "–" if not t else f"{t['peak_rss_mb']:.0f}",
            "–" if not t else f"{t['peak_rss_mb'] - t['start_rss_mb']:.0f}"))
    block = "\n".join([
        "<!-- qat-vs-torch-speed:begin -->",
        "",
        f"### nnq qat vs PyTorch 1.13 QAT, same architecture",
        "",
        f"`bench/qat_vs_torch.sh` on {env['DATE']}, {env['CPU']}, {env['NPROC']} cores, "
        f"load average {env['LOAD_BEFORE']} before and {env['LOAD_AFTER']} after (other jobs "
        "shared the machine: absolute numbers are pessimistic, the ratio is the point; a "
        "second thread was often not free, so 2-thread rows may show no gain). "
        "Fixture models (BN folded), W4A4 per-channel, first/last 8 bits, `lsq` "
        f"(PyTorch: `_LearnableFakeQuantize`), batch 128, one epoch over {env['SPEED_IMAGES']} "
        "training images, Adam. Images/s over the training steps (forward, backward, "
        "optimizer; initialisation and evaluation excluded). Peak RSS: GNU time for `nnq`, "
        "`ru_maxrss` for the Python process (which includes the interpreter and PyTorch's "
        "libraries; the last column subtracts the RSS right after `import torch`).",
        "",
        "| model | threads | nnq images/s | PyTorch images/s | nnq / PyTorch | nnq peak RSS (MB) "
        "| PyTorch peak RSS (MB) | PyTorch RSS above import (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "<!-- qat-vs-torch-speed:end -->",
    ]) + "\n"
    path = env["BENCH"]
    text = open(path).read() if os.path.exists(path) else "# nnq benchmarks\n"
    b, e = "<!-- qat-vs-torch-speed:begin -->", "<!-- qat-vs-torch-speed:end -->"
    if b in text and e in text:
        pre, rest = text.split(b, 1)
        text = pre + block.rstrip("\n") + rest.split(e, 1)[1]
    elif BENCH_SECTION in text:
        pre, rest = text.split(BENCH_SECTION, 1)
        nxt = rest.find("\n## ")
        body, post = (rest, "") if nxt < 0 else (rest[:nxt + 1], rest[nxt + 1:])
        text = pre + BENCH_SECTION + body.rstrip("\n") + "\n\n" + block + ("\n" + post if post else "")
    else:
        text = text.rstrip("\n") + "\n\n" + BENCH_SECTION + "\n\n" + block
    write_atomic(path, text)
    print(block)
PYEOF
