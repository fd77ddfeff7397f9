#!/bin/sh
# Training-throughput benchmark of issue 3: nnq's training loop against
# PyTorch 1.13 on the same architectures, batch, optimizer and data, in the
# same run.
#
#   bench/run_train.sh [BUILD_DIR/nnq | BUILD_DIR]       (default build/nnq)
#
# Builds bench_train in BUILD_DIR if needed. First proves, per architecture,
# that the PyTorch model in bench/train_bench.py is nnq's: same state-dict
# names and shapes, same parameter count, and the same training-mode logits
# on one batch with nnq's weights loaded (fails the run otherwise). Then
# times every architecture x thread count, nnq and PyTorch back to back,
# prints a table and writes the "Training throughput (issue 3)" section of
# BENCHMARKS.md (replacing an older one, leaving the rest of the file alone).
#
# Knobs (environment): NNQ_TRAIN_ARCHS ("resnet20 mobilenetv2"),
# NNQ_TRAIN_THREADS ("1 2"), NNQ_TRAIN_BATCH (128), NNQ_TRAIN_STEPS (30),
# NNQ_TRAIN_WARMUP (5), NNQ_BENCH_OUT (markdown file, "-" to only print the
# table), JOBS (build parallelism, 2).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=bench/run_train.sh
. "$ROOT/bench/lib.sh"
ARG=${1:-build/nnq}
bench_build_dir "$ARG"

ARCHS=${NNQ_TRAIN_ARCHS:-"resnet20 mobilenetv2"}
THREADS=${NNQ_TRAIN_THREADS:-"1 2"}
BATCH=${NNQ_TRAIN_BATCH:-128}
STEPS=${NNQ_TRAIN_STEPS:-30}
WARMUP=${NNQ_TRAIN_WARMUP:-5}
OUT=${NNQ_BENCH_OUT:-"$ROOT/BENCHMARKS.md"}
PY=/usr/bin/python3

[ -x "$PY" ] || die "$PY not found (Debian's python3-torch provides PyTorch 1.13)"
"$PY" -c "import torch, onnx, numpy" 2>/dev/null ||
    die "PyTorch, onnx or numpy missing: apt-get install python3-torch python3-onnx python3-numpy"

bench_workdir
bench_build bench_train
BENCH="$BUILD/bench/bench_train"
TORCH="$ROOT/bench/train_bench.py"
RESULTS="$BUILD/bench/train_results.jsonl"
: >"$RESULTS.tmp"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# OpenMP sizes both nnq's loops and OpenBLAS (OpenMP build) and PyTorch's
# intra-op pool: keep it equal to T on both sides.
run_threads() { # threads, then the command
    t=$1
    shift
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$@"
}

echo "same model: PyTorch mirror vs nnq (names, shapes, parameter count, training-mode logits)" >&2
for a in $ARCHS; do
    run_threads 2 "$BENCH" --arch "$a" --check "$WORK/$a" --threads 2 >"$WORK/$a.nnq.json" ||
        die "bench_train --check failed for $a"
    line=$(run_threads 2 "$PY" "$TORCH" --arch "$a" --check "$WORK/$a") ||
        die "$a: the PyTorch model is not nnq's"
    echo "  $line" >&2
    echo "$line" >>"$RESULTS.tmp"
done

common="--batch $BATCH --steps $STEPS --warmup $WARMUP"
for a in $ARCHS; do
    for t in $THREADS; do
        echo "timing $a, $t thread(s): nnq" >&2
        # shellcheck disable=SC2086
        run_threads "$t" "$BENCH" --arch "$a" --threads "$t" $common >>"$RESULTS.tmp" ||
            die "bench_train failed on $a"
        echo "timing $a, $t thread(s): PyTorch" >&2
        # shellcheck disable=SC2086
        run_threads "$t" "$PY" "$TORCH" --arch "$a" --threads "$t" $common >>"$RESULTS.tmp" ||
            die "train_bench.py failed on $a"
    done
