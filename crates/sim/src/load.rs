//! Request arrivals: the Azure LLM inference traces (any CSV with their columns), Poisson, and
//! the synthetic stressors (step, ramp, sawtooth, flash crowd).

use super::rng::Rng;

/// One request: when it arrives and how many tokens it reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Arrival, microseconds from the start of the run.
    pub arrival_us: u64,
    /// Prompt (context) tokens.
    pub prompt: u32,
    /// Tokens to generate (at least 1).
    pub generate: u32,
}

/// A trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The header is not the Azure one.
    #[error("line 1: expected a header with TIMESTAMP,ContextTokens,GeneratedTokens, got {0:?}")]
    Header(String),
    /// A row is malformed.
    #[error("line {line}: {what}")]
    Row {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// Nothing to replay.
    #[error("the trace has no rows")]
    Empty,
}

/// One trace row, time in seconds from the first row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRow {
    /// Seconds since the first row.
    pub t_s: f64,
    /// Prompt tokens.
    pub context: u32,
    /// Generated tokens.
    pub generated: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `2023-11-16 18:17:03.9799600`, `2024-05-10 00:00:00.009930+00:00` (the offset is
/// ignored: the files are UTC), an ISO `T` separator, or plain seconds.
fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let (y, m, day) = (
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<i64>().ok()?,
    );
    let time = time
        .split(['+', 'Z'])
        .next()
        .map(|t| t.rsplit_once('-').map_or(t, |(a, _)| a))?;
    let mut t = time.split(':');
    let (hh, mm, ss) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    Some(days_from_civil(y, m, day) as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// Reads a CSV with the Azure LLM inference columns (`TIMESTAMP,ContextTokens,GeneratedTokens`,
/// in any order, extra columns ignored). Rows are sorted by time.
pub fn parse_trace(text: &str) -> Result<Vec<TraceRow>, LoadError> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches('\u{feff}');
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(ti), Some(ci), Some(gi)) = (
        find("TIMESTAMP"),
        find("ContextTokens"),
        find("GeneratedTokens"),
    ) else {
        return Err(LoadError::Header(header.to_string()));
    };
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| LoadError::Row {
            line: i + 2,
            what: what.to_string(),
        };
        let t = f
            .get(ti)
            .and_then(|s| parse_timestamp(s))
            .ok_or_else(|| bad("unreadable TIMESTAMP"))?;
        let num = |idx: usize, name: &str| {
            f.get(idx)
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v.min(f64::from(u32::MAX)) as u32)
                .ok_or_else(|| bad(&format!("unreadable {name}")))
        };
        rows.push(TraceRow {
            t_s: t,
            context: num(ci, "ContextTokens")?,
            generated: num(gi, "GeneratedTokens")?,
        });
    }
    if rows.is_empty() {
        return Err(LoadError::Empty);
    }
    rows.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let t0 = rows[0].t_s;
    for r in &mut rows {
        r.t_s -= t0;
    }
    Ok(rows)
}

/// Default spread of a trace's superposed copies: each extra copy of the trace is shifted as a
/// whole by an offset drawn uniformly within +-30 s.
pub const COPY_SPREAD_S: f64 = 30.0;

