#!/bin/sh
# Integer-inference benchmark of issue 6: nnq's integer engine against nnq's
# float executor, ONNX Runtime on the same W8A8 QDQ file, ONNX Runtime on the
# float model, and PyTorch 1.13's own int8 (FX PTQ), in one run.
#
#   bench/int_bench.sh [BUILD_DIR/nnq | BUILD_DIR]     (`make bench-int` passes build/nnq)
#
# Per model: `nnq quantize` W8A8 (default per-channel weights and ranges, 256
# calibration images) writes the QDQ model every int8 engine runs (PyTorch
# quantizes the float model itself, bench/torch_int_bench.py); `nnq lower`
# gives the .nnqi size. On the first 256 test images, logits of nnq int8,
# ORT int8, nnq float, PyTorch float and int8 for the correctness lines.
# Then every model x batch x threads, the five engines back to back (so a
# change in the machine's load hits them alike), with `nnq bench`'s method:
# W untimed runs, N timed runs (nearest-rank percentiles). bench/qkernel_bench
# (1 thread) gives the MACs per cycle of the largest convolutions. Writes the
# "Integer inference (issue 6)" section of BENCHMARKS.md (bench/int_report.py)
# and the raw JSON lines to BUILD_DIR/bench/int_results.jsonl.
#
# Knobs (environment): NNQ_BENCH_MODELS (float .onnx paths, space separated;
# the fixtures' .pt next to them are used for PyTorch), NNQ_BENCH_BATCHES
# ("1 64"), NNQ_BENCH_THREADS ("1 2"), NNQ_BENCH_ITERS ("200 20": timed runs
# at batch 1 / larger), NNQ_BENCH_CALIB (256), NNQ_BENCH_OUT (markdown file,
# "-" to print the section only), JOBS (build parallelism, 2).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=bench/int_bench.sh
. "$ROOT/bench/lib.sh"
ARG=${1:-build/nnq}
bench_build_dir "$ARG"
cd "$ROOT"

MODELS=${NNQ_BENCH_MODELS:-"models/mobilenetv2.onnx models/resnet20.onnx tests/fixtures/models/mnv2s.onnx tests/fixtures/models/resnets.onnx"}
BATCHES=${NNQ_BENCH_BATCHES:-"1 64"}
THREADS=${NNQ_BENCH_THREADS:-"1 2"}
ITERS=${NNQ_BENCH_ITERS:-"200 20"}
CALIB=${NNQ_BENCH_CALIB:-256}
OUT=${NNQ_BENCH_OUT:-"$ROOT/BENCHMARKS.md"}
PY=/usr/bin/python3
CHECK_N=256

[ -x "$PY" ] || die "$PY not found (Debian python3 with python3-torch)"
for m in $MODELS; do [ -f "$m" ] || die "missing model $m"; done
bench_need_ort
mkdir -p "$BUILD/bench"
bench_workdir
bench_build nnq_cli qkernel_bench
NNQ="$BUILD/nnq"
RESULTS="$BUILD/bench/int_results.jsonl"
: >"$RESULTS.tmp"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# One JSON line per measurement: what ran (engine, model, batch, threads)
# around the tool's own JSON output.
record() { # ENGINE MODEL BATCH THREADS JSON
    printf '{"engine": "%s", "model": "%s", "batch": %s, "threads": %s, "result": %s}\n' \
        "$1" "$2" "$3" "$4" "$5" >>"$RESULTS.tmp"
}
# nnq's threads: its option plus OpenMP (which also sizes OpenBLAS for the
# float executor's sgemm), all equal to T.
nnq_env() { # THREADS COMMAND...
    t=$1
    shift
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$@"
}

# The first CHECK_N test images, preprocessed as nnq does.
"$PY" - "$WORK/check.npy" "$CHECK_N" <<'PYEOF' || die "reading Fashion-MNIST"
import os, sys
sys.path.insert(0, os.path.join("tests", "fixtures", "models"))
import numpy as np
import make_models
x, _ = make_models.load_split("t10k")
np.save(sys.argv[1], make_models.preprocess(x[: int(sys.argv[2])]))
PYEOF

