# tickgate - plain Makefile; dependencies found with pkg-config.
#   make run    install missing Debian packages, build, start with defaults
#               (flags: make run ARGS='--server.listen=127.0.0.1:9090')
#   make install  binary, man page, example config, systemd unit (PREFIX, DESTDIR)
#   make test   install missing packages, build, run unit + integration tests
#   make asan   the same tests against an AddressSanitizer+UBSan build
PKG_CONFIG ?= pkg-config
PYTHON     ?= /usr/bin/python3
BUILD      ?= build
CC         ?= cc
PKGS       := libuv jansson libssl libcrypto hiredis libdeflate
OPT        ?= -O2 -g
CFLAGS     += -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -Isrc -MMD -MP -pthread -DTG_WEB_DIR='"$(CURDIR)/web"' \
              $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LDLIBS     += $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lhttp_parser -pthread -lm
ifdef SAN
CFLAGS     += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif

LIB_SRC    := $(filter-out src/main.c,$(wildcard src/*/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC   := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN   := $(UNIT_SRC:%.c=$(BUILD)/%)

PHONY_OPS  := deps-run
.PHONY: all run test test-js unit integration asan check-layers deps deps-test deps-bench $(PHONY_OPS) clean bench bench-quick bench-profile
all: $(BUILD)/tickgate

deps:
	@sh scripts/deps.sh
deps-run:
	@sh scripts/deps.sh run
deps-test:
	@sh scripts/deps.sh test
deps-bench:
	@sh scripts/deps.sh bench

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tickgate: $(BUILD)/src/main.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# Unit tests may #include the .c under test to reach its statics, so each
# links against the library objects minus the one it includes.
$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell $(PKG_CONFIG) --cflags cmocka) $< -o $@ \
	  $(filter-out $(patsubst %,$(BUILD)/%.o,$(basename $(shell sed -n 's/^#include "\.\.\/\.\.\/\.\.\/\(src\/.*\.c\)"/\1/p' $<))),$(LIB_OBJ)) \
	  $(LDFLAGS) $(LDLIBS) $(shell $(PKG_CONFIG) --libs cmocka)

# make run ARGS='--server.listen=127.0.0.1:9090 --config=my.ini'
run: deps-run
	@$(MAKE) --no-print-directory all
	./$(BUILD)/tickgate $(ARGS)

# Dependencies between src/ rooms point one way (docs/architecture.md).
check-layers:
	@$(PYTHON) scripts/check_layers.py

# Each unit test binary gets 120 s: a hang fails the run instead of holding CI.
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; timeout 120 $$t || { echo "$$t: failed ($$?)"; fail=1; }; done; exit $$fail

integration: $(BUILD)/tickgate
	TICKGATE_BIN=$(CURDIR)/$(BUILD)/tickgate $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

test: deps-test
	@$(MAKE) --no-print-directory check-layers all $(BUILD)/loadgen unit test-js
	@$(MAKE) --no-print-directory integration

# The JavaScript client: dev dependencies from its lockfile, unit tests,
# then its integration tests against this build (clients/js/README.md).
test-js: $(BUILD)/tickgate
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error && \
	  TICKGATE_BIN=$(CURDIR)/$(BUILD)/tickgate node --test test/unit.test.js test/integration.test.js

asan: deps-test
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 OPT="-O1 -g" all unit
	@TICKGATE_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) --no-print-directory BUILD=build-asan SAN=1 OPT="-O1 -g" integration

# Benchmarks (not part of make test): tickgate against uWebSockets.js and
# ws, same scenarios, one table. bench-quick is the short variant.
# The load generator itself is compiled by `make test` (compile only), so
# the bench tool cannot rot between bench runs; its files: bench/loadgen.h.
LOADGEN_SRC := bench/loadgen_main.c bench/loadgen_args.c bench/loadgen_symbols.c bench/loadgen_conn.c \
  bench/loadgen_frames.c bench/loadgen_messages.c bench/loadgen_publish.c bench/loadgen_recovery.c \
  bench/loadgen_run.c bench/loadgen_report.c bench/loadgen_tls.c
$(BUILD)/loadgen: $(LOADGEN_SRC) bench/loadgen.h bench/loadgen_tls.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE $(LOADGEN_SRC) -o $@ \
	  -lssl -lcrypto -lm -lz

# A resumed TLS 1.3 handshake's server CPU inside the TLS library alone,
# OpenSSL (with variants) and GnuTLS (issue 15; docs/performance.md). The
# GnuTLS probe needs libgnutls28-dev; neither is part of `make test`.
$(BUILD)/tlsprobe: bench/tlsprobe.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE bench/tlsprobe.c -o $@ -lssl -lcrypto

$(BUILD)/tlsprobe-gnutls: bench/tlsprobe_gnutls.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE bench/tlsprobe_gnutls.c -o $@ -lgnutls

# io_uring against send/sendmsg for a round of fan-out sends (issue 21;
# docs/performance.md). Needs liburing-dev; not part of `make test`.
$(BUILD)/sendprobe: bench/sendprobe.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE bench/sendprobe.c -o $@ -luring -pthread

bench: deps-bench $(BUILD)/tickgate $(BUILD)/loadgen
	TICKGATE_BIN=$(CURDIR)/$(BUILD)/tickgate LOADGEN_BIN=$(CURDIR)/$(BUILD)/loadgen bash bench/run.sh

bench-quick: deps-bench $(BUILD)/tickgate $(BUILD)/loadgen
	QUICK=1 TICKGATE_BIN=$(CURDIR)/$(BUILD)/tickgate LOADGEN_BIN=$(CURDIR)/$(BUILD)/loadgen bash bench/run.sh

# Instructions and heap allocations per delivered message (valgrind).
bench-profile: deps-bench $(BUILD)/tickgate $(BUILD)/loadgen
	TICKGATE_BIN=$(CURDIR)/$(BUILD)/tickgate LOADGEN_BIN=$(CURDIR)/$(BUILD)/loadgen bash bench/profile.sh

clean:
	rm -rf build build-asan build-fuzz

# fuzz, fuzz-ci, valgrind-smoke, soak, soak-ci (docs/testing.md)
include mk/hardening.mk
# install, uninstall (PREFIX, DESTDIR; docs/operations.md)
include mk/install.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
