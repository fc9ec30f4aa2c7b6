#!/usr/bin/env bash
# `make bench`: the numbers schedlab is judged on, each printed beside a
# baseline measured in the same run (these machines are noisy: compare
# ratios, not absolute times).
#
#   boot     VM creation -> first guest message, median of N runs
#            (baseline: starting the same schedlab binary for --help),
#            and where the whole run's host time went (timing.*_us)
#   switch   spin units/s with 1 task vs 8 tasks at a 10 us slice; the
#            drop is the cost of the context switches (baseline: 1 task)
#   tick     spin units/s at --tick-hz 100, 1000, 5000 (baseline: 100)
#   monitor  spin units/s with the monitor off vs sampling at 10 kHz, and
#            the highest sample rate sustained (baseline: monitor off)
#   wake     cross-CPU ping-pong round trips, --idle halt vs --idle poll
#            (baselines: halt, and two host threads bouncing a cache line
#            between the two CPUs, `host-pingpong spin`: the floor, run
#            right before each guest run because it moves with where the
#            machine under us puts our CPUs; the guest/floor ratio)
#   policy   the ops table's price: context switches under `dfl` (an
#            image with no callbacks: the core makes sched_ext's default
#            decisions itself) vs `defaults` (the same decisions made by
#            every SDK callback, counted); the ratio of the per-switch
#            costs (aim <= 1.05) and the cost of one callback
#            (baseline: dfl)
#   bpf      a scheduling decision through the real sched_ext object
#            scx_simple (compiled here from $SCHEDLAB_SCX_DIR, run by the
#            BPF runtime's interpreter) vs the built-in `vtime` image: the
#            per-switch costs as in `policy` and their ratio (aim <= 2;
#            baseline: vtime), and each object's load time on the host
#   preempt  what one preempt_point() costs when it does not switch
#   pingpong same-CPU message round trip: `schedlab pingpong --same-cpu`
#            vs two host threads pinned to one CPU bouncing a byte over two
#            pipes (`host-pingpong pipe`, scripts/host-pingpong.c;
#            baseline: host Linux)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SCHEDLAB:-target/release/schedlab}
RUNS=${RUNS:-20}
HOST_PINGPONG=${CARGO_TARGET_DIR:-target}/bench/host-pingpong
mkdir -p "$(dirname "$HOST_PINGPONG")"
${CC:-cc} -O2 -Wall -pthread -o "$HOST_PINGPONG" scripts/host-pingpong.c
BPF_DIR=${CARGO_TARGET_DIR:-target}/bench/bpf
scripts/build-scx.sh bench "$BPF_DIR"
exec python3 - "$BIN" "$RUNS" "$HOST_PINGPONG" "$BPF_DIR" <<'PY'
import json, statistics, subprocess, sys, time

bin_, runs, host_pingpong, bpf_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# Issue 13's figures: (name, value, baseline text, target text, met?),
# printed again together at the end.
summary = []
def figure(name, value, baseline, target, ok):
    summary.append((name, value, baseline, target, ok))

