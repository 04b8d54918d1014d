# Front door to the CMake build: make, make check [SANITIZE=1], make demo.
BUILD ?= build
CMAKE_FLAGS ?=
ifeq ($(SANITIZE),1)
BUILD := build-san
CMAKE_FLAGS += -DPVELAB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps check tsan demo fuzz clean

all: $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

deps:
	@bash scripts/install-deps

# Developer builds: warnings are errors (PVELAB_WERROR, off for a plain make).
check: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DPVELAB_WERROR=ON >/dev/null
	@$(MAKE) --no-print-directory all BUILD=$(BUILD) CMAKE_FLAGS="$(CMAKE_FLAGS)"
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The threaded code (sync's workers, the threaded list parse) under
# ThreadSanitizer: the sync and fault suites against a TSan build. ASLR off:
# TSan needs its fixed memory layout on kernels with many mmap random bits.
tsan: deps
	@cmake -S . -B build-tsan -DPVELAB_TSAN=ON -DPVELAB_WERROR=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target pvelab
	@setarch -R env PVELAB_BIN=$(CURDIR)/build-tsan/pvelab TSAN_OPTIONS=exitcode=66 \
		/usr/bin/python3 -m pytest -q -x -p no:cacheprovider tests/e2e/test_200_sync.py \
		tests/e2e/test_230_faults.py

demo: all
	@bash scripts/demo $(BUILD)/pvelab

fuzz:
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPVELAB_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

clean:
	rm -rf build build-san build-fuzz build-tsan