/// Requests of a trace at `rate_scale` times its rate and `speedup` times its speed, prompts
/// capped at `max_prompt`.
///
/// The scale is a superposition of copies of the trace, each shifted as a whole by its own
/// random offset uniform within +-`spread_s` (the fractional copy keeps each row with that
/// probability). Copies are never in phase: a row and its copy land in the same second only
/// as often as two independent arrivals would, so a burst grows with the scale, not with its
/// square.
pub fn from_trace(
    rows: &[TraceRow],
    rate_scale: f64,
    speedup: f64,
    max_prompt: u32,
    spread_s: f64,
    rng: &mut Rng,
) -> Vec<Request> {
    let mut out = Vec::with_capacity((rows.len() as f64 * rate_scale.max(1.0)) as usize);
    let span = rows.last().map_or(0.0, |r| r.t_s);
    let copies = rate_scale.ceil().max(1.0) as usize;
    for c in 0..copies {
        let keep = (rate_scale - c as f64).clamp(0.0, 1.0);
        // The first copy is the trace itself; the others are shifted and wrapped around the
        // trace's span so that its ends are not thinned.
        let offset = if c == 0 {
            0.0
        } else {
            (rng.next_f64() * 2.0 - 1.0) * spread_s
        };
        for r in rows {
            if keep < 1.0 && rng.next_f64() >= keep {
                continue;
            }
            let mut t = r.t_s + offset;
            if span > 0.0 {
                t = t.rem_euclid(span.max(1e-9));
            }
            out.push(Request {
                arrival_us: ((t / speedup) * 1e6) as u64,
                prompt: r.context.clamp(1, max_prompt),
                generate: r.generated.max(1),
            });
        }
    }
    out.sort_by_key(|r| r.arrival_us);
    out
}

/// A synthetic 24-hour day: the rate follows a smooth diurnal curve from `trough` x `peak`
/// (at 04:00) to `peak` (at 16:00), compressed into `duration_s`, with request sizes drawn
/// from `lengths`. Labelled synthetic wherever it is reported.
pub fn diurnal(
    peak_rps: f64,
    trough: f64,
    duration_s: f64,
    lengths: &Lengths,
    rng: &mut Rng,
) -> Vec<Request> {
    let shape = Shape::Diurnal {
        peak: peak_rps,
        trough,
    };
    synthetic(&shape, duration_s, lengths, rng)
}

/// Log-normal prompt lengths (median `median` tokens, log-sd `sigma`) capped at `max`, with
/// outputs drawn from `outputs`: the long-context mix (agents, RAG).
pub fn long_context_lengths(
    median: f64,
    sigma: f64,
    max: u32,
    outputs: &[u32],
    n: usize,
    rng: &mut Rng,
) -> Lengths {
    let pairs = (0..n)
        .map(|i| {
            // Box-Muller from two uniforms.
            let (u1, u2) = (rng.next_f64().max(1e-12), rng.next_f64());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let prompt = (median * (sigma * z).exp()).clamp(1.0, f64::from(max)) as u32;
            let out = outputs
                .get(i % outputs.len().max(1))
                .copied()
                .unwrap_or(128);
            (prompt, out.max(1))
        })
        .collect();
    Lengths::Empirical(pairs)
}

/// The rate of a synthetic load over time, requests per second.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Constant rate.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// `base`, then `base * factor` from `at_s` on.
    Step {
        /// Rate before the step.
        base: f64,
        /// Multiplier after it.
        factor: f64,
        /// When it happens.
        at_s: f64,
    },
    /// Linear from `from` to `to` over the run.
    Ramp {
        /// Starting rate.
        from: f64,
        /// Final rate.
        to: f64,
    },
    /// Alternates `low` and `high`, each for half of `period_s`.
    Sawtooth {
        /// Low rate.
        low: f64,
        /// High rate.
        high: f64,
        /// Full period.
        period_s: f64,
    },
    /// `base`, rising linearly to `peak` over `rise_s` from `at_s`, then decaying back over
    /// `decay_s`.
    FlashCrowd {
        /// Background rate.
        base: f64,
        /// Peak rate.
        peak: f64,
        /// Onset.
        at_s: f64,
        /// Rise time.
        rise_s: f64,
        /// Decay time.
        decay_s: f64,
    },
    /// A day compressed into the run: `trough` x `peak` at 04:00, `peak` at 16:00, a cosine
    /// between them.
    Diurnal {
        /// Peak rate.
        peak: f64,
        /// Trough as a share of the peak.
        trough: f64,
    },
}

