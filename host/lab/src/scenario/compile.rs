//! Tasks of a scenario file -> `ScenarioConfig`, the fixed layout the
//! guest's `scenario` operation reads. Everything the layout cannot hold
//! or the guest could not do (too many tasks, a send to a task that does
//! not exist, a zero sleep, a CPU the VM does not have) is refused here,
//! with the line of the value at fault, before any VM starts.

use super::diag::{Problem, suggest};
use super::schema::{File, Phase as Spec, Task};
use crate::operations::affinity::parse_cpu_list;
use crate::settings::MAX_WEIGHT;
use crate::settings::{HOUR_NS, parse_duration};
use abi::config::{
    PHASE_BARRIER, PHASE_BROADCAST, PHASE_FORK, PHASE_LOCK, PHASE_PUBLISH, PHASE_RECV, PHASE_RUN,
    PHASE_SEM_POST, PHASE_SEM_WAIT, PHASE_SEND, PHASE_SIGNAL, PHASE_SLEEP, PHASE_TIMER,
    PHASE_UNLOCK, PHASE_WAIT, PHASE_YIELD, Phase, SCENARIO_MAX_INSTANCES, SCENARIO_MAX_KINDS,
    SCENARIO_MAX_PHASES, SCENARIO_MAX_SYNCS, SCENARIO_MAX_TIMERS, SCENARIO_MAX_TOPICS,
    SCENARIO_TOPIC_NAME, ScenarioConfig, TIMER_ABSOLUTE,
};
use std::collections::HashSet;
use std::ops::Range;
use toml::Spanned;

/// Highest fixed priority a task may be given (SCHED_FIFO's range).
pub const MAX_PRIORITY: i64 = 99;

/// Longest task name (they only label the report).
pub const NAME_MAX: usize = 32;
/// Longest sync object name: a task name and a suffix (rt-app's
/// `suspend` waits on `<thread>.resume`).
const SYNC_NAME_MAX: usize = 2 * NAME_MAX;

/// One `[[task]]`, as compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub name: String,
    pub count: u32,
    pub weight: u32,
    /// CPU mask, 0 = any.
    pub affinity: u64,
    pub repeat: u32,
    /// Sleep before the first pass, ns (0: none).
    pub delay_ns: u64,
    /// The phases as written ("run 1ms", "send pong"), for the report.
    pub phases: Vec<String>,
    /// Real-time attributes (a task with a `timer` phase): period, run
    /// time per loop, deadline; all 0 otherwise.
    pub rt: abi::ipc::RtAttrs,
}

#[derive(Debug, Clone)]
pub struct Compiled {
    pub config: ScenarioConfig,
    pub kinds: Vec<Kind>,
    pub topics: Vec<String>,
    /// Sync objects (mutexes, condition variables, barriers) by index.
    pub syncs: Vec<String>,
    /// Some phase forks: instances beyond the counts may start (at most
    /// `SCENARIO_MAX_INSTANCES` in all).
    pub forks: bool,
    /// Every kind only runs and yields, until the duration: then all
    /// instances compete for the CPU all the time, which is what judging
    /// shares by weight assumes.
    pub cpu_bound: bool,
}

impl Compiled {
    pub fn instances(&self) -> u32 {
        self.kinds.iter().map(|k| k.count).sum()
    }
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// `value` as an integer in `[min, max]`, or a problem at its span.
fn ranged(v: &Spanned<i64>, field: &str, min: i64, max: i64, why: &str) -> Result<u32, Problem> {
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(Problem::at(
            v.span(),
            format!("{field} must be between {min} and {max}{why}, got {n}"),
        ));
    }
    Ok(n as u32)
}

/// A duration value ("2ms", "500us") of a field, greater than zero.
fn duration(v: &Spanned<String>, field: &str) -> Result<u64, Problem> {
    parse_duration(field, v.get_ref(), 1, HOUR_NS).map_err(|f| Problem::at(v.span(), f.message))
}

/// Collects problems while compiling, so a file's mistakes come all at once.
struct Ctx<'a> {
    problems: Vec<Problem>,
    names: Vec<&'a str>,
    topics: Vec<&'a str>,
    /// Sync object names, in the order they are first used.
    syncs: Vec<String>,
    /// Shared timers' names, in the order they are first used.
    timers: Vec<String>,
}

impl Ctx<'_> {
    fn check<T>(&mut self, r: Result<T, Problem>) -> Option<T> {
        r.map_err(|p| self.problems.push(p)).ok()
    }

    /// Shared timer `v`'s number (index + 1), created on its first use.
    fn timer(&mut self, v: &Spanned<String>, field: &str) -> Result<u32, Problem> {
        intern(&mut self.timers, v, SCENARIO_MAX_TIMERS, || {
            format!(
                "{field}: shared timer '{}' is one too many: a scenario has at most \
                 {SCENARIO_MAX_TIMERS}",
                v.get_ref()
            )
        })
        .map(|i| i + 1)
    }

    /// The index of sync object `v`, created on its first use.
    fn sync(&mut self, v: &Spanned<String>, field: &str) -> Result<u32, Problem> {
        let name = v.get_ref();
        if !self.syncs.contains(name) && !valid_name(name, SYNC_NAME_MAX) {
            return Err(Problem::at(
                v.span(),
                format!(
                    "{field}: '{name}' must be 1 to {SYNC_NAME_MAX} letters, digits, '-', '_' \
                     or '.'"
                ),
            ));
        }
        intern(&mut self.syncs, v, SCENARIO_MAX_SYNCS, || {
            format!(
                "{field}: '{name}' is one too many: a scenario has at most \
                 {SCENARIO_MAX_SYNCS} mutexes, condition variables and barriers (by name)"
            )
        })
    }
}

