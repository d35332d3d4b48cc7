//! Explain: the reason code, derived once from the outcome, and the line a human reads.

use super::types::{Binding, Clamp, Inputs, Reason};

/// What the stages did, as the reason is derived from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome<'a> {
    /// The answer.
    pub desired: u32,
    /// The previous answer.
    pub last: u32,
    /// Whether the scale-down guard removed serving replicas (else a lower answer only
    /// withdrew orders).
    pub removed: bool,
    /// Constraints applied.
    pub clamps: &'a [Clamp],
    /// Held on stale data.
    pub stale: bool,
}

/// The reason for an outcome.
pub fn reason(o: Outcome<'_>) -> Reason {
    let Outcome {
        desired,
        last,
        removed,
        clamps,
        stale,
    } = o;
    let has = |c: Clamp| clamps.contains(&c);
    if stale {
        Reason::DataStale
    } else if has(Clamp::Min) || has(Clamp::Max) {
        Reason::Bounds
    } else if desired > last {
        Reason::ScaleUp
    } else if desired < last && !removed {
        Reason::Withdrawn
    } else if desired < last {
        Reason::ScaleDown
    } else if has(Clamp::CapacityBlocked) {
        Reason::CapacityBlocked
    } else if has(Clamp::Stabilization) || has(Clamp::ScaleDownGuard) {
        Reason::ScaleDownBlocked
    } else {
        Reason::Steady
    }
}

/// The trend skill, where it damps the trend (a share of 1 is the plain forecast).
fn trend(share: f64) -> String {
    if share < 1.0 {
        format!(", trend x{share:.2}")
    } else {
        String::new()
    }
}

fn ms(s: Option<f64>) -> String {
    s.map_or_else(|| "?".into(), |v| format!("{:.0} ms", v * 1e3))
}

/// The detail line: the answer, what bound it, the order book, the forecast, the learned
/// capacity and the latency predicted at the answer.
pub fn detail(
    reason: Reason,
    desired: u32,
    binding: Binding,
    i: &Inputs,
    token_counters: bool,
) -> String {
    let model = match (i.requests_capacity_per_replica, i.forecast_request_rate) {
        (Some(cap), Some(rate)) => {
            let tokens = match (
                i.prefill_capacity_tokens_per_s,
                i.forecast_prefill_tokens_per_s,
            ) {
                (Some(c), Some(p)) => format!(", {p:.0} tok/s at {c:.0}/replica"),
                _ => String::new(),
            };
            format!(
                "forecast {rate:.1} req/s at {cap:.1}/replica{tokens} over {:.0} s{}{}",
                i.lead_time_s,
                trend(i.trend_share),
                if i.exploring { ", exploring" } else { "" }
            )
        }
        _ => format!(
            "forecast {:.1} in flight over {:.0} s, concurrency fallback {:.1}/replica ({})",
            i.forecast_demand,
            i.lead_time_s,
            i.capacity_per_replica,
            if token_counters || i.request_rate > 0.0 {
                "rates not learned yet"
            } else {
                "no completions or token counters yet"
            }
        ),
    };
    let withdrawn = if i.withdrawn > 0 {
        format!(", {} withdrawn", i.withdrawn)
    } else {
        String::new()
    };
    format!(
        "{}: desired {desired} (need {} via {}; ready {}, on order {}{withdrawn}; {model}; predicted TTFT {}, ITL {})",
        reason.as_str(),
        i.need,
        binding.as_str(),
        i.ready,
        i.pending,
        ms(i.predicted_ttft_s),
        ms(i.predicted_itl_s),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_follows_the_outcome() {
        let r = |desired, last, removed, clamps: &[Clamp], stale| {
            reason(Outcome {
                desired,
                last,
                removed,
                clamps,
                stale,
            })
        };
        assert_eq!(r(5, 3, false, &[], false), Reason::ScaleUp);
        assert_eq!(
            r(3, 5, false, &[Clamp::Withdrawn], false),
            Reason::Withdrawn
        );
        assert_eq!(r(3, 5, true, &[], false), Reason::ScaleDown);
        assert_eq!(
            r(5, 5, false, &[Clamp::Stabilization], false),
            Reason::ScaleDownBlocked
        );
        assert_eq!(
            r(
                5,
                5,
                false,
                &[Clamp::CapacityBlocked, Clamp::Stabilization],
                false
            ),
            Reason::CapacityBlocked
        );
        assert_eq!(r(10, 8, false, &[Clamp::Max], false), Reason::Bounds);
        assert_eq!(r(5, 5, false, &[], true), Reason::DataStale);
        assert_eq!(r(5, 5, false, &[Clamp::PendingHold], false), Reason::Steady);
    }
}
