//! The skew report as one self-contained HTML page: a summary table (sortable), and per feature
//! a chart of the disagreement rate over time, a histogram of `online - offline`, and example
//! rows. Charts are inline SVG drawn here, so the page needs no network and no script library;
//! a few lines of script only sort the table.

use std::fmt::Write as _;

use super::{CAUSES, DifferenceBin, FeatureSkew, SkewReport, TimeBucket};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// `2026-12-05 14:38:39.089`: UTC to the millisecond, short enough for a table cell.
fn time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

fn pct(x: f64) -> String {
    if x == 0.0 {
        "0%".to_string()
    } else if x < 0.0001 {
        format!("{:.4}%", x * 100.0)
    } else {
        format!("{:.2}%", x * 100.0)
    }
}

fn num(x: Option<f64>) -> String {
    match x {
        None => "–".to_string(),
        Some(v) => {
            if v == 0.0 {
                "0".to_string()
            } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
                format!("{v:.3e}")
            } else {
                format!("{v:.4}")
            }
        }
    }
}

/// An anchor id for a feature's section.
fn anchor(feature: &str) -> String {
    feature
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;color:#1d2430;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin:28px 0 6px;border-top:1px solid #dde2ea;padding-top:18px}
.meta{color:#5a6475;font-size:13px;line-height:1.6}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 8px;border-bottom:1px solid #e6e9ef;text-align:right}
th{background:#f4f6f9;cursor:pointer;user-select:none}th:first-child,td:first-child{text-align:left}
td.bad{color:#b3261e;font-weight:600}td.ok{color:#1b7f3b}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e6e9ef;border-radius:6px;padding:6px 8px}
.chart h3{font-size:13px;margin:2px 0 4px;color:#3a4456;font-weight:600}
.verdict{display:inline-block;padding:3px 10px;border-radius:12px;font-weight:600;font-size:13px}
.verdict.ok{background:#e3f4e8;color:#1b7f3b}.verdict.bad{background:#fde7e5;color:#b3261e}
.examples td{font-family:ui-monospace,monospace;font-size:12px;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
.note{color:#5a6475;font-size:13px}
"#;

const SCRIPT: &str = r#"
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var down = th.dataset.order !== "down";
    th.dataset.order = down ? "down" : "up";
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.v || a.cells[column].textContent;
      var y = b.cells[column].dataset.v || b.cells[column].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return down ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
document.body.dataset.ready = "1";
"#;

/// The report as an HTML page.
pub fn render(report: &SkewReport) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let bad = report.has_skew();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Skew: {}</title><style>{STYLE}</style></head><body>",
        esc(&report.service)
    );
    let _ = write!(
        h,
        "<h1>Online/offline skew of feature service <code>{}</code></h1><p class=\"meta\">Times are UTC.</p>",
        esc(&report.service)
    );
    let span = match (report.first_time, report.last_time) {
        (Some(a), Some(b)) => format!("requests served {} .. {}", time(a), time(b)),
        _ => "no requests in the window".to_string(),
    };
    let _ = write!(
        h,
        "<p class=\"meta\">{} logged requests, {} logged rows, {} rows compared ({span}); tolerance {}; {} rows skipped; computed in {:.2} s.</p>",
        report.requests,
        report.logged_rows,
        report.rows,
        if report.tolerance == 0.0 {
            "exact".to_string()
        } else {
            format!("{} (relative)", report.tolerance)
        },
        report.skipped_rows,
        report.seconds
    );
    let _ = write!(
        h,
        "<p><span class=\"verdict {}\">{}</span></p>",
        if bad { "bad" } else { "ok" },
        if bad {
            let n = report
                .features
                .iter()
                .filter(|f| f.disagreements() > 0)
                .count();
            format!("{n} of {} features disagree", report.features.len())
        } else {
            "every compared value agrees".to_string()
        }
    );
    summary_table(&mut h, &report.features);
    for reason in &report.skipped_reasons {
        let _ = write!(h, "<p class=\"note\">Skipped: {}</p>", esc(reason));
    }
    for f in &report.features {
        feature_section(&mut h, report, f);
    }
    let _ = writeln!(h, "<script>{SCRIPT}</script></body></html>");
    h
}

fn summary_table(h: &mut String, features: &[FeatureSkew]) {
    h.push_str("<table class=\"sortable\" id=\"summary\"><thead><tr><th>feature</th><th>type</th><th>compared</th><th>exact match</th><th>mismatch rate</th><th>mismatched</th><th>online only</th><th>offline only</th><th>mean |diff|</th><th>max |diff|</th></tr></thead><tbody>");
    for f in features {
        let rate = f.mismatch_rate();
        let _ = write!(
            h,
            "<tr><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td data-v=\"{}\">{}</td><td data-v=\"{rate}\" class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            anchor(&f.feature),
            esc(&f.feature),
            esc(&f.value_type),
            f.compared,
            f.exact_match_rate(),
            pct(f.exact_match_rate()),
            if f.disagreements() > 0 { "bad" } else { "ok" },
            pct(rate),
            f.mismatched,
            f.online_only,
            f.offline_only,
            num(f.mean_abs_diff),
            num(f.max_abs_diff),
        );
    }
    h.push_str("</tbody></table>");
}

fn feature_section(h: &mut String, report: &SkewReport, f: &FeatureSkew) {
    let _ = write!(
        h,
        "<h2 id=\"{}\">{} <span class=\"note\">({})</span></h2>",
        anchor(&f.feature),
        esc(&f.feature),
        esc(&f.value_type)
    );
    let causes: Vec<String> = CAUSES
        .iter()
        .filter_map(|c| {
            f.causes
                .get(c)
                .map(|n| format!("{} {n}", c.as_str().replace('_', " ")))
        })
        .collect();
    let statuses = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        h,
        "<p class=\"meta\">{} rows compared: {} match ({} exact), {} mismatched, {} online only, {} offline only.{}<br>Online statuses: {}. Offline: {}.</p>",
        f.compared,
        f.matched,
        f.exact,
        f.mismatched,
        f.online_only,
        f.offline_only,
        if causes.is_empty() {
            String::new()
        } else {
            format!(" Causes: {}.", causes.join(", "))
        },
        esc(&statuses(&f.online_statuses)),
        esc(&statuses(&f.offline_statuses)),
    );
    h.push_str("<div class=\"charts\">");
    let buckets: Vec<&TimeBucket> = report
        .timeline
        .iter()
        .filter(|b| b.feature == f.feature)
        .collect();
    h.push_str("<div class=\"chart\"><h3>Disagreement rate over time</h3>");
    rate_chart(h, &buckets);
    h.push_str("</div>");
    let bins: Vec<&DifferenceBin> = report
        .differences
        .iter()
        .filter(|b| b.feature == f.feature)
        .collect();
    h.push_str("<div class=\"chart\"><h3>Distribution of online − offline (rows that differ)</h3>");
    histogram_chart(h, &bins);
    h.push_str("</div></div>");
    let examples: Vec<_> = report
        .examples
        .iter()
        .filter(|e| e.feature == f.feature)
        .collect();
    if !examples.is_empty() {
        h.push_str("<div class=\"scroll\"><table class=\"examples\"><thead><tr><th>kind</th><th>cause</th><th>entity</th><th>served at</th><th>online</th><th>offline</th><th>online status</th><th>offline status</th><th>online event</th><th>offline event</th><th>layers</th><th>request</th></tr></thead><tbody>");
        for e in examples {
            let t = |x: Option<i64>| x.map_or("–".to_string(), time);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.outcome.as_str(),
                e.cause.as_str(),
                esc(&e.entity),
                time(e.time),
                esc(&e.online),
                esc(&e.offline),
                e.online_status,
                e.offline_status,
                t(e.online_event_time),
                t(e.offline_event_time),
                esc(&e.layers),
                esc(&e.request_id),
            );
        }
        h.push_str("</tbody></table></div>");
    }
}

const W: f64 = 540.0;
const H: f64 = 200.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 12.0;

fn svg_open(h: &mut String, label: &str) {
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(label)
    );
    let _ = write!(
        h,
        "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#8a94a6\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#8a94a6\"/>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
}

fn y_ticks(h: &mut String, max: f64, label: impl Fn(f64) -> String) {
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = H - BOTTOM - (H - BOTTOM - TOP) * f64::from(i) / 4.0;
        let _ = write!(
            h,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eef0f4\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5a6475\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y + 3.0,
            esc(&label(v))
        );
    }
}

fn rate_chart(h: &mut String, buckets: &[&TimeBucket]) {
    svg_open(h, "disagreement rate over time");
    let rates: Vec<Option<f64>> = buckets
        .iter()
        .map(|b| (b.compared > 0).then(|| b.disagreements as f64 / b.compared as f64))
        .collect();
    let top = rates.iter().flatten().copied().fold(0.0f64, f64::max);
    let max = if top == 0.0 {
        0.01
    } else {
        (top * 1.1).min(1.0)
    };
    y_ticks(h, max, pct);
    let n = buckets.len().max(1) as f64;
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * (i as f64 + 0.5) / n;
    let y = |r: f64| H - BOTTOM - (H - BOTTOM - TOP) * r / max;
    // Volume bars behind the line: how many rows each bucket compared.
    let most = buckets.iter().map(|b| b.compared).max().unwrap_or(0).max(1) as f64;
    let bar = (W - LEFT - RIGHT) / n * 0.8;
    for (i, b) in buckets.iter().enumerate() {
        let height = (H - BOTTOM - TOP) * 0.35 * b.compared as f64 / most;
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\" fill=\"#e3e8f0\"><title>{}: {} rows</title></rect>",
            x(i) - bar / 2.0,
            H - BOTTOM - height,
            time(b.start),
            b.compared
        );
    }
    let mut path = String::new();
    for (i, r) in rates.iter().enumerate() {
        if let Some(r) = r {
            let _ = write!(
                path,
                "{}{:.1},{:.1} ",
                if path.is_empty() { "M" } else { "L" },
                x(i),
                y(*r)
            );
        }
    }
    if !path.is_empty() {
        let _ = write!(
            h,
            "<path d=\"{}\" fill=\"none\" stroke=\"#c2410c\" stroke-width=\"2\"/>",
            path.trim_end()
        );
    }
    for (i, (b, r)) in buckets.iter().zip(&rates).enumerate() {
        if let Some(r) = r {
            let _ = write!(
                h,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#c2410c\"><title>{}: {} of {} rows disagree ({})</title></circle>",
                x(i),
                y(*r),
                time(b.start),
                b.disagreements,
                b.compared,
                pct(*r)
            );
        }
    }
    if let (Some(first), Some(last)) = (buckets.first(), buckets.last()) {
        let _ = write!(
            h,
            "<text x=\"{LEFT}\" y=\"{}\" font-size=\"10\" fill=\"#5a6475\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5a6475\">{}</text>",
            H - 10.0,
            time(first.start),
            W - RIGHT,
            H - 10.0,
            time(last.start)
        );
    }
    h.push_str("</svg>");
}

fn histogram_chart(h: &mut String, bins: &[&DifferenceBin]) {
    svg_open(h, "distribution of online minus offline");
    if bins.is_empty() {
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#5a6475\">no numeric differences</text></svg>",
            (W + LEFT) / 2.0,
            H / 2.0
        );
        return;
    }
    // Up to a multiple of 4, so the five ticks are whole counts.
    let most = (bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64 / 4.0).ceil() * 4.0;
    y_ticks(h, most, |v| format!("{v:.0}"));
    let n = bins.len() as f64;
    let width = (W - LEFT - RIGHT) / n;
    for (i, b) in bins.iter().enumerate() {
        let height = (H - BOTTOM - TOP) * b.count as f64 / most;
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#2f6fb0\"><title>[{}, {}): {} rows</title></rect>",
            LEFT + width * i as f64 + 0.5,
            H - BOTTOM - height,
            (width - 1.0).max(1.0),
            num(Some(b.low)),
            num(Some(b.high)),
            b.count
        );
    }
    let (lo, hi) = (bins[0].low, bins[bins.len() - 1].high);
    let _ = write!(
        h,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"10\" fill=\"#5a6475\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5a6475\">{}</text></svg>",
        H - 10.0,
        esc(&num(Some(lo))),
        W - RIGHT,
        H - 10.0,
        esc(&num(Some(hi)))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
