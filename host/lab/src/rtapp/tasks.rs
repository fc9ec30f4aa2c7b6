//! rt-app's `tasks` -> scenario tasks. A thread object becomes a task
//! (`instance` -> count, `loop` -> loop, `cpus` -> affinity, SCHED_OTHER's
//! `priority`, which rt-app applies as the nice value, -> nice), and its
//! phases' events become the task's phases: one rt-app phase keeps its
//! events and folds its `loop` into the task's; several are unrolled
//! (each phase's events `loop` times) into the one list the model repeats.

use super::sched::sched;
use super::{Ctx, Globals, json};
use crate::scenario::diag::{Problem, suggest};
use crate::scenario::schema::{CpuList, Phase, Task, TimerSpec, WaitOn};
use abi::config::{SCENARIO_MAX_INSTANCES, SCENARIO_MAX_PHASES};
use abi::memmap::MAX_CPUS;
use jsonc_parser::ast::{Object, ObjectProp, Value};
use std::collections::HashSet;
use std::ops::Range;
use toml::Spanned;

/// rt-app's event names, in the order its parser tries them as key
/// prefixes (`runtime` before `run`, `memrun` before `mem`): a key is an
/// event if it starts with one, so `run0`, `sleep_b` and a repeated `run`
/// are all events.
const EVENTS: [&str; 20] = [
    "lock", "unlock", "wait", "signal", "broad", "sync", "sleep", "runtime", "run", "timer",
    "suspend", "resume", "memrun", "mem", "iorun", "yield", "barrier", "fork", "sem_post",
    "sem_wait",
];

/// Keys of a phase that are not events (also allowed on a thread).
const PHASE_KEYS: [&str; 11] = [
    "loop",
    "cpus",
    "priority",
    "policy",
    "dl-runtime",
    "dl-period",
    "dl-deadline",
    "util_min",
    "util_max",
    "nodes_membind",
    "taskgroup",
];

/// Keys only a thread has.
const TASK_ONLY_KEYS: [&str; 3] = ["instance", "delay", "phases"];

/// Longest rt-app time value, in µs: the scenario's limit (an hour).
const MAX_US: i64 = (crate::settings::HOUR_NS / 1000) as i64;

/// The event rt-app would take `key` for.
pub fn event_of(key: &str) -> Option<&'static str> {
    EVENTS.iter().copied().find(|e| key.starts_with(e))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Run,
    Sleep,
    Timer,
    Yield,
    Lock,
    Unlock,
    Wait,
    Signal,
    Broadcast,
    Barrier,
    Fork,
    SemPost,
    SemWait,
}

/// One event as the model runs it.
#[derive(Clone)]
struct Ev {
    op: Op,
    ns: u64,
    span: Range<usize>,
    path: String,
    /// A timer's `ref`, and whether it is in absolute mode.
    timer: Option<(String, bool)>,
    /// The sync object a lock, unlock, wait, signal, broadcast or barrier
    /// names, and for a wait the mutex too.
    sync: Option<(String, String)>,
}

impl Ev {
    fn phase(&self) -> Spanned<Phase> {
        let v = if self.ns.is_multiple_of(1000) {
            format!("{}us", self.ns / 1000)
        } else {
            format!("{}ns", self.ns)
        };
        let v = Spanned::new(self.span.clone(), v);
        let (obj, mutex) = self.sync.clone().unwrap_or_default();
        let obj = Spanned::new(self.span.clone(), obj);
        let p = match self.op {
            Op::Run => Phase::Run(v),
            Op::Sleep => Phase::Sleep(v),
            Op::Timer => {
                let (r, absolute) = self.timer.clone().unwrap_or_default();
                Phase::Timer(Spanned::new(
                    self.span.clone(),
                    TimerSpec {
                        period: v.into_inner(),
                        // rt-app makes a `unique...` ref the thread's own;
                        // any other is one timer for all that name it.
                        shared: (!r.starts_with("unique")).then_some(r),
                        absolute,
                    },
                ))
            }
            Op::Yield => Phase::Yield,
            Op::Lock => Phase::Lock(obj),
            Op::Unlock => Phase::Unlock(obj),
            Op::Signal => Phase::Signal(obj),
            Op::Broadcast => Phase::Broadcast(obj),
            Op::Barrier => Phase::Barrier(obj),
            Op::Fork => Phase::Fork(obj),
            Op::SemPost => Phase::SemPost(obj),
            Op::SemWait => Phase::SemWait(obj),
            Op::Wait => Phase::Wait(Spanned::new(
                self.span.clone(),
                WaitOn {
                    cond: obj.into_inner(),
                    mutex,
                },
            )),
        };
        Spanned::new(self.span.clone(), p)
    }
}

