//! `wsd load compare A.json B.json [--report cmp.html] [--labels A,B]`: two
//! runs' `--report-json` files side by side: a table of the medians of their
//! per-interval series with the ratio A/B (printed, and in the page), and both
//! runs' series on the same axes, one chart per metric.
//!
//! Owns reading and checking the two files, choosing the metrics a mode has,
//! and the medians. It must never write anything but the `--report` file and
//! stdout, and never compare runs of different modes.

use std::path::{Path, PathBuf};

use super::html_report::{
    self, latency, rss_mib, steps, Chart, Compared, Kind, Series, Unit, CPU_TITLE, OPEN_TITLE,
    PALETTE, RSS_TITLE,
};
use super::timeline::{median, RunReport, Sample};

/// Options of `wsd load compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The first run's --report-json file (the numerator of the ratios).
    pub a: PathBuf,
    /// The second run's --report-json file.
    pub b: PathBuf,
    /// Write the comparison as one self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Names of the two runs, e.g. wsd,uws (default: the file names).
    #[arg(long, value_name = "A,B", value_parser = parse_labels)]
    pub labels: Option<(String, String)>,
}

/// Parses `A,B` (two non-empty names).
fn parse_labels(text: &str) -> Result<(String, String), String> {
    match text.split_once(',') {
        Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() && !b.contains(',') => {
            Ok((a.trim().to_owned(), b.trim().to_owned()))
        }
        _ => Err(format!("expected two names as A,B, got {text:?}")),
    }
}

/// Reads one `--report-json` file; the error names the file.
pub fn read_report(path: &Path) -> Result<RunReport, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a wsd load --report-json file: {e}",
            path.display()
        )
    })
}

/// How a metric is read from a sample (`None`: the sample has no value).
type Getter = Box<dyn Fn(&Sample) -> Option<f64>>;

/// One row of the table: a metric and how to get it from a sample.
struct Metric {
    name: String,
    get: Getter,
    /// Whether the median is over every sample (RSS) rather than the active ones.
    all_samples: bool,
}

/// The metrics a mode's runs are compared on, in table order.
fn metrics(kind: Kind, a: &RunReport, b: &RunReport) -> Vec<Metric> {
    let rate_name = match kind {
        Kind::Handshakes => "handshakes/s",
        Kind::Echo => "messages/s",
        Kind::Deliveries => "deliveries/s",
    };
    let lat = match kind {
        Kind::Handshakes => "handshake latency",
        Kind::Echo => "round trip",
        Kind::Deliveries => "delivery latency",
    };
    let mut m = vec![
        Metric {
            name: rate_name.to_owned(),
            get: Box::new(move |s| Some(kind.rate(s))),
            all_samples: false,
        },
        Metric {
            name: format!("{lat} p50 (us)"),
            get: Box::new(|s| latency(s, s.latency_p50_us)),
            all_samples: false,
        },
        Metric {
            name: format!("{lat} p99 (us)"),
            get: Box::new(|s| latency(s, s.latency_p99_us)),
            all_samples: false,
        },
    ];
    let has = |f: fn(&Sample) -> bool| a.samples.iter().chain(&b.samples).any(f);
    if has(|s| s.server_cpu_percent.is_some()) {
        m.push(Metric {
            name: "server CPU (% of one core)".to_owned(),
            get: Box::new(|s| s.server_cpu_percent),
            all_samples: false,
        });
    }
    if has(|s| s.server_rss_bytes.is_some()) {
        m.push(Metric {
            name: "server RSS (MiB)".to_owned(),
            get: Box::new(rss_mib),
            all_samples: true,
        });
    }
    m
}

/// The median of a metric over a run: over the intervals whose main rate was
/// above zero (the ramp of an idle run, the sending of an echo run), or every
/// sample for `all_samples`.
fn metric_median(kind: Kind, metric: &Metric, run: &RunReport) -> Option<f64> {
    median(
        run.samples
            .iter()
            .filter(|s| metric.all_samples || kind.rate(s) > 0.0)
            .filter_map(|s| (metric.get)(s)),
    )
}

/// `a / b` as the table shows it, `-` when either is missing or b is 0.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    }
}

