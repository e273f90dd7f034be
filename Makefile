# usersd — the two commands a newcomer needs (see README.md):
#   make run    install what is missing, build, start usersd with a local
#               WorkOS-compatible server, print a token and a command to try
#   make test   install what is missing, build with ASan+UBSan, run every test,
#               then each fuzzer for TEST_FUZZ_SECONDS (10 s)
# Other targets: build, fuzz (long fuzzing), bench, install, clean,
#   deb (Debian package into dist/), test-package (build, install, test, purge it;
#   then the same under systemd in a container).
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD_DIR ?= build
TEST_BUILD_DIR ?= build-asan
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS ?= 300
TEST_FUZZ_SECONDS ?= 10
# Debug information in the ASan+UBSan test build: line tables only (-g1), enough
# for symbolized sanitizer reports and backtraces, and about a fifth less
# compile time than -g (sync/outbox_sender.cc: 27 s vs 33 s). TEST_DEBUG_INFO=-g
# for a build to step through in gdb with local variables.
TEST_DEBUG_INFO ?= -g1

# Debian packages the build and the tests need. Node.js (>= 20) is also
# needed; Debian's nodejs package is installed only when no node is on PATH.
DEB_PACKAGES := build-essential cmake pkg-config libuv1-dev libcurl4-openssl-dev liblmdb-dev \
  libyaml-cpp-dev nlohmann-json3-dev catch2 libssl-dev libunistring-dev tzdata lmdb-utils \
  clang libclang-rt-14-dev clang-format systemd ca-certificates scdoc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: format-check deps promtool build build-daemon build-test build-fuzz build-client-ts test tsan thread-safety run fuzz bench install clean deb-deps deb systemd-test-deps test-package

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	command -v node >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$(echo $$missing)" ]; then \
	  echo "make: installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# promtool, for the ctest entry that checks contrib/prometheus: the one on
# PATH, else the binary unpacked from Debian's prometheus package into
# build-tools/ (only the binary: no Prometheus server is installed or started).
PROMTOOL_DIR := build-tools
promtool:
	@if ! command -v promtool >/dev/null && [ ! -x $(PROMTOOL_DIR)/usr/bin/promtool ]; then \
	  echo "make: unpacking promtool from Debian's prometheus package into $(PROMTOOL_DIR)/"; \
	  rm -rf $(PROMTOOL_DIR)/deb && mkdir -p $(PROMTOOL_DIR)/deb && \
	  (cd $(PROMTOOL_DIR)/deb && { apt-get download prometheus 2>/dev/null || \
	    { $(SUDO) apt-get update -qq && apt-get download prometheus; }; }) && \
	  dpkg-deb -x $(PROMTOOL_DIR)/deb/prometheus_*.deb $(PROMTOOL_DIR) && \
	  rm -rf $(PROMTOOL_DIR)/deb $(PROMTOOL_DIR)/usr/bin/prometheus; \
	fi

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUSERSD_TESTS=ON >/dev/null
	cmake --build $(BUILD_DIR) -j$(JOBS)

build-test: deps promtool
	cmake -S . -B $(TEST_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1 -DCMAKE_CXX_FLAGS_DEBUG=$(TEST_DEBUG_INFO) \
	  -DUSERSD_SANITIZE=ON -DUSERSD_WERROR=ON >/dev/null
	cmake --build $(TEST_BUILD_DIR) -j$(JOBS)

tests/interop/node_modules/.package-lock.json: tests/interop/package.json tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error

# The @usersd/client package (clients/typescript): npm ci and tsc when stale.
build-client-ts:
	node clients/typescript/scripts/build.mjs

test: build-test tests/interop/node_modules/.package-lock.json build-client-ts
	cd $(TEST_BUILD_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j2 --timeout 900
	$(MAKE) --no-print-directory thread-safety
	$(MAKE) --no-print-directory build-fuzz
	FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) bash fuzz/run.sh $(FUZZ_BUILD_DIR)
	$(MAKE) --no-print-directory tsan TSAN_TESTS="$(TSAN_TESTS_SHORT)"

# The threaded parts (writer thread, loop hand-off, store gate, curl on the
# loop) under ThreadSanitizer. `make test` runs the store's tests; `make tsan`
# alone runs all of these.
TSAN_BUILD_DIR ?= build-tsan
TSAN_TESTS_SHORT := test_store_writer_test test_store_store_test
TSAN_TESTS ?= test_store_writer_test test_store_store_test test_sync_http_test test_sync_outbox_test test_admin_api_test
tsan: deps
	cmake -S . -B $(TSAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1 -DUSERSD_TSAN=ON -DUSERSD_WERROR=ON >/dev/null
	cmake --build $(TSAN_BUILD_DIR) -j$(JOBS) --target $(TSAN_TESTS)
	set -e; for t in $(TSAN_TESTS); do echo "tsan: $$t"; TSAN_OPTIONS=halt_on_error=1 $(TSAN_BUILD_DIR)/tests/$$t; done

# Clang's -Wthread-safety over the libraries whose locks are annotated
# (common/thread_annotations.h; CONTRIBUTING.md "Locks"), as errors. Only
# those libraries, unoptimized and without debug information: it compiles
# for the warnings, not to run anything.
TSA_BUILD_DIR ?= build-tsa
TSA_TARGETS := usersd_common usersd_store
thread-safety: deps
	CC=clang CXX=clang++ cmake -S . -B $(TSA_BUILD_DIR) -DCMAKE_BUILD_TYPE= -DUSERSD_WERROR=ON -DUSERSD_TESTS=OFF \
	  -DUSERSD_BENCH=OFF >/dev/null
	cmake --build $(TSA_BUILD_DIR) -j$(JOBS) --target $(TSA_TARGETS)

# C++ lines changed since FORMAT_BASE (default HEAD~1) must be formatted as
# .clang-format says (CONTRIBUTING.md "Naming and style").
format-check: deps
	tools/format-check.sh $(FORMAT_BASE)

# Only what `make run` needs: the daemon and usersctl.
build-daemon: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD_DIR) -j$(JOBS) --target usersd usersctl

run: build-daemon
	node tools/dev-run.mjs --bin $(BUILD_DIR)/daemon/usersd

# Only the fuzzers and the libraries they link, not the daemon (docs/FUZZING.md).
build-fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUSERSD_FUZZ=ON -DUSERSD_TESTS=OFF -DUSERSD_WERROR=ON >/dev/null
	cmake --build $(FUZZ_BUILD_DIR) -j$(JOBS) --target fuzz_all

fuzz: build-fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_BUILD_DIR)

