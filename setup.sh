#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build and run schedlab.
# Idempotent: re-running it checks and does nothing new.
set -euo pipefail

need_apt=()
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)   # micropb-gen runs protoc
command -v objcopy >/dev/null 2>&1 || need_apt+=(binutils)           # ELF -> flat .bin, nm, readelf
command -v make >/dev/null 2>&1 || need_apt+=(make)
# sched_ext BPF objects: the tests compile schedulers with clang's BPF
# target (clang-19 is what Debian bookworm ships; 16 or newer works).
command -v clang-19 >/dev/null 2>&1 || need_apt+=(clang-19)
command -v llvm-objdump-19 >/dev/null 2>&1 || need_apt+=(llvm-19)   # the loader's tests read objects with it
# The Perfetto test decodes traces with Python's protobuf against Perfetto's
# published schema, as a Perfetto user's script would.
/usr/bin/python3 -c 'import google.protobuf' >/dev/null 2>&1 || need_apt+=(python3-protobuf)   # Debian's python3
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup not found; install Rust stable with rustup first" >&2
    exit 69
fi
if ! rustup target list --installed | grep -qx x86_64-unknown-none; then
    echo "setup: adding the x86_64-unknown-none target (guest images)"
    rustup target add x86_64-unknown-none
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    echo "setup: warning: /dev/kvm is missing or not read/writable by $(id -un); schedlab needs it to run guests" >&2
fi
echo "setup: ok (protoc $(protoc --version | awk '{print $2}'), $(rustc --version), $(clang-19 --version | head -1))"
