# The two commands of the README, plus the ones developers use.
#   make run    install what is missing, build, run `agentwire serve` on embedded defaults
#   make test   install what is missing, build (warnings are errors), start test services, run ctest
SHELL := /bin/bash
ARGS ?=
CTEST_ARGS ?=

.PHONY: run test test-repeat build deps sanitize tsan bench format tidy clean

deps:
	@scripts/install-deps build

build: deps
	@cmake --preset default >/dev/null
	@cmake --build --preset default

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
	@TSAN_OPTIONS=halt_on_error=1 ./build-tsan/agentwire_unit_tests

bench: build
	./build/startup_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

format:
	@git ls-files 'src/*.cpp' 'src/*.hpp' 'bench/*.cpp' | xargs clang-format -i

tidy: build
	@git ls-files 'src/*.cpp' | grep -v _test.cpp | xargs clang-tidy -p build --quiet

clean:
	rm -rf build build-ci build-sanitize build-tsan