def run(op, *args):
    out = subprocess.run([bin_, op, "--json", *args], capture_output=True, text=True)
    # A verdict (pass, fail, inconclusive) is not what is measured here:
    # only an error is.
    if out.returncode not in (0, 1, 2):
        sys.exit(f"schedlab {op} {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)

def spin(*args):
    return run("spin", *args)

def wall(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True)
    return (time.perf_counter() - t) * 1e6

# Boot: host-observed VM creation -> first frame drained, and the whole
# process, against a process that only parses --help.
first, whole, base = [], [], []
STEPS = ["prepare", "images", "open", "ram", "kvm", "load", "start", "run", "stop",
         "teardown", "analyse"]
steps = {k: [] for k in STEPS}
for _ in range(runs):
    base.append(wall([bin_, "--help"]))
    t = time.perf_counter()
    r = spin("--tasks", "1", "--duration", "1ms")
    whole.append((time.perf_counter() - t) * 1e6)
    first.append(r["timing"]["first_message_us"])
    for k in ("guest_entry", "guest_ready"):
        v = r["timing"].get(f"{k}_us")
        if v is not None:
            steps.setdefault(k, []).append(v)
    for k in STEPS:
        v = r["timing"].get(f"{k}_us")
        if v is not None:
            steps[k].append(v)
med = statistics.median
def mark(ok):
    return "ok  " if ok else "MISS"

print(f"boot ({runs} runs, medians; [ok]/[MISS] against the target)")
print(f"  VM creation -> first guest message  {med(first):10.0f} us  [{mark(med(first) <= 1500)}] target <= 1500 us")
print(f"  whole `spin --duration 1ms` process {med(whole):10.0f} us")
print(f"  baseline `schedlab --help` process  {med(base):10.0f} us")
print(f"  ratio whole/baseline                {med(whole)/med(base):10.2f}x  [{mark(med(whole)/med(base) <= 2.5)}] target <= 2.5x")
print("  where the whole run's host time went (timing.*_us, median, max):")
for k in STEPS:
    if steps[k]:
        print(f"    {k:<9} {med(steps[k]):8.0f} us  max {max(steps[k]):8.0f} us")
if steps.get("guest_ready"):
    print("  the guest's own clock, from VM creation (timing.guest_*_us, median):")
    print(f"    CPU 0 enters the core (guest_entry) {med(steps['guest_entry']):8.0f} us")
    print(f"    operation spawned (guest_ready)     {med(steps['guest_ready']):8.0f} us")
figure("boot: VM creation -> first guest message", f"{med(first):.0f} us",
       f"guest ready at {med(steps['guest_ready']):.0f} us" if steps.get("guest_ready") else "-",
       "<= 1500 us", med(first) <= 1500)
figure("whole `spin --duration 1ms` / `--help`", f"{med(whole)/med(base):.2f}x",
       f"--help {med(base):.0f} us", "<= 2.5x", med(whole)/med(base) <= 2.5)

# Context switches: 1 task vs 8 tasks at a 10 us and a 1 us slice, 500 ms
# each, 3 runs. A switch is a few dozen instructions at CPL3, so its cost
# may hide in run-to-run noise: the bound printed is what the noise allows.
def ups_alternated(slice_, n=5):
    # 1 task and 8 tasks alternated, so a slow stretch of the host hits both.
    out = {1: ([], []), 8: ([], [])}
    for _ in range(n):
        for tasks in (1, 8):
            r = spin("--tasks", str(tasks), "--slice", slice_, "--duration", "500ms")
            out[tasks][0].append(r["totals"]["units_per_sec"])
            out[tasks][1].append(sum(t["switches"] for t in r["tasks"]) / (r["elapsed_ns"] / 1e9))
    return [(med(v), min(v), max(v), med(sw)) for v, sw in (out[1], out[8])]
for slice_ in ("10us", "1us"):
    (u1, lo1, hi1, s1), (u8, lo8, hi8, s8) = ups_alternated(slice_)
    print(f"context switch (spin --slice {slice_}, 500 ms, 1 and 8 tasks alternated, median of 5)")
    print(f"  1 task : {u1:14,.0f} units/s  {s1:10,.0f} switches/s")
    print(f"  8 tasks: {u8:14,.0f} units/s  {s8:10,.0f} switches/s")
    print(f"  ratio 8 tasks / 1 task             {u8/u1:10.3f}")
    extra = s8 - s1
    lost = 1 - u8 / u1
    noise = (max(hi1, hi8) - min(lo1, lo8)) / u1
    if extra > 0:
        est = lost / extra * 1e9
        bound = max(lost, noise) / extra * 1e9
        print(f"  cost per switch ~ {est:6.1f} ns (<= {bound:.1f} ns given {noise*100:.1f}% run-to-run noise)")
        if slice_ == "1us":
            print(f"  [{mark(est <= 120)}] target <= 120 ns")
            figure("context switch at a 1 us slice (8 tasks vs 1)", f"{est:.0f} ns",
                   f"1 task {u1:,.0f} units/s", "<= 120 ns", est <= 120)

# The ops table: 8 tasks at a 1 us slice under `dfl` (no callbacks) and
# under `defaults` (the same decisions through every callback, which it
# counts and logs at exit as "callbacks: N"), against 1 task under `dfl`,
# 500 ms each, alternated, median of 5. The time a switch costs is the
# work lost against 1 task divided by the switches.
one, lost, calls = [], {"dfl": [], "defaults": []}, []
for _ in range(5):
    u1 = spin("--policy", "dfl", "--tasks", "1", "--slice", "1us", "--duration", "500ms")["totals"]["units_per_sec"]
    one.append(u1)
    for policy in ("dfl", "defaults"):
        r = spin("--policy", policy, "--tasks", "8", "--slice", "1us", "--duration", "500ms")
        switches = sum(t["switches"] for t in r["tasks"])
        per_s = switches / (r["elapsed_ns"] / 1e9)
        lost[policy].append((1 - r["totals"]["units_per_sec"] / u1) / per_s * 1e9)
        n = [int(l["text"].split(": ")[1]) for l in r.get("logs", []) if l["text"].startswith("callbacks: ")]
        if policy == "defaults" and n:
            calls.append(n[0] / max(switches, 1))
dfl_ns, tab_ns = med(lost["dfl"]), med(lost["defaults"])
noise = (max(one) - min(one)) / med(one)
print("policy ops table (spin --slice 1us, 8 tasks vs 1, 500 ms, median of 5)")
print(f"  dfl (no callbacks)        {dfl_ns:8.1f} ns per switch")
print(f"  defaults (every callback) {tab_ns:8.1f} ns per switch"
      + (f", {med(calls):.2f} callbacks per switch" if calls else ""))
print(f"  ratio defaults/dfl        {tab_ns/dfl_ns:8.3f}  (aim <= 1.05; 1-task run-to-run noise {noise*100:.1f}%)")
if calls:
    print(f"  one callback            ~ {(tab_ns - dfl_ns) / med(calls):8.1f} ns")

# A decision through BPF: 8 tasks at a 1 us slice under the built-in
# `vtime` and under scx_simple (weighted vtime too, as BPF), per-switch
# cost against 1 task under `dfl`, alternated, median of 5.
simple = f"{bpf_dir}/scx_simple.bpf.o"
one, lost = [], {"vtime": [], simple: []}
for _ in range(5):
    u1 = spin("--policy", "dfl", "--tasks", "1", "--slice", "1us", "--duration", "500ms")["totals"]["units_per_sec"]
    one.append(u1)
    for policy in ("vtime", simple):
        r = spin("--policy", policy, "--tasks", "8", "--slice", "1us", "--duration", "500ms")
        # A run a live check stopped has no throughput: say so, skip it.
        if r["elapsed_ns"] is None or not r["totals"] or r["totals"]["units_per_sec"] is None:
            print(f"  ({policy}: a run ended {r['status']}: "
                  f"{(r.get('ended_early') or r.get('error') or {}).get('message')}; skipped)")
            continue
        per_s = sum(t["switches"] for t in r["tasks"]) / (r["elapsed_ns"] / 1e9)
        lost[policy].append((1 - r["totals"]["units_per_sec"] / u1) / per_s * 1e9)
v_ns, b_ns = med(lost["vtime"]), med(lost[simple])
noise = (max(one) - min(one)) / med(one)
print("bpf: a decision through scx_simple.bpf.o (spin --slice 1us, 8 tasks vs 1, 500 ms, median of 5)")
print(f"  vtime (built-in image)    {v_ns:8.1f} ns per switch")
print(f"  scx_simple (BPF)          {b_ns:8.1f} ns per switch")
print(f"  ratio scx_simple/vtime    {b_ns/v_ns:8.3f}  (aim <= 2; 1-task run-to-run noise {noise*100:.1f}%)")
for obj in ("scx_simple", "scx_central"):
    ts = []
    for _ in range(20):
        out = subprocess.run([bin_, "policies", f"{bpf_dir}/{obj}.bpf.o", "--json"], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"schedlab policies {obj}.bpf.o failed: {out.stderr.strip()}")
        ts.append(json.loads(out.stdout)["load_us"])
    print(f"  load {obj}.bpf.o on the host: {med(ts):8.0f} us (median of 20)")

def ups_median(n, *args):
    return med([spin(*args)["totals"]["units_per_sec"] for _ in range(n)])

print("tick rate (spin, 2 tasks, 1 vCPU, 500 ms, rates alternated, median of 5)")
tick = {hz: [] for hz in ("100", "1000", "5000")}
for _ in range(5):
    for hz in tick:
        tick[hz].append(spin("--tasks", "2", "--tick-hz", hz, "--duration", "500ms")["totals"]["units_per_sec"])
base = med(tick["100"])
for hz, v in tick.items():
    u = med(v)
    per = f"  {(1 - u/base) / (int(hz) - 100) * 1e6:5.1f} us a tick" if hz != "100" else ""
    print(f"  --tick-hz {hz:>4}: {u:14,.0f} units/s  ratio {u/base:6.3f}{per}")
cost = 1 - med(tick["1000"]) / base
print(f"  cost of the tick at 1 kHz against 100 Hz: {cost*100:.1f} %  [{mark(cost <= 0.03)}] target <= 3 %")
figure("tick cost at 1 kHz (against 100 Hz)", f"{cost*100:.1f} %", f"100 Hz {base:,.0f} units/s",
       "<= 3 %", cost <= 0.03)

print("monitor (spin, 2 tasks, 500 ms, median of 3)")
for cpus in ("1", "2"):
    off = ups_median(3, "--cpus", cpus, "--tasks", "2", "--sample-hz", "0", "--duration", "500ms")
    on = ups_median(3, "--cpus", cpus, "--tasks", "2", "--sample-hz", "10000", "--duration", "500ms")
    print(f"  {cpus} vCPU(s): off {off:12,.0f}  10 kHz {on:12,.0f} units/s  ratio {on/off:6.3f}")
for cpus, hz in (("1", "100000"), ("2", "50000")):
    r = spin("--cpus", cpus, "--tasks", "2", "--sample-hz", hz, "--duration", "500ms")
    got = r["monitor"]["sample_hz_achieved"]
    print(f"  {cpus} vCPU(s): asked {int(hz):,}/s, sustained {got:,.0f}/s")

# The host floor moves with where the machine under us puts our two CPUs:
# two host threads bounce a cache line in about 0.05 us on some
# placements and 0.2-0.25 us on others, and it changes between runs
# (measured: 6 of 16 runs near, the rest far). A guest round trip is a
# dozen or two such transfers, so each guest run is paired with a floor
# measured just before it, and the ratio of the pair is printed too.
print("cross-CPU wake-up (ipc ping-pong, 2 vCPUs, 2000 round trips, median of 3 runs,")
print("  each right after its own host floor: two host threads, one cache line)")
def host_floor():
    out = subprocess.run([host_pingpong, "spin", "20000"], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])