impl Shape {
    /// Rate at `t` seconds of a run lasting `duration_s`.
    pub fn rate(&self, t: f64, duration_s: f64) -> f64 {
        match *self {
            Shape::Poisson { rate } => rate,
            Shape::Diurnal { peak, trough } => {
                let hour = 24.0 * (t / duration_s.max(1e-9));
                let phase = (hour - 16.0) / 24.0 * 2.0 * std::f64::consts::PI;
                let low = peak * trough;
                low + (peak - low) * (1.0 + phase.cos()) / 2.0
            }
            Shape::Step { base, factor, at_s } => {
                if t < at_s {
                    base
                } else {
                    base * factor
                }
            }
            Shape::Ramp { from, to } => from + (to - from) * (t / duration_s).clamp(0.0, 1.0),
            Shape::Sawtooth {
                low,
                high,
                period_s,
            } => {
                if (t % period_s) < period_s / 2.0 {
                    low
                } else {
                    high
                }
            }
            Shape::FlashCrowd {
                base,
                peak,
                at_s,
                rise_s,
                decay_s,
            } => {
                if t < at_s {
                    base
                } else if t < at_s + rise_s {
                    base + (peak - base) * (t - at_s) / rise_s
                } else if t < at_s + rise_s + decay_s {
                    peak - (peak - base) * (t - at_s - rise_s) / decay_s
                } else {
                    base
                }
            }
        }
    }

    /// The highest rate over the run (for thinning).
    fn max_rate(&self, duration_s: f64) -> f64 {
        let n = 1000;
        (0..=n)
            .map(|i| self.rate(duration_s * f64::from(i) / f64::from(n), duration_s))
            .fold(0.0, f64::max)
    }
}

/// Prompt and output lengths of synthetic requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Lengths {
    /// Every request the same (the calibration anchors use 512 in / 128 out).
    Fixed {
        /// Prompt tokens.
        prompt: u32,
        /// Output tokens.
        generate: u32,
    },
    /// Drawn from (prompt, output) pairs, for example a trace's rows.
    Empirical(Vec<(u32, u32)>),
}

impl Lengths {
    fn draw(&self, rng: &mut Rng) -> (u32, u32) {
        match self {
            Lengths::Fixed { prompt, generate } => (*prompt, *generate),
            Lengths::Empirical(pairs) if !pairs.is_empty() => pairs[rng.below(pairs.len())],
            Lengths::Empirical(_) => (512, 128),
        }
    }

    /// Mean (prompt, output) tokens.
    pub fn mean(&self) -> (f64, f64) {
        match self {
            Lengths::Fixed { prompt, generate } => (f64::from(*prompt), f64::from(*generate)),
            Lengths::Empirical(pairs) if !pairs.is_empty() => {
                let n = pairs.len() as f64;
                (
                    pairs.iter().map(|p| f64::from(p.0)).sum::<f64>() / n,
                    pairs.iter().map(|p| f64::from(p.1)).sum::<f64>() / n,
                )
            }
            Lengths::Empirical(_) => (512.0, 128.0),
        }
    }
}

