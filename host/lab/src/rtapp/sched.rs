//! A thread's scheduling keys: `policy`, `priority`, `dl-runtime`,
//! `dl-period`, `dl-deadline`, checked as Linux would take them. A
//! SCHED_OTHER/SCHED_BATCH priority (a nice value) becomes the task's
//! nice, a SCHED_DEADLINE thread's deadline the scenario task's
//! `deadline` (when it has a timer: the model's periodic tasks take their
//! period from the timer and their runtime from the runs), a
//! SCHED_FIFO/SCHED_RR priority the task's fixed priority; SCHED_IDLE is
//! noted as not passed.

use super::tasks::{Props, micros};
use super::{Ctx, Globals, json, policy};
use crate::scenario::diag::Problem;
use std::ops::Range;
use toml::Spanned;

/// A thread's (or phase's) `policy`, `priority` and `dl-*` keys,
/// checked. SCHED_OTHER and SCHED_BATCH priorities are nice values
/// (rt-app sets them with sched_setattr's sched_nice) and become the
/// task's nice; the rest is noted as accepted but not passed to the
/// policy, since task attributes do not reach scenario tasks yet. A
/// phase's keys are only checked and noted.
/// What a thread's scheduling keys give the scenario task.
#[derive(Default)]
pub(super) struct Sched {
    pub nice: Option<Spanned<i64>>,
    /// SCHED_DEADLINE's relative deadline ("800us"), at the key giving it.
    pub deadline: Option<Spanned<String>>,
    /// SCHED_DEADLINE's runtime and period ("800us"), at the keys.
    pub runtime: Option<Spanned<String>>,
    pub period: Option<Spanned<String>>,
    /// SCHED_FIFO's and SCHED_RR's priority (rt-app's default 10), the
    /// scenario task's fixed priority.
    pub priority: Option<Spanned<i64>>,
}

pub(super) fn sched(
    props: &Props<'_, '_>,
    path: &str,
    g: &Globals,
    span: Range<usize>,
    thread: bool,
    cx: &mut Ctx,
) -> Sched {
    let mut out = Sched::default();
    let r = sched_keys(props, path, g, span, thread, &mut out, cx);
    out.nice = r;
    out
}

