//! The scenario file as TOML: what serde accepts. Every table refuses
//! unknown keys (a misspelt field is an error with its line, never a
//! silently ignored setting), and every value keeps its span so the checks
//! in `compile` can point at it too. Numbers are read as i64 so a negative
//! count gets a message about counts, not about integer types.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// One line saying what the scenario shows (printed in the headline).
    pub description: Option<Spanned<String>>,
    pub duration: Option<Spanned<String>>,
    pub cpus: Option<Spanned<i64>>,
    /// The machine's shape, as `--topology` takes it; implies `cpus`.
    pub topology: Option<Spanned<String>>,
    pub policy: Option<Spanned<String>>,
    pub tick_hz: Option<Spanned<i64>>,
    pub idle: Option<Spanned<String>>,
    #[serde(default, rename = "task")]
    pub tasks: Vec<Spanned<Task>>,
}

/// One `[[task]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: Spanned<String>,
    pub count: Option<Spanned<i64>>,
    pub weight: Option<Spanned<i64>>,
    /// Linux's nice value (-20..19), as a weight through its table;
    /// exclusive with `weight`.
    pub nice: Option<Spanned<i64>>,
    pub affinity: Option<Spanned<CpuList>>,
    /// Relative deadline of each loop of a task with a `timer` phase (its
    /// period by default), passed to real-time policies.
    pub deadline: Option<Spanned<String>>,
    /// A declared reservation, as SCHED_DEADLINE's: run time per period
    /// and period (with `deadline`, by default the period). Given, it is
    /// what policies read, instead of what a timer and the runs imply.
    pub runtime: Option<Spanned<String>>,
    pub period: Option<Spanned<String>>,
    /// A fixed priority, 1..99, higher first (SCHED_FIFO's), passed to
    /// fixed-priority policies (`fp`); others ignore it.
    pub priority: Option<Spanned<i64>>,
    #[serde(rename = "loop")]
    pub repeat: Option<Spanned<i64>>,
    /// Sleep this long once before the first pass (rt-app's `delay`).
    pub delay: Option<Spanned<String>>,
    #[serde(default)]
    pub subscribe: Vec<Spanned<String>>,
    pub phases: Spanned<Vec<Spanned<Phase>>>,
}

/// One phase: `{ run = "1ms" }`, ..., or the bare string `"yield"`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Phase {
    Run(Spanned<String>),
    Sleep(Spanned<String>),
    Timer(Spanned<TimerSpec>),
    Send(Spanned<String>),
    Publish(Spanned<String>),
    Recv(Spanned<String>),
    Yield,
    /// Take the mutex of the named sync object (created on first use).
    Lock(Spanned<String>),
    Unlock(Spanned<String>),
    /// Wait on a condition variable: `{ wait = "c" }` with the mutex of
    /// the same name, or `{ wait = { ref = "c", mutex = "m" } }`.
    Wait(Spanned<WaitOn>),
    /// Wake the longest waiter on the named condition variable.
    Signal(Spanned<String>),
    /// Wake every waiter on it.
    Broadcast(Spanned<String>),
    /// Wait until every task instance that uses this barrier reaches it.
    Barrier(Spanned<String>),
    /// Start a new instance of the named task (rt-app's `fork`).
    Fork(Spanned<String>),
    /// Post to the named semaphore (posts are remembered).
    #[serde(rename = "sem_post")]
    SemPost(Spanned<String>),
    /// Take one from it, waiting while it is zero.
    #[serde(rename = "sem_wait")]
    SemWait(Spanned<String>),
}

/// A `timer` phase: `"10ms"` (its own timer, relative) or
/// `{ period = "10ms", ref = "t", mode = "absolute" }`: a `ref` names a
/// timer shared by every phase and instance that names it (each use moves
/// its activation on by a period, as rt-app's shared timers); in absolute
/// mode a missed activation keeps the grid instead of restarting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSpec {
    pub period: String,
    pub shared: Option<String>,
    pub absolute: bool,
}

