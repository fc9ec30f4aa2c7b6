//! `timeline.svg`: one row per CPU, a coloured bar wherever a task ran,
//! one colour per pid, a legend. Each row is labelled "CPU n" (a `<text>`
//! element), so a reader -- or a test -- can find the rows. On a machine
//! with a shape the rows come in groups, one per LLC (CPU numbering keeps
//! an LLC's CPUs contiguous and SMT siblings adjacent), split by a rule
//! and labelled "LLC n (node m)" on the right.
//!
//! The picture is drawn at its own resolution: the run is cut into as many
//! time columns as the plot is pixels wide and each column shows the task
//! that ran longest in it (blank if the CPU was mostly idle). A 1-hour run
//! with millions of switches therefore makes a file of the same size as a
//! 200 ms one, and nothing a pixel could show is lost.

use super::render_error;
use super::trace::Trace;
use plotters::prelude::*;

const WIDTH: u32 = 1200;
const ROW_PX: u32 = 26;
/// Time columns, about the plot's width in pixels.
const COLUMNS: u64 = 1000;
const LEGEND_COLS: u32 = 8;
const LEGEND_CELL: (u32, u32) = (140, 20);
/// Pids named in the legend; more are summarised in one entry.
const LEGEND_MAX: usize = 48;
/// Room right of the plot for the LLC labels of a shaped machine.
const LLC_LABEL_PX: u32 = 110;

/// A bar as drawn: `pid` on `cpu` over `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    pub cpu: u32,
    pub pid: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// The bars at a resolution of `columns` time columns over the span.
pub fn bars(trace: &Trace, columns: u64) -> Vec<Bar> {
    let span = trace.span_ns;
    let columns = columns.min(span).max(1);
    if span == 0 {
        return Vec::new();
    }
    // Column i covers [edge(i), edge(i + 1)).
    let edge = |i: u64| (u128::from(span) * u128::from(i) / u128::from(columns)) as u64;
    let column_of = |t: u64| (u128::from(t) * u128::from(columns) / u128::from(span)) as u64;
    let cpus = trace.cpus as usize;
    // Per CPU and column: (pid, ns) pairs; a handful per column at most
    // unless the picture is far too coarse for the run.
    let mut time: Vec<Vec<Vec<(u32, u64)>>> = vec![vec![Vec::new(); columns as usize]; cpus];
    for s in &trace.segments {
        let Some(row) = time.get_mut(s.cpu as usize) else {
            continue;
        };
        let end = s.end_ns.min(span);
        if end <= s.start_ns {
            continue;
        }
        let first = column_of(s.start_ns);
        let last = column_of(end - 1).min(columns - 1);
        for c in first..=last {
            let overlap = end.min(edge(c + 1)).saturating_sub(s.start_ns.max(edge(c)));
            if overlap == 0 {
                continue;
            }
            let cell = &mut row[c as usize];
            match cell.iter_mut().find(|(p, _)| *p == s.pid) {
                Some((_, ns)) => *ns += overlap,
                None => cell.push((s.pid, overlap)),
            }
        }
    }
    let mut out = Vec::new();
    for (cpu, row) in time.iter().enumerate() {
        let mut open: Option<Bar> = None;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u64;
            let width = edge(c + 1) - edge(c);
            let busy: u64 = cell.iter().map(|(_, ns)| ns).sum();
            let top = cell
                .iter()
                .max_by_key(|(pid, ns)| (*ns, std::cmp::Reverse(*pid)))
                .filter(|(_, ns)| *ns >= width.saturating_sub(busy));
            match (top, open.as_mut()) {
                (Some((pid, _)), Some(b)) if b.pid == *pid => b.end_ns = edge(c + 1),
                (top, _) => {
                    out.extend(open.take());
                    open = top.map(|(pid, _)| Bar {
                        cpu: cpu as u32,
                        pid: *pid,
                        start_ns: edge(c),
                        end_ns: edge(c + 1),
                    });
                }
            }
        }
        out.extend(open);
    }
    out
}

/// The time axis unit: µs for runs under 2 ms, else ms.
fn unit(span_ns: u64) -> (f64, &'static str) {
    if span_ns < 2_000_000 {
        (1e3, "µs")
    } else {
        (1e6, "ms")
    }
}

