use super::*;
use crate::scenario::diag::render;
use crate::scenario::schema::{Phase, Task};

fn ok(text: &str) -> Translated {
    translate(text).unwrap_or_else(|p| panic!("{}", render("t.json", text, &p)))
}

fn err(text: &str) -> String {
    match translate(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(p) => render("t.json", text, &p),
    }
}

fn phases(t: &Task) -> Vec<String> {
    t.phases
        .get_ref()
        .iter()
        .map(|p| p.get_ref().describe())
        .collect()
}

fn task<'a>(t: &'a Translated, name: &str) -> &'a Task {
    t.file
        .tasks
        .iter()
        .map(|t| t.get_ref())
        .find(|t| t.name.get_ref() == name)
        .unwrap_or_else(|| panic!("no task {name}"))
}

const FULL: &str = r#"/* an rt-app file, as rt-app's own examples write them */
{
    "global": {
        "duration": 2,
        "calibration": "CPU0",  // ignored
        "default_policy": "SCHED_OTHER",
        "logdir": "./",
        "ftrace": "none",
    },
    "tasks": {
        "thread0": {
            "instance": 2,
            "loop": -1,
            "cpus": [1, 0,],
            "priority": 5,
            "run": 1000,
            "sleep0": 2000,
            "run": 3000,
            "runtime": 400,
            "yield": "",
        },
        "periodic": {
            "loop": 3,
            "phases": {
                "p0": {
                    "loop": 4,
                    "run0": 500,
                    "timer0": { "ref": "unique", "period": 10000, "mode": "absolute" },
                },
            },
        },
        "io": {
            "phases": {
                "a": { "mem": 4000, "iorun": 2000, },
                "b": { "loop": 2, "sleep": 100 },
            },
        },
    },
}
"#;

#[test]
fn a_file_with_comments_trailing_commas_and_repeated_keys_maps_in_order() {
    let t = ok(FULL);
    assert_eq!(t.file.duration.as_ref().unwrap().get_ref(), "2s");
    let names: Vec<&str> = t
        .file
        .tasks
        .iter()
        .map(|t| t.get_ref().name.get_ref().as_str())
        .collect();
    assert_eq!(names, ["thread0", "periodic", "io"]);
    let t0 = task(&t, "thread0");
    assert_eq!(
        phases(t0),
        [
            "run 1000us",
            "sleep 2000us",
            "run 3000us",
            "run 400us",
            "yield"
        ]
    );
    assert_eq!(*t0.count.as_ref().unwrap().get_ref(), 2);
    assert_eq!(*t0.repeat.as_ref().unwrap().get_ref(), 0, "-1 is forever");
    assert_eq!(t0.affinity.as_ref().unwrap().get_ref().0, "0,1");
    // SCHED_OTHER's priority is rt-app's nice value.
    assert_eq!(*t0.nice.as_ref().unwrap().get_ref(), 5);
    assert_eq!(&FULL[t0.nice.as_ref().unwrap().span()], "5");
    // One phase: its loop folds into the thread's (3 x 4 passes).
    let p = task(&t, "periodic");
    assert_eq!(phases(p), ["run 500us", "timer 10000us absolute"]);
    assert_eq!(*p.repeat.as_ref().unwrap().get_ref(), 12);
    // Several phases are unrolled; mem/iorun bytes run as ns.
    let io = task(&t, "io");
    assert_eq!(
        phases(io),
        ["run 4us", "run 2us", "sleep 100us", "sleep 100us"]
    );
    assert_eq!(*io.repeat.as_ref().unwrap().get_ref(), 0);
    // Spans are the JSON's: the scenario's checks point into this file.
    let run = &t0.phases.get_ref()[2];
    assert_eq!(&FULL[run.span()], "3000");
    let notes = t.notes.join("\n");
    for want in [
        "global.calibration, global.logdir, global.ftrace: ignored",
        "tasks.thread0.runtime: runtime (wall-clock busy time in rt-app) runs as the model's run",
        "tasks.io.phases.a.mem, tasks.io.phases.a.iorun: bytes written in rt-app run as busy \
         work of 1 ns per byte",
    ] {
        assert!(notes.contains(want), "no '{want}' in\n{notes}");
    }
    assert!(!notes.contains("default_policy"), "{notes}");
}

