//! Self-contained HTML reports: inline SVG charts and tables, no scripts, no network, so the
//! file opens anywhere and can be attached to a ticket.

use std::fmt::Write as _;

use super::Comparison;
use super::run::SimParams;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// (x, y) points; NaN y breaks the line.
    pub points: Vec<(f64, f64)>,
    /// Draw as steps (replica counts) rather than straight segments.
    pub step: bool,
    /// Dashed (targets, bounds).
    pub dashed: bool,
}

/// A time-series chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the chart.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub series: Vec<Series>,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Shaded x intervals (metric outages).
    pub shaded: Vec<(f64, f64)>,
    /// Vertical markers with a short label (decision changes).
    pub markers: Vec<(f64, String)>,
}

/// Colours for policies, ours first.
pub const PALETTE: [&str; 8] = [
    "#1f6feb", "#8250df", "#6e7781", "#d1242f", "#bf8700", "#1a7f37", "#000000", "#e16f24",
];

/// Text made safe inside HTML elements and attribute values (`&`, `<`, `>`, `"`); every
/// report (simulate, replay, demo) uses this one.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

impl Chart {
    /// Renders the chart as an inline `<svg>`.
    pub fn svg(&self) -> String {
        let (w, h) = (960.0, 260.0);
        let (l, r, t, b) = (64.0, 16.0, 28.0, 36.0);
        let pw = w - l - r;
        let ph = h - t - b;
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(|x| x.is_finite());
        let x_max = xs.fold(1.0f64, f64::max);
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite() && (!self.log_y || *y > 0.0))
            .collect();
        let (y_min, y_max) = if self.log_y {
            let lo = ys.iter().copied().fold(f64::INFINITY, f64::min).max(1e-3);
            let hi = ys.iter().copied().fold(0.0f64, f64::max).max(lo * 10.0);
            (
                10f64.powf(lo.log10().floor()),
                10f64.powf(hi.log10().ceil()),
            )
        } else {
            (
                0.0,
                nice_max(ys.iter().copied().fold(0.0f64, f64::max) * 1.05),
            )
        };
        let sx = |x: f64| l + pw * (x / x_max);
        let sy = |y: f64| {
            let f = if self.log_y {
                (y.max(y_min).log10() - y_min.log10()) / (y_max.log10() - y_min.log10())
            } else {
                (y - y_min) / (y_max - y_min)
            };
            t + ph * (1.0 - f.clamp(0.0, 1.0))
        };
        let mut o = String::new();
        let _ = write!(
            o,
            r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui,sans-serif" font-size="11">"#,
            esc(&self.title),
            esc(&self.title)
        );
        for (a, z) in &self.shaded {
            let _ = write!(
                o,
                r##"<rect x="{:.1}" y="{t}" width="{:.1}" height="{ph}" fill="#f6e05e" opacity="0.35"><title>metrics outage</title></rect>"##,
                sx(*a),
                (sx(*z) - sx(*a)).max(1.0)
            );
        }
        // Grid and axes.
        let ticks: Vec<f64> = if self.log_y {
            let mut v = Vec::new();
            let mut e = y_min;
            while e <= y_max * 1.0001 {
                v.push(e);
                e *= 10.0;
            }
            v
        } else {
            (0..=4)
                .map(|i| y_min + (y_max - y_min) * f64::from(i) / 4.0)
                .collect()
        };
        for y in ticks {
            let _ = write!(
                o,
                r##"<line x1="{l}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#d0d7de"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                l + pw,
                sy(y),
                sy(y),
                l - 6.0,
                sy(y) + 4.0,
                fmt_num(y)
            );
        }
        let x_step = [
            10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
        ]
        .into_iter()
        .find(|s| x_max / s <= 10.0)
        .unwrap_or(86400.0);
        let mut x = 0.0;
        while x <= x_max + 1e-9 {
            let _ = write!(
                o,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{t}" y2="{:.1}" stroke="#eaeef2"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                sx(x),
                sx(x),
                t + ph,
                sx(x),
                h - b + 16.0,
                fmt_time(x)
            );
            x += x_step;
        }
        let _ = write!(
            o,
            r##"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"##,
            t + ph / 2.0,
            t + ph / 2.0,
            esc(&self.y_label)
        );
        for (mx, label) in &self.markers {
            let _ = write!(
                o,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{t}" y2="{:.1}" stroke="#57606a" stroke-dasharray="2 3" opacity="0.6"><title>{}</title></line>"##,
                sx(*mx),
                sx(*mx),
                t + ph,
                esc(label)
            );
        }
        for s in &self.series {
            let mut d = String::new();
            let mut pen_down = false;
            let mut prev_y = 0.0;
            for &(x, y) in &s.points {
                if !y.is_finite() || (self.log_y && y <= 0.0) {
                    pen_down = false;
                    continue;
                }
                if pen_down && s.step {
                    let _ = write!(d, "L{:.1},{:.1}", sx(x), sy(prev_y));
                }
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if pen_down { "L" } else { "M" },
                    sx(x),
                    sy(y)
                );
                pen_down = true;
                prev_y = y;
            }
            let _ = write!(
                o,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"{}><title>{}</title></path>"#,
                s.color,
                if s.dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                },
                esc(&s.name)
            );
        }
        // Legend.
        let mut lx = l;
        for s in &self.series {
            let _ = write!(
                o,
                r#"<rect x="{lx:.1}" y="8" width="12" height="3" fill="{}"/><text x="{:.1}" y="13">{}</text>"#,
                s.color,
                lx + 16.0,
                esc(&s.name)
            );
            lx += 24.0 + 6.5 * s.name.len() as f64;
        }
        o.push_str("</svg></figure>\n");
        o
    }
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_time(s: f64) -> String {
    if s >= 3600.0 {
        format!(
            "{}h{:02}",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else if s >= 60.0 {
        let (m, sec) = ((s / 60.0) as u64, (s % 60.0).round() as u64);
        if sec == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{sec:02}s")
        }
    } else {
        format!("{s:.0}s")
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#1f2328}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}\
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:right}th{background:#f6f8fa}\
td:first-child,th:first-child{text-align:left}figure{margin:12px 0}figcaption{font-weight:600;font-size:13px}\
.ours{background:#ddf4ff}.note{color:#57606a;font-size:13px}code{background:#f6f8fa;padding:1px 4px}";

/// Opens an HTML page.
pub fn page_start(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>\n",
        esc(title),
        esc(title)
    )
}

/// The comparison report of `simulate`.
pub fn html(c: &Comparison, p: &SimParams) -> String {
    let mut o = page_start(&format!("keda-llm-scaler simulation: {}", c.scenario));
    o.push_str(&section(c, p));
    o.push_str(FOOTER);
    o
}

/// What every report ends with.
pub const FOOTER: &str = "<p class=\"note\">Generated by <code>keda-llm-scaler simulate</code>. Shaded: metrics outage. A good request completed with its first token within the TTFT SLO and a mean inter-token latency within the ITL SLO; goodput per GPU-second divides good requests by the GPU-seconds of pods holding a GPU (starting, serving and draining). The oracle executes the clairvoyant SLO-feasible plan (docs/simulator.md). The warm-up is not scored.</p></body></html>\n";

/// One load's scores table and charts (a section of the suite's report, or a whole report).
pub fn section(c: &Comparison, p: &SimParams) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<h2>{}</h2><p class=\"note\">{} requests over {:.0} s, seed {}. One simulated vLLM worker per {} serving Qwen3-0.6B; pod start {:.0}-{:.0} s{}; scoring SLO TTFT {:.0} ms and mean ITL {:.0} ms; client timeout {:.0} s; first {:.0} s not scored. Oracle: {} minutes sized for {:.0} % good requests ({} infeasible). All contestants ran on the same arrivals.</p>",
        esc(&c.scenario),
        c.requests,
        c.duration_s,
        c.seed,
        p.engine.gpu.name(),
        p.pod_start.min_s,
        p.pod_start.max_s,
        match &p.nodes {
            Some(n) => format!(
                ", GPU nodes {:.0}-{:.0} s with {} warm",
                n.provision.min_s, n.provision.max_s, n.warm_nodes
            ),
            None => String::new(),
        },
        p.slo.ttft_s * 1e3,
        p.slo.itl_s * 1e3,
        p.client_timeout_s,
        p.warmup_s,
        c.oracle.per_minute.len(),
        c.oracle.target * 100.0,
        c.oracle.infeasible_minutes,
    );
    o.push_str("<table><tr><th>policy</th><th>good-rate</th><th>goodput / GPU-s</th><th>GPU-hours</th><th>oracle GPU-hours</th><th>1-min windows within SLO</th><th>TTFT within SLO</th><th>actions/h</th><th>reversals/h</th><th>scale-downs in outage</th><th>timed out</th><th>killed</th><th>p95 TTFT (s)</th><th>p95 ITL (ms)</th></tr>\n");
    for r in &c.runs {
        let s = &r.scores;
        let _ = writeln!(
            o,
            "<tr{}><td>{}</td><td>{:.1} %</td><td>{:.3}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.1}</td></tr>",
            if s.policy == "keda-llm-scaler" {
                " class=\"ours\""
            } else {
                ""
            },
            esc(&s.policy),
            s.good_rate * 100.0,
            s.goodput_per_gpu_second,
            s.gpu_hours,
            s.oracle_gpu_hours,
            s.slo_attainment_windows * 100.0,
            s.slo_attainment_requests * 100.0,
            s.actions_per_hour,
            s.reversals_per_hour,
            s.scale_downs_during_outage,
            s.timed_out,
            s.killed,
            s.ttft_p95_seconds,
            s.itl_p95_seconds * 1e3,
        );
    }
    o.push_str("</table>\n");
    let outages: Vec<(f64, f64)> = c
        .runs
        .first()
        .map(|r| outage_spans(&r.timeline))
        .unwrap_or_default();

    let replicas = Chart {
        title: "Replicas (spec) by policy".into(),
        y_label: "replicas".into(),
        series: c
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                name: r.scores.policy.clone(),
                color: PALETTE[i % PALETTE.len()],
                points: r
                    .timeline
                    .iter()
                    .map(|t| (t.t_s, f64::from(t.spec)))
                    .collect(),
                step: true,
                dashed: r.scores.policy == "oracle",
            })
            .collect(),
        log_y: false,
        shaded: outages.clone(),
        markers: Vec::new(),
    };
    o.push_str(&replicas.svg());
    let mut ttft_series: Vec<Series> = c
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            name: r.scores.policy.clone(),
            color: PALETTE[i % PALETTE.len()],
            points: r
                .ttft_p95_by_minute
                .iter()
                .enumerate()
                .map(|(m, v)| (m as f64 * 60.0 + 30.0, v.unwrap_or(f64::NAN)))
                .collect(),
            step: false,
            dashed: r.scores.policy == "oracle",
        })
        .collect();
    ttft_series.push(Series {
        name: "SLO".into(),
        color: "#d1242f",
        points: vec![(0.0, p.slo.ttft_s), (c.duration_s, p.slo.ttft_s)],
        step: false,
        dashed: true,
    });
    o.push_str(
        &Chart {
            title: "True p95 TTFT per minute of arrivals (log scale)".into(),
            y_label: "seconds".into(),
            series: ttft_series,
            log_y: true,
            shaded: outages.clone(),
            markers: Vec::new(),
        }
        .svg(),
    );

    if let Some(ours) = c.runs.iter().find(|r| r.scores.policy == "keda-llm-scaler") {
        o.push_str("<h2>keda-llm-scaler: what it saw and why it acted</h2>\n");
        let markers: Vec<(f64, String)> = ours
            .decisions
            .iter()
            .map(|d| {
                (
                    d.t_s,
                    format!("{} {} via {}", d.desired, d.reason, d.binding),
                )
            })
            .collect();
        let ttft_seen: Vec<(f64, f64)> = ours
            .timeline
            .iter()
            .map(|t| (t.t_s, t.scaler_ttft_s.unwrap_or(f64::NAN)))
            .collect();
        o.push_str(
            &Chart {
                title: "Desired against serving replicas, and decisions (hover the dotted lines)"
                    .into(),
                y_label: "replicas".into(),
                series: vec![
                    Series {
                        name: "desired (answer)".into(),
                        color: PALETTE[0],
                        points: ours
                            .timeline
                            .iter()
                            .map(|t| (t.t_s, t.metric.unwrap_or(f64::NAN)))
                            .collect(),
                        step: true,
                        dashed: false,
                    },
                    Series {
                        name: "serving".into(),
                        color: PALETTE[5],
                        points: ours
                            .timeline
                            .iter()
                            .map(|t| (t.t_s, f64::from(t.ready)))
                            .collect(),
                        step: true,
                        dashed: false,
                    },
                ],
                log_y: false,
                shaded: outages.clone(),
                markers,
            }
            .svg(),
        );
        o.push_str(
            &Chart {
                title: "TTFT quantile the scaler computed against the target (gaps: too few samples, or no data)".into(),
                y_label: "seconds".into(),
                series: vec![
                    Series {
                        name: "TTFT p95 (scaler)".into(),
                        color: PALETTE[0],
                        points: ttft_seen,
                        step: false,
                        dashed: false,
                    },
                    Series {
                        name: "target".into(),
                        color: "#d1242f",
                        points: vec![(0.0, p.slo.ttft_s), (c.duration_s, p.slo.ttft_s)],
                        step: false,
                        dashed: true,
                    },
                ],
                log_y: true,
                shaded: outages.clone(),
                markers: Vec::new(),
            }
            .svg(),
        );
        o.push_str(
            &Chart {
                title: "Queue and running requests (fleet)".into(),
                y_label: "requests".into(),
                series: vec![
                    Series {
                        name: "waiting".into(),
                        color: PALETTE[3],
                        points: ours
                            .timeline
                            .iter()
                            .map(|t| (t.t_s, f64::from(t.waiting)))
                            .collect(),
                        step: false,
                        dashed: false,
                    },
                    Series {
                        name: "running".into(),
                        color: PALETTE[0],
                        points: ours
                            .timeline
                            .iter()
                            .map(|t| (t.t_s, f64::from(t.running)))
                            .collect(),
                        step: false,
                        dashed: false,
                    },
                ],
                log_y: false,
                shaded: outages.clone(),
                markers: Vec::new(),
            }
            .svg(),
        );
        o.push_str(
            &Chart {
                title: "KV-cache pressure (mean and max over serving pods)".into(),
                y_label: "fraction".into(),
                series: vec![
                    Series {
                        name: "mean".into(),
                        color: PALETTE[0],
                        points: ours.timeline.iter().map(|t| (t.t_s, t.kv_mean)).collect(),
                        step: false,
                        dashed: false,
                    },
                    Series {
                        name: "max".into(),
                        color: PALETTE[3],
                        points: ours.timeline.iter().map(|t| (t.t_s, t.kv_max)).collect(),
                        step: false,
                        dashed: false,
                    },
                ],
                log_y: false,
                shaded: outages,
                markers: Vec::new(),
            }
            .svg(),
        );
        o.push_str("<h2>Decision changes</h2><table><tr><th>time</th><th>desired</th><th>reason</th><th>binding</th><th>explanation</th></tr>\n");
        for d in ours.decisions.iter().take(200) {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                fmt_time(d.t_s),
                d.desired,
                d.reason,
                d.binding,
                esc(&d.detail)
            );
        }
        o.push_str("</table>\n");
    }
    o
}

fn outage_spans(timeline: &[super::run::TimelinePoint]) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    let mut start = None;
    for t in timeline {
        match (t.outage, start) {
            (true, None) => start = Some(t.t_s),
            (false, Some(s)) => {
                spans.push((s, t.t_s));
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(last)) = (start, timeline.last()) {
        spans.push((s, last.t_s));
    }
    spans
}
