#!/bin/sh
# Fuzz every reader of outside data with libFuzzer (`make fuzz`):
# install clang + libFuzzer if missing, build fuzz/ with clang into
# build-fuzz (ASan + UBSan + coverage), make seed corpora from real files,
# run each target for FUZZ_SECONDS, and print one line per target:
# executions, seconds, crashes. Exit status 1 if any target crashed.
#
#   scripts/fuzz.sh [TARGET...]     targets: onnx npy idx qdq nnqi (default: all)
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_BUILD     build directory (default build-fuzz)
#   FUZZ_JOBS      build parallelism (default 2)
#
# Files (under FUZZ_BUILD):
#   seeds/<t>/     seeds from real files, made once (delete to remake)
#   corpus/<t>/    the corpus the fuzzer grows, kept between runs
#   crashes/<t>/   crash-*, leak-*, timeout-*, oom-* inputs; once the bug is
#                  fixed, copy them into tests/corpus/<t>/ as crash-<what>
#   logs/<t>.log   the fuzzer's output
# Reproduce one input: FUZZ_BUILD/fuzz/fuzz_<t> FILE
# shellcheck disable=SC2317 # the seed_* functions are called as "seed_$t"
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SECONDS_PER="${FUZZ_SECONDS:-60}"
BUILD="${FUZZ_BUILD:-build-fuzz}"
JOBS="${FUZZ_JOBS:-2}"
TARGETS="${*:-onnx npy idx qdq nnqi}"
PY=/usr/bin/python3
FMNIST="${NNQ_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
CONFORMANCE=/usr/include/onnx/backend/test/data

scripts/deps.sh --fuzz

# ---- build ----
# Clang's -fopenmp=libgomp links GNU libgomp (OpenBLAS's runtime, so only
# one is loaded) without OpenMP code generation: the fuzzed code runs
# serially, which is what a fuzzer wants.
mkdir -p "$BUILD/logs"
echo "fuzz: building $BUILD (log: $BUILD/logs/build.log)" >&2
if ! { CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNNQ_FUZZ=ON \
        -DOpenMP_C_FLAGS=-fopenmp=libgomp -DOpenMP_C_LIB_NAMES=gomp \
        -DOpenMP_gomp_LIBRARY="$(gcc -print-file-name=libgomp.so)" &&
    cmake --build "$BUILD" -j "$JOBS" --target fuzz_onnx fuzz_npy fuzz_idx fuzz_qdq fuzz_nnqi; } \
    >"$BUILD/logs/build.log" 2>&1; then
    tail -n 30 "$BUILD/logs/build.log" >&2
    echo "fuzz: build failed" >&2
    exit 1
fi

# ---- seeds from real files ----
SEEDS="$BUILD/seeds"

seed_onnx() { # shipped models, fixtures, ONNX conformance models
    d="$SEEDS/onnx"
    mkdir -p "$d"
    for f in models/*.onnx tests/fixtures/models/*.onnx tests/fixtures/onnx/*.onnx \
        tests/fixtures/bad/*.onnx; do
        [ -f "$f" ] && cp "$f" "$d/$(echo "$f" | tr / _)"
    done
    for f in "$CONFORMANCE"/node/*/model.onnx "$CONFORMANCE"/simple/*/model.onnx \
        "$CONFORMANCE"/pytorch-operator/*/model.onnx; do
        [ -f "$f" ] && cp "$f" "$d/conf_$(basename "$(dirname "$f")").onnx"
    done
    return 0
}

seed_qdq() { # quantization conformance models, and nnq's own QDQ export of a tiny model
    d="$SEEDS/qdq"
    mkdir -p "$d"
    for f in "$CONFORMANCE"/node/*uantize*/model.onnx "$CONFORMANCE"/node/*qlinear*/model.onnx \
        "$CONFORMANCE"/node/test_conv*/model.onnx "$CONFORMANCE"/node/test_gemm*/model.onnx; do
        [ -f "$f" ] && cp "$f" "$d/conf_$(basename "$(dirname "$f")").onnx"
    done
    # nnq itself, from the fuzz build or else the normal one.
    nnq="$BUILD/nnq"
    cmake --build "$BUILD" -j "$JOBS" --target nnq_cli >>"$BUILD/logs/build.log" 2>&1 ||
        nnq=build/nnq
    if [ -x "$nnq" ]; then
        tmp="$d/tmp.$$"
        mkdir -p "$tmp"
        if "$nnq" train --arch tiny -o "$tmp/tiny.onnx" --epochs 1 --limit 256 --no-eval \
            --threads 1 --quiet >/dev/null 2>&1 &&
            "$nnq" quantize "$tmp/tiny.onnx" -o "$tmp/tiny_qdq.onnx" --calib-size 32 \
                --threads 1 --quiet >/dev/null 2>&1 &&
            "$nnq" quantize "$tmp/tiny.onnx" -o "$tmp/tiny_qdq_w4.onnx" --wbits 4 \
                --per-tensor --calib-size 32 --threads 1 --quiet >/dev/null 2>&1; then
            cp "$tmp"/*.onnx "$d/"
        else
            echo "fuzz: warning: could not make the tiny QDQ seeds with nnq" >&2
        fi
        rm -rf "$tmp"
    else
        echo "fuzz: warning: no nnq binary (neither $BUILD/nnq nor build/nnq), no tiny QDQ seeds" >&2
    fi
}

seed_npy() { # the .npy fixtures (every dtype, format versions 1-3) and golden tensors
    d="$SEEDS/npy"
    mkdir -p "$d"
    for f in tests/fixtures/data/*.npy tests/fixtures/models/golden/*/*.npy; do
        [ -f "$f" ] && cp "$f" "$d/$(echo "$f" | tr / _)"
    done
    return 0
}

