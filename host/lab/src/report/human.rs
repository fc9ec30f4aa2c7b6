//! The report for people: tables and one line per check. Only parts with
//! data are shown, so a failed run's report is short but keeps whatever
//! was collected.

use super::Report;
use std::fmt::Write as _;

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |ns| format!("{:.3}", ms(ns)))
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |x| x.to_string())
}

/// A machine with a shape (not one flat LLC): the tables add where
/// things ran and moved in it.
fn shaped(r: &Report) -> bool {
    r.topology.as_ref().is_some_and(|t| !t.is_flat())
}

/// The migration columns a shaped machine adds: of a task's migrations,
/// how many left its LLC and its node. Empty on a flat machine.
fn cross(shaped: bool, llc: Option<u64>, node: Option<u64>) -> String {
    if shaped {
        format!(" {:>5} {:>5}", opt_num(llc), opt_num(node))
    } else {
        String::new()
    }
}

pub fn human(r: &Report, headline: &str, s: &mut String) {
    if !r.tasks.is_empty() || !r.result_lines.is_empty() || r.verdict.is_some() {
        let _ = writeln!(s, "{headline}");
    }
    tasks(r, s);
    for line in &r.result_lines {
        let _ = writeln!(s, "{line}");
    }
    cpus(r, s);
    bpf(r, s);
    verdict(r, s);
    footer(r, s);
}

fn tasks(r: &Report, s: &mut String) {
    if r.tasks.is_empty() {
        measured(r, s);
        return;
    }
    let shaped = shaped(r);
    let head = if shaped {
        format!(" {:>5} {:>5}", "xLLC", "xnode")
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{:>5} {:>6} {:>4} {:>3} {:>12} {:>10} {:>6} {:>8} {:>9} {:>9} {:>8} {:>5}{head}",
        "pid",
        "weight",
        "nice",
        "cpu",
        "units",
        "runtime ms",
        "share",
        "entitled",
        "maxwait ms",
        "wake p99",
        "switches",
        "migr"
    );
    for t in &r.tasks {
        let _ = writeln!(
            s,
            "{:>5} {:>6} {:>4} {:>3} {:>12} {:>10.3} {:>5.1}% {:>8} {:>10} {:>9} {:>8} {:>5}{}",
            t.pid,
            t.weight,
            t.nice.map_or("-".to_string(), |n| n.to_string()),
            t.cpu,
            t.units,
            ms(t.runtime_ns),
            t.share * 100.0,
            opt_pct(t.entitled_share),
            opt_ms(t.max_wait_ns),
            opt_ms(t.wake_p99_ns),
            t.switches,
            opt_num(t.migrations),
            cross(shaped, t.migrations_cross_llc, t.migrations_cross_node)
        );
    }
    if let Some(t) = &r.totals {
        let _ = writeln!(
            s,
            "{:>5} {:>6} {:>3} {:>12} {:>10.3} {:>6} {:>8} {:>10} {:>9} {:>8}",
            "total",
            "",
            "",
            t.units,
            ms(t.runtime_ns),
            "",
            "",
            "",
            "",
            t.switches
        );
        let elapsed = r
            .elapsed_ns
            .map(|e| format!(" over {:.3} ms elapsed", ms(e)))
            .unwrap_or_default();
        let _ = writeln!(s, "throughput: {}{elapsed}", per_sec(t.units_per_sec));
        if let Some(p) = t.preempt_point_ns {
            let _ = writeln!(s, "preempt_point() without a switch: {p:.1} ns (median)");
        }
    }
}

/// No per-task rows from the guest (the run was stopped or failed, or the
/// operation's result is not per-task units, e.g. a scenario's): the
/// judged tasks as the host measured them from the events.
fn measured(r: &Report, s: &mut String) {
    if r.measured.is_empty() {
        return;
    }
    let why = if r.result.is_none() {
        " (the guest sent no result)"
    } else {
        ""
    };
    let _ = writeln!(s, "tasks as measured by the host{why}:");
    let shaped = shaped(r);
    let head = if shaped {
        format!(" {:>5} {:>5}", "xLLC", "xnode")
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{:>5} {:>6} {:>10} {:>6} {:>8} {:>10} {:>9} {:>8} {:>5}{head}",
        "pid",
        "weight",
        "runtime ms",
        "share",
        "entitled",
        "maxwait ms",
        "wake p99",
        "switches",
        "migr"
    );
    for t in &r.measured {
        let _ = writeln!(
            s,
            "{:>5} {:>6} {:>10.3} {:>5.1}% {:>7.1}% {:>10.3} {:>9.3} {:>8} {:>5}{}",
            t.pid,
            t.weight,
            ms(t.runtime_ns),
            t.share * 100.0,
            t.entitled_share * 100.0,
            ms(t.max_wait_ns),
            ms(t.wake_latency.p99_ns),
            t.switches,
            t.migrations,
            cross(
                shaped,
                Some(t.migrations_cross_llc),
                Some(t.migrations_cross_node)
            )
        );
    }
}