/// One rt-app phase, read.
struct RtPhase {
    repeat: u64,
    events: Vec<Ev>,
    /// Its `cpus` (the list as text, and where), if it gives them.
    cpus: Option<(String, Range<usize>)>,
}

/// The non-event properties of an object, each once.
pub(super) struct Props<'a, 'b> {
    list: Vec<&'a ObjectProp<'b>>,
}

impl<'a, 'b> Props<'a, 'b> {
    pub(super) fn get(&self, k: &str) -> Option<&'a ObjectProp<'b>> {
        self.list.iter().copied().find(|p| json::key(p) == k)
    }
}

/// Split an object into its events (in order) and its other keys (each
/// once, each known).
fn split<'a, 'b>(
    o: &'a Object<'b>,
    path: &str,
    known: &[&str],
    cx: &mut Ctx,
) -> (Vec<&'a ObjectProp<'b>>, Props<'a, 'b>) {
    let mut events = Vec::new();
    let mut props = Props { list: Vec::new() };
    for p in &o.properties {
        let k = json::key(p);
        if event_of(k).is_some() {
            events.push(p);
        } else if !known.contains(&k) {
            let mut all: Vec<&str> = known.to_vec();
            all.extend(EVENTS);
            cx.unknown(p, path, &all);
        } else if props.get(k).is_some() {
            cx.twice(p, &format!("{path}.{k}"));
        } else {
            props.list.push(p);
        }
    }
    (events, props)
}

pub fn tasks(
    o: &Object<'_>,
    key: &jsonc_parser::ast::ObjectPropName<'_>,
    g: &Globals,
    cx: &mut Ctx,
) -> Vec<Spanned<Task>> {
    if o.properties.is_empty() {
        cx.problems.push(Problem::at(
            json::span(key),
            "tasks: no thread (an rt-app file needs at least one)",
        ));
    }
    let mut out = Vec::new();
    // A set: a file may hold thousands of threads (each refused later).
    let mut names = HashSet::new();
    for p in &o.properties {
        let name = json::key(p);
        let path = format!("tasks.{name}");
        if !names.insert(name) {
            cx.twice(p, &path);
            continue;
        }
        let Some(t) = cx.check(json::object(&p.value, &path)) else {
            continue;
        };
        if let Some(task) = task(p, t, &path, g, cx) {
            out.push(Spanned::new(json::span(p), task));
        }
    }
    // A thread of 0 instances that no fork names never runs in rt-app.
    let forked: HashSet<String> = out
        .iter()
        .flat_map(|t| t.get_ref().phases.get_ref().iter())
        .filter_map(|p| match p.get_ref() {
            Phase::Fork(n) => Some(n.get_ref().clone()),
            _ => None,
        })
        .collect();
    out.retain(|t| {
        let t = t.get_ref();
        let idle = t.count.as_ref().is_some_and(|c| *c.get_ref() == 0)
            && !forked.contains(t.name.get_ref());
        if idle {
            cx.note(
                "0 instances and no fork of it: rt-app starts no thread for it, so it is left \
                 out",
                format!("tasks.{}.instance", t.name.get_ref()),
            );
        }
        !idle
    });
    out
}

