//! `schedlab run FILE.json`: rt-app workload files, as they are.
//!
//! rt-app (scheduler-tools/rt-app) describes a workload as JSON: a
//! `global` object, and `tasks`, each a thread (or `instance` threads)
//! going through `phases` of events (`run`, `sleep`, `timer`, ...). This
//! module reads such a file (`json`: json-c's dialect, with comments,
//! trailing commas and repeated event keys in order) and maps it onto the
//! scenario model (`tasks`), producing the same `scenario::schema::File` a
//! TOML file gives, with each value's span in the JSON text, so the
//! scenario's own checks and compilation run unchanged and still point at
//! the JSON's line:col. What the model can only approximate or ignores is
//! listed as notes in the run's report; what it cannot express at all
//! (mutexes, condition variables, barriers, suspend/resume, fork) is
//! refused naming its JSON path, before any VM starts.

mod json;
mod sched;
mod tasks;

use crate::scenario::diag::{Problem, suggest};
use crate::scenario::schema::File;
use jsonc_parser::ast::{Object, Value};
use std::path::Path;
use toml::Spanned;

/// An rt-app file mapped onto the scenario model.
pub struct Translated {
    pub file: File,
    /// What was ignored or approximated, one line each ("global.logdir:
    /// ignored (...)"), for the report.
    pub notes: Vec<String>,
}

/// Whether `schedlab run` should read this file as rt-app's: its name
/// ends in `.json`, or its text starts (after blanks) with `{` or a
/// comment's `/`, which no TOML file can.
pub fn is_rtapp(path: &Path, text: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with(['{', '/'])
}

/// Linux's policies, as rt-app names them (`policy`, `default_policy`).
pub const POLICIES: [&str; 6] = [
    "SCHED_OTHER",
    "SCHED_BATCH",
    "SCHED_IDLE",
    "SCHED_RR",
    "SCHED_FIFO",
    "SCHED_DEADLINE",
];

/// rt-app's global keys that mean nothing in the guest (calibration,
/// logging, memory locking, tracing, plotting, I/O and memory buffers,
/// slack bookkeeping, priority inheritance for mutexes the model lacks).
const IGNORED_GLOBALS: [&str; 11] = [
    "calibration",
    "pi_enabled",
    "lock_pages",
    "logdir",
    "log_basename",
    "log_size",
    "ftrace",
    "gnuplot",
    "io_device",
    "mem_buffer_size",
    "cumulative_slack",
];

/// Longest rt-app duration, in seconds: the scenario's limit (an hour).
const MAX_DURATION_S: i64 = (crate::settings::HOUR_NS / 1_000_000_000) as i64;

/// Problems and notes gathered while mapping, so a file's mistakes come
/// all at once.
#[derive(Default)]
pub(crate) struct Ctx {
    pub problems: Vec<Problem>,
    /// (note, paths listed, paths not listed).
    notes: Vec<(String, Vec<String>, usize)>,
    /// Every thread's name, in file order (a `resume` names one).
    pub threads: Vec<String>,
}

/// Most paths a note lists.
const NOTE_PATHS: usize = 8;

impl Ctx {
    pub fn check<T>(&mut self, r: Result<T, Problem>) -> Option<T> {
        r.map_err(|p| self.problems.push(p)).ok()
    }

    /// Note that `path` was `what` (e.g. "ignored: ..."); paths with the
    /// same note are listed on one line, in file order.
    /// A note lists at most [`NOTE_PATHS`] paths, then how many more (a
    /// file of thousands of timers must not make the report that long,
    /// nor each note a search through all of them).
    pub fn note(&mut self, what: impl Into<String>, path: impl Into<String>) {
        let what = what.into();
        let path = path.into();
        match self.notes.iter_mut().find(|(w, ..)| *w == what) {
            Some((_, paths, _)) if paths.contains(&path) => {}
            Some((_, paths, _)) if paths.len() < NOTE_PATHS => paths.push(path),
            Some((_, _, more)) => *more += 1,
            None => self.notes.push((what, vec![path], 0)),
        }
    }

    fn notes(&self) -> Vec<String> {
        self.notes
            .iter()
            .map(|(what, paths, more)| match more {
                0 => format!("{}: {what}", paths.join(", ")),
                n => format!("{} and {n} more: {what}", paths.join(", ")),
            })
            .collect()
    }

    /// A key this object does not know, with a guess from `known`.
    pub fn unknown(&mut self, p: &jsonc_parser::ast::ObjectProp<'_>, path: &str, known: &[&str]) {
        let k = json::key(p);
        let hint = suggest(k, known.iter().copied())
            .map_or_else(String::new, |s| format!(" (did you mean '{s}'?)"));
        self.problems.push(Problem::at(
            json::span(&p.name),
            format!(
                "{path}: unknown key '{k}'{hint}; known here: {}",
                known.join(", ")
            ),
        ));
    }