/// A non-homogeneous Poisson process with the given shape (Lewis-Shedler thinning).
pub fn synthetic(shape: &Shape, duration_s: f64, lengths: &Lengths, rng: &mut Rng) -> Vec<Request> {
    let max = shape.max_rate(duration_s).max(1e-9);
    let mut out = Vec::new();
    let mut t = 0.0;
    loop {
        t += rng.exp(max);
        if t >= duration_s {
            break;
        }
        if rng.next_f64() * max <= shape.rate(t, duration_s) {
            let (prompt, generate) = lengths.draw(rng);
            out.push(Request {
                arrival_us: (t * 1e6) as u64,
                prompt: prompt.max(1),
                generate: generate.max(1),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_timestamps_and_columns() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n2023-11-17 00:00:00.0000000,1,1";
        let rows = parse_trace(text).expect("parse");
        assert_eq!(rows.len(), 3);
        assert!((rows[1].t_s - 0.052).abs() < 1e-6, "{}", rows[1].t_s);
        assert_eq!(rows[0].context, 4808);
        let midnight = 86_400.0 - (18.0 * 3600.0 + 17.0 * 60.0 + 3.97996);
        assert!((rows[2].t_s - midnight).abs() < 1e-6);
        let offset = parse_timestamp("2024-05-10 00:00:00.009930+00:00").expect("offset form");
        assert!((offset - (days_from_civil(2024, 5, 10) as f64 * 86_400.0 + 0.00993)).abs() < 1e-6);
    }

    #[test]
    fn bad_input_names_the_line() {
        assert!(matches!(
            parse_trace("a,b,c\n1,2,3"),
            Err(LoadError::Header(_))
        ));
        let e = parse_trace("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,x,1")
            .expect_err("bad row");
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        assert!(matches!(
            parse_trace("TIMESTAMP,ContextTokens,GeneratedTokens\n"),
            Err(LoadError::Empty)
        ));
    }

    #[test]
    fn rate_scale_and_speedup() {
        let rows: Vec<TraceRow> = (0..1000)
            .map(|i| TraceRow {
                t_s: f64::from(i),
                context: 100,
                generated: 10,
            })
            .collect();
        let reqs = from_trace(&rows, 2.5, 2.0, 40_960, COPY_SPREAD_S, &mut Rng::new(1));
        let n = reqs.len() as f64;
        assert!((n / 2500.0 - 1.0).abs() < 0.05, "{n}");
        assert!(reqs.last().expect("some").arrival_us <= 500_500_000);
        assert!(reqs.windows(2).all(|w| w[0].arrival_us <= w[1].arrival_us));
    }

    #[test]
    fn copies_of_a_row_are_not_in_phase() {
        // One request every 10 s for a day of trace time, scaled x8: if copies were in phase
        // each row's copies would share its second; independent offsets put a second's share
        // of copies at what chance gives (about 1/60 of the +-30 s spread).
        let rows: Vec<TraceRow> = (0..8640)
            .map(|i| TraceRow {
                t_s: f64::from(i) * 10.0,
                context: 100,
                generated: 10,
            })
            .collect();
        let reqs = from_trace(&rows, 8.0, 1.0, 40_960, COPY_SPREAD_S, &mut Rng::new(7));
        assert_eq!(reqs.len(), 8 * rows.len());
        let mut per_second = std::collections::HashMap::new();
        for r in &reqs {
            *per_second.entry(r.arrival_us / 1_000_000).or_insert(0u32) += 1;
        }
        // Seconds that hold an original row (t = 10 k s) and how many requests they carry.
        let on_row: Vec<u32> = (0..8640u64)
            .map(|i| per_second.get(&(i * 10)).copied().unwrap_or(0))
            .collect();
        let mean = on_row.iter().map(|&c| f64::from(c)).sum::<f64>() / on_row.len() as f64;
        // The row itself plus chance: 7 copies x 1/6 of a 10 s slot's seconds... each copy
        // lands in a given second with probability 1/10 here (one row per 10 s), so ~1.7.
        assert!(mean < 2.2, "copies cluster on their row's second: {mean}");
        let max = per_second.values().copied().max().unwrap_or(0);
        assert!(max <= 7, "a second holds {max} requests");
    }

    #[test]
    fn the_diurnal_day_runs_from_a_quarter_to_the_peak() {
        let shape = Shape::Diurnal {
            peak: 100.0,
            trough: 0.25,
        };
        let d = 86_400.0;
        assert!((shape.rate(16.0 * 3600.0, d) - 100.0).abs() < 1e-9);
        assert!((shape.rate(4.0 * 3600.0, d) - 25.0).abs() < 1e-9);
        assert!(shape.rate(10.0 * 3600.0, d) > 25.0 && shape.rate(10.0 * 3600.0, d) < 100.0);
    }

    #[test]
    fn step_shape_quadruples_the_rate() {
        let shape = Shape::Step {
            base: 10.0,
            factor: 4.0,
            at_s: 100.0,
        };
        let reqs = synthetic(
            &shape,
            200.0,
            &Lengths::Fixed {
                prompt: 512,
                generate: 128,
            },
            &mut Rng::new(3),
        );
        let before = reqs.iter().filter(|r| r.arrival_us < 100_000_000).count() as f64;
        let after = reqs.len() as f64 - before;
        assert!((after / before - 4.0).abs() < 0.5, "{before} {after}");
    }
}
