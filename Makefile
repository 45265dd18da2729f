# moonpost - see README.md. `make run` and `make test` work on a fresh
# Debian 12 machine: they install what they need first (tools/deps.sh).

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= cc
PKGS    := luajit openssl libmariadb libpcre2-8 libcrypt libargon2 zlib
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
OPT     ?= -O2 -g
ifeq ($(SAN),1)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) -Isrc -DMP_DATADIR='"$(PREFIX)/share/moonpost"' -DMP_SRCDIR='"$(CURDIR)"' $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lev -lm -lpthread $(LDLIBS)

LIB_SRC := $(wildcard src/core/*.c src/login/*.c src/smtp/*.c src/pop3/*.c src/imap/*.c src/dir/*.c src/store/*.c src/mime/*.c src/lua/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
D_SRC   := $(wildcard src/daemon/*.c)
D_OBJ   := $(D_SRC:%.c=$(BUILD)/%.o)
CLI_SRC := $(wildcard src/cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard t/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:t/unit/%.c=$(BUILD)/t/%.t)
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

PROVE   := prove --exec '' --timer

.PHONY: all deps deps-test build-all run test test-unit test-asan asan install clean fuzz bench

all: deps
	@$(MAKE) --no-print-directory build-all

deps:
	@tools/deps.sh build

deps-test:
	@tools/deps.sh build test

# Everything below runs with dependencies present (pkg-config works).
ifneq ($(filter build-all $(BUILD)/% asan,$(MAKECMDGOALS)),)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
endif

build-all: $(BUILD)/moonpostd $(BUILD)/moonpost $(UNIT_BIN) $(BENCH_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	@$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libmoonpost.a: $(LIB_OBJ)
	@ar rcs $@ $^

$(BUILD)/moonpostd: $(D_OBJ) $(BUILD)/libmoonpost.a
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/moonpost: $(CLI_OBJ) $(BUILD)/libmoonpost.a
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libmoonpost.a
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libmoonpost.a $(LDLIBS_ALL)

$(BUILD)/t/%.t: t/unit/%.c t/unit/tap.h $(BUILD)/libmoonpost.a
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) -It/unit -o $@ $< $(BUILD)/libmoonpost.a $(LDLIBS_ALL)

asan: deps
	@$(MAKE) --no-print-directory build-all BUILD=build/asan SAN=1 CC=gcc

run: all
	@tools/dev-run.sh

# The whole suite on the normal build, then again on ASan+UBSan.
test: deps-test
	@$(MAKE) --no-print-directory build-all
	@$(MAKE) --no-print-directory build-all BUILD=build/asan SAN=1 CC=gcc
	@echo "== suite on build/ =="
	MOONPOSTD=$(CURDIR)/build/moonpostd $(PROVE) build/t/*.t t/*.t
	@echo "== suite on build/asan/ (ASan+UBSan) =="
	MOONPOSTD=$(CURDIR)/build/asan/moonpostd MP_SANITIZE=1 $(PROVE) build/asan/t/*.t t/*.t

# Benchmarks: moonpost vs the ISPmail anchor (../shared/anchors) in one run.
# BENCH=name runs one (bench/NAME.sh); default: all of bench/*.sh.
bench: all
	@tools/deps.sh test bench
	@for b in $(if $(BENCH),bench/$(BENCH).sh,bench/*.sh); do echo "== $$b"; $$b || exit 1; done

fuzz: deps
	@tools/deps.sh fuzz
	@tools/fuzz.sh $(FUZZ_SECONDS)

install: all
	install -D -m 0755 $(BUILD)/moonpostd $(DESTDIR)$(PREFIX)/sbin/moonpostd
	install -D -m 0755 $(BUILD)/moonpost $(DESTDIR)$(PREFIX)/bin/moonpost
	test -e $(DESTDIR)/etc/moonpost/moonpost.conf || \
		install -D -m 0640 conf/moonpost.conf $(DESTDIR)/etc/moonpost/moonpost.conf
	mkdir -p $(DESTDIR)$(PREFIX)/share/moonpost $(DESTDIR)/etc/moonpost
	cp -r lua $(DESTDIR)$(PREFIX)/share/moonpost/
	test -e $(DESTDIR)/etc/moonpost/rules || cp -r rules $(DESTDIR)/etc/moonpost/
	test -e $(DESTDIR)/etc/moonpost/policies || cp -r policies $(DESTDIR)/etc/moonpost/
	install -D -m 0644 conf/moonpostd.service $(DESTDIR)/etc/systemd/system/moonpostd.service

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