fn task(p: &ObjectProp<'_>, t: &Object<'_>, path: &str, g: &Globals, cx: &mut Ctx) -> Option<Task> {
    let name = json::key(p);
    let name_span = json::span(&p.name);
    let known: Vec<&str> = PHASE_KEYS.into_iter().chain(TASK_ONLY_KEYS).collect();
    let (events, props) = split(t, path, &known, cx);
    let at = |k: &str| format!("{path}.{k}");
    let count = match props.get("instance") {
        None => Some(Spanned::new(name_span.clone(), 1)),
        Some(i) => {
            let n = json::int(
                &i.value,
                &at("instance"),
                0,
                SCENARIO_MAX_INSTANCES as i64,
                "",
            );
            // 0: only a fork starts it (dropped below if none does).
            cx.check(n).map(|n| Spanned::new(json::span(&i.value), n))
        }
    };
    // rt-app's thread loop: -1 (the default) is forever, the model's 0.
    let task_loop = props.get("loop").and_then(|l| {
        let n = json::int(&l.value, &at("loop"), -1, u32::MAX.into(), " (-1: forever)");
        match cx.check(n)? {
            0 => {
                cx.problems.push(Problem::at(
                    json::span(&l.value),
                    format!(
                        "{}: 0 passes run nothing: give a count, or -1 for forever",
                        at("loop")
                    ),
                ));
                None
            }
            -1 => None,
            n => Some((n as u64, json::span(&l.value))),
        }
    });
    // rt-app's delay (µs): a sleep once before the first pass.
    let delay = props.get("delay").and_then(|d| {
        let n = json::int(&d.value, &at("delay"), 0, MAX_US, " (µs)");
        match cx.check(n)? {
            0 => None,
            n => Some(Spanned::new(json::span(&d.value), format!("{n}us"))),
        }
    });
    let task_cpus = props.get("cpus").and_then(|c| {
        cx.check(cpus(&c.value, &at("cpus")))
            .map(|s| (s, json::span(&c.value)))
    });
    let sch = sched(&props, path, g, name_span.clone(), true, cx);
    for k in ["util_min", "util_max", "nodes_membind", "taskgroup"] {
        if props.get(k).is_some() {
            cx.note(
                "ignored (no utilization clamps, NUMA nodes or task groups in the guest)",
                at(k),
            );
        }
    }
    // The phases: rt-app's `phases` object, or the thread itself as one.
    let (phases, phases_span) = match props.get("phases") {
        Some(ph) => {
            if let Some(e) = events.first() {
                cx.problems.push(Problem::at(
                    json::span(&e.name),
                    format!(
                        "{}: a thread with 'phases' has its events in them",
                        at(json::key(e))
                    ),
                ));
            }
            let po = cx.check(json::object(&ph.value, &at("phases")))?;
            if po.properties.is_empty() {
                cx.problems.push(Problem::at(
                    json::span(&ph.value),
                    format!("{}: no phase (give at least one)", at("phases")),
                ));
            }
            let mut list = Vec::new();
            let mut seen = HashSet::new();
            for q in &po.properties {
                let qpath = format!("{path}.phases.{}", json::key(q));
                if !seen.insert(json::key(q)) {
                    cx.twice(q, &qpath);
                    continue;
                }
                let Some(o) = cx.check(json::object(&q.value, &qpath)) else {
                    continue;
                };
                let (ev, pp) = split(o, &qpath, &PHASE_KEYS, cx);
                let here = Here {
                    thread_name: name,
                    path: &qpath,
                    span: json::span(&q.name),
                    thread: false,
                };
                if let Some(ph) = phase(&ev, &pp, &here, g, cx) {
                    list.push(ph);
                }
            }
            (list, json::span(&ph.value))
        }
        None => {
            // The thread's own loop is the thread's; its phase runs once.
            let mut one = Props {
                list: props.list.clone(),
            };
            one.list.retain(|p| json::key(p) != "loop");
            let here = Here {
                thread_name: name,
                path,
                span: name_span.clone(),
                thread: true,
            };
            let ph = phase(&events, &one, &here, g, cx);
            (ph.into_iter().collect(), json::span(t))
        }
    };
    let (events, repeat) = flatten(&phases, task_loop.as_ref(), path, phases_span.clone(), cx)?;
    timers_once(&events, cx);
    // A thread with a timer is periodic to the policy (the scenario's
    // task attributes); a deadline needs one.
    let periodic = events.iter().any(|e| e.op == Op::Timer);
    // SCHED_DEADLINE's reservation is what the policy reads, as Linux's
    // sched_setattr sets it; a timer then only paces the thread.
    let reserved = sch.period.is_some();
    if periodic && !reserved {
        cx.note(
            "periodic to the policy: period the first timer's, runtime the run events of a \
             pass, deadline the period (or SCHED_DEADLINE's dl-deadline)",
            path,
        );
    }
    let deadline = sch.deadline.filter(|_| periodic || reserved);
    let affinity = same_cpus(&phases, task_cpus, cx);
    let repeat_span = task_loop.map_or(name_span.clone(), |(_, s)| s);
    Some(Task {
        name: Spanned::new(name_span, name.to_string()),
        count,
        weight: None,
        nice: sch.nice,
        priority: sch.priority,
        affinity: affinity.map(|(s, span)| Spanned::new(span, CpuList(s))),
        repeat: Some(Spanned::new(repeat_span, repeat)),
        delay,
        subscribe: Vec::new(),
        deadline,
        runtime: sch.runtime,
        period: sch.period,
        phases: Spanned::new(phases_span, events.iter().map(Ev::phase).collect()),
    })
}

