//! The HTML pages of `wsd load ... --report` and `wsd load compare --report`:
//! one self-contained file each (inline CSS and inline SVG charts drawn with
//! plotters' SVG backend; no script, no font file, no reference to anything
//! outside the file), and the step series the charts are made of.
//!
//! Owns page layout, chart drawing and HTML escaping. It must never do I/O (it
//! returns strings for the caller to write), and every string that comes from a
//! run, a file or the command line goes through [`escape`] before it joins the
//! page (text inside the SVG is escaped by plotters).

use std::collections::BTreeSet;

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::fmt_count;
use super::timeline::{RunReport, Sample};

/// Chart size in SVG units (the page scales it to its width).
const WIDTH: u32 = 960;
const HEIGHT: u32 = 300;

/// More samples than this are drawn in groups (see [`coarsen`]).
const MAX_POINTS: usize = 1500;

/// Series colours: blue, orange, green, red, purple, brown, pink, grey.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a chart's y axis counts; it picks the tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Connections, errors.
    Count,
    /// Per second.
    Rate,
    /// Latency given in microseconds.
    Micros,
    /// Percent of one core.
    Percent,
    /// Mebibytes.
    MiB,
}

impl Unit {
    fn desc(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Rate => "per second",
            Unit::Micros => "latency",
            Unit::Percent => "% of one core",
            Unit::MiB => "MiB",
        }
    }

    /// A tick label.
    pub fn tick(self, v: f64) -> String {
        match self {
            Unit::Count if v.fract() != 0.0 => String::new(),
            Unit::Count | Unit::Rate => si(v),
            Unit::Micros => fmt_us(v),
            Unit::Percent if v.abs() < 10.0 && v.fract() != 0.0 => format!("{v:.1}%"),
            Unit::Percent => format!("{v:.0}%"),
            Unit::MiB => {
                if v.abs() >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            }
        }
    }
}

/// `950`, `12.5k`, `3.2M`, `0.5`.
fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Microseconds as `850us`, `1.2ms`, `2.5s`.
fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.1}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.1}ms", us / 1e3)
    } else if us >= 10.0 {
        format!("{us:.0}us")
    } else {
        format!("{us:.1}us")
    }
}

/// A number in a table: separators from 100 up, two decimals below.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.abs() >= 100.0 {
        let s = fmt_count(v.abs().round() as u64);
        if v < 0.0 {
            format!("-{s}")
        } else {
            s
        }
    } else {
        format!("{v:.2}")
    }
}

/// One interval's value, held from `from` to `to` seconds; `None` when the
/// interval has no value (no latency measured in it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub from: f64,
    pub to: f64,
    pub value: Option<f64>,
}

/// The steps of one per-interval series: sample i spans from sample i-1's
/// `t_secs` (0 for the first) to its own.
pub fn steps(samples: &[Sample], value: impl Fn(&Sample) -> Option<f64>) -> Vec<Step> {
    let mut from = 0.0;
    samples
        .iter()
        .map(|s| {
            let step = Step {
                from,
                to: s.t_secs,
                value: value(s).filter(|v| v.is_finite()),
            };
            from = s.t_secs;
            step
        })
        .collect()
}

/// Whether a log axis labels `v`: only 1, 2 and 5 times a power of ten, so
/// that the labels of a one-decade axis do not crowd.
fn log_labelled(v: f64) -> bool {
    if v <= 0.0 || !v.is_finite() {
        return false;
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-6 * m)
}

/// A sample's latency figure, or `None` when nothing completed in it.
pub fn latency(s: &Sample, v: f64) -> Option<f64> {
    (s.latency_max_us > 0.0).then_some(v)
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub steps: Vec<Step>,
}

/// One chart: a title, a unit, its series, and an optional note drawn across it.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub unit: Unit,
    /// A logarithmic y axis (latencies).
    pub log: bool,
    pub series: Vec<Series>,
    pub note: Option<String>,
}

