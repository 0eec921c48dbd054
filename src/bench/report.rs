//! What a bench run produces: medians per configuration, the gate/passthrough ratio, a text
//! table, JSON, and two SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::measure::{LatencyRun, ThroughputRun};
use super::{BenchError, Kind};

/// The machine the figures come from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// `nproc` (available parallelism).
    pub cpus: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine description (best effort).
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, m)| m.trim().to_string());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |k| k.trim().to_string()),
        }
    }
}

/// Medians of one configuration over its repetitions, gate beside passthrough.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Content bytes per intent.
    pub payload: usize,
    /// Passthrough median intents/s.
    pub passthrough_per_s: f64,
    /// Gate median intents/s.
    pub gate_per_s: f64,
    /// gate / passthrough.
    pub ratio: f64,
    /// Passthrough median MB/s.
    pub passthrough_mb_s: f64,
    /// Gate median MB/s.
    pub gate_mb_s: f64,
    /// Passthrough median CPU µs per intent.
    pub passthrough_cpu_us: f64,
    /// Gate median CPU µs per intent.
    pub gate_cpu_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Median per payload size and kind.
pub fn summarize(runs: &[ThroughputRun]) -> Vec<Summary> {
    let mut payloads: Vec<usize> = runs.iter().map(|r| r.payload).collect();
    payloads.sort_unstable();
    payloads.dedup();
    payloads
        .into_iter()
        .map(|payload| {
            let pick = |kind: Kind, f: fn(&ThroughputRun) -> f64| {
                median(
                    runs.iter()
                        .filter(|r| r.payload == payload && r.kind == kind)
                        .map(f)
                        .collect(),
                )
            };
            let pt = pick(Kind::Passthrough, |r| r.intents_per_s);
            let gate = pick(Kind::Gate, |r| r.intents_per_s);
            Summary {
                payload,
                passthrough_per_s: pt,
                gate_per_s: gate,
                ratio: if pt > 0.0 { gate / pt } else { 0.0 },
                passthrough_mb_s: pick(Kind::Passthrough, |r| r.mb_per_s),
                gate_mb_s: pick(Kind::Gate, |r| r.mb_per_s),
                passthrough_cpu_us: pick(Kind::Passthrough, |r| r.cpu_us_per_intent),
                gate_cpu_us: pick(Kind::Gate, |r| r.cpu_us_per_intent),
            }
        })
        .collect()
}

/// Everything one `bucket bench` invocation measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Options in force (flat, for reproduction).
    pub settings: serde_json::Value,
    /// Every throughput run, in the order run.
    pub throughput: Vec<ThroughputRun>,
    /// Medians per configuration.
    pub summary: Vec<Summary>,
    /// Every latency run.
    pub latency: Vec<LatencyRun>,
    /// Caveats worth keeping with the numbers.
    pub notes: Vec<String>,
}

impl Report {
    /// Reads a report written by [`Report::write`] (to redraw its table and charts).
    pub fn read(path: &Path) -> Result<Report, BenchError> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "machine: {} CPUs, {}", m.cpus, m.cpu_model);
        if !self.summary.is_empty() {
            let _ = writeln!(
                s,
                "\nthroughput (median of runs; steady state, first to last commit)\n\
                 {:>8} | {:>12} {:>12} {:>6} | {:>9} {:>9} | {:>10} {:>10}",
                "payload",
                "pass int/s",
                "gate int/s",
                "ratio",
                "pass MB/s",
                "gate MB/s",
                "pass µs/i",
                "gate µs/i"
            );
            for r in &self.summary {
                let _ = writeln!(
                    s,
                    "{:>8} | {:>12.0} {:>12.0} {:>6.2} | {:>9.1} {:>9.1} | {:>10.1} {:>10.1}",
                    size_label(r.payload),
                    r.passthrough_per_s,
                    r.gate_per_s,
                    r.ratio,
                    r.passthrough_mb_s,
                    r.gate_mb_s,
                    r.passthrough_cpu_us,
                    r.gate_cpu_us
                );
            }
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                s,
                "\nend-to-end latency, open loop (input timestamp → read_committed audit)\n\
                 {:>11} {:>7} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} | {:>7}",
                "kind",
                "commit",
                "offered",
                "achieved",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "missing"
            );
            for r in &self.latency {
                let _ = writeln!(
                    s,
                    "{:>11} {:>5}ms {:>8.0} {:>8.0} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>7}",
                    r.kind.as_str(),
                    r.commit_interval_ms,
                    r.offered_per_s,
                    r.achieved_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    r.p999_ms,
                    r.max_ms,
                    r.missing
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    /// Writes `results.json` (at `out`) and the SVG charts beside it.
    pub fn write(&self, out: &Path) -> Result<Vec<std::path::PathBuf>, BenchError> {
        let dir = out.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        std::fs::write(out, serde_json::to_vec_pretty(self)?)?;
        let mut written = vec![out.to_path_buf()];
        if !self.summary.is_empty() {
            let p = dir.join("throughput.svg");
            throughput_chart(&self.summary, &p)?;
            written.push(p);
        }
        if !self.latency.is_empty() {
            let p = dir.join("latency.svg");
            latency_chart(&self.latency, &p)?;
            written.push(p);
        }
        Ok(written)
    }
}

/// "100 B", "1 KiB", "64 KiB".
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn chart_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Chart(e.to_string())
}