/// The index of `v` in `list`, added at its first use while `list` holds
/// fewer than `max`; past that, the problem `full` words, at `v`.
fn intern(
    list: &mut Vec<String>,
    v: &Spanned<String>,
    max: usize,
    full: impl FnOnce() -> String,
) -> Result<u32, Problem> {
    let name = v.get_ref();
    if let Some(i) = list.iter().position(|s| s == name) {
        return Ok(i as u32);
    }
    if list.len() == max {
        return Err(Problem::at(v.span(), full()));
    }
    list.push(name.clone());
    Ok(list.len() as u32 - 1)
}

pub fn compile(file: &File, cpus: u32, duration_ns: u64) -> Result<Compiled, Vec<Problem>> {
    let mut cx = Ctx {
        problems: Vec::new(),
        names: Vec::new(),
        topics: Vec::new(),
        syncs: Vec::new(),
        timers: Vec::new(),
    };
    if file.tasks.is_empty() {
        cx.problems.push(Problem::whole(
            "no [[task]]: a scenario needs at least one task (see `schedlab run --help`)",
        ));
    }
    names_and_topics(file, &mut cx);
    let mut config = ScenarioConfig::new(duration_ns);
    config.kinds = file.tasks.len().min(SCENARIO_MAX_KINDS) as u32;
    config.topics = cx.topics.len().min(SCENARIO_MAX_TOPICS) as u32;
    for (i, t) in cx.topics.iter().take(SCENARIO_MAX_TOPICS).enumerate() {
        config.topic_name[i][..t.len()].copy_from_slice(t.as_bytes());
    }
    let mut kinds = Vec::new();
    let mut total = 0u32;
    let mut cpu_bound = true;
    for (k, task) in file.tasks.iter().take(SCENARIO_MAX_KINDS).enumerate() {
        let t = task.get_ref();
        let mut kind = kind(t, cpus, &mut cx);
        let before = total;
        total += kind.count;
        if before as usize <= SCENARIO_MAX_INSTANCES && total as usize > SCENARIO_MAX_INSTANCES {
            let span = t.count.as_ref().map_or(task.span(), |c| c.span());
            cx.problems.push(Problem::at(
                span,
                format!(
                    "task '{}': the tasks start {total} instances so far, but a scenario runs \
                     at most {SCENARIO_MAX_INSTANCES}",
                    kind.name
                ),
            ));
        }
        let slot = &mut config.task[k];
        slot.count = kind.count;
        slot.weight = kind.weight;
        slot.affinity = kind.affinity;
        slot.repeat = kind.repeat;
        slot.delay_ns = kind.delay_ns;
        slot.subscribe = subscriptions(t, &cx.topics);
        let phases = phases(t, &mut cx);
        cpu_bound &= kind.repeat == 0
            && phases
                .iter()
                .all(|p| p.op == PHASE_RUN || p.op == PHASE_YIELD);
        slot.phases = phases.len() as u32;
        slot.phase[..phases.len()].copy_from_slice(&phases);
        slot.rt = rt_attrs(t, &phases, &mut cx);
        kind.rt = slot.rt;
        // Every instance of a kind that reaches a barrier is one of its
        // parties (counted once per kind, however often it waits there).
        let barriers: HashSet<u32> = phases
            .iter()
            .filter(|p| p.op == PHASE_BARRIER)
            .map(|p| p.arg)
            .collect();
        for b in barriers {
            config.sync_parties[b as usize] += kind.count;
        }
        kinds.push(kind);
    }
    config.syncs = cx.syncs.len() as u32;
    forks_and_sends(file, &config, &mut cx);
    if total == 0 && cx.problems.is_empty() {
        cx.problems.push(Problem::whole(
            "every task has count = 0: nothing starts (give one a count, and fork the others)",
        ));
    }
    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }
    Ok(Compiled {
        config,
        kinds,
        topics: cx.topics.iter().map(|t| t.to_string()).collect(),
        syncs: cx.syncs,
        forks: config.task[..config.kinds as usize].iter().any(|t| {
            t.phase[..t.phases as usize]
                .iter()
                .any(|p| p.op == PHASE_FORK)
        }),
        cpu_bound,
    })
}