echo "quantizing (W8A8, $CALIB calibration images) and checking logits on $CHECK_N images" >&2
for m in $MODELS; do
    name=$(basename "$m" .onnx)
    q="$WORK/$name.w8a8.onnx"
    nnq_env 2 "$NNQ" quantize "$m" -o "$q" --wbits 8 --abits 8 --calib-size "$CALIB" \
        --threads 2 --quiet || die "nnq quantize $m"
    nnq_env 2 "$NNQ" lower "$q" -o "$WORK/$name.w8a8.nnqi" --quiet || die "nnq lower $q"
    nnq_env 2 "$NNQ" run "$q" --engine int --input "$WORK/check.npy" -o "$WORK/$name.nnq_int8.npy" \
        --threads 2 --quiet 2>"$WORK/notes.txt" || die "nnq run --engine int $q"
    grep "runs in float" "$WORK/notes.txt" >&2 || true
    nnq_env 2 "$NNQ" run "$m" --engine float --input "$WORK/check.npy" \
        -o "$WORK/$name.nnq_float.npy" --threads 2 --quiet || die "nnq run --engine float $m"
    node tests/ort/run_model.js "$q" "$WORK/check.npy" "$WORK/$name.ort_int8.npy" --threads 2 ||
        die "ONNX Runtime on $q"
    pt="${m%.onnx}.pt"
    case $m in tests/fixtures/models/*) ;; *) pt= ;; esac
    if [ -n "$pt" ] && [ -f "$pt" ]; then
        set -- --pt "$pt" --arch "$name"
    else
        set --
    fi
    line=$("$PY" bench/torch_int_bench.py prepare --model "$m" --out "$WORK/$name" \
        --calib-size "$CALIB" --check "$WORK/check.npy" "$@") || die "PyTorch PTQ of $name"
    record torch-prepare "$name" 0 0 "$line"
    printf '{"engine": "sizes", "model": "%s", "batch": 0, "threads": 0, "result": {"float": %s, "qdq": %s, "nnqi": %s}}\n' \
        "$name" "$(wc -c <"$m")" "$(wc -c <"$q")" "$(wc -c <"$WORK/$name.w8a8.nnqi")" >>"$RESULTS.tmp"
    line=$("$PY" - "$WORK" "$name" <<'PYEOF'
import json, os, sys
import numpy as np
work, name = sys.argv[1:3]
L = {k: np.load(os.path.join(work, f"{name}.{k}.npy")).astype(np.float64)
     for k in ("nnq_int8", "ort_int8", "nnq_float", "torch_float", "torch_int8")}
def nmse(a, ref):
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())
def agree(a, b):
    return float((a.argmax(1) == b.argmax(1)).mean())
print(json.dumps(dict(
    n=len(L["nnq_int8"]),
    nnq_vs_ort_int8_nmse=nmse(L["nnq_int8"], L["ort_int8"]),
    nnq_vs_ort_int8_agree=agree(L["nnq_int8"], L["ort_int8"]),
    nnq_int8_vs_float_nmse=nmse(L["nnq_int8"], L["nnq_float"]),
    nnq_int8_vs_float_agree=agree(L["nnq_int8"], L["nnq_float"]),
    torch_float_vs_nnq_float_nmse=nmse(L["torch_float"], L["nnq_float"]),
    torch_int8_vs_float_nmse=nmse(L["torch_int8"], L["nnq_float"]),
    torch_int8_vs_float_agree=agree(L["torch_int8"], L["nnq_float"]),
    torch_int8_vs_nnq_int8_agree=agree(L["torch_int8"], L["nnq_int8"]))))
PYEOF
) || die "comparing logits of $name"
    echo "  $name: $line" >&2
    record check "$name" "$CHECK_N" 2 "$line"
done

echo "qkernel_bench (1 thread, int8 weights)" >&2
"$BUILD/bench/qkernel_bench" --bits 8 >"$BUILD/bench/qkernel_int8.txt" ||
    die "qkernel_bench failed"

iters_for() { # BATCH -> timed runs
    if [ "$1" -eq 1 ]; then echo "${ITERS% *}"; else echo "${ITERS#* }"; fi
}
for m in $MODELS; do
    name=$(basename "$m" .onnx)
    q="$WORK/$name.w8a8.onnx"
    for b in $BATCHES; do
        n=$(iters_for "$b")
        for t in $THREADS; do
            echo "timing $name batch $b threads $t ($n runs)" >&2
            r=$(nnq_env "$t" "$NNQ" bench "$q" --engine int --batch "$b" --threads "$t" \
                --iters "$n" --json --quiet) || die "nnq bench --engine int $q"
            record nnq-int8 "$name" "$b" "$t" "$r"
            r=$(nnq_env "$t" "$NNQ" bench "$m" --engine float --batch "$b" --threads "$t" \
                --iters "$n" --json --quiet) || die "nnq bench --engine float $m"
            record nnq-float "$name" "$b" "$t" "$r"
            r=$(node bench/ort_bench.js --model "$q" --batch "$b" --threads "$t" --iters "$n") ||
                die "ort_bench.js on $q"
            record ort-int8 "$name" "$b" "$t" "$r"
            r=$(node bench/ort_bench.js --model "$m" --batch "$b" --threads "$t" --iters "$n") ||
                die "ort_bench.js on $m"
            record ort-float "$name" "$b" "$t" "$r"
            r=$("$PY" bench/torch_int_bench.py time --ts "$WORK/$name.int8.ts" --batch "$b" \
                --threads "$t" --iters "$n") || die "torch_int_bench.py time on $name"
            record torch-int8 "$name" "$b" "$t" "$r"
        done
    done
done
mv "$RESULTS.tmp" "$RESULTS"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

"$PY" bench/int_report.py --results "$RESULTS" --qkernel "$BUILD/bench/qkernel_int8.txt" \
    --out "$OUT" --command "bench/int_bench.sh $ARG" --load "$LOAD_BEFORE" "$LOAD_AFTER" \
    --iters "$ITERS" --calib "$CALIB"
