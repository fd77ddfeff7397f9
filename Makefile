# The two commands of the README:
#   make demo   install what is missing, build, run the main job
#   make test   install what is missing, build, run the whole test suite
# Other targets: build, test-asan (sanitizer build + suite), fuzz, bench, bench-int, clean.

JOBS ?= 2
BUILD ?= build
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps build demo test test-asan fuzz bench bench-int clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD)/nnq

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Address + UndefinedBehavior (+ Leak) sanitizers over the same suite.
test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNNQ_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		NNQ_SANITIZED=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer on every reader of outside data (clang build in build-fuzz),
# FUZZ_SECONDS per target; one summary line per target (scripts/fuzz.sh).
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) scripts/fuzz.sh

bench: build
	@bench/run.sh $(BUILD)/nnq

# Integer inference: nnq int8 vs nnq float, ONNX Runtime int8/float, PyTorch int8
# (bench/int_bench.sh; the "Integer inference (issue 6)" section of BENCHMARKS.md).
bench-int: build
	@bench/int_bench.sh $(BUILD)/nnq

clean:
	rm -rf build build-asan build-fuzz