impl<'de> Deserialize<'de> for TimerSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimerSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a period such as \"10ms\" or { period = \"10ms\", ref = \"t\", mode = \"absolute\" }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TimerSpec, E> {
                Ok(TimerSpec {
                    period: s.to_string(),
                    shared: None,
                    absolute: false,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<TimerSpec, A::Error> {
                let (mut period, mut shared, mut absolute) = (None, None, false);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "period" => period = Some(map.next_value::<String>()?),
                        "ref" => shared = Some(map.next_value::<String>()?),
                        "mode" => {
                            absolute = match map.next_value::<String>()?.as_str() {
                                "absolute" => true,
                                "relative" => false,
                                other => {
                                    return Err(de::Error::unknown_variant(
                                        other,
                                        &["relative", "absolute"],
                                    ));
                                }
                            }
                        }
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["period", "ref", "mode"],
                            ));
                        }
                    }
                }
                Ok(TimerSpec {
                    period: period.ok_or_else(|| de::Error::missing_field("period"))?,
                    shared,
                    absolute,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// What a `wait` phase waits on: `"c"` (the condition variable and the
/// mutex of one name) or `{ ref = "c", mutex = "m" }`, as rt-app writes
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOn {
    pub cond: String,
    pub mutex: String,
}

impl<'de> Deserialize<'de> for WaitOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WaitOn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition variable's name or { ref = \"c\", mutex = \"m\" }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WaitOn, E> {
                Ok(WaitOn {
                    cond: s.to_string(),
                    mutex: s.to_string(),
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<WaitOn, A::Error> {
                let (mut cond, mut mutex) = (None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "ref" => cond = Some(map.next_value::<String>()?),
                        "mutex" => mutex = Some(map.next_value::<String>()?),
                        other => return Err(de::Error::unknown_field(other, &["ref", "mutex"])),
                    }
                }
                Ok(WaitOn {
                    cond: cond.ok_or_else(|| de::Error::missing_field("ref"))?,
                    mutex: mutex.ok_or_else(|| de::Error::missing_field("mutex"))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Run(_) => "run",
            Phase::Sleep(_) => "sleep",
            Phase::Timer(_) => "timer",
            Phase::Send(_) => "send",
            Phase::Publish(_) => "publish",
            Phase::Recv(_) => "recv",
            Phase::Yield => "yield",
            Phase::Lock(_) => "lock",
            Phase::Unlock(_) => "unlock",
            Phase::Wait(_) => "wait",
            Phase::Signal(_) => "signal",
            Phase::Broadcast(_) => "broadcast",
            Phase::Barrier(_) => "barrier",
            Phase::Fork(_) => "fork",
            Phase::SemPost(_) => "sem_post",
            Phase::SemWait(_) => "sem_wait",
        }
    }

    /// As the file wrote it, for reports: "run 1ms", "send pong", "yield".
    pub fn describe(&self) -> String {
        match self {
            Phase::Timer(t) => {
                let t = t.get_ref();
                let mut s = format!("timer {}", t.period);
                if let Some(r) = &t.shared {
                    s += &format!(" (shared {r})");
                }
                if t.absolute {
                    s += " absolute";
                }
                s
            }
            Phase::Run(v)
            | Phase::Sleep(v)
            | Phase::Send(v)
            | Phase::Publish(v)
            | Phase::Recv(v)
            | Phase::Lock(v)
            | Phase::Unlock(v)
            | Phase::Signal(v)
            | Phase::Broadcast(v)
            | Phase::Barrier(v)
            | Phase::Fork(v)
            | Phase::SemPost(v)
            | Phase::SemWait(v) => format!("{} {}", self.name(), v.get_ref()),
            Phase::Wait(w) => match w.get_ref() {
                WaitOn { cond, mutex } if cond == mutex => format!("wait {cond}"),
                WaitOn { cond, mutex } => format!("wait {cond} (mutex {mutex})"),
            },
            Phase::Yield => self.name().to_string(),
        }
    }
}

/// An affinity: a CPU list as text ("0-3,6") or one CPU as a number, so
/// `affinity = 1` works as people write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub String);

impl<'de> Deserialize<'de> for CpuList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CpuList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a CPU number or a CPU list such as \"0-3,6\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CpuList, E> {
                Ok(CpuList(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<CpuList, E> {
                Ok(CpuList(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parse the text; errors keep toml's message and span.
pub fn parse(text: &str) -> Result<File, toml::de::Error> {
    toml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_one_key_tables_or_yield() {
        let f = parse(
            "[[task]]\nname = \"a\"\naffinity = 1\nphases = [{ run = \"1ms\" }, \"yield\", \
             { recv = \"forever\" }, { timer = \"5ms\" }]\n",
        )
        .unwrap();
        let t = f.tasks[0].get_ref();
        assert_eq!(t.affinity.as_ref().unwrap().get_ref().0, "1");
        let names: Vec<&str> = t
            .phases
            .get_ref()
            .iter()
            .map(|p| p.get_ref().name())
            .collect();
        assert_eq!(names, ["run", "yield", "recv", "timer"]);
        let text: Vec<String> = t
            .phases
            .get_ref()
            .iter()
            .map(|p| p.get_ref().describe())
            .collect();
        assert_eq!(text, ["run 1ms", "yield", "recv forever", "timer 5ms"]);
    }

    #[test]
    fn unknown_keys_and_phases_are_refused_with_a_span() {
        let text = "duration = \"1s\"\n[[task]]\nname = \"a\"\ncont = 2\nphases = [\"yield\"]\n";
        let e = parse(text).unwrap_err();
        assert!(e.message().contains("unknown field `cont`"), "{e}");
        assert_eq!(&text[e.span().unwrap()], "cont");
        let text = "[[task]]\nname = \"a\"\nphases = [{ rn = \"1ms\" }]\n";
        let e = parse(text).unwrap_err();
        assert!(e.message().contains("unknown variant `rn`"), "{e}");
        assert_eq!(&text[e.span().unwrap()], "rn");
    }
}
