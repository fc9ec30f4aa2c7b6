#!/usr/bin/env bash
# Compile the shared sched_ext schedulers (scx_simple, scx_central) into
# OUT_DIR, with the material's own build-bpf.sh; `make bench` and `make
# soak` run them. The material: $SCHEDLAB_SCX_DIR if set, else
# ../shared/scx beside this checkout if it is there, else the copy in
# third_party/scx (the rule of host/bpf/tests/common/material.rs). Fails,
# saying so, when it is missing.
#   scripts/build-scx.sh WHO OUT_DIR      (WHO names the caller in messages)
set -euo pipefail
who=$1 out=$2
if [ -n "${SCHEDLAB_SCX_DIR:-}" ]; then
    scx=$SCHEDLAB_SCX_DIR
elif [ -x ../shared/scx/build-bpf.sh ]; then
    scx=../shared/scx
else
    scx=third_party/scx
fi
if [ ! -x "$scx/build-bpf.sh" ]; then
    echo "$who: the sched_ext material is missing at $scx: set SCHEDLAB_SCX_DIR" >&2
    exit 1
fi
mkdir -p "$out"
for s in scx_simple scx_central; do
    "$scx/build-bpf.sh" "$scx/schedulers/$s.bpf.c" "$out/$s.bpf.o"
done
