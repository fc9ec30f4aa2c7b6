#!/usr/bin/env bash
# Compile the shared sched_ext schedulers (scx_simple, scx_central) from
# $SCHEDLAB_SCX_DIR (default ../shared/scx beside this checkout) into
# OUT_DIR, with the material's own build-bpf.sh; `make bench` and `make
# soak` run them. Fails, saying so, when the material is missing.
#   scripts/build-scx.sh WHO OUT_DIR      (WHO names the caller in messages)
set -euo pipefail
who=$1 out=$2
scx=${SCHEDLAB_SCX_DIR:-../shared/scx}
if [ ! -x "$scx/build-bpf.sh" ]; then
    echo "$who: the sched_ext material is missing at $scx: set SCHEDLAB_SCX_DIR" >&2
    exit 1
fi
mkdir -p "$out"
for s in scx_simple scx_central; do
    "$scx/build-bpf.sh" "$scx/schedulers/$s.bpf.c" "$out/$s.bpf.o"
done