/// The polyline points of a step series: one run of points per stretch of
/// consecutive intervals with a value.
fn polylines(steps: &[Step]) -> Vec<Vec<(f64, f64)>> {
    let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for s in steps {
        match s.value {
            Some(v) => {
                current.push((s.from, v));
                current.push((s.to, v));
            }
            None if !current.is_empty() => lines.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

fn draw_err(e: impl std::fmt::Display) -> String {
    format!("cannot draw a chart: {e}")
}

/// The chart as an `<svg>` element, x from 0 to `x_max` seconds.
pub fn draw(chart: &Chart, x_max: f64) -> Result<String, String> {
    let x_max = if x_max.is_finite() && x_max > 0.0 {
        x_max
    } else {
        1.0
    };
    let values: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.steps.iter().filter_map(|st| st.value))
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&chart.title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(78);
        if chart.log {
            let positive = values.iter().copied().filter(|v| *v > 0.0);
            let lo = positive.clone().fold(f64::INFINITY, f64::min);
            let hi = positive.fold(0.0, f64::max);
            // From the power of ten below the lowest value: plotters labels
            // a log axis from the first power of ten in its range.
            let (lo, hi) = if hi > 0.0 {
                (10f64.powf(lo.log10().floor()), hi * 3.0)
            } else {
                (1.0, 1000.0)
            };
            let mut ctx = builder
                .build_cartesian_2d(0f64..x_max, (lo..hi).log_scale())
                .map_err(draw_err)?;
            plot(&mut ctx, chart)?;
        } else {
            let hi = values.iter().copied().fold(0.0, f64::max);
            let hi = if hi > 0.0 { hi * 1.3 } else { 1.0 };
            let mut ctx = builder
                .build_cartesian_2d(0f64..x_max, 0f64..hi)
                .map_err(draw_err)?;
            plot(&mut ctx, chart)?;
        }
        if let Some(note) = &chart.note {
            let style = TextStyle::from(("sans-serif", 18).into_font())
                .color(&RGBColor(90, 90, 90))
                .pos(Pos::new(HPos::Center, VPos::Center));
            let at = ((WIDTH / 2) as i32, (HEIGHT / 2) as i32);
            root.draw(&Text::new(note.as_str(), at, style))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The mesh, the series and the legend on a built chart.
fn plot<'a, 'b: 'a, Y>(
    ctx: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    chart: &Chart,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (unit, log) = (chart.unit, chart.log);
    let x_fmt = |x: &f64| format!("{x:.1}");
    let y_fmt = |y: &f64| {
        if log && !log_labelled(*y) {
            String::new()
        } else {
            unit.tick(*y)
        }
    };
    ctx.configure_mesh()
        .x_desc("seconds since start")
        .y_desc(unit.desc())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(draw_err)?;
    for series in &chart.series {
        let color = series.color;
        let mut lines = polylines(&series.steps);
        if lines.is_empty() {
            lines.push(Vec::new()); // still named in the legend
        }
        for (i, line) in lines.into_iter().enumerate() {
            let anno = ctx
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(draw_err)?;
            if i == 0 {
                anno.label(series.label.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
            }
        }
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(190, 190, 190))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// At most `max` samples for drawing: past that, every `g` consecutive samples
/// become one (rates and CPU averaged over the time they cover, `open` and RSS
/// as at the group's end, latencies the highest of the group, errors added).
/// Returns the samples and `g`.
pub fn coarsen(samples: &[Sample], max: usize) -> (Vec<Sample>, usize) {
    let g = samples.len().div_ceil(max.max(1)).max(1);
    if g == 1 {
        return (samples.to_vec(), 1);
    }
    let mut out = Vec::with_capacity(samples.len() / g + 1);
    let mut from = 0.0;
    for chunk in samples.chunks(g) {
        let Some(last) = chunk.last() else {
            continue;
        };
        let span = (last.t_secs - from).max(f64::MIN_POSITIVE);
        let mut merged = last.clone();
        let (mut hs, mut ms, mut cpu, mut cpu_secs) = (0.0, 0.0, 0.0, 0.0);
        let mut prev = from;
        merged.errors.clear();
        for s in chunk {
            let dt = s.t_secs - prev;
            prev = s.t_secs;
            hs += s.handshakes_per_sec * dt;
            ms += s.messages_per_sec * dt;
            if let Some(c) = s.server_cpu_percent {
                cpu += c * dt;
                cpu_secs += dt;
            }
            merged.latency_p50_us = merged.latency_p50_us.max(s.latency_p50_us);
            merged.latency_p99_us = merged.latency_p99_us.max(s.latency_p99_us);
            merged.latency_max_us = merged.latency_max_us.max(s.latency_max_us);
            for (cause, n) in &s.errors {
                *merged.errors.entry(cause.clone()).or_insert(0) += n;
            }
        }
        merged.handshakes_per_sec = hs / span;
        merged.messages_per_sec = ms / span;
        merged.server_cpu_percent = (cpu_secs > 0.0).then(|| cpu / cpu_secs);
        from = last.t_secs;
        out.push(merged);
    }
    (out, g)
}

/// What a mode's rate and latency are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// idle, rss: handshakes.
    Handshakes,
    /// echo: round trips.
    Echo,
    /// broadcast: deliveries.
    Deliveries,
}

impl Kind {
    pub fn of(mode: &str) -> Kind {
        match mode {
            "echo" => Kind::Echo,
            "broadcast" => Kind::Deliveries,
            _ => Kind::Handshakes,
        }
    }

    /// The main rate's chart title.
    pub fn rate_title(self) -> &'static str {
        match self {
            Kind::Handshakes => "Handshakes per second",
            Kind::Echo => "Messages per second",
            Kind::Deliveries => "Deliveries per second",
        }
    }

    /// The main rate of a sample.
    pub fn rate(self, s: &Sample) -> f64 {
        match self {
            Kind::Handshakes => s.handshakes_per_sec,
            Kind::Echo | Kind::Deliveries => s.messages_per_sec,
        }
    }

    pub fn latency_title(self) -> &'static str {
        match self {
            Kind::Handshakes => "Handshake latency",
            Kind::Echo => "Round-trip latency",
            Kind::Deliveries => "Delivery latency",
        }
    }
}

pub const OPEN_TITLE: &str = "Connections open";
pub const ERRORS_TITLE: &str = "Errors by cause";
pub const RSS_TITLE: &str = "Server RSS (MiB)";
pub const CPU_TITLE: &str = "Server CPU (% of one core)";

/// RSS in MiB.
pub fn rss_mib(s: &Sample) -> Option<f64> {
    s.server_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))
}