done
mv "$RESULTS.tmp" "$RESULTS"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
"$PY" - "$RESULTS" "$OUT" "$CPU" "$(nproc)" "$LOAD_START" "$LOAD_END" "$COMMIT" \
    "bench/run_train.sh $ARG" <<'EOF'
import datetime, json, re, sys

results, out, cpu, cores, load0, load1, commit, command = sys.argv[1:]
rows = [json.loads(l) for l in open(results) if l.strip()]
checks = {r["arch"]: r for r in rows if "logits_nmse" in r}
timed = [r for r in rows if "images_per_s" in r]
find = lambda e, a, t: next(r for r in timed if (r["engine"], r["arch"], r["threads"]) == (e, a, t))
first = timed[0]
torch_version = next((r["torch"] for r in timed if r["engine"] == "pytorch"), "?")

lines = [
    "## Training throughput (issue 3)",
    "",
    f"Measured {datetime.date.today().isoformat()} on {cpu} ({cores} cores), nnq commit "
    f"{commit}, load average {load0} at the start and {load1} at the end (the machine is "
    "shared: compare the two engines within a row, which ran back to back).",
    "",
    f"Command: `{command}` (from the repo root). nnq trains with its own loop "
    "(`bench/bench_train.c`, `nnq_train`), PyTorch "
    f"{torch_version} with `bench/train_bench.py`: the same architecture (state-dict names "
    "and shapes identical, and the same training-mode logits on one batch with nnq's weights "
    "loaded), softmax cross-entropy, SGD with Nesterov momentum 0.9 and weight decay on "
    f"conv/linear weights, batch {first['batch']}, on Fashion-MNIST 1x32x32; "
    f"{first['warmup']} warm-up steps, then {first['steps']} timed steps. Threads: nnq's "
    "option plus OMP_NUM_THREADS (OpenMP and OpenBLAS); PyTorch torch.set_num_threads, one "
    "inter-op thread. Peak RSS is ru_maxrss of the whole process; PyTorch's includes the "
    "interpreter and torch's libraries (its RSS right after `import torch` in brackets). "
    "nnq's activation, gradient and saved-state buffers are planned once per batch shape.",
    "",
    "| model | params | logits nmse | threads | nnq img/s | PyTorch img/s | nnq / PyTorch "
    "| nnq peak RSS | PyTorch peak RSS |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for arch in dict.fromkeys(r["arch"] for r in timed):
    for t in sorted({r["threads"] for r in timed if r["arch"] == arch}):
        n, p = find("nnq", arch, t), find("pytorch", arch, t)
        if n["params"] != p["params"]:
            sys.exit(f"{arch}: parameter counts differ: nnq {n['params']}, PyTorch {p['params']}")
        c = checks.get(arch, {})
        nmse = f"{c['logits_nmse']:.1e}" if c else "-"
        lines.append(
            f"| {arch} | {n['params']:,} | {nmse} | {t} | {n['images_per_s']:.1f} | "
            f"{p['images_per_s']:.1f} | {n['images_per_s'] / p['images_per_s']:.2f} | "
            f"{n['peak_rss_mb']:.0f} MB | {p['peak_rss_mb']:.0f} MB ({p['start_rss_mb']:.0f}) |")
section = "\n".join(lines) + "\n"
print(section)
if out == "-":
    sys.exit(0)
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# nnq benchmarks\n\n"
# Replace our section (up to the next level-2 heading) or append it.
pat = re.compile(r"^## Training throughput \(issue 3\)\n.*?(?=^## |\Z)", re.S | re.M)
if pat.search(text):
    text = pat.sub(lambda m: section + ("\n" if m.end() < len(text) else ""), text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + section
tmp = out + ".tmp"
with open(tmp, "w") as f:
    f.write(text)
import os
os.replace(tmp, out)
print(f"wrote the section to {out}", file=sys.stderr)
EOF
