# Front door to the CMake build: make, make demo, make check [SANITIZE=1],
# make deb. Each first installs the Debian packages it needs
# (scripts/install-deps: build for make and make demo, test and npm for make check).
BUILD ?= build
CMAKE_FLAGS ?=
ifeq ($(SANITIZE),1)
BUILD := build-san
CMAKE_FLAGS += -DPVELAB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# A plain build has the tests only when cmocka is there (make check installs it).
TESTS_DEFAULT = $(shell pkg-config --exists cmocka 2>/dev/null && echo ON || echo OFF)

.PHONY: all deps build-deps check tsan demo fuzz deb deb-check clean

all: build-deps
	@scripts/configure --if-needed $(BUILD) -DPVELAB_TESTS=$(TESTS_DEFAULT) $(CMAKE_FLAGS)
	@cmake --build $(BUILD) -j $(JOBS)

build-deps:
	@scripts/install-deps build

deps:
	@scripts/install-deps build test npm

# Developer builds: warnings are errors (PVELAB_WERROR, off for a plain make).
check: deps
	@scripts/configure $(BUILD) $(CMAKE_FLAGS) -DPVELAB_WERROR=ON -DPVELAB_TESTS=ON
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The threaded code (sync's workers, the threaded list parse) under
# ThreadSanitizer: the sync and fault suites against a TSan build. ASLR off:
# TSan needs its fixed memory layout on kernels with many mmap random bits.
tsan: deps
	@scripts/configure build-tsan -DPVELAB_TSAN=ON -DPVELAB_WERROR=ON
	@cmake --build build-tsan -j $(JOBS) --target pvelab
	@setarch -R env PVELAB_BIN=$(CURDIR)/build-tsan/pvelab TSAN_OPTIONS=exitcode=66 \
		/usr/bin/python3 -m pytest -q -x -p no:cacheprovider tests/e2e/test_200_sync.py \
		tests/e2e/test_230_faults.py

demo: all
	@bash scripts/demo $(BUILD)/pvelab

fuzz: deps
	@scripts/configure build-fuzz -DCMAKE_C_COMPILER=clang -DPVELAB_FUZZ=ON
	@cmake --build build-fuzz -j $(JOBS)

# build-deb/pvelab_<version>_amd64.deb, built by debhelper from debian/ in a
# copy of the tree; deb-check lints it, installs it, checks what it installed
# and removes it again (as root: it changes the system).
deb:
	@scripts/install-deps deb
	@scripts/build-deb build-deb

deb-check: deb
	@scripts/check-deb build-deb

clean:
	rm -rf build build-san build-fuzz build-tsan build-deb
