#!/usr/bin/env bash
# Build schedlab: guest images first, then the host.
#
#   ./build.sh guests   kernel + every operation -> target/guest/{NAME.elf,NAME.bin}
#   ./build.sh host     the `schedlab` binary (embeds target/guest/*)
#   ./build.sh          both, in that order
#   (policy images under guest/policies/ -> target/guest/policies/NAME.elf)
#
# The list of operations is the directories under guest/operations/: each
# directory NAME holds the package `op-NAME` whose binary is `NAME`.
# Nothing here (or anywhere else) lists them by hand.
set -euo pipefail
cd "$(dirname "$0")"

GUEST_TARGET=x86_64-unknown-none
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT="$TARGET_DIR/guest"
OBJCOPY=${OBJCOPY:-objcopy}

operations() {
    for d in guest/operations/*/; do
        [ -f "$d/Cargo.toml" ] && basename "$d"
    done
}

# Policy images: the directories under guest/policies/, package
# `policy-NAME`, binary NAME.
policies() {
    for d in guest/policies/*/; do
        [ -f "$d/Cargo.toml" ] && basename "$d"
    done
}

build_guests() {
    local pkgs=(-p schedlab-kernel) op p
    for op in $(operations); do pkgs+=(-p "op-$op"); done
    for p in $(policies); do pkgs+=(-p "policy-$p"); done
    # --profile guest: the guest profile lives in the workspace Cargo.toml
    # (cargo ignores [profile] in members); the core refuses to compile if
    # it did not apply.
    cargo build --profile guest --target "$GUEST_TARGET" "${pkgs[@]}"
    mkdir -p "$OUT"
    local built="$TARGET_DIR/$GUEST_TARGET/guest"
    install -m 0644 "$built/kernel" "$OUT/kernel.elf"
    "$OBJCOPY" -O binary "$OUT/kernel.elf" "$OUT/kernel.bin"
    for op in $(operations); do
        install -m 0644 "$built/$op" "$OUT/$op.elf"
        "$OBJCOPY" -O binary "$OUT/$op.elf" "$OUT/$op.bin"
    done
    mkdir -p "$OUT/policies"
    for p in $(policies); do
        install -m 0644 "$built/$p" "$OUT/policies/$p.elf"
    done
    echo "guest images in $OUT: $(cd "$OUT" && echo *.bin) policies/$(cd "$OUT/policies" && echo *.elf)"
}

build_host() {
    cargo build --release -p schedlab
}

case "${1:-all}" in
    guests) build_guests ;;
    host) build_host ;;
    all) build_guests && build_host ;;
    operations) operations ;;
    policies) policies ;;
    *) echo "usage: $0 [guests|host|all|operations]" >&2; exit 64 ;;
esac
