//! `--out DIR`: what a run leaves behind for people to keep and compare.
//!
//! - `result.json`: the `--json` report plus what makes it comparable
//!   later (the host machine, the image ABI stamps, a `kind` marker that
//!   `schedlab compare` checks). Written for every run that got past flag
//!   validation, failed, interrupted or not: a crashed or interrupted
//!   run's partial metrics are exactly what someone will want to look at.
//! - `timeline.svg`: which task ran on which CPU when.
//! - `latency.svg`: a histogram of wake-up latencies.
//! - `trace.perfetto-trace` and `events.jsonl`: the events themselves
//!   (see [`events`]); `--trace FILE` writes the Perfetto trace alone.
//!
//! The pictures come from the monitor's events, replayed once for them and
//! the verdict (see [`trace`]); a run whose VM never started has none, and
//! `result.json` says so.

pub mod events;
pub mod host;
mod latency;
mod timeline;
pub mod trace;

use crate::report::Report;
use crate::settings::RunSettings;
use analysis::Replay;
use host::HostInfo;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use trace::Trace;
use vmm::exit::{Failure, Result};

pub const RESULT_FILE: &str = "result.json";
pub const TIMELINE_FILE: &str = "timeline.svg";
pub const LATENCY_FILE: &str = "latency.svg";
/// `result.json`'s `kind`: how `schedlab compare` knows a result file.
pub const RESULT_KIND: &str = "schedlab-result";
/// Bumped when a field changes meaning (adding fields does not).
pub const RESULT_FORMAT: u32 = 1;

/// Check `--out` while validating flags, without touching the disk: a
/// run refused for another flag leaves no empty directory behind.
pub fn check_dir(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Failure::usage("--out: the directory name is empty"));
    }
    if path.exists() && !path.is_dir() {
        return Err(Failure::usage(format!(
            "--out: '{}' exists and is not a directory: name a directory (it is created if missing)",
            path.display()
        )));
    }
    Ok(path.to_path_buf())
}

/// Check a file flag (`--trace FILE`) while validating flags: a name, not
/// a directory, in a directory that exists.
pub fn check_file(flag: &str, path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Failure::usage(format!("{flag}: the file name is empty")));
    }
    if path.is_dir() {
        return Err(Failure::usage(format!(
            "{flag}: '{}' is a directory: name a file",
            path.display()
        )));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = parent.filter(|p| !p.is_dir()) {
        return Err(Failure::usage(format!(
            "{flag}: the directory '{}' does not exist: create it first",
            p.display()
        )));
    }
    Ok(path.to_path_buf())
}

/// The run's events exported, when it keeps them (`--out`, `--trace`).
pub fn export(
    settings: &RunSettings,
    events: &[abi::kstate::Event],
    tsc_khz: u64,
    process: &str,
    names: &std::collections::BTreeMap<u32, String>,
) -> Option<events::Exported> {
    if settings.out.is_none() && settings.trace.is_none() {
        return None;
    }
    Some(events::export(
        events,
        settings.sched.cpus,
        tsc_khz,
        process,
        names,
    ))
}

