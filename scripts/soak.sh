#!/usr/bin/env bash
# `make soak N=300`: run the defaults of every operation, the SMP spin the
# issue tracker names, the two real sched_ext schedulers (compiled from
# $SCHEDLAB_SCX_DIR, default ../shared/scx) and every examples/ scenario N
# times each, one VM at
# a time, and count the outcomes per command. A default run is expected to
# pass: every `fail` (exit 1) or `error` (exit 70 and the rest) is a false
# failure unless the run really is broken, and the script exits 1 when it
# counts any. `inconclusive` (exit 2) is counted apart: an honest "this
# run cannot tell", not an alarm.
#
#   scripts/soak.sh [N]       (default 20; SCHEDLAB=path/to/schedlab)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SCHEDLAB:-target/release/schedlab}
N=${1:-20}
BPF_DIR=${CARGO_TARGET_DIR:-target}/soak/bpf
scripts/build-scx.sh soak "$BPF_DIR"
exec python3 - "$BIN" "$N" "$BPF_DIR" <<'PY'
import glob, subprocess, sys, time

bin_, n, bpf_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# One line per command: the operations with their defaults (the list comes
# from the binary's own --help, so a new operation is soaked too), one SMP
# case, and every example file.
help_ = subprocess.run([bin_, "--help"], capture_output=True, text=True).stdout
ops, in_cmds = [], False
for line in help_.splitlines():
    if line.startswith("Commands:"):
        in_cmds = True
        continue
    if in_cmds:
        if not line.startswith("  "):
            break
        name = line.split()[0]
        # Not operations: the scenario runner (its files come below) and
        # the tools.
        if name not in ("run", "policies", "policy", "compare", "gauntlet", "help"):
            ops.append([name])
cmds = ops + [["spin", "--cpus", "2", "--tasks", "3", "--policy", p] for p in ("vtime", "rr", "eevdf")]
cmds += [["spin", "--tasks", "4", "--policy", f"{bpf_dir}/scx_simple.bpf.o"],
         ["spin", "--cpus", "2", "--tasks", "4", "--policy", f"{bpf_dir}/scx_central.bpf.o"]]
# The real-time policies' claims: EDF at U = 0.80 and 0.95 (at 100 Hz,
# polling idle: see host/cli/tests/realtime.rs), rate-monotonic below its
# bound.
rt = ["periodic", "--period", "20ms,40ms,80ms", "--duration", "1s"]
edf_flags = ["--policy", "edf", "--tick-hz", "100", "--idle", "poll"]
cmds += [rt + edf_flags + ["--runtime", "6ms,12ms,16ms"],
         rt + edf_flags + ["--runtime", "6ms,14ms,24ms"],
         rt + ["--policy", "fp", "--runtime", "4ms,8ms,24ms"]]
cmds += [["run", f] for f in sorted(glob.glob("examples/*.toml"))]
outcome = {0: "pass", 1: "fail", 2: "inconclusive"}
rows, false = [], 0
t0 = time.monotonic()
for ci, cmd in enumerate(cmds):
    counts = {"pass": 0, "fail": 0, "inconclusive": 0, "error": 0}
    first_bad = None
    for i in range(n):
        r = subprocess.run([bin_, *cmd], capture_output=True, text=True)
        kind = outcome.get(r.returncode, "error")
        counts[kind] += 1
        if kind in ("fail", "error") and first_bad is None:
            first_bad = (r.returncode, (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:])
        done = ci * n + i + 1
        print(f"\rsoak: {done}/{len(cmds) * n} runs, {time.monotonic() - t0:.0f} s", end="",
              file=sys.stderr, flush=True)
    false += counts["fail"] + counts["error"]
    rows.append((" ".join(cmd), counts, first_bad))
print(file=sys.stderr)
w = max(len(r[0]) for r in rows)
print(f"{'command':<{w}}  {'runs':>5}  {'pass':>5}  {'incon.':>6}  {'fail':>5}  {'error':>5}")
for name, c, bad in rows:
    print(f"{name:<{w}}  {n:>5}  {c['pass']:>5}  {c['inconclusive']:>6}  {c['fail']:>5}  {c['error']:>5}")
    if bad:
        print(f"{'':<{w}}  first: exit {bad[0]}: {' / '.join(bad[1])}")
print(f"soak: {false} false failures in {len(rows) * n} runs of {len(rows)} commands")
sys.exit(1 if false else 0)
PY