bench: build
	bash bench/compare.sh $(BUILD_DIR)

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR) $(FUZZ_BUILD_DIR) $(TSA_BUILD_DIR) $(PROMTOOL_DIR) $(DEB_BUILD_DIR) $(DEB_OUT_DIR) .run

# Debian package (docs/DEPLOYMENT.md, "Debian package"). dpkg-buildpackage
# writes next to the source tree, so it runs on a copy of the files git knows
# (tracked and untracked, not ignored) in $(DEB_BUILD_DIR)/usersd; the .deb is
# then copied to $(DEB_OUT_DIR)/ and checked with lintian (errors fail).
DEB_BUILD_PACKAGES := debhelper dpkg-dev scdoc lintian
DEB_BUILD_DIR ?= build-deb
DEB_OUT_DIR ?= dist
DEB_VERSION = $(shell dpkg-parsechangelog -S Version)
DEB_ARCH = $(shell dpkg --print-architecture)
DEB_FILE = $(DEB_OUT_DIR)/usersd_$(DEB_VERSION)_$(DEB_ARCH).deb

deb-deps:
	@missing=$$(for p in $(DEB_BUILD_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$(echo $$missing)" ]; then \
	  echo "make: installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

deb: deps deb-deps
	@v=$$(sed -n 's/^project(usersd VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt); \
	if [ "$(DEB_VERSION)" != "$$v" ]; then echo "make: debian/changelog says $(DEB_VERSION), CMakeLists.txt says $$v"; exit 1; fi
	rm -rf $(DEB_BUILD_DIR) && mkdir -p $(DEB_BUILD_DIR)/usersd
	git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C $(DEB_BUILD_DIR)/usersd
	cd $(DEB_BUILD_DIR)/usersd && DEB_BUILD_OPTIONS="nocheck parallel=$(JOBS)" dpkg-buildpackage -us -uc -b
	lintian --fail-on error --tag-display-limit 0 $(DEB_BUILD_DIR)/usersd_$(DEB_VERSION)_$(DEB_ARCH).changes
	mkdir -p $(DEB_OUT_DIR) && cp $(DEB_BUILD_DIR)/usersd_$(DEB_VERSION)_$(DEB_ARCH).deb $(DEB_OUT_DIR)/
	@echo "make: built $(DEB_FILE)"

# Builds the package, installs it on this machine with dpkg -i, checks it and
# runs the installed daemon against the WorkOS-compatible test server, then
# purges it and checks that nothing is left (tests/package/run.sh). Then the
# same package under a real systemd (tests/package/systemd.test.mjs): a
# minimal root of this host's Debian release, built by mmdebstrap from this
# host's apt sources and booted with systemd-nspawn, where the units,
# sandbox, socket activation, reload, restart, kill -9, crash loop, watchdog,
# reboot and purge are checked; it prints its time per step and leaves
# nothing behind. Needs root.
SYSTEMD_TEST_PACKAGES := systemd-container mmdebstrap
systemd-test-deps:
	@missing=$$(for p in $(SYSTEMD_TEST_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$(echo $$missing)" ]; then \
	  echo "make: installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test-package: deb systemd-test-deps
	bash tests/package/run.sh $(DEB_FILE)
	USERSD_DEB=$(DEB_FILE) node --test --test-reporter=spec tests/package/systemd.test.mjs
