# The preamble the benchmark scripts share (sourced, after `set -eu` and
# ROOT=<repo root>; BENCH_NAME names the script in messages).
#
#   bench_build_dir ARG   BUILD := ARG if it is a directory, else the directory
#                         of the binary ARG names; created, made absolute
#   bench_workdir         WORK := a temporary directory, removed at exit
#   bench_build TARGET..  configure BUILD (Release) if it is new, build the
#                         targets, the log shown only on failure
#   bench_need_ort        onnxruntime-node in bench/node_modules (npm ci from
#                         the lock file, --ignore-scripts: the CPU library
#                         ships inside the package; the install script would
#                         only fetch the CUDA provider, which is not bundled)
#   die MSG               the message on stderr, exit 1

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

bench_build_dir() {
    if [ -d "$1" ]; then BUILD=$1; else BUILD=$(dirname "$1"); fi
    mkdir -p "$BUILD"
    BUILD=$(cd "$BUILD" && pwd)
}

bench_workdir() {
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM
}

bench_build() {
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    cmake --build "$BUILD" --target "$@" -j "${JOBS:-2}" >"$WORK/build.log" 2>&1 ||
        { cat "$WORK/build.log" >&2; die "building $* in $BUILD failed"; }
}

bench_need_ort() {
    command -v node >/dev/null 2>&1 || die "node not found: run scripts/deps.sh --peers"
    [ -d "$ROOT/bench/node_modules/onnxruntime-node" ] && return 0
    command -v npm >/dev/null 2>&1 || die "npm not found (Debian package npm)"
    echo "installing onnxruntime-node into bench/node_modules" >&2
    (cd "$ROOT/bench" && npm ci --ignore-scripts --no-audit --no-fund >&2) ||
        die "npm ci failed in bench/"
}
