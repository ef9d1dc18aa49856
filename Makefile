# postbox: a hand-rolled epoll reactor, a POSIX message queue server, and its client.
#
#   make run-server [ARGS='--queue /demo']   build, then run the server
#   make send MSG='hello' [PRIO=N] [QUEUE=/name]   send one message
#   make test                                fmt check, clippy, every test
#   make bench [QUICK=1]                     benchmarks (see docs/performance.md)

CARGO ?= cargo
BIN   := $(or $(CARGO_TARGET_DIR),target)/release

# MSG reaches the client as exactly one argument, whatever it holds: the raw
# text (no make expansion) inside single quotes, each ' written as '\''.
quote = '$(subst ','\'',$(1))'

.PHONY: all build quiet-build run-server send test bench doc clean

all: build

build:
	$(CARGO) build --release --workspace

# These two print only what the programs print: the build says what it does
# on stderr, and make does not echo the commands.
quiet-build:
	@$(CARGO) build --release --workspace --quiet >&2

run-server: quiet-build
	@$(BIN)/server $(ARGS)

send: quiet-build
	@if [ -z $(call quote,$(value MSG)) ]; then echo "usage: make send MSG='text' [PRIO=N] [QUEUE=/name]" >&2; exit 2; fi
	@$(BIN)/client $(if $(PRIO),--priority $(call quote,$(PRIO))) $(if $(QUEUE),--queue $(call quote,$(QUEUE))) -- $(call quote,$(value MSG))

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --workspace --no-deps --quiet
	$(CARGO) test --workspace

# Builds the release binaries, then runs bench/postbox (one table of ours
# against mio and a C server, with nproc, kernel and date) and bench/wake
# (the reactor's wake against mio's); docs/performance.md says how to read them.
# QUICK=1 does a tenth of the work, once: a smoke test in a few seconds.
bench: build
	$(CARGO) bench -p bench --bench postbox -- $(if $(filter 1,$(QUICK)),--quick)
	$(CARGO) bench -p bench --bench wake -- $(if $(filter 1,$(QUICK)),--quick)

doc:
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --workspace --no-deps

clean:
	$(CARGO) clean