/// The phases as one list the model repeats, and how often (0: until
/// the duration). One phase folds its loop into the thread's; several
/// are unrolled, which must fit the model's phases per task.
fn flatten(
    phases: &[RtPhase],
    task_loop: Option<&(u64, Range<usize>)>,
    path: &str,
    span: Range<usize>,
    cx: &mut Ctx,
) -> Option<(Vec<Ev>, i64)> {
    let limit = SCENARIO_MAX_PHASES as u64;
    let fits = |n: u64, cx: &mut Ctx, how: &str| {
        if n > limit {
            cx.problems.push(Problem::at(
                span.clone(),
                format!(
                    "{path}: {how} {n} events per pass, but a scenario task holds at most \
                     {limit}"
                ),
            ));
            return false;
        }
        true
    };
    match phases {
        [] => None,
        [one] => {
            if !fits(one.events.len() as u64, cx, "the thread has") {
                return None;
            }
            let repeat = match task_loop {
                None => 0,
                Some((n, s)) => match n.checked_mul(one.repeat).filter(|r| *r <= u32::MAX.into()) {
                    Some(r) => r as i64,
                    None => {
                        cx.problems.push(Problem::at(
                            s.clone(),
                            format!(
                                "{path}: the thread's loop times its phase's loop is more than \
                                 {} passes",
                                u32::MAX
                            ),
                        ));
                        return None;
                    }
                },
            };
            Some((one.events.clone(), repeat))
        }
        many => {
            let total = many.iter().try_fold(0u64, |acc, p| {
                acc.checked_add((p.events.len() as u64).checked_mul(p.repeat)?)
            });
            if !fits(
                total.unwrap_or(u64::MAX),
                cx,
                "unrolling the phase loops gives",
            ) {
                return None;
            }
            let events = many
                .iter()
                .flat_map(|p| (0..p.repeat).flat_map(|_| p.events.iter().cloned()))
                .collect();
            Some((events, task_loop.map_or(0, |(n, _)| *n as i64)))
        }
    }
}

/// The model keeps one timer per timer event: a `ref` used by two events
/// of a pass (two timer keys, or one unrolled) would be two timers here.
fn timers_once(events: &[Ev], cx: &mut Ctx) {
    let mut seen: Vec<&str> = Vec::new();
    for e in events {
        let Some(r) = e.timer.as_ref().map(|(r, _)| r.as_str()) else {
            continue;
        };
        if !r.starts_with("unique") {
            // A shared timer: one activation for all its uses.
            continue;
        }
        if seen.contains(&r) {
            let n = events
                .iter()
                .filter(|x| x.timer.as_ref().is_some_and(|(t, _)| t == r))
                .count();
            cx.problems.push(Problem::at(
                e.span.clone(),
                format!(
                    "{}: timer '{r}' is used by {n} events per pass (phase loops unrolled): a \
                     timer shared between events is not supported yet (the scenario model \
                     keeps one timer per timer event); give each a ref of its own, or one \
                     phase whose loop repeats it",
                    e.path
                ),
            ));
            return;
        }
        seen.push(r);
    }
}