seed_idx() { # Fashion-MNIST: the real label file, and the first images as a small file
    d="$SEEDS/idx"
    mkdir -p "$d"
    "$PY" - "$FMNIST" "$d" <<'EOF'
import gzip, os, sys
src, out = sys.argv[1], sys.argv[2]
labels = os.path.join(src, "t10k-labels-idx1-ubyte.gz")
images = os.path.join(src, "t10k-images-idx3-ubyte.gz")
def put(name, raw):
    open(os.path.join(out, name + ".idx"), "wb").write(raw)
    open(os.path.join(out, name + ".idx.gz"), "wb").write(gzip.compress(raw, mtime=0))
if os.path.exists(labels):
    raw = gzip.open(labels).read()
    open(os.path.join(out, "t10k-labels.idx.gz"), "wb").write(open(labels, "rb").read())
    put("labels-16", raw[:4] + (16).to_bytes(4, "big") + raw[8:8 + 16])
if os.path.exists(images):
    with gzip.open(images) as f:
        head = f.read(16 + 4 * 28 * 28)
    put("images-4", head[:4] + (4).to_bytes(4, "big") + head[8:])
EOF
}

seed_nnqi() { # integer programs: the corpus's valid .nnqi and the QDQ seeds lowered by nnq
    d="$SEEDS/nnqi"
    mkdir -p "$d"
    nnq="$BUILD/nnq"
    [ -x "$nnq" ] || nnq=build/nnq
    [ -d "$SEEDS/qdq" ] || seed_qdq
    for f in "$SEEDS"/qdq/*.onnx; do
        [ -x "$nnq" ] && "$nnq" lower "$f" -o "$d/$(basename "$f" .onnx).nnqi" --quiet 2>/dev/null
    done
    return 0
}

# ---- run ----
# Inputs libFuzzer kept as findings (slow-unit-* files are only notes).
count_crashes() {
    n=0
    for f in "$BUILD/crashes/$1"/crash-* "$BUILD/crashes/$1"/leak-* \
        "$BUILD/crashes/$1"/timeout-* "$BUILD/crashes/$1"/oom-*; do
        [ -e "$f" ] && n=$((n + 1))
    done
    echo "$n"
}

summary=""
crashed=0
for t in $TARGETS; do
    bin="$BUILD/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz: unknown target '$t' (targets: onnx npy idx qdq nnqi)" >&2
        exit 2
    fi
    [ -d "$SEEDS/$t" ] || "seed_$t"
    mkdir -p "$BUILD/corpus/$t" "$BUILD/crashes/$t"
    before=$(count_crashes "$t")
    extra=""
    dict="fuzz/$t.dict"
    [ "$t" = qdq ] && dict=fuzz/onnx.dict
    [ -f "$dict" ] && extra="-dict=$dict"
    # Models run up to a few MB (the shipped ones); other inputs stay small.
    case $t in onnx | qdq) maxlen=4194304 ;; *) maxlen=65536 ;; esac
    echo "fuzz: $t for ${SECONDS_PER}s (log: $BUILD/logs/$t.log)" >&2
    start=$(date +%s)
    # -rss_limit_mb / -malloc_limit_mb: a small input that makes nnq
    # allocate more than this is a bug the fuzzer reports as a crash.
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$SECONDS_PER" -timeout=30 -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -max_len="$maxlen" -print_final_stats=1 \
        -artifact_prefix="$BUILD/crashes/$t/" $extra \
        "$BUILD/corpus/$t" "$SEEDS/$t" "tests/corpus/$t" >"$BUILD/logs/$t.log" 2>&1 || true
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/logs/$t.log" | tail -n 1)
    after=$(count_crashes "$t")
    new=$((after - before))
    [ "$new" -gt 0 ] && crashed=1
    line=$(printf '%-5s %10s executions %6ss  %d crashes' "$t" "${execs:-?}" "$secs" "$new")
    [ "$new" -gt 0 ] && line="$line (see $BUILD/crashes/$t/, $BUILD/logs/$t.log)"
    summary="$summary$line
"
done
printf 'fuzz summary:\n%s' "$summary"
exit $crashed