/// A task with `count = 0` starts only through fork phases, so some phase
/// must fork it; a send needs an instance of its target among the first
/// ones (a forked instance cannot be addressed by number).
fn forks_and_sends(file: &File, config: &ScenarioConfig, cx: &mut Ctx<'_>) {
    let kinds = config.kinds as usize;
    let phases = |k: usize| {
        let t = &config.task[k];
        t.phase[..t.phases as usize].iter()
    };
    for (k, task) in file.tasks.iter().take(kinds).enumerate() {
        let t = task.get_ref();
        if config.task[k].count != 0 {
            continue;
        }
        let name = t.name.get_ref();
        let span = t.count.as_ref().map_or(task.span(), |c| c.span());
        if !(0..kinds).any(|j| phases(j).any(|p| p.op == PHASE_FORK && p.arg as usize == k)) {
            cx.problems.push(Problem::at(
                span.clone(),
                format!("task '{name}': count = 0 and no phase forks it: it would never run"),
            ));
        }
        for (j, other) in file.tasks.iter().take(kinds).enumerate() {
            if phases(j).any(|p| p.op == PHASE_SEND && p.arg as usize == k) {
                cx.problems.push(Problem::at(
                    other.span(),
                    format!(
                        "task '{}': sends to '{name}', which has count = 0 (only forked \
                         instances, which a send cannot address)",
                        other.get_ref().name.get_ref()
                    ),
                ));
            }
        }
    }
}

/// Task names (unique, at most 8) and topics (from `subscribe`, in the
/// order they first appear, at most 8). A file may list any number of
/// either, each reported; the sets keep checking them linear (a list
/// made 30 000 tasks a second's work).
fn names_and_topics<'a>(file: &'a File, cx: &mut Ctx<'a>) {
    let mut names = HashSet::new();
    let mut topics = HashSet::new();
    for (i, task) in file.tasks.iter().enumerate() {
        let t = task.get_ref();
        let name = t.name.get_ref().as_str();
        if i == SCENARIO_MAX_KINDS {
            cx.problems.push(Problem::at(
                task.span(),
                format!(
                    "task '{name}': a scenario has at most {SCENARIO_MAX_KINDS} tasks (use \
                     `count` to start several instances of one)"
                ),
            ));
        }
        if !valid_name(name, NAME_MAX) {
            cx.problems.push(Problem::at(
                t.name.span(),
                format!("name '{name}' must be 1 to {NAME_MAX} letters, digits, '-', '_' or '.'"),
            ));
        } else if !names.insert(name) {
            cx.problems.push(Problem::at(
                t.name.span(),
                format!("name '{name}' is used by an earlier task: names must be unique"),
            ));
        }
        cx.names.push(name);
        for s in &t.subscribe {
            let topic = s.get_ref().as_str();
            if !valid_name(topic, SCENARIO_TOPIC_NAME) {
                cx.problems.push(Problem::at(
                    s.span(),
                    format!(
                        "task '{name}': subscribe: topic '{topic}' must be 1 to \
                         {SCENARIO_TOPIC_NAME} letters, digits, '-', '_' or '.'"
                    ),
                ));
            } else if topics.insert(topic) {
                if cx.topics.len() == SCENARIO_MAX_TOPICS {
                    cx.problems.push(Problem::at(
                        s.span(),
                        format!(
                            "task '{name}': subscribe: topic '{topic}' is one too many: a \
                             scenario has at most {SCENARIO_MAX_TOPICS} topics"
                        ),
                    ));
                }
                cx.topics.push(topic);
            }
        }
    }
}

fn kind(t: &Task, cpus: u32, cx: &mut Ctx<'_>) -> Kind {
    let name = t.name.get_ref().clone();
    let max_instances = SCENARIO_MAX_INSTANCES as i64;
    // 0: started only by fork phases (checked once all are compiled).
    let count = t.count.as_ref().map_or(Ok(1), |c| {
        ranged(
            c,
            &format!("task '{name}': count"),
            0,
            max_instances,
            " (0: only forks start it)",
        )
    });
    let weight = match (&t.weight, &t.nice) {
        (Some(_), Some(n)) => Err(Problem::at(
            n.span(),
            format!("task '{name}': give weight or nice, not both"),
        )),
        (None, Some(n)) => ranged(
            n,
            &format!("task '{name}': nice"),
            abi::ipc::MIN_NICE.into(),
            abi::ipc::MAX_NICE.into(),
            "",
        )
        .map(|_| abi::ipc::nice_to_weight(*n.get_ref() as i32).unwrap_or(1)),
        (w, None) => w.as_ref().map_or(Ok(1), |w| {
            ranged(
                w,
                &format!("task '{name}': weight"),
                1,
                MAX_WEIGHT.into(),
                "",
            )
        }),
    };
    let repeat = t.repeat.as_ref().map_or(Ok(0), |r| {
        ranged(
            r,
            &format!("task '{name}': loop"),
            0,
            u32::MAX.into(),
            " (0 = until the duration)",
        )
    });
    let affinity = t.affinity.as_ref().map_or(Ok(0), |a| {
        parse_cpu_list(&a.get_ref().0, cpus).map_err(|f| {
            // The CPU count may come from the file's `cpus` or from --cpus.
            let why = f.message.strip_prefix("--affinity: ").unwrap_or(&f.message);
            let why = why.replace("(--cpus ", "(cpus ");
            Problem::at(a.span(), format!("task '{name}': affinity: {why}"))
        })
    });
    let delay = t
        .delay
        .as_ref()
        .map_or(Ok(0), |d| duration(d, &format!("task '{name}': delay")));
    Kind {
        count: cx.check(count).unwrap_or(1),
        weight: cx.check(weight).unwrap_or(1),
        repeat: cx.check(repeat).unwrap_or(0),
        delay_ns: cx.check(delay).unwrap_or(0),
        affinity: cx.check(affinity).unwrap_or(0),
        phases: t
            .phases
            .get_ref()
            .iter()
            .map(|p| p.get_ref().describe())
            .collect(),
        rt: abi::ipc::RtAttrs::default(),
        name,
    }
}