/// The task's affinity: every phase must run on the same CPUs (the
/// model's affinity is the task's).
fn same_cpus(
    phases: &[RtPhase],
    task: Option<(String, Range<usize>)>,
    cx: &mut Ctx,
) -> Option<(String, Range<usize>)> {
    let mut chosen: Option<(String, Range<usize>)> = None;
    for p in phases {
        let eff = p.cpus.clone().or_else(|| task.clone());
        match (&chosen, eff) {
            (None, Some(e)) => chosen = Some(e),
            (Some(c), Some(e)) if c.0 != e.0 => {
                cx.problems.push(Problem::at(
                    e.1,
                    format!(
                        "cpus [{}] differ from another phase's [{}]: per-phase CPU affinity is \
                         not supported yet (every phase of a thread must run on the same CPUs)",
                        e.0, c.0
                    ),
                ));
                return None;
            }
            (Some(c), None) if phases.len() > 1 => {
                cx.problems.push(Problem::at(
                    c.1.clone(),
                    format!(
                        "cpus [{}] are given for some phases only: per-phase CPU affinity is \
                         not supported yet (give them on the thread)",
                        c.0
                    ),
                ));
                return None;
            }
            _ => {}
        }
    }
    chosen
}

/// A `cpus` array as a CPU list ("0,2,3").
fn cpus(v: &Value<'_>, path: &str) -> Result<String, Problem> {
    let Value::Array(a) = v else {
        return Err(Problem::at(
            json::span(v),
            format!(
                "{path}: must be an array of CPU numbers, got {}",
                json::type_name(v)
            ),
        ));
    };
    if a.elements.is_empty() {
        return Err(Problem::at(
            json::span(v),
            format!("{path}: an empty CPU list runs nowhere"),
        ));
    }
    let mut list = Vec::new();
    for (i, e) in a.elements.iter().enumerate() {
        let n = json::int(
            e,
            &format!("{path}[{i}]"),
            0,
            MAX_CPUS as i64 - 1,
            " (a CPU)",
        )?;
        if !list.contains(&n) {
            list.push(n);
        }
    }
    list.sort_unstable();
    Ok(list
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(","))
}

/// One rt-app phase (or a thread without `phases`): its loop, events and
/// CPUs; its scheduling keys checked (a phase's only noted).
/// Where a phase is: its path, the span of its name, and whether it is
/// a thread without `phases` (whose other keys the thread handles).
struct Here<'a> {
    /// The thread's name.
    thread_name: &'a str,
    path: &'a str,
    span: Range<usize>,
    thread: bool,
}