/// Every rt-app event runs; a key that is none of them (nor a phase's
/// other keys) is refused by its path, with a guess.
#[test]
fn an_unknown_event_is_refused_by_its_path() {
    let e = err(r#"{"tasks": {"thread0": {"phases": {"p1": {"run": 10, "spin": 5}}}}}"#);
    assert!(
        e.starts_with("t.json:1:53: tasks.thread0.phases.p1: unknown key 'spin'"),
        "{e}"
    );
    let e = err(r#"{"tasks": {"t": {"semwait": "s"}}}"#);
    assert!(e.contains("(did you mean 'sem_wait'?)"), "{e}");
}

#[test]
fn semaphores_and_memrun_map_onto_the_model() {
    let t = ok(r#"{"tasks": {"a": {"sem_post": "s", "memrun": 30}, "b": {"sem_wait0": "s"}}}"#);
    assert_eq!(phases(task(&t, "a")), ["sem_post s", "run 30us"]);
    assert_eq!(phases(task(&t, "b")), ["sem_wait s"]);
    assert!(
        t.notes.join("\n").contains("tasks.a.memrun: memrun"),
        "{:?}",
        t.notes
    );
}

#[test]
fn sync_events_become_the_phases_rt_app_runs_for_them() {
    let t = ok(r#"{
      "tasks": {
        "a": {
          "lock": "m", "run": 10, "unlock": "m",
          "wait": { "ref": "c", "mutex": "m" },
          "signal": "c", "broad0": "c", "barrier": "b",
          "sync": { "ref": "c", "mutex": "m" },
          "suspend": "anything",
        },
        "b": { "resume": "a", "barrier": "b", "run": 10 },
      },
    }"#);
    assert_eq!(
        phases(task(&t, "a")),
        [
            "lock m",
            "run 10us",
            "unlock m",
            "wait c (mutex m)",
            "signal c",
            "broadcast c",
            "barrier b",
            // sync: lock, signal, wait, unlock.
            "lock m",
            "signal c",
            "wait c (mutex m)",
            "unlock m",
            // suspend: a wait on the thread's own resume object.
            "lock a.resume",
            "wait a.resume",
            "unlock a.resume",
        ]
    );
    assert_eq!(
        phases(task(&t, "b")),
        [
            "lock a.resume",
            "broadcast a.resume",
            "unlock a.resume",
            "barrier b",
            "run 10us"
        ]
    );
    // A fork names a thread; one of 0 instances stays (forks start it).
    let t = ok(r#"{"tasks": {"p": {"fork": "c", "run": 10}, "c": {"instance": 0, "run": 5}}}"#);
    assert_eq!(phases(task(&t, "p")), ["fork c", "run 10us"]);
    assert_eq!(*task(&t, "c").count.as_ref().unwrap().get_ref(), 0);
    let e = err(r#"{"tasks": {"p": {"fork": "d", "run": 10}}}"#);
    assert!(e.contains("tasks.p.fork: fork names thread 'd'"), "{e}");
    // A delay is a sleep once before the first pass.
    let t = ok(r#"{"tasks": {"a": {"delay": 2500, "run": 10}}}"#);
    let a = task(&t, "a");
    assert_eq!(a.delay.as_ref().unwrap().get_ref(), "2500us");
    // A resume of a thread the file does not define, and a wait without
    // its mutex, are refused by path.
    let e = err(r#"{"tasks": {"alpha": {"suspend": ""}, "b": {"resume": "alpah"}}}"#);
    assert!(
        e.contains(
            "tasks.b.resume: resume names thread 'alpah', which the file does not define \
             (did you mean 'alpha'?)"
        ),
        "{e}"
    );
    let e = err(r#"{"tasks": {"a": {"wait": {"ref": "c"}}}}"#);
    assert!(e.contains("tasks.a.wait: needs 'mutex'"), "{e}");
}

#[test]
fn unknown_and_repeated_keys_are_refused_with_a_guess() {
    let e = err(r#"{"tasks": {"t": {"instnace": 2, "run": 10}}}"#);
    assert!(
        e.starts_with("t.json:1:18: tasks.t: unknown key 'instnace' (did you mean 'instance'?)"),
        "{e}"
    );
    let e = err(r#"{"global": {"duraton": 1}, "tasks": {"t": {"run": 10}}}"#);
    assert!(
        e.contains("global: unknown key 'duraton' (did you mean 'duration'?)"),
        "{e}"
    );
    let e = err(r#"{"task": {}}"#);
    assert!(
        e.contains("the file: unknown key 'task' (did you mean 'tasks'?)"),
        "{e}"
    );
    assert!(e.contains("no 'tasks'"), "{e}");
    let e = err(r#"{"tasks": {"t": {"loop": 1, "loop": 2, "run": 10}}}"#);
    assert!(e.contains(":1:29: tasks.t.loop: given twice"), "{e}");
    let e = err(r#"{"tasks": {"t": {"run": 10}, "t": {"run": 10}}}"#);
    assert!(e.contains("tasks.t: given twice"), "{e}");
    let e = err(r#"{"tasks": {"t": {"timer": {"ref": "a", "perod": 5}}}}"#);
    assert!(e.contains("did you mean 'period'?"), "{e}");
    assert!(e.contains("tasks.t.timer: a timer needs a 'period'"), "{e}");
}

#[test]
fn bad_values_are_all_reported_with_path_and_line() {
    let text = r#"{
  "global": { "duration": 0, "default_policy": "SCHED_OTEHR" },
  "tasks": {
    "a": {
      "instance": -1,
      "loop": 0,
      "delay": -5,
      "cpus": [],
      "run": 0,
      "sleep": 1.5,
      "runtime": "x",
      "timer": { "period": 10, "mode": "sometimes" },
      "mem": -4
    },
    "b": { "policy": "SCHED_OTHER", "priority": 20, "yield": 1 },
    "c": { "policy": "SCHED_FIFO", "priority": 0, "run": 1 },
    "d": { "policy": "SCHED_DEADLINE", "dl-runtime": 50, "dl-period": 40, "run": 1 },
    "e": { "policy": "SCHED_DEADLINE", "run": 1 },
    "f": { "phases": {} },
    "g": 7
  }
}
"#;
    let e = err(text);
    // Each problem at its value (or key): line, the text it starts with.
    for (line, at, want) in [
        (2, "0,", "global.duration: 0 s runs nothing"),
        (
            2,
            "\"SCHED_OTEHR",
            "global.default_policy: unknown policy 'SCHED_OTEHR' (did you mean 'SCHED_OTHER'?)",
        ),
        (
            5,
            "-1",
            "tasks.a.instance: must be between 0 and 64, got -1",
        ),
        (6, "0", "tasks.a.loop: 0 passes run nothing"),
        (
            7,
            "-5",
            "tasks.a.delay: must be between 0 and 3600000000 (µs), got -5",
        ),
        (8, "[]", "tasks.a.cpus: an empty CPU list runs nowhere"),
        (
            9,
            "0",
            "tasks.a.run: must be between 1 and 3600000000 (µs), got 0",
        ),
        (10, "1.5", "tasks.a.sleep: must be an integer (µs), got 1.5"),
        (
            11,
            "\"x\"",
            "tasks.a.runtime: must be an integer (µs), got a string",
        ),
        (
            12,
            "\"sometimes",
            "tasks.a.timer.mode: unknown mode 'sometimes'",
        ),
        (13, "-4", "tasks.a.mem: must be between 1 and"),
        (
            15,
            "20",
            "tasks.b.priority: must be between -20 and 19 (a nice value), got 20",
        ),
        (15, "1 }", "tasks.b.yield: must be a string, got a number"),
        (
            16,
            "0,",
            "tasks.c.priority: must be between 1 and 99 (an RT priority), got 0",
        ),
        (
            17,
            "50",
            "tasks.d: SCHED_DEADLINE needs dl-runtime <= dl-deadline <= dl-period, got 50 <= \
             40 <= 40 µs",
        ),
        (
            18,
            "\"SCHED_DEADLINE",
            "tasks.e: SCHED_DEADLINE needs 'dl-runtime'",
        ),
        (19, "{}", "tasks.f.phases: no phase"),
        (20, "7", "tasks.g: must be an object, got a number"),
    ] {
        let l = text.lines().nth(line - 1).unwrap();
        // The last match on the line: values follow their keys.
        let col = l.rfind(at).unwrap() + 1;
        let want = format!("t.json:{line}:{col}: {want}");
        assert!(e.contains(&want), "no '{want}' in\n{e}");
    }
    assert_eq!(e.lines().count(), 18, "{e}");
}

#[test]
fn what_the_model_cannot_hold_is_refused_not_faked() {
    // A timer ref shared by two events of a pass (unrolled phase loop).
    let text = r#"{"tasks": {"t": {"phases": {
        "a": {"loop": 2, "run": 10, "timer": {"ref": "unique", "period": 100}},
        "b": {"run": 10}}}}}"#;
    let e = err(text);
    assert!(
        e.contains(
            "tasks.t.phases.a.timer: timer 'unique' is used by 2 events per pass (phase loops \
             unrolled): a timer shared between events is not supported yet"
        ),
        "{e}"
    );
    // Phases on different CPUs.
    let text = r#"{"tasks": {"t": {"cpus": [0], "phases": {
        "a": {"run": 10}, "b": {"cpus": [1], "run": 10}}}}}"#;
    let e = err(text);
    assert!(
        e.contains("per-phase CPU affinity is not supported yet"),
        "{e}"
    );
    // More events per pass than a scenario task holds.
    let text = r#"{"tasks": {"t": {"phases": {"a": {"loop": 24, "run": 10}, "b": {"run": 1}}}}}"#;
    let e = err(text);
    assert!(
        e.contains("gives 25 events per pass, but a scenario task holds at most 24"),
        "{e}"
    );
    // Events beside `phases`.
    let e = err(r#"{"tasks": {"t": {"run": 5, "phases": {"a": {"run": 10}}}}}"#);
    assert!(
        e.contains("tasks.t.run: a thread with 'phases' has its events in them"),
        "{e}"
    );
    let e = err(r#"{"tasks": {"t": {"loop": 3}}}"#);
    assert!(e.contains("tasks.t: no events"), "{e}");
}

#[test]
fn one_phase_loop_folds_and_two_unroll_within_the_limit() {
    let t = ok(r#"{"tasks": {"t": {"phases": {"a": {"loop": 20, "run": 10}, "b": {"run": 1}}}}}"#);
    let p = phases(task(&t, "t"));
    assert_eq!(p.len(), 21);
    assert_eq!((p[0].as_str(), p[20].as_str()), ("run 10us", "run 1us"));
    // Different timer refs in different phases are different timers.
    let t = ok(r#"{"tasks": {"t": {"phases": {
        "a": {"run": 10, "timer": {"ref": "uniqueA", "period": 100}},
        "b": {"run": 20, "timer": {"ref": "uniqueB", "period": 400}}}}}}"#);
    assert_eq!(
        phases(task(&t, "t")),
        ["run 10us", "timer 100us", "run 20us", "timer 400us"]
    );
}

#[test]
fn scheduling_keys_are_accepted_and_noted() {
    let t = ok(r#"{
  "global": {"default_policy": "SCHED_FIFO"},
  "tasks": {
    "rt": {"priority": 50, "run": 10},
    "rtdefault": {"run": 10},
    "dl": {"policy": "SCHED_DEADLINE", "dl-runtime": 100, "dl-period": 1000, "run": 10},
    "fair": {"policy": "SCHED_OTHER", "dl-runtime": 300, "run": 10},
    "phased": {"policy": "SCHED_OTHER", "phases": {"a": {"priority": 3, "run": 10}}},
    "none": {"instance": 0, "run": 10}
  }}"#);
    let notes = t.notes.join("\n");
    // SCHED_FIFO's priority is the task's fixed priority (rt-app's
    // default 10 when not given), at the key that gives it.
    assert!(
        notes.contains(
            "tasks.rt, tasks.rtdefault, tasks.none: the RT priority (rt-app's default 10) reaches"
        ),
        "{notes}"
    );
    assert_eq!(*task(&t, "rt").priority.as_ref().unwrap().get_ref(), 50);
    assert_eq!(
        *task(&t, "rtdefault").priority.as_ref().unwrap().get_ref(),
        10
    );
    assert_eq!(task(&t, "fair").priority, None);
    assert!(
        notes.contains("tasks.dl.policy: SCHED_DEADLINE: dl-runtime, dl-period and dl-deadline"),
        "{notes}"
    );
    // Without a timer too, the reservation is the task's (dl-period and
    // dl-deadline default to dl-runtime's and dl-period's values).
    let dl = task(&t, "dl");
    assert_eq!(dl.runtime.as_ref().unwrap().get_ref(), "100us");
    assert_eq!(dl.period.as_ref().unwrap().get_ref(), "1000us");
    assert_eq!(dl.deadline.as_ref().unwrap().get_ref(), "1000us");
    assert!(
        notes.contains("tasks.fair.dl-runtime: ignored outside SCHED_DEADLINE"),
        "{notes}"
    );
    assert!(
        notes.contains("tasks.phased.phases.a.priority: a phase's scheduling change"),
        "{notes}"
    );
    assert!(
        notes.contains("tasks.none.instance: 0 instances"),
        "{notes}"
    );
    assert_eq!(t.file.tasks.len(), 5, "the 0-instance task is left out");
    // RT and deadline tasks run as nice 0; the fair one at its nice.
    assert_eq!(*task(&t, "rt").nice.as_ref().unwrap().get_ref(), 0);
    assert_eq!(*task(&t, "dl").nice.as_ref().unwrap().get_ref(), 0);
    assert_eq!(*task(&t, "fair").nice.as_ref().unwrap().get_ref(), 0);
    assert!(t.file.duration.is_none());
    let t = ok(r#"{"global": {"duration": -1}, "tasks": {"t": {"run": 10}}}"#);
    assert!(t.file.duration.is_none());
    assert!(
        t.notes[0].starts_with("global.duration: -1"),
        "{:?}",
        t.notes
    );
}

#[test]
fn a_deadline_thread_passes_its_reservation() {
    let text = r#"{"tasks": {
        "dl": {"policy": "SCHED_DEADLINE", "dl-runtime": 2000, "dl-period": 10000,
               "dl-deadline": 8000, "run": 2000, "timer": {"ref": "unique", "period": 10000}},
        "implied": {"policy": "SCHED_DEADLINE", "dl-runtime": 2000, "dl-period": 9000,
               "run": 2000, "timer": {"ref": "unique", "period": 10000}},
        "fair": {"run": 1000, "timer": {"ref": "unique", "period": 10000}}}}"#;
    let t = ok(text);
    let d = task(&t, "dl").deadline.as_ref().unwrap();
    assert_eq!(d.get_ref(), "8000us");
    assert_eq!(&text[d.span()], "8000");
    // dl-deadline defaults to dl-period, as in rt-app and Linux.
    let d = task(&t, "implied").deadline.as_ref().unwrap();
    assert_eq!(d.get_ref(), "9000us");
    assert_eq!(&text[d.span()], "9000");
    assert_eq!(task(&t, "fair").deadline, None);
    assert_eq!(
        task(&t, "implied").period.as_ref().unwrap().get_ref(),
        "9000us"
    );
    // The timer-implied attributes are only the SCHED_OTHER thread's.
    let notes = t.notes.join("\n");
    assert!(
        notes.contains("tasks.fair: periodic to the policy"),
        "{notes}"
    );
}

#[test]
fn a_timer_keeps_its_ref_mode_and_default_ref() {
    let t = ok(r#"{"tasks": {
        "t": {"instance": 2, "run": 10, "timer": {"period": 100}},
        "u": {"run": 10, "timer": {"ref": "uniqueU", "period": 200, "mode": "absolute"}}}}"#);
    let timer = |name| match task(&t, name).phases.get_ref()[1].get_ref() {
        Phase::Timer(v) => v.get_ref().clone(),
        p => panic!("{}", p.describe()),
    };
    // rt-app's default ref, "unknown", is one timer for all who use it.
    let tt = timer("t");
    assert_eq!(
        (tt.period.as_str(), tt.shared.as_deref(), tt.absolute),
        ("100us", Some("unknown"), false)
    );
    let u = timer("u");
    assert_eq!(
        (u.period.as_str(), u.shared.as_deref(), u.absolute),
        ("200us", None, true)
    );
    let notes = t.notes.join("\n");
    assert!(
        notes.contains("tasks.t.timer: a timer ref without the 'unique' prefix is one timer"),
        "{notes}"
    );
    assert!(!notes.contains("tasks.u.timer"), "{notes}");
}

#[test]
fn json_files_are_recognised_by_name_or_first_character() {
    use std::path::Path;
    assert!(is_rtapp(Path::new("a.json"), "x = 1"));
    assert!(is_rtapp(Path::new("a.JSON"), ""));
    assert!(is_rtapp(Path::new("a.txt"), "\n  {\"tasks\": {}}"));
    assert!(is_rtapp(Path::new("a"), "// rt-app\n{}"));
    assert!(!is_rtapp(Path::new("a.toml"), "# comment\n[[task]]"));
    assert!(!is_rtapp(Path::new("a.toml"), "duration = \"1s\""));
}

#[test]
fn a_malformed_file_says_where() {
    let e = err("{\n  \"tasks\": {\n    \"t\": {\"run\": 10,, }\n  }\n}\n");
    assert!(e.starts_with("t.json:3:"), "{e}");
    assert!(e.contains("not JSON as rt-app reads it"), "{e}");
    let e = err("[1, 2]");
    assert_eq!(e, "t.json:1:1: the file: must be an object, got an array");
    let e = err(r#"{"tasks": {}}"#);
    assert!(e.contains("tasks: no thread"), "{e}");
}

/// A megabyte of threads, phases and timers: each problem and note is
/// found in linear time, and the report stays short.
#[test]
fn a_flood_of_threads_and_events_is_handled_quickly_and_briefly() {
    let mut text = String::from("{\"tasks\": {");
    for i in 0..12_000 {
        text +=
            &format!("\"t{i}\": {{\"instance\": 2, \"run\": 10, \"timer\": {{\"period\": 100}}}},");
    }
    text += "}}";
    assert!(text.len() < 1 << 20, "{}", text.len());
    let t = std::time::Instant::now();
    // Mapping accepts each thread (the scenario's compile refuses the
    // 8-task limit); the notes list a few paths each.
    let ok = translate(&text).unwrap_or_else(|p| panic!("{}", render("t.json", &text, &p)));
    assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    assert_eq!(ok.file.tasks.len(), 12_000);
    let notes = ok.notes.join("\n");
    assert!(notes.len() < 4096, "{} bytes", notes.len());
    assert!(
        notes.contains(" and 11992 more: a timer ref without the 'unique' prefix"),
        "{notes}"
    );
    // One thread of thousands of phases, repeated names among them.
    let mut text = String::from("{\"tasks\": {\"x\": {\"phases\": {");
    for i in 0..40_000 {
        text += &format!("\"p{}\": {{\"run\": 1}},", i % 30_000);
    }
    text += "}}}}";
    let t = std::time::Instant::now();
    let p = translate(&text).err().unwrap();
    assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    assert_eq!(p.len(), 10_001, "10 000 repeated phases and the limit");
    let e = render("t.json", &text, &p);
    assert!(e.contains("gives 30000 events per pass"), "{e}");
    assert!(e.lines().count() <= crate::scenario::diag::MAX_SHOWN + 1);
}