/// The table: header, then one row per metric (name, A, B, A/B).
fn table(kind: Kind, labels: (&str, &str), a: &RunReport, b: &RunReport) -> Vec<Vec<String>> {
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), html_report::fmt_value);
    let mut rows = vec![vec![
        "metric (median)".to_owned(),
        labels.0.to_owned(),
        labels.1.to_owned(),
        format!("ratio {}/{}", labels.0, labels.1),
    ]];
    for m in metrics(kind, a, b) {
        let (ma, mb) = (metric_median(kind, &m, a), metric_median(kind, &m, b));
        rows.push(vec![m.name.clone(), cell(ma), cell(mb), ratio(ma, mb)]);
    }
    rows
}

/// The table as aligned text.
fn text_table(rows: &[Vec<String>]) -> String {
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..4).map(width).collect();
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!("{:<w$}", r[0], w = widths[0]));
        for (i, cell) in r.iter().enumerate().skip(1) {
            out.push_str(&format!("  {:>w$}", cell, w = widths[i]));
        }
        out.push('\n');
    }
    out
}

/// One chart per metric, each with both runs' series.
fn charts(kind: Kind, labels: (&str, &str), a: &RunReport, b: &RunReport) -> Vec<Chart> {
    let two = |get: &dyn Fn(&Sample) -> Option<f64>| {
        vec![
            Series {
                label: labels.0.to_owned(),
                color: PALETTE[0],
                steps: steps(&a.samples, get),
            },
            Series {
                label: labels.1.to_owned(),
                color: PALETTE[1],
                steps: steps(&b.samples, get),
            },
        ]
    };
    let chart = |title: String, unit: Unit, log: bool, series: Vec<Series>| Chart {
        title,
        unit,
        log,
        series,
        note: None,
    };
    let mut out = vec![
        chart(
            kind.rate_title().to_owned(),
            Unit::Rate,
            false,
            two(&|s| Some(kind.rate(s))),
        ),
        chart(
            format!("{} p50", kind.latency_title()),
            Unit::Micros,
            true,
            two(&|s| latency(s, s.latency_p50_us)),
        ),
        chart(
            format!("{} p99", kind.latency_title()),
            Unit::Micros,
            true,
            two(&|s| latency(s, s.latency_p99_us)),
        ),
        chart(
            OPEN_TITLE.to_owned(),
            Unit::Count,
            false,
            two(&|s| Some(s.open as f64)),
        ),
        chart(
            "Errors (all causes)".to_owned(),
            Unit::Count,
            false,
            two(&|s| Some(s.errors.values().sum::<u64>() as f64)),
        ),
    ];
    let any = |f: fn(&Sample) -> bool| a.samples.iter().chain(&b.samples).any(f);
    if any(|s| s.server_cpu_percent.is_some()) {
        out.push(chart(
            CPU_TITLE.to_owned(),
            Unit::Percent,
            false,
            two(&|s| s.server_cpu_percent),
        ));
    }
    if any(|s| s.server_rss_bytes.is_some()) {
        out.push(chart(RSS_TITLE.to_owned(), Unit::MiB, false, two(&rss_mib)));
    }
    out
}

/// A file's label by default: its name without `.json`.
fn default_label(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    name.strip_suffix(".json").unwrap_or(&name).to_owned()
}