fn throughput_chart(summary: &[Summary], path: &Path) -> Result<(), BenchError> {
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let top = summary
        .iter()
        .map(|s| s.passthrough_per_s.max(s.gate_per_s))
        .fold(1.0, f64::max)
        * 1.15;
    let n = summary.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput: passthrough vs gate (intents/s)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(chart_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&|x| {
            // Label the middle of each group (x = i + 0.5), nothing else.
            let i = x.floor();
            if (x - i - 0.5).abs() < 0.05 && i >= 0.0 {
                summary
                    .get(i as usize)
                    .map(|s| size_label(s.payload))
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("content size per intent")
        .y_desc("intents/s")
        .draw()
        .map_err(chart_err)?;
    for (kind, offset, color) in [
        (Kind::Passthrough, 0.1, RGBColor(120, 120, 120)),
        (Kind::Gate, 0.5, RGBColor(31, 119, 180)),
    ] {
        chart
            .draw_series(summary.iter().enumerate().map(|(i, s)| {
                let v = if kind == Kind::Gate {
                    s.gate_per_s
                } else {
                    s.passthrough_per_s
                };
                let x = i as f64 + offset;
                Rectangle::new([(x, 0.0), (x + 0.38, v)], color.filled())
            }))
            .map_err(chart_err)?
            .label(kind.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(chart_err)?;
    root.present().map_err(chart_err)?;
    Ok(())
}

/// Picks one percentile of a latency run.
type Percentile = fn(&LatencyRun) -> f64;

fn latency_chart(runs: &[LatencyRun], path: &Path) -> Result<(), BenchError> {
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let mut intervals: Vec<u64> = runs.iter().map(|r| r.commit_interval_ms).collect();
    intervals.sort_unstable();
    intervals.dedup();
    let top = runs.iter().map(|r| r.p999_ms).fold(1.0, f64::max) * 2.0;
    let ni = intervals.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "End-to-end latency percentiles by commit interval (ms, open loop)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..ni as f64 - 0.5, (0.5f64..top).log_scale())
        .map_err(chart_err)?;
    let labels = intervals.clone();
    chart
        .configure_mesh()
        .x_labels(ni.max(2))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels
                    .get(i as usize)
                    .map(|v| format!("{v} ms"))
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("commit interval")
        .y_desc("latency, ms (log)")
        .draw()
        .map_err(chart_err)?;
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(214, 39, 40),
    ];
    for kind in [Kind::Gate, Kind::Passthrough] {
        let pts = |f: fn(&LatencyRun) -> f64| -> Vec<(f64, f64)> {
            intervals
                .iter()
                .enumerate()
                .filter_map(|(i, ci)| {
                    runs.iter()
                        .find(|r| r.kind == kind && r.commit_interval_ms == *ci)
                        .map(|r| (i as f64, f(r).max(0.5)))
                })
                .collect()
        };
        let series: [(&str, Percentile); 3] = [
            ("p50", |r| r.p50_ms),
            ("p99", |r| r.p99_ms),
            ("p99.9", |r| r.p999_ms),
        ];
        for (j, (name, f)) in series.into_iter().enumerate() {
            let color = palette[j];
            let style = if kind == Kind::Gate {
                color.stroke_width(2)
            } else {
                color.mix(0.5).stroke_width(1)
            };
            chart
                .draw_series(LineSeries::new(pts(f), style))
                .map_err(chart_err)?
                .label(format!("{} {name}", kind.as_str()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
            chart
                .draw_series(
                    pts(f)
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(chart_err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(chart_err)?;
    root.present().map_err(chart_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_labels() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(size_label(65536), "64 KiB");
        assert_eq!(size_label(100), "100 B");
    }
}
