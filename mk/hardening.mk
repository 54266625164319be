# mk/hardening.mk - fuzzing, valgrind and soak targets (docs/testing.md).
#
# Included at the end of the top-level Makefile (`include mk/hardening.mk`),
# whose variables it uses: CC, CFLAGS, OPT, LDLIBS, LIB_SRC, BUILD, PYTHON.
# Variables are expanded late, so SAN=1 or another BUILD work as usual.
#
#   make fuzz          every libFuzzer target for FUZZ_SECONDS (300) each
#   make fuzz-ci       the same for FUZZ_CI_SECONDS (60) each
#   make fuzz-regress  replay the seed corpora once (seconds)
#   make valgrind-smoke  tickgate under valgrind: connects, subscribe,
#                      publish, echo, bad frames, SIGTERM; no error, no leak
#                      (VALGRIND_SUPP=FILE adds a suppression file)
#   make soak          SOAK_CONNS (10000) churning clients for SOAK_SECONDS (600)
#   make soak-ci       SOAK_CI_CONNS (2000) for SOAK_CI_SECONDS (120)
#   make soak-redis    two nodes on one Redis under load while Redis is killed,
#                      stopped and resumed, for REDIS_FLAP_SECONDS (180); also
#                      run by `make soak`
#   make soak-redis-ci the same for REDIS_FLAP_CI_SECONDS (45)
#   make soak-redis-asan  soak-redis-ci against the ASan+UBSan build
#                      (build-asan, as `make asan` builds it)
#
# Fuzzers are built with clang (FUZZ_CC) into build-fuzz/: the library
# sources are compiled again there with -fsanitize=fuzzer-no-link,address,
# undefined, so the fuzzers see the same code as the server. A harness that
# #includes a src/*.c (to reach its statics) links without that object.

FUZZ_CC         ?= clang
FUZZ_BUILD      ?= build-fuzz
FUZZ_SECONDS    ?= 300
FUZZ_CI_SECONDS ?= 60
FUZZ_TARGETS    ?= http frame utf8 inflate message jwt users config
FUZZ_SAN         = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# The project's flags without -Werror (clang warns about other things than
# gcc; a new warning must not stop a fuzzing run) and with clang's -O1.
FUZZ_CFLAGS      = $(filter-out -Werror $(OPT),$(CFLAGS)) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                   -DFUZZ_DIR='"$(CURDIR)/fuzz"'
FUZZ_LIB_OBJ     = $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS        = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

VALGRIND_SUPP   ?=
SOAK_CONNS      ?= 10000
SOAK_SECONDS    ?= 600
SOAK_CI_CONNS   ?= 2000
SOAK_CI_SECONDS ?= 120
SOAK_ARGS       ?=
SOAK_DRIVER      = $(BUILD)/tests/soak/soakdrv
REDIS_FLAP_SECONDS    ?= 180
REDIS_FLAP_CI_SECONDS ?= 45
REDIS_FLAP_ARGS       ?=
ASAN_BUILD       = build-asan
ASAN_ENV         = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1

.PHONY: fuzz fuzz-ci fuzz-regress fuzz-build valgrind-smoke soak soak-ci soak-redis soak-redis-ci soak-redis-asan \
        clean-hardening

$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Ifuzz -fsanitize=fuzzer $< -o $@ \
	  $(filter-out $(patsubst %,$(FUZZ_BUILD)/%.o,$(basename $(shell sed -n 's/^#include "\.\.\/\(src\/.*\.c\)"/\1/p' $<))),$(FUZZ_LIB_OBJ)) \
	  $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# Like `make test`: install what is missing (scripts/deps.sh test must list
# clang, libclang-rt-14-dev and valgrind), then build, then run.
fuzz:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory fuzz-build
	@sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BUILD) $(FUZZ_TARGETS)

fuzz-ci:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory fuzz-build
	@sh fuzz/run.sh $(FUZZ_CI_SECONDS) $(FUZZ_BUILD) $(FUZZ_TARGETS)

fuzz-regress:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory fuzz-build
	@sh fuzz/run.sh 0 $(FUZZ_BUILD) $(FUZZ_TARGETS)

valgrind-smoke:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/tickgate
	$(PYTHON) tests/valgrind/smoke.py --bin $(CURDIR)/$(BUILD)/tickgate $(if $(VALGRIND_SUPP),--suppressions $(VALGRIND_SUPP))

$(SOAK_DRIVER): tests/soak/soakdrv.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow $< -o $@

soak:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/tickgate $(SOAK_DRIVER)
	$(PYTHON) tests/soak/soak.py --bin $(CURDIR)/$(BUILD)/tickgate --driver $(CURDIR)/$(SOAK_DRIVER) \
	  --conns $(SOAK_CONNS) --seconds $(SOAK_SECONDS) $(SOAK_ARGS)
	@$(MAKE) --no-print-directory soak-redis

soak-ci:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/tickgate $(SOAK_DRIVER)
	$(PYTHON) tests/soak/soak.py --bin $(CURDIR)/$(BUILD)/tickgate --driver $(CURDIR)/$(SOAK_DRIVER) \
	  --conns $(SOAK_CI_CONNS) --seconds $(SOAK_CI_SECONDS) $(SOAK_ARGS)

# Redis flapping under load (tests/soak/redis_flap.py, docs/testing.md).
soak-redis:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/tickgate
	TICKGATE_BIN=$(CURDIR)/$(BUILD)/tickgate $(PYTHON) tests/soak/redis_flap.py $(REDIS_FLAP_SECONDS) \
	  --report $(CURDIR)/$(BUILD)/redis-flap-report.json $(REDIS_FLAP_ARGS)

soak-redis-ci:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/tickgate
	TICKGATE_BIN=$(CURDIR)/$(BUILD)/tickgate $(PYTHON) tests/soak/redis_flap.py $(REDIS_FLAP_CI_SECONDS) \
	  --report $(CURDIR)/$(BUILD)/redis-flap-report.json $(REDIS_FLAP_ARGS)

# Under ASan, RSS climbs (about 1 MB/s here) until the allocator's
# quarantine of freed blocks (256 MiB by default) is full, so the RSS bound is
# 256 + 64 MiB there; leaks are LeakSanitizer's job at exit (exit code 0).
soak-redis-asan:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) SAN=1 OPT="-O1 -g" $(ASAN_BUILD)/tickgate
	TICKGATE_BIN=$(CURDIR)/$(ASAN_BUILD)/tickgate $(ASAN_ENV) $(PYTHON) tests/soak/redis_flap.py \
	  $(REDIS_FLAP_CI_SECONDS) --report $(CURDIR)/$(ASAN_BUILD)/redis-flap-report.json --rss-bound-mb 320 \
	  $(REDIS_FLAP_ARGS)

clean-hardening:
	rm -rf $(FUZZ_BUILD)
clean: clean-hardening

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