/// Create the `--out` directory and prove it writable, after every flag
/// was accepted and before any VM starts: an unwritable path must not cost
/// a run whose results then have nowhere to go.
pub fn prepare_dir(path: &Path) -> Result<PathBuf> {
    check_dir(path)?;
    let shown = path.display();
    std::fs::create_dir_all(path)
        .map_err(|e| Failure::usage(format!("--out: cannot create directory '{shown}': {e}")))?;
    // Prove it is writable now rather than after the run.
    let probe = path.join(".schedlab-write-test");
    std::fs::write(&probe, b"")
        .map_err(|e| Failure::usage(format!("--out: cannot write into '{shown}': {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(path.to_path_buf())
}

/// [`prepare_dir`] for a run's `--out`, if it has one.
pub fn prepare(settings: &RunSettings) -> Result<()> {
    match &settings.out {
        Some(dir) => prepare_dir(dir).map(|_| ()),
        None => Ok(()),
    }
}

/// The pictures' data from the run's replayed events (the verdict's
/// replay), when the run keeps its outputs.
pub fn trace(settings: &RunSettings, replay: Option<&Replay>, tsc_khz: u64) -> Option<Trace> {
    settings.out.as_ref()?;
    let topo = settings.sched.topology;
    let shaped = topo != abi::topology::Topology::flat(topo.cpus());
    let t = replay.map(|r| Trace {
        topology: shaped.then_some(topo),
        ..Trace::from_replay(r, tsc_khz)
    })?;
    Some(match settings.timeline_window {
        Some((start, end)) => t.window(start, end),
        None => t,
    })
}

/// Write the run's files into its `--out` directory, if it has one, and
/// return that directory if `result.json` was written. A failure to write
/// it becomes the run's error unless it already has one (which then stays
/// first, with this one on stderr).
pub fn keep(
    settings: &RunSettings,
    report: &mut Report,
    trace: Option<&Trace>,
    exported: Option<&events::Exported>,
    headline: &str,
) -> Option<PathBuf> {
    if let (Some(file), Some(x)) = (&settings.trace, exported) {
        let written = std::fs::write(file, &x.perfetto)
            .map_err(|e| Failure::host(format!("--trace: cannot write {}: {e}", file.display())));
        if let Err(f) = written {
            if report.error.is_none() {
                report.set_failure(f);
            } else {
                vmm::errln!("schedlab {}: {f}", report.operation);
            }
        }
    }
    let dir = settings.out.as_ref()?;
    match write(dir, report, trace, exported, headline) {
        Ok(()) => Some(dir.clone()),
        Err(f) => {
            if report.error.is_none() {
                report.set_failure(f);
            } else {
                vmm::errln!("schedlab {}: {f}", report.operation);
            }
            None
        }
    }
}

/// Tell a person where the files went (stderr, after the report; never
/// under `--json`, whose stderr stays quiet).
pub fn announce(dir: Option<&Path>, json: bool) {
    if let Some(d) = dir.filter(|_| !json) {
        let names: Vec<&str> = [
            RESULT_FILE,
            TIMELINE_FILE,
            LATENCY_FILE,
            events::PERFETTO_FILE,
            events::EVENTS_FILE,
        ]
        .into_iter()
        .filter(|f| d.join(f).is_file())
        .collect();
        vmm::errln!("kept in {}: {}", d.display(), names.join(", "));
    }
}

/// Write `text` to `dir/name` through a temporary file and a rename, so a
/// reader never sees half a file and an old result is replaced whole.
fn write_file(dir: &Path, name: &str, text: &str) -> Result<()> {
    write_with(dir, name, |f| f.write_all(text.as_bytes()))
}

/// [`write_file`] with the bytes from `fill` (streamed, buffered).
fn write_with(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    std::fs::File::create(&tmp)
        .and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            fill(&mut w)?;
            w.flush()
        })
        .and_then(|_| std::fs::rename(&tmp, &dest))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Failure::host(format!("--out: cannot write {}: {e}", dest.display()))
        })
}

/// A plotters error as text (its error types differ per backend).
pub(crate) fn render_error<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw the picture: {e:?}")
}

/// `result.json`'s object: the report, plus the host, the marker and what
/// happened to each file.
pub fn result_json(report: &Report, host: &HostInfo, files: &Value) -> Value {
    let mut v = serde_json::to_value(report).unwrap_or_else(|e| {
        json!({"status": "error", "error": {"kind": "host", "message": format!("cannot encode report: {e}")}})
    });
    if let Some(o) = v.as_object_mut() {
        o.insert("kind".into(), RESULT_KIND.into());
        o.insert("format".into(), RESULT_FORMAT.into());
        o.insert("host".into(), json!(host));
        o.insert("files".into(), files.clone());
    }
    v
}