pub fn color(index: usize) -> RGBColor {
    let c = Palette99::pick(index).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// The SVG text.
pub fn render(trace: &Trace, title: &str) -> Result<String, String> {
    let cpus = trace.cpus.max(1);
    let pids = trace.pids();
    let shown = pids.len().min(LEGEND_MAX);
    let legend_entries = shown + usize::from(pids.len() > shown);
    let legend_rows = (legend_entries as u32).div_ceil(LEGEND_COLS).max(1);
    let chart_h = 90 + cpus * ROW_PX;
    let height = chart_h + 20 + legend_rows * LEGEND_CELL.1;
    let (scale, unit_name) = unit(trace.span_ns);
    let span = (trace.span_ns as f64 / scale).max(1.0);
    let bars = bars(trace, COLUMNS);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(render_error)?;
        let (top, legend) = root.split_vertically(chart_h);
        let groups = llc_groups(trace);
        let right = if groups.is_empty() { 10 } else { LLC_LABEL_PX };
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .margin_right(right)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..span, 0f64..f64::from(cpus))
            .map_err(render_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .x_label_formatter(&|x| {
                let at = x + trace.origin_ns as f64 / scale;
                // Whole units unless the window is a few units wide.
                if span < 10.0 {
                    format!("{at:.2}")
                } else {
                    format!("{at:.0}")
                }
            })
            .x_desc(format!("time since the first event ({unit_name})"))
            .draw()
            .map_err(render_error)?;
        // CPU 0 on top: row r of the picture is y in [cpus-1-r, cpus-r).
        let y_of = |cpu: u32| f64::from(cpus - 1 - cpu.min(cpus - 1));
        chart
            .draw_series((0..cpus).map(|cpu| {
                let y = y_of(cpu);
                Rectangle::new(
                    [(0.0, y + 0.08), (span, y + 0.92)],
                    RGBColor(244, 244, 244).filled(),
                )
            }))
            .map_err(render_error)?;
        chart
            .draw_series(bars.iter().map(|b| {
                let y = y_of(b.cpu);
                let i = pids.binary_search(&b.pid).unwrap_or(0);
                Rectangle::new(
                    [
                        (b.start_ns as f64 / scale, y + 0.12),
                        (b.end_ns as f64 / scale, y + 0.88),
                    ],
                    color(i).filled(),
                )
            }))
            .map_err(render_error)?;
        let label = ("sans-serif", 14).into_font().color(&BLACK);
        for cpu in 0..cpus {
            let (_, py) = chart.backend_coord(&(0.0, y_of(cpu) + 0.5));
            top.draw(&Text::new(
                format!("CPU {cpu}"),
                (14, py - 7),
                label.clone(),
            ))
            .map_err(render_error)?;
        }
        for g in &groups {
            let (y_top, y_bottom) = (y_of(g.first) + 1.0, y_of(g.last));
            if g.first > 0 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(0.0, y_top), (span, y_top)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(render_error)?;
            }
            let (px, py) = chart.backend_coord(&(span, (y_top + y_bottom) / 2.0));
            top.draw(&Text::new(
                format!("LLC {} (node {})", g.llc, g.node),
                (px + 8, py - 7),
                label.clone(),
            ))
            .map_err(render_error)?;
        }
        if trace.segments.is_empty() {
            let (px, py) = chart.backend_coord(&(span / 2.0, f64::from(cpus) / 2.0));
            top.draw(&Text::new(
                "no task ran while the monitor watched (no switch events)",
                (px - 200, py),
                label.clone(),
            ))
            .map_err(render_error)?;
        }
        draw_legend(&legend, &pids[..shown], pids.len() - shown)?;
        root.present().map_err(render_error)?;
    }
    Ok(svg)
}

/// One LLC's rows: CPUs `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlcGroup {
    pub llc: u32,
    pub node: u32,
    pub first: u32,
    pub last: u32,
}

