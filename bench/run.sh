#!/bin/sh
# Float-inference benchmark of issue 2: nnq against ONNX Runtime's CPU
# execution provider, on the same .onnx files, in the same run.
#
#   bench/run.sh [BUILD_DIR/nnq | BUILD_DIR]       (`make bench` passes build/nnq)
#
# Builds bench_float in BUILD_DIR if needed, installs onnxruntime-node into
# bench/node_modules from package-lock.json if missing, checks on one fixed
# batch per model that both engines give the same logits (fails the run if
# nmse >= 1e-8), then times every model x batch x threads and writes the
# "Float inference (issue 2)" section of BENCHMARKS.md.
#
# Knobs (environment): NNQ_BENCH_MODELS (paths, space separated),
# NNQ_BENCH_BATCHES ("1 64"), NNQ_BENCH_THREADS ("1 2"), NNQ_BENCH_SECONDS
# (timed seconds per measurement, 2.5), NNQ_BENCH_OUT (markdown file, "-" to
# only print the table), JOBS (build parallelism, 2).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=bench/run.sh
. "$ROOT/bench/lib.sh"
ARG=${1:-build/nnq}
bench_build_dir "$ARG"

MODELS=${NNQ_BENCH_MODELS:-"$ROOT/tests/fixtures/models/mnv2s.onnx $ROOT/tests/fixtures/models/resnets.onnx"}
BATCHES=${NNQ_BENCH_BATCHES:-"1 64"}
THREADS=${NNQ_BENCH_THREADS:-"1 2"}
SECONDS_PER=${NNQ_BENCH_SECONDS:-2.5}
OUT=${NNQ_BENCH_OUT:-"$ROOT/BENCHMARKS.md"}
CHECK_BATCH=16
MAX_NMSE=1e-8

for m in $MODELS; do
    [ -f "$m" ] || die "missing model $m (generate it: /usr/bin/python3 tests/fixtures/models/make_models.py)"
done

bench_need_ort
bench_workdir
bench_build bench_float
BENCH="$BUILD/bench/bench_float"
ORT="$ROOT/bench/ort_bench.js"
RESULTS="$BUILD/bench/float_results.jsonl"
: >"$RESULTS.tmp"
# Share of CPU time idle over 2 s: other jobs on the machine skew timings,
# so the report records it just before and just after the measurements.
cpu_idle() {
    a=$(head -n 1 /proc/stat)
    sleep 2
    b=$(head -n 1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ idle[NR] = $5 + $6; t[NR] = 0; for (i = 2; i <= NF; i++) t[NR] += $i }
        END { d = t[2] - t[1]; p = 0; if (d > 0) p = 100 * (idle[2] - idle[1]) / d; printf "%d%%", p }'
}
IDLE_BEFORE=$(cpu_idle)

# nnq's threads come from its executor option and from OpenMP, which also
# sizes OpenBLAS (OpenMP build): keep all three equal to T.
run_nnq() { # threads, then bench_float arguments
    t=$1
    shift
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$BENCH" --threads "$t" "$@"
}

echo "correctness: nnq vs ORT logits on one fixed batch of $CHECK_BATCH (nmse < $MAX_NMSE)" >&2
for m in $MODELS; do
    name=$(basename "$m" .onnx)
    run_nnq 2 --model "$m" --batch $CHECK_BATCH --seconds 0 --warmup 0 --dump "$WORK/$name" >/dev/null ||
        die "bench_float failed on $m"
    line=$(node "$ORT" --model "$m" --check "$WORK/$name" --max-nmse $MAX_NMSE) ||
        { echo "$line" >&2; die "$name: nnq and ORT disagree (nmse >= $MAX_NMSE)"; }
    echo "  $line" >&2
    echo "$line" >>"$RESULTS.tmp"
done

# nnq and ORT alternate within each configuration, so a change in the
# machine's load during the run affects both sides alike.
for m in $MODELS; do
    for b in $BATCHES; do
        for t in $THREADS; do
            echo "timing $(basename "$m" .onnx) batch $b threads $t" >&2
            run_nnq "$t" --model "$m" --batch "$b" --seconds "$SECONDS_PER" >>"$RESULTS.tmp" ||
                die "bench_float failed on $m"
            node "$ORT" --model "$m" --batch "$b" --threads "$t" --seconds "$SECONDS_PER" >>"$RESULTS.tmp" ||
                die "ort_bench.js failed on $m"
        done
    done
done
mv "$RESULTS.tmp" "$RESULTS"
IDLE_AFTER=$(cpu_idle)

case "$RESULTS" in "$ROOT"/*) SHOWN=${RESULTS#"$ROOT"/} ;; *) SHOWN=$RESULTS ;; esac
node "$ROOT/bench/report.js" --results "$RESULTS" --out "$OUT" --idle "$IDLE_BEFORE / $IDLE_AFTER" \
    --command "bench/run.sh $ARG" --shown-results "$SHOWN" \
    --seconds "$SECONDS_PER" --check-batch $CHECK_BATCH --max-nmse $MAX_NMSE