/// The charts of one run, in page order.
pub fn run_charts(samples: &[Sample], mode: &str) -> Vec<Chart> {
    let kind = Kind::of(mode);
    let series = |label: &str, color: usize, steps: Vec<Step>| Series {
        label: label.to_owned(),
        color: PALETTE[color % PALETTE.len()],
        steps,
    };
    let chart = |title: &str, unit: Unit, series: Vec<Series>| Chart {
        title: title.to_owned(),
        unit,
        log: false,
        series,
        note: None,
    };
    let mut charts = vec![chart(
        OPEN_TITLE,
        Unit::Count,
        vec![series("open", 0, steps(samples, |s| Some(s.open as f64)))],
    )];
    charts.push(chart(
        kind.rate_title(),
        Unit::Rate,
        vec![series(
            match kind {
                Kind::Handshakes => "handshakes/s",
                Kind::Echo => "messages/s",
                Kind::Deliveries => "deliveries/s",
            },
            0,
            steps(samples, |s| Some(kind.rate(s))),
        )],
    ));
    let mut lat = chart(
        kind.latency_title(),
        Unit::Micros,
        vec![
            series("p50", 0, steps(samples, |s| latency(s, s.latency_p50_us))),
            series("p99", 1, steps(samples, |s| latency(s, s.latency_p99_us))),
            series("max", 3, steps(samples, |s| latency(s, s.latency_max_us))),
        ],
    );
    lat.log = true;
    charts.push(lat);
    let causes: BTreeSet<&String> = samples.iter().flat_map(|s| s.errors.keys()).collect();
    let mut errors = chart(ERRORS_TITLE, Unit::Count, Vec::new());
    if causes.is_empty() {
        errors
            .series
            .push(series("no errors", 2, steps(samples, |_| Some(0.0))));
        errors.note = Some("no errors in this run".to_owned());
    }
    for (i, cause) in causes.into_iter().enumerate() {
        let n = |s: &Sample| Some(s.errors.get(cause).copied().unwrap_or(0) as f64);
        errors.series.push(series(cause, i + 3, steps(samples, n)));
    }
    charts.push(errors);
    if samples.iter().any(|s| s.server_rss_bytes.is_some()) {
        charts.push(chart(
            RSS_TITLE,
            Unit::MiB,
            vec![series("server RSS", 4, steps(samples, rss_mib))],
        ));
    }
    if samples.iter().any(|s| s.server_cpu_percent.is_some()) {
        charts.push(chart(
            CPU_TITLE,
            Unit::Percent,
            vec![series(
                "server CPU",
                5,
                steps(samples, |s| s.server_cpu_percent),
            )],
        ));
    }
    charts
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em auto;max-width:1000px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}\
figure{margin:1em 0}svg{max-width:100%;height:auto;display:block}\
.note{color:#555}";

/// A whole page around `body` (already HTML).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// A JSON value flattened to `(dotted.key, text)` rows: numbers, booleans and
/// null as JSON writes them, strings as they are, arrays as JSON.
pub fn flatten(value: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, key: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}.{k}")
                    };
                    walk(v, &key, out);
                }
            }
            serde_json::Value::String(s) => out.push((key.to_owned(), s.clone())),
            other => out.push((key.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

/// A two-column table of `(key, value)` rows.
fn key_value_table(rows: &[(String, String)]) -> String {
    let mut t = String::from("<table>\n");
    for (k, v) in rows {
        let class = if v.parse::<f64>().is_ok() {
            " class=\"num\""
        } else {
            ""
        };
        t.push_str(&format!(
            "<tr><th>{}</th><td{class}>{}</td></tr>\n",
            escape(k),
            escape(v)
        ));
    }
    t.push_str("</table>\n");
    t
}

/// The charts, each in a `<figure>`, and a note on how they were sampled.
fn figures(charts: &[Chart], x_max: f64) -> Result<String, String> {
    let mut out = String::new();
    for c in charts {
        out.push_str("<figure>\n");
        out.push_str(&draw(c, x_max)?);
        out.push_str("</figure>\n");
    }
    Ok(out)
}

fn sampling_note(interval_ms: u64, n: usize, group: usize, cpu: bool) -> String {
    let mut s = format!(
        "<p class=\"note\">{} samples, one every {interval_ms} ms; each line holds an \
         interval's value from its start to its end. Latencies are of what completed \
         in the interval (log scale; gaps where nothing did).",
        fmt_count(n as u64)
    );
    if group > 1 {
        s.push_str(&format!(
            " Drawn in groups of {group} samples: rates averaged, latencies the group's highest."
        ));
    }
    if cpu {
        s.push_str(&format!(
            " Server CPU is read from /proc in whole clock ticks (usually 10 ms), so one \
             sample's figure moves in steps of about {:.0}% of a core.",
            1000.0 / interval_ms.max(1) as f64
        ));
    }
    s.push_str("</p>\n");
    s
}

/// The page of one run: parameters, the summary (the `--json` object, and the
/// text summary when given), and the charts.
pub fn run_page(report: &RunReport, text_summary: Option<&str>) -> Result<String, String> {
    let (samples, group) = coarsen(&report.samples, MAX_POINTS);
    let x_max = samples.last().map_or(1.0, |s| s.t_secs);
    let mut body = format!("<h1>wsd load {}</h1>\n", escape(&report.mode));
    body.push_str("<h2>Parameters</h2>\n");
    body.push_str(&key_value_table(&flatten(&report.parameters)));
    body.push_str("<h2>Summary</h2>\n");
    if let Some(text) = text_summary {
        body.push_str(&format!("<pre>{}</pre>\n", escape(text)));
    }
    body.push_str(&key_value_table(&flatten(&report.summary)));
    body.push_str("<h2>Over time</h2>\n");
    let cpu = report
        .samples
        .iter()
        .any(|s| s.server_cpu_percent.is_some());
    body.push_str(&sampling_note(
        report.interval_ms,
        report.samples.len(),
        group,
        cpu,
    ));
    body.push_str(&figures(&run_charts(&samples, &report.mode), x_max)?);
    Ok(page(&format!("wsd load {} report", report.mode), &body))
}

/// One compared run as the page names it.
#[derive(Debug, Clone, Copy)]
pub struct Compared<'a> {
    pub label: &'a str,
    pub file: &'a str,
    pub report: &'a RunReport,
}

/// The page of `wsd load compare`: both runs' parameters, the table of
/// medians (`header` then `rows`, already formatted), and the charts.
pub fn compare_page(
    runs: [Compared<'_>; 2],
    header: &[String],
    rows: &[Vec<String>],
    charts: &[Chart],
) -> Result<String, String> {
    let [a, b] = runs;
    let x_max = a
        .report
        .samples
        .last()
        .map_or(0.0, |s| s.t_secs)
        .max(b.report.samples.last().map_or(0.0, |s| s.t_secs));
    let mut body = format!(
        "<h1>wsd load compare: {} vs {} ({})</h1>\n",
        escape(a.label),
        escape(b.label),
        escape(&a.report.mode)
    );
    body.push_str("<h2>Runs</h2>\n<table>\n<tr><th>label</th><th>file</th><th>samples</th><th>parameters</th></tr>\n");
    for r in [a, b] {
        let params = flatten(&r.report.parameters)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            escape(r.label),
            escape(r.file),
            r.report.samples.len(),
            escape(&params)
        ));
    }
    body.push_str("</table>\n<h2>Medians of the per-interval series</h2>\n<table>\n<tr>");
    for h in header {
        body.push_str(&format!("<th>{}</th>", escape(h)));
    }
    body.push_str("</tr>\n");
    for row in rows {
        body.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if i > 0 { " class=\"num\"" } else { "" };
            body.push_str(&format!("<td{class}>{}</td>", escape(cell)));
        }
        body.push_str("</tr>\n");
    }
    body.push_str(
        "</table>\n<p class=\"note\">Medians are over the intervals in which the run's main \
         rate was above zero (RSS: over every sample that has one).</p>\n<h2>Over time</h2>\n",
    );
    body.push_str(&figures(charts, x_max)?);
    Ok(page(
        &format!("wsd load compare: {} vs {}", a.label, b.label),
        &body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, open: u64, rate: f64, p50: f64) -> Sample {
        Sample {
            t_secs: t,
            open,
            messages_per_sec: rate,
            latency_p50_us: p50,
            latency_p99_us: p50 * 2.0,
            latency_max_us: p50 * 3.0,
            ..Sample::default()
        }
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1" c='2'>&amp;</b>"#),
            "&lt;b a=&quot;1&quot; c=&#39;2&#39;&gt;&amp;amp;&lt;/b&gt;"
        );
        assert_eq!(escape("plain µs"), "plain µs");
    }

    #[test]
    fn steps_span_intervals_and_gaps_split_lines() {
        let s = [
            sample(0.2, 1, 10.0, 5.0),
            sample(0.4, 2, 0.0, 0.0),
            sample(0.6, 2, 5.0, 7.0),
            sample(0.8, 2, 5.0, 8.0),
        ];
        let st = steps(&s, |s| latency(s, s.latency_p50_us));
        assert_eq!(
            st[0],
            Step {
                from: 0.0,
                to: 0.2,
                value: Some(5.0)
            }
        );
        assert_eq!(st[1].value, None);
        let lines = polylines(&st);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], vec![(0.0, 5.0), (0.2, 5.0)]);
        assert_eq!(
            lines[1],
            vec![(0.4, 7.0), (0.6, 7.0), (0.6, 8.0), (0.8, 8.0)]
        );
    }

    #[test]
    fn summary_json_flattens_to_dotted_keys_as_json_writes_numbers() {
        let v = serde_json::json!({"mode":"echo","latency":{"p50_us":12.5},"failures":{},"n":3,"ok":true});
        let rows = flatten(&v);
        assert!(rows.contains(&("mode".into(), "echo".into())));
        assert!(rows.contains(&("latency.p50_us".into(), "12.5".into())));
        assert!(rows.contains(&("failures".into(), "{}".into())));
        assert!(rows.contains(&("n".into(), "3".into())));
        assert!(rows.contains(&("ok".into(), "true".into())));
    }

    #[test]
    fn a_run_page_is_self_contained_with_one_svg_per_chart() {
        let mut samples: Vec<Sample> = (1..=10)
            .map(|i| sample(i as f64 * 0.2, 4, 1000.0 + i as f64, 50.0))
            .collect();
        samples[3].errors.insert("dropped:<eof>".into(), 2);
        samples[5].server_rss_bytes = Some(8 << 20);
        let report = RunReport {
            mode: "echo".into(),
            parameters: serde_json::json!({"url":"ws://127.0.0.1:1/echo?a=<b>&c"}),
            summary: serde_json::json!({"mode":"echo","messages_per_sec":1234.5}),
            interval_ms: 200,
            samples,
        };
        let html = run_page(&report, Some("echo <summary>")).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("ws://127.0.0.1:1/echo?a=&lt;b&gt;&amp;c"));
        assert!(html.contains("<pre>echo &lt;summary&gt;</pre>"));
        assert!(html.contains("<th>messages_per_sec</th><td class=\"num\">1234.5</td>"));
        assert!(!html.contains("<script") && !html.contains("href=") && !html.contains("src="));
        assert_eq!(
            html.matches("<svg").count(),
            5,
            "open, rate, latency, errors, rss"
        );
        assert_eq!(html.matches("</svg>").count(), 5);
        for title in [
            OPEN_TITLE,
            "Messages per second",
            "Round-trip latency",
            ERRORS_TITLE,
            RSS_TITLE,
        ] {
            assert!(html.contains(&format!("{title}\n</text>")), "{title}");
        }
        assert!(html.contains("dropped:&lt;eof&gt;"), "cause escaped in SVG");
        assert!(!html.contains("no errors in this run"));
    }

    #[test]
    fn a_run_without_errors_says_so() {
        let samples: Vec<Sample> = (1..=3).map(|i| sample(i as f64, 1, 1.0, 1.0)).collect();
        let charts = run_charts(&samples, "idle");
        assert_eq!(charts[1].title, "Handshakes per second");
        let errors = charts.iter().find(|c| c.title == ERRORS_TITLE).unwrap();
        assert_eq!(errors.series.len(), 1);
        assert!(errors.series[0].steps.iter().all(|s| s.value == Some(0.0)));
        let svg = draw(errors, 3.0).unwrap();
        assert!(svg.contains("no errors in this run"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn long_runs_are_drawn_in_groups() {
        let samples: Vec<Sample> = (1..=10)
            .map(|i| sample(i as f64, i, i as f64 * 10.0, i as f64))
            .collect();
        let (c, g) = coarsen(&samples, 4);
        assert_eq!((c.len(), g), (4, 3));
        assert_eq!((c[0].t_secs, c[0].open), (3.0, 3));
        assert!((c[0].messages_per_sec - 20.0).abs() < 1e-9);
        assert_eq!(c[0].latency_max_us, 9.0);
        assert_eq!(c[3].t_secs, 10.0);
        assert_eq!(coarsen(&samples, 100).1, 1);
    }

    #[test]
    fn tick_labels_read_well() {
        assert_eq!(Unit::Rate.tick(12_500.0), "12k");
        assert_eq!(Unit::Rate.tick(2_500_000.0), "2.5M");
        assert_eq!(Unit::Count.tick(3.0), "3");
        assert_eq!(Unit::Count.tick(2.5), "");
        assert_eq!(Unit::Percent.tick(0.4), "0.4%");
        assert_eq!(Unit::Percent.tick(40.0), "40%");
        assert!(log_labelled(2000.0) && log_labelled(0.5) && log_labelled(100.0));
        assert!(!log_labelled(3000.0) && !log_labelled(0.0));
        assert_eq!(Unit::Micros.tick(850.0), "850us");
        assert_eq!(Unit::Micros.tick(1_500.0), "1.5ms");
        assert_eq!(fmt_value(123_456.7), "123,457");
        assert_eq!(fmt_value(-250.0), "-250");
        assert_eq!(fmt_value(1.234), "1.23");
    }
}