fn sched_keys(
    props: &Props<'_, '_>,
    path: &str,
    g: &Globals,
    span: Range<usize>,
    thread: bool,
    out: &mut Sched,
    cx: &mut Ctx,
) -> Option<Spanned<i64>> {
    let at = |k: &str| format!("{path}.{k}");
    let given = |k: &str| props.get(k).map(|p| &p.value);
    let pol = match given("policy") {
        Some(v) => cx.check(policy(v, &at("policy")))?,
        None if !thread => {
            // A phase without a policy changes nothing; its priority or
            // dl keys still must be numbers.
            for k in ["priority", "dl-runtime", "dl-period", "dl-deadline"] {
                if let Some(v) = given(k) {
                    cx.check(json::int(v, &at(k), i64::MIN, i64::MAX, ""));
                    cx.note(PHASE_SCHED, at(k));
                }
            }
            return None;
        }
        None => g
            .default_policy
            .as_deref()
            .and_then(|d| super::POLICIES.iter().copied().find(|p| *p == d))
            .unwrap_or("SCHED_OTHER"),
    };
    let where_ = if given("policy").is_some() {
        at("policy")
    } else {
        path.to_string()
    };
    let us = |k: &str, cx: &mut Ctx| given(k).and_then(|v| cx.check(micros(v, &at(k))));
    // Every thread gets a nice value, so an RT thread (not passed yet)
    // weighs what a nice-0 thread does rather than the model's weight 1.
    let mut nice = Some(Spanned::new(span.clone(), 0));
    match pol {
        "SCHED_OTHER" | "SCHED_BATCH" => {
            let p = given("priority");
            let n = match p {
                Some(v) => cx.check(json::int(v, &at("priority"), -20, 19, " (a nice value)"))?,
                None => 0,
            };
            nice = Some(Spanned::new(p.map_or(span, json::span), n));
            if pol == "SCHED_BATCH" {
                cx.note(
                    "SCHED_BATCH runs as SCHED_OTHER at its nice value (the policy sees no \
                     batch hint)",
                    where_.clone(),
                );
            }
            for k in ["dl-runtime", "dl-period", "dl-deadline"] {
                if us(k, cx).is_some() {
                    cx.note(
                        "ignored outside SCHED_DEADLINE (no custom slice requests in the guest)",
                        at(k),
                    );
                }
            }
        }
        "SCHED_IDLE" => {
            cx.note(NOT_PASSED, where_.clone());
        }
        "SCHED_RR" | "SCHED_FIFO" => {
            let p = given("priority");
            let n = match p {
                Some(v) => cx.check(json::int(v, &at("priority"), 1, 99, " (an RT priority)"))?,
                None => 10,
            };
            out.priority = Some(Spanned::new(p.map_or(span.clone(), json::span), n));
            cx.note(FIXED_PRIORITY, where_.clone());
        }
        _ => {
            // SCHED_DEADLINE: runtime <= deadline <= period, as Linux wants.
            let rt = us("dl-runtime", cx);
            let period = us("dl-period", cx).or(rt);
            let deadline = us("dl-deadline", cx).or(period);
            match (rt, deadline, period) {
                (None, ..) if given("dl-runtime").is_none() => cx.problems.push(Problem::at(
                    props
                        .get("policy")
                        .map_or(span.clone(), |p| json::span(&p.value)),
                    format!("{path}: SCHED_DEADLINE needs 'dl-runtime' (µs)"),
                )),
                (Some(r), Some(d), Some(p)) if !(r <= d && d <= p) => {
                    cx.problems.push(Problem::at(
                        props
                            .get("dl-runtime")
                            .map_or(span.clone(), |p| json::span(&p.value)),
                        format!(
                            "{path}: SCHED_DEADLINE needs dl-runtime <= dl-deadline <= \
                             dl-period, got {} <= {} <= {} µs",
                            r / 1000,
                            d / 1000,
                            p / 1000
                        ),
                    ))
                }
                (Some(r), Some(d), Some(p)) => {
                    // Each at the key that gave it (or, defaulted, at the
                    // one it defaulted from).
                    let at_key = |keys: &[&str]| {
                        keys.iter()
                            .find_map(|k| props.get(k))
                            .map_or(span.clone(), |p| json::span(&p.value))
                    };
                    let us = |ns: u64| format!("{}us", ns / 1000);
                    out.runtime = Some(Spanned::new(at_key(&["dl-runtime"]), us(r)));
                    out.period = Some(Spanned::new(at_key(&["dl-period", "dl-runtime"]), us(p)));
                    out.deadline = Some(Spanned::new(
                        at_key(&["dl-deadline", "dl-period", "dl-runtime"]),
                        us(d),
                    ));
                }
                _ => {}
            }
            cx.note(DEADLINE, where_.clone());
        }
    }
    if !thread {
        cx.note(PHASE_SCHED, where_);
        return None;
    }
    nice
}

const NOT_PASSED: &str = "policy and priority accepted but not passed to the policy (scenario \
                          tasks carry no policy or fixed priority): runs as a nice-0 task";

const FIXED_PRIORITY: &str = "the RT priority (rt-app's default 10) reaches the policy as the \
                              task's fixed priority (fp runs higher first; other policies \
                              ignore it) with a nice-0 weight; RR's round robin within a \
                              priority level is not modelled";

const DEADLINE: &str = "SCHED_DEADLINE: dl-runtime, dl-period and dl-deadline reach the policy \
                        as the task's runtime, period and deadline (edf reads them), as \
                        sched_setattr sets them; a timer only paces the thread";

const PHASE_SCHED: &str = "a phase's scheduling change is accepted but not passed to the \
                           policy (the task keeps the thread's nice value)";