/// The LLCs of a shaped trace, in row order; none for a flat machine or
/// a shape whose CPU count is not the trace's.
pub fn llc_groups(trace: &Trace) -> Vec<LlcGroup> {
    let flat = |t: &abi::topology::Topology| *t == abi::topology::Topology::flat(t.cpus());
    let Some(t) = trace
        .topology
        .filter(|t| t.cpus() == trace.cpus && !flat(t))
    else {
        return Vec::new();
    };
    let per = t.threads_per_core * t.cores_per_llc;
    (0..t.llcs())
        .map(|llc| LlcGroup {
            llc,
            node: t.node_of(llc * per),
            first: llc * per,
            last: llc * per + per - 1,
        })
        .collect()
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    pids: &[u32],
    more: usize,
) -> Result<(), String> {
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    let (w, h) = LEGEND_CELL;
    let cell = |i: usize| {
        let i = i as u32;
        (
            80 + (i % LEGEND_COLS * w) as i32,
            10 + (i / LEGEND_COLS * h) as i32,
        )
    };
    for (i, pid) in pids.iter().enumerate() {
        let (x, y) = cell(i);
        area.draw(&Rectangle::new(
            [(x, y), (x + 14, y + 12)],
            color(i).filled(),
        ))
        .map_err(render_error)?;
        area.draw(&Text::new(format!("pid {pid}"), (x + 20, y), font.clone()))
            .map_err(render_error)?;
    }
    if more > 0 {
        let (x, y) = cell(pids.len());
        area.draw(&Text::new(format!("+{more} more pids"), (x, y), font))
            .map_err(render_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::trace::Segment;

    fn seg(cpu: u32, pid: u32, start_ns: u64, end_ns: u64) -> Segment {
        Segment {
            cpu,
            pid,
            start_ns,
            end_ns,
        }
    }

    fn trace(cpus: u32, span_ns: u64, segments: Vec<Segment>) -> Trace {
        Trace {
            cpus,
            span_ns,
            origin_ns: 0,
            segments,
            wake_latencies_ns: Vec::new(),
            topology: None,
        }
    }

    #[test]
    fn wide_segments_stay_exact_and_neighbours_merge() {
        let t = trace(
            2,
            100,
            vec![seg(0, 2, 0, 40), seg(0, 2, 40, 60), seg(1, 3, 50, 100)],
        );
        let b = bars(&t, 10);
        assert_eq!(
            b,
            [
                Bar {
                    cpu: 0,
                    pid: 2,
                    start_ns: 0,
                    end_ns: 60
                },
                Bar {
                    cpu: 1,
                    pid: 3,
                    start_ns: 50,
                    end_ns: 100
                }
            ]
        );
    }

    #[test]
    fn a_column_shows_who_ran_longest_or_nothing_if_mostly_idle() {
        // Column [0, 10): pid 2 for 3 ns, pid 3 for 6 ns -> 3.
        // Column [10, 20): pid 4 for 2 ns, idle 8 -> blank.
        let t = trace(
            1,
            20,
            vec![seg(0, 2, 0, 3), seg(0, 3, 3, 9), seg(0, 4, 12, 14)],
        );
        let b = bars(&t, 2);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!((b[0].pid, b[0].start_ns, b[0].end_ns), (3, 0, 10));
    }

    #[test]
    fn many_switches_give_at_most_one_bar_per_column() {
        let segs = (0..100_000u64)
            .map(|i| seg(0, 2 + (i % 3) as u32, i * 10, i * 10 + 10))
            .collect();
        let t = trace(1, 1_000_000, segs);
        assert!(bars(&t, COLUMNS).len() <= COLUMNS as usize);
    }

    #[test]
    fn the_svg_parses_and_labels_every_cpu() {
        let t = trace(
            3,
            5_000_000,
            vec![seg(0, 2, 0, 1_000_000), seg(2, 3, 0, 5_000_000)],
        );
        let svg = render(&t, "test").unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let labels: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(|s| s.trim().to_string())
            .filter(|s| s.starts_with("CPU "))
            .collect();
        assert_eq!(labels, ["CPU 0", "CPU 1", "CPU 2"]);
        let legend: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .filter(|s| s.trim().starts_with("pid "))
            .collect();
        assert_eq!(legend.len(), 2);
    }

    fn texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(|s| s.trim().to_string())
            .collect()
    }

    #[test]
    fn a_shaped_machines_rows_are_grouped_and_labelled_by_llc() {
        let mut t = trace(8, 5_000_000, vec![seg(5, 2, 0, 1_000_000)]);
        t.topology = Some(abi::topology::Topology {
            sockets: 2,
            llcs_per_socket: 2,
            cores_per_llc: 1,
            threads_per_core: 2,
        });
        let g = llc_groups(&t);
        assert_eq!(g.len(), 4);
        assert_eq!(
            g[2],
            LlcGroup {
                llc: 2,
                node: 1,
                first: 4,
                last: 5
            }
        );
        let text = texts(&render(&t, "shaped").unwrap());
        let llcs: Vec<&String> = text.iter().filter(|s| s.starts_with("LLC ")).collect();
        assert_eq!(
            llcs,
            [
                "LLC 0 (node 0)",
                "LLC 1 (node 0)",
                "LLC 2 (node 1)",
                "LLC 3 (node 1)"
            ]
        );
        assert_eq!(text.iter().filter(|s| s.starts_with("CPU ")).count(), 8);
        // A flat machine, or a shape that is not the trace's: no groups.
        t.topology = Some(abi::topology::Topology::flat(8));
        assert!(llc_groups(&t).is_empty());
        t.topology = Some(abi::topology::Topology::flat(4));
        assert!(llc_groups(&t).is_empty());
        t.topology = None;
        assert!(llc_groups(&t).is_empty());
        let flat = texts(&render(&t, "flat").unwrap());
        assert!(!flat.iter().any(|s| s.starts_with("LLC ")), "{flat:?}");
    }

    #[test]
    fn an_empty_trace_still_draws_its_rows() {
        let svg = render(&trace(2, 0, vec![]), "empty").unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let rows = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .filter(|s| s.trim().starts_with("CPU "))
            .count();
        assert_eq!(rows, 2);
    }
}