/// The CPU table. On a machine with a shape (not one flat LLC) the CPUs
/// come LLC by LLC (thread-innermost numbering keeps each LLC contiguous
/// and SMT siblings adjacent), each group under a heading naming the LLC,
/// its node and its CPUs, and each row says its core.
fn cpus(r: &Report, s: &mut String) {
    if r.cpus.is_empty() {
        return;
    }
    let shaped = r.topology.as_ref().filter(|t| !t.is_flat());
    if let Some(t) = shaped {
        let moved = r.metrics.as_ref().and_then(|m| {
            let n = |k: &str| m.get(k).and_then(serde_json::Value::as_u64);
            Some(format!(
                "; migrations: {} ({} within an LLC, {} across LLCs, {} of them across nodes)",
                n("migrations")?,
                n("migrations")?.saturating_sub(n("migrations_cross_llc")?),
                n("migrations_cross_llc")?,
                n("migrations_cross_node")?
            ))
        });
        let _ = writeln!(
            s,
            "topology {}{}{}",
            t.shape,
            t.preset.map(|p| format!(" ({p})")).unwrap_or_default(),
            moved.unwrap_or_default()
        );
    }
    let core_col = if shaped.is_some() {
        format!(" {:>4}", "core")
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{:>5}{core_col} {:>6} {:>11} {:>9} {:>7} {:>6} {:>10} {:>9} {:>8}",
        "cpu",
        "util",
        "nr_running",
        "switches",
        "ticks",
        "ipis",
        "host wait",
        "decisions",
        "remote"
    );
    let mut rows: Vec<&super::CpuRow> = r.cpus.iter().collect();
    if shaped.is_some() {
        rows.sort_by_key(|c| (c.llc.unwrap_or(u32::MAX), c.cpu));
    }
    let mut llc = None;
    for c in rows {
        if let Some(t) = shaped
            && c.llc != llc
        {
            llc = c.llc;
            let members: Vec<String> = r
                .cpus
                .iter()
                .filter(|o| o.llc == c.llc)
                .map(|o| o.cpu.to_string())
                .collect();
            let _ = match c.llc {
                Some(l) => writeln!(
                    s,
                    "  LLC {l} (node {}): CPUs {}",
                    c.node.map_or("?".into(), |n| n.to_string()),
                    members.join(",")
                ),
                None => writeln!(s, "  outside {}", t.shape),
            };
        }
        let core = if shaped.is_some() {
            format!(" {:>4}", c.core.map_or("-".into(), |n| n.to_string()))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{:>5}{core} {:>5.1}% {:>11.2} {:>9} {:>7} {:>6} {:>10} {:>9} {:>8}",
            c.cpu,
            c.utilisation * 100.0,
            c.mean_nr_running,
            c.switches,
            opt_num(c.ticks),
            opt_num(c.ipis_sent),
            opt_pct(c.host.map(|h| h.wait_fraction())),
            opt_num(c.policy_inserts),
            opt_num(c.policy_remote_inserts)
        );
    }
}

/// A sched_ext object's run: what it bound, how much it ran, how it ended.
fn bpf(r: &Report, s: &mut String) {
    let Some(b) = &r.bpf else {
        return;
    };
    let bound: Vec<String> = b
        .programs
        .iter()
        .map(|p| format!("{}={}", p.callback, p.program))
        .collect();
    let _ = writeln!(s, "bpf: ops {} from {}", b.ops_name, b.object);
    let _ = writeln!(s, "  callbacks: {}", bound.join(" "));
    if !b.sets.is_empty() {
        let _ = writeln!(s, "  set: {}", b.sets.join(" "));
    }
    if let (Some(i), Some(c)) = (b.instructions, b.callbacks) {
        let per = if c > 0 { i as f64 / c as f64 } else { 0.0 };
        let _ = writeln!(
            s,
            "  ran {i} BPF instructions in {c} callbacks ({per:.1} per callback), ended: {}",
            b.state.as_deref().unwrap_or("?")
        );
    }
    if let Some(e) = &b.exit_info {
        let _ = writeln!(
            s,
            "  exit record: kind {}, code {}, reason \"{}\"{}",
            e.kind,
            e.exit_code,
            e.reason,
            if e.msg.is_empty() {
                String::new()
            } else {
                format!(", msg \"{}\"", e.msg)
            }
        );
    }
    for n in &b.notes {
        let _ = writeln!(s, "  note: {n}");
    }
}