fn phase(
    events: &[&ObjectProp<'_>],
    props: &Props<'_, '_>,
    here: &Here<'_>,
    g: &Globals,
    cx: &mut Ctx,
) -> Option<RtPhase> {
    let (path, span) = (here.path, here.span.clone());
    let at = |k: &str| format!("{path}.{k}");
    if events.is_empty() {
        cx.problems.push(Problem::at(
            span.clone(),
            format!("{path}: no events (rt-app needs at least one: run, sleep, timer, ...)"),
        ));
    }
    let repeat = match props.get("loop") {
        None => 1,
        Some(l) => cx.check(json::int(&l.value, &at("loop"), 1, u32::MAX.into(), ""))? as u64,
    };
    let mut cpus_out = None;
    if !here.thread {
        if let Some(c) = props.get("cpus") {
            cpus_out = cx
                .check(cpus(&c.value, &at("cpus")))
                .map(|s| (s, json::span(&c.value)));
        }
        sched(props, path, g, span.clone(), false, cx);
        for k in ["util_min", "util_max", "nodes_membind", "taskgroup"] {
            if props.get(k).is_some() {
                cx.note(
                    "ignored (no utilization clamps, NUMA nodes or task groups in the guest)",
                    at(k),
                );
            }
        }
    }
    let evs: Vec<Ev> = events
        .iter()
        .flat_map(|e| event(e, &at(json::key(e)), here.thread_name, cx))
        .collect();
    Some(RtPhase {
        repeat,
        events: evs,
        cpus: cpus_out,
    })
}

/// A time in µs (at least 1) as ns.
pub(super) fn micros(v: &Value<'_>, path: &str) -> Result<u64, Problem> {
    json::int(v, path, 1, MAX_US, " (µs)").map(|n| n as u64 * 1000)
}

/// The model's phases for one rt-app event: one, or for `sync`,
/// `suspend` and `resume` the sequence rt-app runs for them.
fn event(p: &ObjectProp<'_>, path: &str, thread: &str, cx: &mut Ctx) -> Vec<Ev> {
    let k = json::key(p);
    let Some(ev) = event_of(k) else {
        return Vec::new();
    };
    let v = &p.value;
    let mk = |op, ns| Ev {
        op,
        ns,
        span: json::span(v),
        path: path.to_string(),
        timer: None,
        sync: None,
    };
    let on = |op, obj: &str, mutex: &str| Ev {
        sync: Some((obj.to_string(), mutex.to_string())),
        ..mk(op, 0)
    };
    let one = |e: Option<Ev>| e.into_iter().collect();
    match ev {
        "run" => one(cx.check(micros(v, path)).map(|ns| mk(Op::Run, ns))),
        "sleep" => one(cx.check(micros(v, path)).map(|ns| mk(Op::Sleep, ns))),
        "runtime" => {
            cx.note(
                "runtime (wall-clock busy time in rt-app) runs as the model's run: busy for \
                 that much of the task's own CPU time, so a preempted one ends later than \
                 rt-app's",
                path,
            );
            one(cx.check(micros(v, path)).map(|ns| mk(Op::Run, ns)))
        }
        "mem" | "iorun" => {
            cx.note(
                "bytes written in rt-app run as busy work of 1 ns per byte (the guest has no \
                 memory or I/O load of its own)",
                path,
            );
            let max = crate::settings::HOUR_NS as i64;
            one(cx
                .check(json::int(v, path, 1, max, " (bytes)"))
                .map(|n| mk(Op::Run, n as u64)))
        }
        "yield" => {
            if cx.check(json::string(v, path)).is_none() {
                return Vec::new();
            }
            vec![mk(Op::Yield, 0)]
        }
        "timer" => one(timer(v, path, cx).map(|(ns, r, absolute)| Ev {
            timer: Some((r, absolute)),
            ..mk(Op::Timer, ns)
        })),
        "memrun" => {
            cx.note(
                "memrun (work touching memory in rt-app) runs as the model's run: busy for \
                 that much of the task's own CPU time (the guest's work is CPU-bound)",
                path,
            );
            one(cx.check(micros(v, path)).map(|ns| mk(Op::Run, ns)))
        }
        "lock" | "unlock" | "signal" | "broad" | "barrier" | "sem_post" | "sem_wait" => {
            let Some(name) = cx.check(json::string(v, path)) else {
                return Vec::new();
            };
            let op = match ev {
                "lock" => Op::Lock,
                "unlock" => Op::Unlock,
                "signal" => Op::Signal,
                "broad" => Op::Broadcast,
                "sem_post" => Op::SemPost,
                "sem_wait" => Op::SemWait,
                _ => Op::Barrier,
            };
            vec![on(op, name, name)]
        }
        "wait" | "sync" => {
            let Some((c, m)) = cond_and_mutex(v, path, cx) else {
                return Vec::new();
            };
            if ev == "wait" {
                return vec![on(Op::Wait, &c, &m)];
            }
            // rt-app's sync: lock, signal, wait, unlock.
            vec![
                on(Op::Lock, &m, &m),
                on(Op::Signal, &c, &c),
                on(Op::Wait, &c, &m),
                on(Op::Unlock, &m, &m),
            ]
        }
        "fork" => {
            let Some(name) = cx.check(json::string(v, path)) else {
                return Vec::new();
            };
            if !known_thread(name, "fork", v, path, cx) {
                return Vec::new();
            }
            vec![on(Op::Fork, name, name)]
        }
        "suspend" | "resume" => {
            if cx.check(json::string(v, path)).is_none() {
                return Vec::new();
            }
            // rt-app: suspend blocks the calling thread until another one
            // resumes it by name (the string of a suspend is ignored).
            let target = if ev == "suspend" {
                thread.to_string()
            } else {
                let name = json::string(v, path).unwrap_or_default();
                if !known_thread(name, "resume", v, path, cx) {
                    return Vec::new();
                }
                name.to_string()
            };
            cx.note(
                "suspend and resume run as a wait on, and a broadcast to, a condition \
                 variable named after the suspended thread (as rt-app's do: a resume with no \
                 thread suspended is lost)",
                path,
            );
            let obj = format!("{target}.resume");
            if ev == "suspend" {
                vec![
                    on(Op::Lock, &obj, &obj),
                    on(Op::Wait, &obj, &obj),
                    on(Op::Unlock, &obj, &obj),
                ]
            } else {
                vec![
                    on(Op::Lock, &obj, &obj),
                    on(Op::Broadcast, &obj, &obj),
                    on(Op::Unlock, &obj, &obj),
                ]
            }
        }
        _ => Vec::new(),
    }
}

/// Whether the file defines thread `name`, which event `ev` (at `v`)
/// names; if not, a problem saying so, with a guess.
fn known_thread(name: &str, ev: &str, v: &Value<'_>, path: &str, cx: &mut Ctx) -> bool {
    if cx.threads.iter().any(|t| t == name) {
        return true;
    }
    let hint = suggest(name, cx.threads.iter().map(String::as_str))
        .map_or_else(String::new, |s| format!(" (did you mean '{s}'?)"));
    cx.problems.push(Problem::at(
        json::span(v),
        format!("{path}: {ev} names thread '{name}', which the file does not define{hint}"),
    ));
    false
}

/// `{ "ref": cond, "mutex": mutex }` of a wait or sync.
fn cond_and_mutex(v: &Value<'_>, path: &str, cx: &mut Ctx) -> Option<(String, String)> {
    let o = cx.check(json::object(v, path))?;
    let (mut c, mut m) = (None, None);
    for p in &o.properties {
        let k = json::key(p);
        let at = format!("{path}.{k}");
        match k {
            "ref" => c = cx.check(json::string(&p.value, &at)).map(str::to_string),
            "mutex" => m = cx.check(json::string(&p.value, &at)).map(str::to_string),
            _ => cx.unknown(p, path, &["ref", "mutex"]),
        }
    }
    for (got, key) in [(&c, "ref"), (&m, "mutex")] {
        if got.is_none() {
            cx.problems.push(Problem::at(
                json::span(v),
                format!("{path}: needs '{key}' (a condition variable and its mutex)"),
            ));
        }
    }
    Some((c?, m?))
}

/// `{ "ref": ..., "period": µs, "mode": "relative" | "absolute" }`: the
/// period, the ref (rt-app's default "unknown") and whether absolute.
fn timer(v: &Value<'_>, path: &str, cx: &mut Ctx) -> Option<(u64, String, bool)> {
    let o = cx.check(json::object(v, path))?;
    let mut r = None;
    let mut period = None;
    let mut mode = "relative";
    let mut seen: Vec<&str> = Vec::new();
    for p in &o.properties {
        let k = json::key(p);
        let at = format!("{path}.{k}");
        if seen.contains(&k) {
            cx.twice(p, &at);
            continue;
        }
        seen.push(k);
        match k {
            "ref" => r = cx.check(json::string(&p.value, &at)).map(str::to_string),
            "period" => period = cx.check(micros(&p.value, &at)),
            "mode" => match cx.check(json::string(&p.value, &at)) {
                Some(m @ ("relative" | "absolute")) => mode = m,
                Some(m) => cx.problems.push(Problem::at(
                    json::span(&p.value),
                    format!("{at}: unknown mode '{m}'; rt-app's: relative, absolute"),
                )),
                None => {}
            },
            _ => cx.unknown(p, path, &["ref", "period", "mode"]),
        }
    }
    if !seen.contains(&"period") {
        cx.problems.push(Problem::at(
            json::span(v),
            format!("{path}: a timer needs a 'period' (µs)"),
        ));
    }
    // rt-app's default ref.
    let r = r.unwrap_or_else(|| "unknown".to_string());
    if !r.starts_with("unique") {
        cx.note(
            "a timer ref without the 'unique' prefix is one timer for every thread and \
             instance naming it, as in rt-app: each use moves its activation on by a period",
            path,
        );
    }
    Some((period?, r, mode == "absolute"))
}