    /// A property given twice where rt-app would keep only the last.
    pub fn twice(&mut self, p: &jsonc_parser::ast::ObjectProp<'_>, path: &str) {
        self.problems.push(Problem::at(
            json::span(&p.name),
            format!("{path}: given twice (only events may repeat)"),
        ));
    }
}

/// Map the text of an rt-app file onto a scenario; every problem found.
pub fn translate(text: &str) -> Result<Translated, Vec<Problem>> {
    let root = json::parse(text).map_err(|p| vec![p])?;
    let mut cx = Ctx::default();
    let Some(root_obj) = cx.check(json::object(&root, "the file")) else {
        return Err(cx.problems);
    };
    let mut global = None;
    let mut tasks = None;
    for p in &root_obj.properties {
        let k = json::key(p);
        match k {
            "global" | "tasks" => {
                let slot = if k == "global" {
                    &mut global
                } else {
                    &mut tasks
                };
                if slot.is_some() {
                    cx.twice(p, k);
                } else {
                    *slot = Some(p);
                }
            }
            "resources" => cx.note(
                "ignored (rt-app creates resources from the events; kept for old files)",
                "resources",
            ),
            _ => cx.unknown(p, "the file", &["global", "tasks", "resources"]),
        }
    }
    let g = global.and_then(|p| cx.check(json::object(&p.value, "global")));
    let settings = g.map(|g| globals(g, &mut cx)).unwrap_or_default();
    let task_list = match tasks {
        None => {
            cx.problems.push(Problem::at(
                json::span(root_obj),
                "no 'tasks': an rt-app file needs a 'tasks' object with at least one thread",
            ));
            Vec::new()
        }
        Some(p) => match cx.check(json::object(&p.value, "tasks")) {
            Some(o) => {
                cx.threads = o
                    .properties
                    .iter()
                    .map(|t| json::key(t).to_string())
                    .collect();
                tasks::tasks(o, &p.name, &settings, &mut cx)
            }
            None => Vec::new(),
        },
    };
    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }
    let file = File {
        description: None,
        duration: settings.duration,
        cpus: None,
        topology: None,
        policy: None,
        tick_hz: None,
        idle: None,
        tasks: task_list,
    };
    Ok(Translated {
        file,
        notes: cx.notes(),
    })
}

/// What `global` sets for the tasks and the run.
#[derive(Default)]
pub(crate) struct Globals {
    /// As the scenario's `duration` ("5s"); None: --duration decides.
    duration: Option<Spanned<String>>,
    /// `default_policy`, checked (SCHED_OTHER if not given).
    pub default_policy: Option<String>,
}

fn globals(g: &Object<'_>, cx: &mut Ctx) -> Globals {
    let mut out = Globals::default();
    let mut seen: Vec<&str> = Vec::new();
    let known: Vec<&str> = ["duration", "default_policy"]
        .into_iter()
        .chain(IGNORED_GLOBALS)
        .collect();
    for p in &g.properties {
        let k = json::key(p);
        let path = format!("global.{k}");
        if !known.contains(&k) {
            cx.unknown(p, "global", &known);
            continue;
        }
        if seen.contains(&k) {
            cx.twice(p, &path);
            continue;
        }
        seen.push(k);
        match k {
            "duration" => {
                let d = json::int(&p.value, &path, -1, MAX_DURATION_S, " (seconds, -1: none)");
                match cx.check(d) {
                    Some(0) => cx.problems.push(Problem::at(
                        json::span(&p.value),
                        format!("{path}: 0 s runs nothing: give seconds, or -1 for --duration"),
                    )),
                    Some(-1) => cx.note(
                        "-1 (no limit in rt-app): the run lasts --duration (default 200ms)",
                        path,
                    ),
                    Some(s) => {
                        out.duration = Some(Spanned::new(json::span(&p.value), format!("{s}s")))
                    }
                    None => {}
                }
            }
            "default_policy" => {
                if let Some(pol) = cx.check(policy(&p.value, &path)) {
                    out.default_policy = Some(pol.to_string());
                }
            }
            _ => cx.note(
                "ignored (calibration, logging, tracing, memory locking and buffers mean \
                 nothing in the guest)",
                path,
            ),
        }
    }
    out
}

/// A policy name, one of [`POLICIES`].
pub(crate) fn policy(v: &Value<'_>, path: &str) -> Result<&'static str, Problem> {
    let s = json::string(v, path)?;
    POLICIES.iter().copied().find(|p| *p == s).ok_or_else(|| {
        let hint = suggest(s, POLICIES.iter().copied())
            .map_or_else(String::new, |x| format!(" (did you mean '{x}'?)"));
        Problem::at(
            json::span(v),
            format!(
                "{path}: unknown policy '{s}'{hint}; rt-app's: {}",
                POLICIES.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests;