fn verdict(r: &Report, s: &mut String) {
    let Some(v) = &r.verdict else {
        return;
    };
    let status = serde_json::to_value(v.status)
        .ok()
        .and_then(|x| x.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(s, "verdict: {status}");
    for c in &v.checks {
        // Not judged: measured only (the policy does not promise it). A
        // judged check that missed its limit in an inconclusive run missed
        // it by no more than the run's noise.
        let mark = match (c.judged, c.passed, v.status) {
            (false, _, _) => "info",
            (true, true, _) => "ok  ",
            (true, false, analysis::Status::Fail) => "FAIL",
            (true, false, _) => " ?? ",
        };
        let _ = writeln!(s, "  [{mark}] {}: {}", c.name, c.detail);
    }
    for why in &v.reasons {
        let _ = writeln!(s, "  - {why}");
    }
}

fn footer(r: &Report, s: &mut String) {
    if let Some(m) = &r.monitor {
        let mut line = format!(
            "monitor: {} samples, {} sweeps at {:.0}/s (asked {}/s), {} events",
            m.samples, m.sweeps, m.sample_hz_achieved, m.sample_hz_requested, m.events
        );
        if m.lost_events > 0 {
            let _ = write!(line, ", {} lost by the guest (ring full)", m.lost_events);
        }
        if m.ring_wait_ns > 0 {
            let _ = write!(
                line,
                "; the guest waited {} for it to drain a full ring (not charged to tasks)",
                vmm::units::fmt_ns(m.ring_wait_ns)
            );
        }
        if m.dropped_events > 0 {
            let _ = write!(
                line,
                ", {} events not kept by the host (cap reached: the timeline ends early)",
                m.dropped_events
            );
        }
        if m.sample_stride > 1 {
            let _ = write!(
                line,
                ", samples thinned to 1 in {} per CPU over the whole run (cap)",
                m.sample_stride
            );
        }
        let _ = writeln!(s, "{line}");
    }
    let us = |v: Option<u64>| {
        v.map(|v| format!("{:.1} ms", v as f64 / 1e3))
            .unwrap_or_else(|| "-".into())
    };
    if r.timing.wall_us.is_some() {
        let _ = writeln!(
            s,
            "boot: VM set up in {}, first guest message after {}; wall time {}",
            us(r.timing.vm_create_us),
            us(r.timing.first_message_us),
            us(r.timing.wall_us)
        );
    }
    let f = &r.frames;
    if f.has_errors() {
        let _ = writeln!(
            s,
            "frames: {} ok, {} CRC errors, {} unknown tags, {} undecodable (dropped)",
            f.frames_ok, f.crc_errors, f.unknown_tags, f.decode_errors
        );
    }
    if f.not_kept > 0 {
        let _ = writeln!(
            s,
            "frames: {} guest log lines or results not kept (over the host's cap)",
            f.not_kept
        );
    }
}

fn per_sec(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G units/s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M units/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} k units/s", v / 1e3)
    } else {
        format!("{v:.1} units/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CpuRow;
    use crate::report::tests::sample;
    use crate::report::topology::TopologyInfo;
    use abi::topology::Topology;

    #[test]
    fn human_report_has_table_totals_and_boot_line() {
        let mut s = String::new();
        human(&sample(), "spin: 2 tasks", &mut s);
        assert!(s.starts_with("spin: 2 tasks\n"), "{s}");
        assert!(s.contains(" 50.0%"), "{s}");
        assert!(
            s.contains("throughput: 10.00 k units/s over 200.000 ms elapsed"),
            "{s}"
        );
        assert!(
            s.contains("preempt_point() without a switch: 9.5 ns (median)"),
            "{s}"
        );
        assert!(
            s.contains(
                "boot: VM set up in 2.1 ms, first guest message after 5.3 ms; wall time 215.0 ms"
            ),
            "{s}"
        );
        assert!(!s.contains("frames:"), "no frame line without errors");
        assert!(!s.contains("verdict"), "no verdict without one");
    }

    fn cpu_row(cpu: u32, t: &Topology) -> CpuRow {
        CpuRow {
            cpu,
            utilisation: 0.5,
            busy_ns: 1,
            mean_nr_running: 1.0,
            max_nr_running: 1,
            switches: 1,
            ticks: None,
            ipis_sent: None,
            policy_calls: None,
            policy_inserts: None,
            policy_remote_inserts: None,
            host: None,
            core: Some(t.core_of(cpu)),
            llc: Some(t.llc_of(cpu)),
            node: Some(t.node_of(cpu)),
            cpuid: None,
        }
    }

    #[test]
    fn a_shaped_machines_cpus_are_grouped_by_llc_and_a_flat_ones_are_not() {
        let t = Topology {
            sockets: 2,
            llcs_per_socket: 1,
            cores_per_llc: 1,
            threads_per_core: 2,
        };
        let mut r = sample();
        r.topology = Some(TopologyInfo::new(t, Some("tiny")));
        // Rows in any order come out LLC by LLC.
        r.cpus = [3, 0, 2, 1].iter().map(|&c| cpu_row(c, &t)).collect();
        r.tasks[0].migrations = Some(5);
        r.tasks[0].migrations_cross_llc = Some(2);
        r.tasks[0].migrations_cross_node = Some(2);
        let mut s = String::new();
        human(&r, "head", &mut s);
        assert!(s.contains("topology 2s,1l,1c,2t (tiny)"), "{s}");
        assert!(s.contains(" xLLC xnode"), "{s}");
        let l0 = s.find("  LLC 0 (node 0): CPUs 0,1").expect(&s);
        let l1 = s.find("  LLC 1 (node 1): CPUs 3,2").expect(&s);
        let row = |cpu: u32| s.find(&format!("\n{cpu:>5} {:>4} ", cpu / 2)).expect(&s);
        assert!(l0 < row(0) && row(0) < row(1) && row(1) < l1 && l1 < row(2) && row(2) < row(3));

        let f = Topology::flat(2);
        r.topology = Some(TopologyInfo::new(f, None));
        r.cpus = (0..2).map(|c| cpu_row(c, &f)).collect();
        let mut s = String::new();
        human(&r, "head", &mut s);
        assert!(
            !s.contains("LLC") && !s.contains("core") && !s.contains("topology"),
            "{s}"
        );
    }

    #[test]
    fn human_report_shows_cpus_and_each_check() {
        let mut r = sample();
        r.tasks[0].entitled_share = Some(0.5);
        r.tasks[0].max_wait_ns = Some(2_000_000);
        r.cpus = vec![CpuRow {
            cpu: 0,
            utilisation: 0.995,
            busy_ns: 1,
            mean_nr_running: 2.0,
            max_nr_running: 3,
            switches: 42,
            ticks: Some(500),
            ipis_sent: None,
            policy_calls: None,
            policy_inserts: None,
            policy_remote_inserts: None,
            host: None,
            core: None,
            llc: None,
            node: None,
            cpuid: None,
        }];
        r.verdict = Some(analysis::Verdict {
            status: analysis::Status::Fail,
            checks: vec![analysis::Check {
                name: "max_wait_ns".into(),
                value: 1.0,
                limit: 0.0,
                passed: false,
                detail: "task 3 waited long".into(),
                judged: true,
            }],
            reasons: vec!["task 3 waited 412.0 ms runnable".into()],
        });
        let mut s = String::new();
        human(&r, "spin", &mut s);
        assert!(s.contains("  50.0%"), "entitled column: {s}");
        assert!(s.contains("2.000"), "max wait column: {s}");
        assert!(
            s.contains("    0  99.5%        2.00        42     500      -          -"),
            "{s}"
        );
        assert!(
            s.contains("verdict: fail\n  [FAIL] max_wait_ns: task 3 waited long"),
            "{s}"
        );
        assert!(s.contains("  - task 3 waited 412.0 ms runnable"), "{s}");
    }

    #[test]
    fn a_run_without_a_result_shows_the_host_measured_tasks() {
        let mut r = crate::report::Report::new("spin", serde_json::Value::Null);
        r.measured = vec![analysis::TaskMetrics {
            pid: 3,
            weight: 2,
            runtime_ns: 0,
            share: 0.0,
            entitled_share: 0.5,
            fairness_error: -1.0,
            fairness_noise: 0.0,
            slices: 0,
            max_wait_ns: 104_000_000,
            total_wait_ns: 104_000_000,
            wakeups: 0,
            wake_latency: analysis::Latency::default(),
            switches: 0,
            migrations: 0,
            migrations_cross_llc: 0,
            migrations_cross_node: 0,
        }];
        let mut s = String::new();
        human(&r, "spin", &mut s);
        assert!(s.contains("the guest sent no result"), "{s}");
        assert!(
            s.contains("    3      2      0.000   0.0%    50.0%    104.000"),
            "{s}"
        );
    }
}