/// Draw the pictures (if there is a trace) and write `result.json`. A
/// picture that cannot be drawn is noted in `result.json` and does not
/// fail the run; `result.json` itself failing to be written does.
pub fn write(
    dir: &Path,
    report: &Report,
    trace: Option<&Trace>,
    exported: Option<&events::Exported>,
    headline: &str,
) -> Result<()> {
    let mut files = serde_json::Map::new();
    let mut note = |name: &str, outcome: std::result::Result<(), String>| {
        let v = match outcome {
            Ok(()) => Value::from("written"),
            Err(e) => {
                // An older run's picture must not pass for this run's.
                let _ = std::fs::remove_file(dir.join(name));
                Value::from(e)
            }
        };
        files.insert(name.to_string(), v);
    };
    match trace {
        Some(t) => {
            let title = if headline.is_empty() {
                report.operation.clone()
            } else {
                headline.to_string()
            };
            let timeline = timeline::render(t, &title)
                .and_then(|svg| write_file(dir, TIMELINE_FILE, &svg).map_err(|f| f.message));
            note(TIMELINE_FILE, timeline);
            let latency = latency::render(&t.wake_latencies_ns, "wake-up latency, all tasks")
                .and_then(|svg| write_file(dir, LATENCY_FILE, &svg).map_err(|f| f.message));
            note(LATENCY_FILE, latency);
        }
        None => {
            for name in [TIMELINE_FILE, LATENCY_FILE] {
                note(
                    name,
                    Err("not drawn: the VM never ran, so there are no events".into()),
                );
            }
        }
    }
    match exported.filter(|_| trace.is_some()) {
        Some(x) => {
            let perfetto = write_with(dir, events::PERFETTO_FILE, |w| w.write_all(&x.perfetto));
            note(events::PERFETTO_FILE, perfetto.map_err(|f| f.message));
            let jsonl = write_with(dir, events::EVENTS_FILE, |w| events::write_jsonl(x, w));
            note(events::EVENTS_FILE, jsonl.map_err(|f| f.message));
        }
        None => {
            for name in [events::PERFETTO_FILE, events::EVENTS_FILE] {
                note(
                    name,
                    Err("not written: the VM never ran, so there are no events".into()),
                );
            }
        }
    }
    note(RESULT_FILE, Ok(()));
    let v = result_json(report, &HostInfo::current(), &Value::Object(files));
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| Failure::host(format!("--out: cannot encode result.json: {e}")))?;
    write_file(dir, RESULT_FILE, &(text + "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dir_is_created_and_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let nested = tmp.path().join("a/b");
        assert_eq!(prepare_dir(&nested).unwrap(), nested);
        assert!(nested.is_dir());
        assert_eq!(
            std::fs::read_dir(&nested).unwrap().count(),
            0,
            "probe removed"
        );
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = prepare_dir(&file).unwrap_err();
        assert!(e.message.starts_with("--out:"), "{e}");
        assert_eq!(e.exit_code(), 64);
        assert!(prepare_dir(Path::new("")).is_err());
    }

    #[test]
    fn a_failed_run_still_writes_its_result() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = crate::report::tests::sample();
        r.set_failure(Failure::new(vmm::exit::ErrorKind::GuestPanic, "boom"));
        std::fs::write(tmp.path().join(TIMELINE_FILE), "an older run's").unwrap();
        write(tmp.path(), &r, None, None, "").unwrap();
        let text = std::fs::read_to_string(tmp.path().join(RESULT_FILE)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["kind"], RESULT_KIND);
        assert_eq!(v["status"], "error");
        assert_eq!(v["error"]["message"], "boom");
        assert_eq!(v["tasks"].as_array().unwrap().len(), 2, "partial data kept");
        assert!(v["host"]["kernel_release"].is_string());
        assert!(
            v["files"][TIMELINE_FILE]
                .as_str()
                .unwrap()
                .starts_with("not drawn")
        );
        assert!(!tmp.path().join(TIMELINE_FILE).exists());
    }

    #[test]
    fn pictures_are_written_from_a_trace() {
        use trace::tests::{KHZ, switch, wake};
        let tmp = tempfile::tempdir().unwrap();
        let events = [
            wake(0, 2, 0),
            switch(5_000, 0, 2, 0, abi::kstate::PREV_IDLE),
            switch(900_000, 1, 3, 0, abi::kstate::PREV_IDLE),
        ];
        let t = Trace::from_events(&events, 2, KHZ);
        let r = crate::report::tests::sample();
        write(tmp.path(), &r, Some(&t), None, "spin: test").unwrap();
        for f in [TIMELINE_FILE, LATENCY_FILE] {
            let svg = std::fs::read_to_string(tmp.path().join(f)).unwrap();
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join(RESULT_FILE)).unwrap())
                .unwrap();
        assert_eq!(v["files"][TIMELINE_FILE], "written");
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
