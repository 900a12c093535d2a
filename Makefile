# The two commands of the README, plus the ones developers use.
#   make run    install what is missing, build, run `agentwire serve` on embedded defaults
#   make test   install what is missing, build (warnings are errors), start test services, run ctest
SHELL := /bin/bash
ARGS ?=
CTEST_ARGS ?=

.PHONY: deb run test test-repeat build deps sanitize tsan fuzz fuzz-build fuzz-smoke format format-check bench tidy clean ci-all

deps:
	@scripts/install-deps build

build: deps
	@cmake --preset default >/dev/null
	@cmake --build --preset default

# The Debian package from the release build: build/packages/agentwire_<version>_amd64.deb.
deb:
	@scripts/install-deps deb
	@cmake --preset default >/dev/null
	@cmake --build --preset default
	@cd build && cpack -B packages
	@ls build/packages/*.deb

run: build
	@mkdir -p var
	./build/agentwire serve $(ARGS)

test:
	@scripts/install-deps test
	@cmake --preset ci >/dev/null
	@cmake --build --preset ci
	@scripts/run-tests build-ci $(CTEST_ARGS)

# The integration and browser tests N times in a row (each test repeated N times, stopping at the
# first failure): what "deterministic on any machine" is checked with before an issue is resolved.
N ?= 5
test-repeat:
	@scripts/install-deps test
	@cmake --preset ci >/dev/null
	@cmake --build --preset ci
	@scripts/run-tests build-ci -L 'integration|e2e' --repeat until-fail:$(N) $(CTEST_ARGS)

sanitize:
	@scripts/install-deps test
	@cmake --preset sanitize >/dev/null
	@cmake --build --preset sanitize
	@scripts/run-tests build-sanitize $(CTEST_ARGS)

tsan:
	@scripts/install-deps test
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan --target agentwire_unit_tests
	@TSAN_OPTIONS=halt_on_error=1 scripts/with-test-services "$$(pwd)/build-tsan/test-services" ./build-tsan/agentwire_unit_tests

# libFuzzer targets (clang, ASan + UBSan): frame parsing, dispatch through the real handlers, JWT,
# HTTP requests, configuration, process agent lines. `make fuzz` runs each for FUZZ_RUNS inputs.
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 30
fuzz-build:
	@scripts/install-deps test
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz

fuzz: fuzz-build
	@scripts/run-fuzz runs $(FUZZ_RUNS)

fuzz-smoke: fuzz-build
	@scripts/run-fuzz seconds $(FUZZ_SECONDS)

bench: build
	./build/startup_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

format:
	@git ls-files 'src/*.cpp' 'src/*.hpp' 'bench/*.cpp' 'fuzz/*.cpp' | xargs clang-format -i

# Fails when any file is not formatted as .clang-format says (CI runs it).
format-check:
	@git ls-files 'src/*.cpp' 'src/*.hpp' 'bench/*.cpp' 'fuzz/*.cpp' | xargs clang-format --dry-run --Werror

tidy: build
	@git ls-files 'src/*.cpp' | grep -v _test.cpp | xargs clang-tidy -p build --quiet

# What CI runs (.ci/run): the suite, the suite under ASan+UBSan, the unit tests under TSan, each
# fuzzer for FUZZ_SECONDS, and the format check.
ci-all: test sanitize tsan fuzz-smoke format-check

clean:
	rm -rf build build-ci build-sanitize build-tsan build-fuzz
