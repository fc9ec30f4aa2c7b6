# schedlab build. Guests first (flat images + size check), then the host.
# `make` builds everything; `make test` is what CI runs (see README).

GUEST_TARGET := x86_64-unknown-none
POLICY_PKGS := $(foreach p,$(shell ./build.sh policies),-p policy-$(p))
GUEST_PKGS := -p schedlab-kernel $(foreach op,$(shell ./build.sh operations),-p op-$(op)) $(foreach p,$(shell ./build.sh policies),-p policy-$(p)) -p schedlab-policy-sdk -p schedlab-bpf-vm

.PHONY: all guests host check-sizes run test unit lint layout fmt bench soak fuzz fuzz-cmin clean

all: check-sizes host

guests:
	./build.sh guests

check-sizes: guests
	scripts/check-binary-sizes.sh

host: guests
	./build.sh host

# The main job on a default workload.
run: all
	./target/release/schedlab spin

# Everything CI checks: formatting, lints, image sizes, unit and
# end-to-end tests (the e2e tests boot real VMs through /dev/kvm).
test: lint check-sizes unit

# The policy images' own tests run on the host through policy_sdk::sim
# (no KVM); guest crates are not default members, so they are named.
unit: guests
	cargo test
	cargo test $(POLICY_PKGS)

lint: layout
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets $(POLICY_PKGS) -- -D warnings
	cargo clippy --profile guest --target $(GUEST_TARGET) $(GUEST_PKGS) -- -D warnings

# Imports point one way and ARCHITECTURE.md's map matches the crates.
layout:
	scripts/check-layout.sh

fmt:
	cargo fmt --all

bench: all
	scripts/bench.sh

# Every operation's defaults, an SMP case and every example, N times each,
# one VM at a time: false failures per command (not part of `make test`).
N ?= 20
soak: all
	scripts/soak.sh $(N)

# Fuzz the host's readers of guest data and input files under AFL++
# (host/fuzz), FUZZ_SECONDS per target, one target at a time; installs
# cargo-afl when missing. Prints executions and crashes per target and
# copies crashes to host/fuzz/crashes/. `make test` needs none of this:
# it replays the corpora and crashes as plain tests.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# Merge what the last `make fuzz` found into host/fuzz/corpus/, minimised.
fuzz-cmin:
	scripts/fuzz.sh --cmin $(FUZZ_TARGETS)

clean:
	cargo clean
