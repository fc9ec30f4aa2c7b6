//! `latency.svg`: how long woken tasks waited for a CPU (wake-up event to
//! switch-in), every task, as a histogram on a logarithmic time axis --
//! latencies here span microseconds (a poll-mode wake-up) to milliseconds
//! (a tick-bound one), which a linear axis would squash into one bar.

use super::render_error;
use plotters::prelude::*;

const SIZE: (u32, u32) = (1000, 480);
/// Buckets per doubling of the latency.
const PER_OCTAVE: f64 = 4.0;

/// A histogram bucket `[lo_ns, hi_ns)` with its count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lo_ns: f64,
    pub hi_ns: f64,
    pub count: u64,
}

/// Log-spaced buckets (edges 2^(k/4) ns) from the smallest latency's to
/// the largest's; empty buckets in between are kept so gaps show.
pub fn buckets(latencies_ns: &[u64]) -> Vec<Bucket> {
    let index = |v: u64| ((v.max(1) as f64).log2() * PER_OCTAVE).floor() as i32;
    let (Some(lo), Some(hi)) = (
        latencies_ns.iter().map(|&v| index(v)).min(),
        latencies_ns.iter().map(|&v| index(v)).max(),
    ) else {
        return Vec::new();
    };
    let edge = |k: i32| 2f64.powf(f64::from(k) / PER_OCTAVE);
    let mut out: Vec<Bucket> = (lo..=hi)
        .map(|k| Bucket {
            lo_ns: edge(k),
            hi_ns: edge(k + 1),
            count: 0,
        })
        .collect();
    for &v in latencies_ns {
        out[(index(v) - lo) as usize].count += 1;
    }
    out
}

fn fmt_us(ns: u64) -> String {
    let us = ns as f64 / 1e3;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// The SVG text.
pub fn render(latencies_ns: &[u64], title: &str) -> Result<String, String> {
    let mut sorted = latencies_ns.to_vec();
    sorted.sort_unstable();
    let b = buckets(&sorted);
    let subtitle = match sorted.last() {
        None => "no wake-ups were recorded".to_string(),
        Some(&max) => format!(
            "{} wake-ups: p50 {}, p99 {}, max {}",
            sorted.len(),
            fmt_us(analysis::percentile(&sorted, 50)),
            fmt_us(analysis::percentile(&sorted, 99)),
            fmt_us(max)
        ),
    };
    // Axis in µs; an empty histogram gets a nominal 1 µs .. 1 ms.
    let (x_lo, x_hi) = match (b.first(), b.last()) {
        // A bucket's width of room on either side.
        (Some(f), Some(l)) => (f.lo_ns / 1e3 / 1.19, l.hi_ns / 1e3 * 1.19),
        _ => (1.0, 1000.0),
    };
    // Whole counts on the axis, with a little headroom.
    let top = b.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let y_hi = top + top.div_ceil(10);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(render_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title} -- {subtitle}"), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), 0u64..y_hi)
            .map_err(render_error)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .x_desc("wake-up latency (µs, log scale)")
            .y_desc("wake-ups")
            .draw()
            .map_err(render_error)?;
        chart
            .draw_series(b.iter().filter(|b| b.count > 0).map(|b| {
                Rectangle::new(
                    [(b.lo_ns / 1e3, 0), (b.hi_ns / 1e3, b.count)],
                    RGBColor(70, 110, 190).filled(),
                )
            }))
            .map_err(render_error)?;
        if !sorted.is_empty() {
            for (p, color) in [(50, RGBColor(30, 150, 60)), (99, RGBColor(200, 40, 40))] {
                let x = (analysis::percentile(&sorted, p) as f64 / 1e3).clamp(x_lo, x_hi);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, 0), (x, y_hi)],
                        color.stroke_width(2),
                    )))
                    .map_err(render_error)?
                    .label(format!("p{p}"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(render_error)?;
        }
        root.present().map_err(render_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once() {
        let v = [1_000, 1_100, 2_000, 50_000, 3];
        let b = buckets(&v);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), v.len() as u64);
        for &x in &v {
            let hits = b
                .iter()
                .filter(|b| b.lo_ns <= x as f64 && (x as f64) < b.hi_ns)
                .count();
            assert_eq!(hits, 1, "{x} in {hits} buckets");
        }
        assert!(b.windows(2).all(|w| (w[0].hi_ns - w[1].lo_ns).abs() < 1e-9));
        assert!(buckets(&[]).is_empty());
        assert_eq!(buckets(&[0]).len(), 1, "0 ns is counted, not dropped");
    }

    #[test]
    fn the_svg_parses_with_and_without_data() {
        for data in [&[][..], &[10_000, 20_000, 30_000, 2_000_000][..]] {
            let svg = render(data, "wake-up latency").unwrap();
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let text: String = doc
                .descendants()
                .filter_map(|n| n.text())
                .collect::<Vec<_>>()
                .join(" ");
            if data.is_empty() {
                assert!(text.contains("no wake-ups"), "{text}");
            } else {
                assert!(text.contains("4 wake-ups"), "{text}");
                assert!(text.contains("p99"), "{text}");
            }
        }
    }
}