/// `wsd load compare`.
pub fn run(args: &CompareArgs) -> Result<bool, String> {
    let a = read_report(&args.a)?;
    let b = read_report(&args.b)?;
    if a.mode != b.mode {
        return Err(format!(
            "{} holds a run of mode {} and {} one of mode {}: compare needs two runs of the same mode",
            args.a.display(),
            a.mode,
            args.b.display(),
            b.mode
        ));
    }
    let (la, lb) = args
        .labels
        .clone()
        .unwrap_or_else(|| (default_label(&args.a), default_label(&args.b)));
    let kind = Kind::of(&a.mode);
    let rows = table(kind, (&la, &lb), &a, &b);
    println!(
        "compare {}: {la} ({}, {} samples) vs {lb} ({}, {} samples)",
        a.mode,
        args.a.display(),
        a.samples.len(),
        args.b.display(),
        b.samples.len()
    );
    print!("{}", text_table(&rows));
    if let Some(path) = &args.report {
        let (fa, fb) = (args.a.display().to_string(), args.b.display().to_string());
        let html = html_report::compare_page(
            [
                Compared {
                    label: &la,
                    file: &fa,
                    report: &a,
                },
                Compared {
                    label: &lb,
                    file: &fb,
                    report: &b,
                },
            ],
            &rows[0],
            &rows[1..],
            &charts(kind, (&la, &lb), &a, &b),
        )?;
        std::fs::write(path, html).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(mode: &str, rates: &[f64], p50: f64, rss: Option<u64>) -> RunReport {
        RunReport {
            mode: mode.into(),
            parameters: serde_json::json!({}),
            summary: serde_json::json!({}),
            interval_ms: 200,
            samples: rates
                .iter()
                .enumerate()
                .map(|(i, r)| Sample {
                    t_secs: (i + 1) as f64 * 0.2,
                    messages_per_sec: *r,
                    handshakes_per_sec: *r,
                    latency_p50_us: if *r > 0.0 { p50 } else { 0.0 },
                    latency_p99_us: if *r > 0.0 { p50 * 2.0 } else { 0.0 },
                    latency_max_us: if *r > 0.0 { p50 * 4.0 } else { 0.0 },
                    server_rss_bytes: rss,
                    ..Sample::default()
                })
                .collect(),
        }
    }

    #[test]
    fn medians_skip_idle_intervals_and_ratios_divide() {
        let a = run_of(
            "echo",
            &[0.0, 100.0, 300.0, 200.0, 0.0],
            10.0,
            Some(2 << 20),
        );
        let b = run_of("echo", &[50.0, 100.0, 0.0], 20.0, None);
        let rows = table(Kind::Echo, ("wsd", "uws"), &a, &b);
        assert_eq!(rows[0], ["metric (median)", "wsd", "uws", "ratio wsd/uws"]);
        assert_eq!(rows[1], ["messages/s", "200", "75.00", "2.67"]);
        assert_eq!(rows[2], ["round trip p50 (us)", "10.00", "20.00", "0.50"]);
        assert_eq!(rows[3][0], "round trip p99 (us)");
        assert_eq!(rows[4], ["server RSS (MiB)", "2.00", "-", "-"]);
        assert_eq!(rows.len(), 5, "no CPU row without CPU samples");
        let text = text_table(&rows);
        assert!(
            text.lines().nth(1).unwrap().starts_with("messages/s   "),
            "{text}"
        );
    }

    #[test]
    fn charts_carry_both_runs() {
        let a = run_of("idle", &[10.0, 0.0], 10.0, Some(1 << 20));
        let b = run_of("idle", &[20.0, 0.0], 10.0, None);
        let charts = charts(Kind::Handshakes, ("x<y", "b"), &a, &b);
        assert_eq!(charts[0].title, "Handshakes per second");
        assert!(charts.iter().all(|c| c.series.len() == 2));
        assert_eq!(charts.last().map(|c| c.title.as_str()), Some(RSS_TITLE));
        let html = html_report::compare_page(
            [
                Compared {
                    label: "x<y",
                    file: "a.json",
                    report: &a,
                },
                Compared {
                    label: "b",
                    file: "b.json",
                    report: &b,
                },
            ],
            &["metric".into()],
            &[],
            &charts,
        )
        .unwrap();
        assert!(html.contains("<h1>wsd load compare: x&lt;y vs b (idle)</h1>"));
        assert_eq!(html.matches("<svg").count(), charts.len());
    }

    #[test]
    fn labels_parse() {
        assert_eq!(parse_labels("wsd,uws"), Ok(("wsd".into(), "uws".into())));
        for bad in ["wsd", ",uws", "a,b,c", "a, "] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
        assert_eq!(
            default_label(Path::new("/tmp/echo-wsd-1.json")),
            "echo-wsd-1"
        );
    }

    #[test]
    fn unreadable_files_are_named() {
        let err = read_report(Path::new("/nonexistent/r.json")).unwrap_err();
        assert!(err.contains("/nonexistent/r.json"), "{err}");
        let dir = std::env::temp_dir().join(format!("wsd-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\"mode\":1}").unwrap();
        let err = read_report(&bad).unwrap_err();
        assert!(
            err.contains("bad.json is not a wsd load --report-json file"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