/// The mask of `t`'s topics among the first SCENARIO_MAX_TOPICS (the
/// others were reported; looking only there keeps a file with thousands
/// of topics linear).
fn subscriptions(t: &Task, topics: &[&str]) -> u32 {
    let known = &topics[..topics.len().min(SCENARIO_MAX_TOPICS)];
    t.subscribe
        .iter()
        .filter_map(|s| known.iter().position(|x| x == s.get_ref()))
        .fold(0, |m, i| m | 1 << i)
}

fn phases(t: &Task, cx: &mut Ctx<'_>) -> Vec<Phase> {
    let name = t.name.get_ref();
    let list = t.phases.get_ref();
    if list.is_empty() || list.len() > SCENARIO_MAX_PHASES {
        cx.problems.push(Problem::at(
            t.phases.span(),
            format!(
                "task '{name}': phases: a task has 1 to {SCENARIO_MAX_PHASES} phases, got {}",
                list.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, p) in list.iter().take(SCENARIO_MAX_PHASES).enumerate() {
        let field = format!("task '{name}' phase {} ({})", i + 1, p.get_ref().name());
        if let Some(ph) = phase(p.get_ref(), &field, cx) {
            out.push(ph);
        }
    }
    out
}

/// A declared reservation (`runtime`, `period`, `deadline`, as
/// SCHED_DEADLINE's), checked as the core checks it.
fn reservation(t: &Task, priority: u32, cx: &mut Ctx<'_>) -> Option<abi::ipc::RtAttrs> {
    let name = t.name.get_ref();
    let get = |v: &Option<Spanned<String>>, key: &str, cx: &mut Ctx<'_>| match v {
        Some(v) => cx.check(duration(v, &format!("task '{name}': {key}"))),
        None => {
            cx.problems.push(Problem::at(
                t.name.span(),
                format!(
                    "task '{name}': a reservation needs both runtime and period (deadline is \
                     the period unless given)"
                ),
            ));
            None
        }
    };
    let runtime = get(&t.runtime, "runtime", cx)?;
    let period = get(&t.period, "period", cx)?;
    let deadline = match &t.deadline {
        Some(d) => cx.check(duration(d, &format!("task '{name}': deadline")))?,
        None => period,
    };
    if runtime > deadline || deadline > period {
        let span = t.runtime.as_ref().map_or(t.name.span(), |r| r.span());
        cx.problems.push(Problem::at(
            span,
            format!(
                "task '{name}': a reservation needs runtime <= deadline <= period, got {} <= \
                 {} <= {}",
                crate::settings::fmt_ns(runtime),
                crate::settings::fmt_ns(deadline),
                crate::settings::fmt_ns(period)
            ),
        ));
        return None;
    }
    Some(abi::ipc::RtAttrs {
        period_ns: period,
        runtime_ns: runtime,
        deadline_ns: deadline,
        priority,
        reserved: 0,
    })
}

/// A task with a `timer` phase is periodic: its period is the (first)
/// timer's, its runtime what its run phases take per loop, its deadline
/// the `deadline` given or the period (0 < runtime <= deadline <= period,
/// as the core requires of real-time attributes). Others have none. A
/// `priority` goes with either.
fn rt_attrs(t: &Task, phases: &[Phase], cx: &mut Ctx<'_>) -> abi::ipc::RtAttrs {
    let name = t.name.get_ref();
    let priority = t.priority.as_ref().map_or(0, |p| {
        cx.check(ranged(
            p,
            &format!("task '{name}': priority"),
            1,
            MAX_PRIORITY,
            " (a fixed priority, higher first)",
        ))
        .unwrap_or(0)
    });
    // A priority alone is a task attribute too (fixed-priority policies
    // order aperiodic tasks by it).
    let none = abi::ipc::RtAttrs {
        priority,
        ..Default::default()
    };
    if t.period.is_some() || t.runtime.is_some() {
        return reservation(t, priority, cx).unwrap_or(none);
    }
    let Some(period) = phases.iter().find(|p| p.op == PHASE_TIMER).map(|p| p.value) else {
        if let Some(d) = &t.deadline {
            cx.problems.push(Problem::at(
                d.span(),
                format!("task '{name}': deadline needs a timer phase (the period it is within)"),
            ));
        }
        return none;
    };
    let runtime: u64 = phases
        .iter()
        .filter(|p| p.op == PHASE_RUN)
        .map(|p| p.value)
        .sum();
    let deadline = match &t.deadline {
        Some(d) => match duration(d, &format!("task '{name}': deadline")) {
            Ok(v) => v,
            Err(e) => {
                cx.problems.push(e);
                return none;
            }
        },
        None => period,
    };
    let span = t.deadline.as_ref().map_or(t.phases.span(), |d| d.span());
    if period == 0 || runtime == 0 || runtime > deadline || deadline > period {
        cx.problems.push(Problem::at(
            span,
            format!(
                "task '{name}': a task with a timer is periodic and needs 0 < run time per \
                 loop <= deadline <= timer period, got run {}, deadline {}, period {}",
                crate::settings::fmt_ns(runtime),
                crate::settings::fmt_ns(deadline),
                crate::settings::fmt_ns(period)
            ),
        ));
        return none;
    }
    abi::ipc::RtAttrs {
        period_ns: period,
        runtime_ns: runtime,
        deadline_ns: deadline,
        priority,
        reserved: 0,
    }
}

fn phase(p: &Spec, field: &str, cx: &mut Ctx<'_>) -> Option<Phase> {
    let on = |op, v: &Spanned<String>, cx: &mut Ctx<'_>| {
        cx.sync(v, field).map(|arg| Phase { op, arg, value: 0 })
    };
    let timed =
        |op, v: &Spanned<String>| duration(v, field).map(|value| Phase { op, arg: 0, value });
    let r = match p {
        Spec::Run(v) => timed(PHASE_RUN, v),
        Spec::Sleep(v) => timed(PHASE_SLEEP, v),
        Spec::Timer(t) => {
            let spec = t.get_ref();
            let period = Spanned::new(t.span(), spec.period.clone());
            let shared = match &spec.shared {
                None => Ok(0),
                Some(r) => cx.timer(&Spanned::new(t.span(), r.clone()), field),
            };
            let mode = if spec.absolute { TIMER_ABSOLUTE } else { 0 };
            shared.and_then(|k| timed(PHASE_TIMER, &period).map(|p| Phase { arg: k | mode, ..p }))
        }
        Spec::Recv(v) if v.get_ref().trim() == "forever" => Ok(Phase {
            op: PHASE_RECV,
            arg: 0,
            value: 0,
        }),
        Spec::Recv(v) => timed(PHASE_RECV, v),
        Spec::Send(v) => lookup(v, &cx.names, field, "task", "tasks").map(|i| Phase {
            op: PHASE_SEND,
            arg: i,
            value: 0,
        }),
        Spec::Publish(v) => {
            lookup(v, &cx.topics, field, "topic", "topics subscribed to").map(|i| Phase {
                op: PHASE_PUBLISH,
                arg: i,
                value: 0,
            })
        }
        Spec::Yield => Ok(Phase {
            op: PHASE_YIELD,
            arg: 0,
            value: 0,
        }),
        Spec::Lock(v) => on(PHASE_LOCK, v, cx),
        Spec::Unlock(v) => on(PHASE_UNLOCK, v, cx),
        Spec::Signal(v) => on(PHASE_SIGNAL, v, cx),
        Spec::Broadcast(v) => on(PHASE_BROADCAST, v, cx),
        Spec::Barrier(v) => on(PHASE_BARRIER, v, cx),
        Spec::SemPost(v) => on(PHASE_SEM_POST, v, cx),
        Spec::SemWait(v) => on(PHASE_SEM_WAIT, v, cx),
        Spec::Fork(v) => lookup(v, &cx.names, field, "task", "tasks").map(|i| Phase {
            op: PHASE_FORK,
            arg: i,
            value: 0,
        }),
        Spec::Wait(w) => {
            let named = |n: &String| Spanned::new(w.span(), n.clone());
            let (c, m) = (named(&w.get_ref().cond), named(&w.get_ref().mutex));
            cx.sync(&c, field).and_then(|arg| {
                cx.sync(&m, field).map(|m| Phase {
                    op: PHASE_WAIT,
                    arg,
                    value: u64::from(m),
                })
            })
        }
    };
    cx.check(r)
}

/// Most names a problem lists (a scenario holds no more tasks or topics).
const LISTED: usize = if SCENARIO_MAX_KINDS > SCENARIO_MAX_TOPICS {
    SCENARIO_MAX_KINDS
} else {
    SCENARIO_MAX_TOPICS
};

/// Index of `v` in `known`, or a problem naming what exists.
fn lookup(
    v: &Spanned<String>,
    known: &[&str],
    field: &str,
    what: &str,
    list: &str,
) -> Result<u32, Problem> {
    let word = v.get_ref().as_str();
    if let Some(i) = known.iter().position(|k| *k == word) {
        return Ok(i as u32);
    }
    let span: Range<usize> = v.span();
    // Only what a scenario can hold is suggested and listed: a file with
    // thousands of tasks or topics (each reported already) must not make
    // every bad phase's message that long, nor compare with each.
    let shown = &known[..known.len().min(LISTED)];
    let hint = match suggest(word, shown.iter().copied()) {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    };
    let known = match (shown.join(", "), known.len() > LISTED) {
        (_, _) if known.is_empty() => "none".to_string(),
        (list, true) => format!("{list}, ..."),
        (list, false) => list,
    };
    Err(Problem::at(
        span,
        format!("{field}: unknown {what} '{word}'{hint}; {list}: {known}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::diag::render;
    use super::super::schema::parse;
    use super::*;
    use abi::config::OperationConfig;
    use zerocopy::IntoBytes;

    fn compiled(text: &str, cpus: u32) -> Result<Compiled, String> {
        let f = parse(text).map_err(|e| e.to_string())?;
        compile(&f, cpus, 1_000_000).map_err(|p| render("t.toml", text, &p))
    }

    #[test]
    fn a_task_with_a_timer_carries_its_period_runtime_and_deadline() {
        let ms = 1_000_000;
        let text = "[[task]]\nname = \"rt\"\nphases = [{ run = \"2ms\" }, { run = \"1ms\" }, \
                    { timer = \"10ms\" }]\n\n[[task]]\nname = \"d\"\ndeadline = \"8ms\"\n\
                    phases = [{ run = \"2ms\" }, { timer = \"20ms\" }]\n\n[[task]]\n\
                    name = \"bg\"\nphases = [{ run = \"2ms\" }, { sleep = \"1ms\" }]\n";
        let c = compiled(text, 1).unwrap();
        let rt: Vec<_> = c.config.task[..3]
            .iter()
            .map(|t| (t.rt.period_ns, t.rt.runtime_ns, t.rt.deadline_ns))
            .collect();
        assert_eq!(
            rt,
            vec![
                (10 * ms, 3 * ms, 10 * ms),
                (20 * ms, 2 * ms, 8 * ms),
                (0, 0, 0)
            ]
        );
        assert_eq!(c.kinds[1].rt, c.config.task[1].rt);
        let e = compiled(
            "[[task]]\nname = \"a\"\nphases = [{ run = \"12ms\" }, { timer = \"10ms\" }]\n",
            1,
        )
        .unwrap_err();
        assert!(
            e.contains("task 'a': a task with a timer is periodic and needs"),
            "{e}"
        );
        let e = compiled(
            "[[task]]\nname = \"a\"\ndeadline = \"1ms\"\nphases = [{ run = \"1ms\" }]\n",
            1,
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:3:12: task 'a': deadline needs a timer phase"),
            "{e}"
        );
    }

    const PINGPONG: &str = r#"
[[task]]
name = "ping"
affinity = 0
phases = [{ send = "pong" }, { recv = "forever" }]

[[task]]
name = "pong"
count = 2
weight = 3
affinity = "1"
loop = 7
subscribe = ["news"]
phases = [{ recv = "10ms" }, { send = "ping" }, { publish = "news" }, "yield"]
"#;

    /// A megabyte of tasks, topics and bad sends: each is reported, in
    /// linear time, and the report stays short. (30 000 tasks took 23 s,
    /// 40 000 topics with unknown publishes more, before.)
    #[test]
    fn a_flood_of_tasks_and_topics_is_reported_quickly_and_briefly() {
        let mut text = String::from("[[task]]\nname = \"a\"\nsubscribe = [");
        text += &(0..40_000)
            .map(|i| format!("\"t{i}\""))
            .collect::<Vec<_>>()
            .join(",");
        text += "]\nphases = [";
        text += &vec!["{ publish = \"t99999\" }"; 24].join(",");
        text += "]\n";
        for i in 0..20_000 {
            text += &format!("[[task]]\nname = \"b{i}\"\nphases = [{{ send = \"zz\" }}]\n");
        }
        let t = std::time::Instant::now();
        let e = compiled(&text, 1).unwrap_err();
        assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
        assert!(
            e.lines().count() <= super::super::diag::MAX_SHOWN + 1,
            "{e}"
        );
        assert!(e.len() < 64 << 10, "{} bytes", e.len());
        assert!(e.contains("unknown topic 't99999'"), "{e}");
        assert!(e.contains(", ..."), "lists only what a scenario holds: {e}");
    }

    #[test]
    fn nice_is_linux_s_weight_and_excludes_weight() {
        let task = |extra: &str| {
            format!("[[task]]\nname = \"a\"\n{extra}\nphases = [{{ run = \"1ms\" }}]\n")
        };
        let c = compiled(&task("nice = 5"), 1).unwrap();
        assert_eq!(c.config.task[0].weight, 335);
        let c = compiled(&task("nice = -20"), 1).unwrap();
        assert_eq!(c.config.task[0].weight, abi::ipc::MAX_WEIGHT);
        let e = compiled(&task("nice = 20"), 1).unwrap_err();
        assert!(
            e.contains("task 'a': nice must be between -20 and 19, got 20"),
            "{e}"
        );
        let e = compiled(&task("nice = 0\nweight = 2"), 1).unwrap_err();
        assert!(e.contains("give weight or nice, not both"), "{e}");
    }

    #[test]
    fn tasks_compile_into_the_guest_layout() {
        let c = compiled(PINGPONG, 2).unwrap();
        let cfg = &c.config;
        assert_eq!((cfg.kinds, cfg.topics, cfg.duration_ns), (2, 1, 1_000_000));
        assert_eq!(&cfg.topic_name[0][..5], b"news\0");
        let ping = &cfg.task[0];
        assert_eq!(
            (ping.count, ping.weight, ping.affinity, ping.repeat),
            (1, 1, 1, 0)
        );
        assert_eq!(ping.phases, 2);
        assert_eq!(
            (
                ping.phase[0].op,
                ping.phase[0].arg,
                ping.phase[1].op,
                ping.phase[1].value
            ),
            (PHASE_SEND, 1, PHASE_RECV, 0)
        );
        let pong = &cfg.task[1];
        assert_eq!(
            (pong.count, pong.weight, pong.affinity, pong.repeat),
            (2, 3, 2, 7)
        );
        assert_eq!(pong.subscribe, 1);
        assert_eq!(
            (pong.phase[0].op, pong.phase[0].value),
            (PHASE_RECV, 10_000_000)
        );
        assert_eq!((pong.phase[1].op, pong.phase[1].arg), (PHASE_SEND, 0));
        assert_eq!((pong.phase[2].op, pong.phase[2].arg), (PHASE_PUBLISH, 0));
        assert_eq!(pong.phase[3].op, PHASE_YIELD);
        assert_eq!(c.instances(), 3);
        assert!(!c.cpu_bound);
        assert_eq!(
            ScenarioConfig::from_bytes(cfg.as_bytes()).as_ref(),
            Some(cfg)
        );
    }

    #[test]
    fn only_run_and_yield_forever_is_cpu_bound() {
        let hog = "[[task]]\nname = \"h\"\nphases = [{ run = \"1ms\" }, \"yield\"]\n";
        assert!(compiled(hog, 1).unwrap().cpu_bound);
        let bounded = "[[task]]\nname = \"h\"\nloop = 3\nphases = [{ run = \"1ms\" }]\n";
        assert!(!compiled(bounded, 1).unwrap().cpu_bound);
    }

    #[test]
    fn unknown_names_say_where_and_what_exists() {
        let text = PINGPONG.replace("{ send = \"pong\" }", "{ send = \"pnog\" }");
        let e = compiled(&text, 2).unwrap_err();
        assert_eq!(
            e,
            "t.toml:5:20: task 'ping' phase 1 (send): unknown task 'pnog' (did you mean \
             'pong'?); tasks: ping, pong"
        );
        let text = PINGPONG.replace("{ publish = \"news\" }", "{ publish = \"sports\" }");
        let e = compiled(&text, 2).unwrap_err();
        assert!(
            e.ends_with("unknown topic 'sports'; topics subscribed to: news"),
            "{e}"
        );
    }

    #[test]
    fn a_declared_reservation_is_the_task_s_attributes() {
        let text = "[[task]]\nname = \"dl\"\nruntime = \"2ms\"\nperiod = \"10ms\"\n\
                    deadline = \"8ms\"\npriority = 7\nphases = [{ run = \"1ms\" }, { sleep = \"5ms\" }]\n";
        let c = compiled(text, 1).unwrap();
        let rt = c.config.task[0].rt;
        assert_eq!(
            (rt.period_ns, rt.runtime_ns, rt.deadline_ns, rt.priority),
            (10_000_000, 2_000_000, 8_000_000, 7)
        );
        let e = compiled(
            "[[task]]\nname = \"dl\"\nruntime = \"2ms\"\nphases = [\"yield\"]\n",
            1,
        )
        .unwrap_err();
        assert!(
            e.contains("a reservation needs both runtime and period"),
            "{e}"
        );
        let e = compiled(
            "[[task]]\nname = \"dl\"\nruntime = \"20ms\"\nperiod = \"10ms\"\nphases = [\"yield\"]\n",
            1,
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:3:11: task 'dl': a reservation needs runtime <= deadline <= period"),
            "{e}"
        );
    }

    #[test]
    fn sync_objects_and_shared_timers_past_their_limits_are_refused_by_name() {
        let locks: Vec<String> = (0..17).map(|i| format!("{{ lock = \"m{i}\" }}")).collect();
        let text = format!("[[task]]\nname = \"a\"\nphases = [{}]\n", locks.join(", "));
        let e = compiled(&text, 1).unwrap_err();
        assert!(
            e.contains("'m16' is one too many: a scenario has at most 16 mutexes"),
            "{e}"
        );
        assert!(!e.contains("'m15'"), "{e}");
        let timers: Vec<String> = (0..9)
            .map(|i| format!("{{ timer = {{ period = \"10ms\", ref = \"t{i}\" }} }}"))
            .collect();
        let text = format!(
            "[[task]]\nname = \"a\"\nphases = [{{ run = \"1ms\" }}, {}]\n",
            timers.join(", ")
        );
        let e = compiled(&text, 1).unwrap_err();
        assert!(
            e.contains("shared timer 't8' is one too many: a scenario has at most 8"),
            "{e}"
        );
        // A name used again is the same object, not another one.
        let c = compiled(
            "[[task]]\nname = \"a\"\nphases = [{ lock = \"m\" }, { unlock = \"m\" }]\n",
            1,
        )
        .unwrap();
        assert_eq!(c.syncs, ["m"]);
    }

    #[test]
    fn a_task_of_count_0_must_be_forked_and_cannot_be_sent_to() {
        let text = "[[task]]\nname = \"parent\"\nphases = [{ fork = \"child\" }, { sleep = \"5ms\" }]\n\
                    [[task]]\nname = \"child\"\ncount = 0\nphases = [{ run = \"1ms\" }]\n";
        let c = compiled(text, 1).unwrap();
        assert!(c.forks);
        assert_eq!(c.config.task[1].count, 0);
        assert_eq!(
            (c.config.task[0].phase[0].op, c.config.task[0].phase[0].arg),
            (PHASE_FORK, 1)
        );
        let text = "[[task]]\nname = \"a\"\nphases = [{ send = \"b\" }]\n\
                    [[task]]\nname = \"b\"\ncount = 0\nphases = [{ recv = \"forever\" }]\n";
        let e = compiled(text, 1).unwrap_err();
        assert!(
            e.contains("task 'b': count = 0 and no phase forks it: it would never run"),
            "{e}"
        );
        assert!(
            e.contains("task 'a': sends to 'b', which has count = 0"),
            "{e}"
        );
        let e = compiled(
            "[[task]]\nname = \"a\"\ncount = 0\nphases = [\"yield\"]\n",
            1,
        )
        .unwrap_err();
        assert!(e.contains("count = 0 and no phase forks it"), "{e}");
    }

    #[test]
    fn impossible_values_are_all_reported_with_their_lines() {
        let text = r#"
[[task]]
name = "a"
count = 65
weight = 88762
affinity = "2"
loop = -1
phases = [{ sleep = "-5ms" }, { run = "0ms" }, { timer = "10" }, { recv = "0s" }]
"#;
        let e = compiled(text, 2).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 8, "{e}");
        assert!(lines[0].starts_with("t.toml:4:9: task 'a': count must be between 0 and 64"));
        assert!(lines[1].starts_with("t.toml:5:10: task 'a': weight must be between 1 and 88761,"));
        assert_eq!(
            lines[2],
            "t.toml:6:12: task 'a': affinity: '2' names CPU 2, but the VM has 2 (cpus 2: CPUs 0-1)"
        );
        assert!(lines[3].starts_with("t.toml:7:8: task 'a': loop must be between 0"));
        assert_eq!(
            lines[4],
            "t.toml:8:21: task 'a' phase 1 (sleep): '-5ms' is negative: it must be greater \
             than zero"
        );
        assert!(
            lines[5].contains("phase 2 (run): '0ms' must be greater than zero"),
            "{e}"
        );
        assert!(
            lines[6].contains("phase 3 (timer): '10' has no unit"),
            "{e}"
        );
        assert!(
            lines[7].contains("phase 4 (recv): '0s' must be greater than zero"),
            "{e}"
        );
    }

    #[test]
    fn the_layout_limits_are_refused_by_name() {
        let mut text = String::new();
        for i in 0..9 {
            text += &format!("[[task]]\nname = \"t{i}\"\ncount = 9\nphases = [\"yield\"]\n");
        }
        let e = compiled(&text, 1).unwrap_err();
        assert!(
            e.contains("task 't8': a scenario has at most 8 tasks"),
            "{e}"
        );
        assert!(e.contains("task 't7': the tasks start 72 instances"), "{e}");
        let many = (0..25).map(|_| "\"yield\"").collect::<Vec<_>>().join(", ");
        let text = format!("[[task]]\nname = \"a\"\nphases = [{many}]\n");
        let e = compiled(&text, 1).unwrap_err();
        assert!(e.contains("a task has 1 to 24 phases, got 25"), "{e}");
        let text = "[[task]]\nname = \"a\"\nphases = []\n";
        assert!(compiled(text, 1).unwrap_err().contains("got 0"));
        let topics = (0..9)
            .map(|i| format!("\"t{i}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let text =
            format!("[[task]]\nname = \"a\"\nsubscribe = [{topics}]\nphases = [\"yield\"]\n");
        let e = compiled(&text, 1).unwrap_err();
        assert!(e.contains("topic 't8' is one too many"), "{e}");
        let e = compiled("[[task]]\nname = \"a b\"\nphases = [\"yield\"]\n", 1).unwrap_err();
        assert!(e.contains("name 'a b' must be"), "{e}");
        let dup = "[[task]]\nname = \"a\"\nphases = [\"yield\"]\n".repeat(2);
        assert!(
            compiled(&dup, 1)
                .unwrap_err()
                .starts_with("t.toml:5:8: name 'a' is used")
        );
        assert!(compiled("", 1).unwrap_err().contains("no [[task]]"));
    }
}