for idle in ("halt", "poll"):
    pairs = []
    for _ in range(3):
        f = host_floor()
        r = run("ipc", "--cpus", "2", "--rounds", "2000", "--idle", idle).get("result")
        if r:
            pairs.append((f, r))
    if not pairs:
        print(f"  --idle {idle}: no result (every run failed)")
        continue
    p50 = med([r["rtt_p50_ns"] for _, r in pairs]) / 1000
    p99 = med([r["rtt_p99_ns"] for _, r in pairs]) / 1000
    f50 = med([f[0] for f, _ in pairs]) / 1000
    f99 = med([f[1] for f, _ in pairs]) / 1000
    times = med([r["rtt_p50_ns"] / max(f[0], 1) for f, r in pairs])
    runs_ = "  ".join(f"{r['rtt_p50_ns'] / 1000:.1f}/{f[0] / 1000:.2f}" for f, r in pairs)
    marks = ""
    if idle == "poll":
        marks = f"  [{mark(p50 <= 1.5)}] p50 <= 1.5 us  [{mark(p99 <= 10)}] p99 <= 10 us"
        figure("cross-CPU wake-up round trip p50 (--idle poll)", f"{p50:.1f} us",
               f"host floor {f50:.2f} us ({times:.0f}x)", "<= 1.5 us", p50 <= 1.5)
        figure("cross-CPU wake-up round trip p99 (--idle poll)", f"{p99:.1f} us",
               f"host floor {f99:.2f} us", "<= 10 us", p99 <= 10)
    print(f"  --idle {idle}: round trip p50 {p50:8.1f} us  p99 {p99:8.1f} us{marks}")
    print(f"    host floor p50 {f50:.2f} us  p99 {f99:.2f} us; p50 / floor {times:.0f}x"
          f" (each run, guest/floor us: {runs_})")

pp = med([spin("--tasks", "1", "--duration", "10ms")["totals"]["preempt_point_ns"] for _ in range(5)])
print(f"preempt_point() without a switch: {pp:.1f} ns (median of 5 runs)")

# Same-CPU ping-pong: schedlab's two guest tasks on one vCPU against two
# host threads pinned to one CPU over pipes, alternated in this run. Both
# time each round trip around a send and a receive and take the median
# (schedlab's is its histogram's bucket edge, within about 3 %).
ROUNDS = 10000
guest, host = [], []
for _ in range(3):
    r = run("pingpong", "--same-cpu", "--rounds", str(ROUNDS))["result"]
    guest.append(r["rtt"]["p50_ns"] / 1000)
    out = subprocess.run([host_pingpong, "pipe", str(ROUNDS), "0"], capture_output=True, text=True,
                         check=True)
    host.append(int(out.stdout) / 1000)
g, h = med(guest), med(host)
print(f"same-CPU ping-pong round trip ({ROUNDS} round trips, median of 3 runs)")
print(f"  schedlab pingpong --same-cpu      {g:10.2f} us")
print(f"  host Linux threads over pipes     {h:10.2f} us")
print(f"  ratio schedlab/host               {g/h:10.2f}x")
print(f"  [{mark(g <= 0.5)}] target <= 0.5 us")
figure("same-CPU ping-pong round trip", f"{g:.2f} us", f"host pipes {h:.2f} us ({g/h:.2f}x)",
       "<= 0.5 us", g <= 0.5)

print("issue 13's figures ([ok]/[MISS] against each target; baselines from this run)")
for name, value, baseline, target, ok in summary:
    print(f"  [{mark(ok)}] {name:<48} {value:>9}   target {target:<10} baseline: {baseline}")
PY
