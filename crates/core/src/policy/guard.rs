//! The scale-down guard: replicas are removed only when the fleet after the removal is planned
//! within its SLOs at the forecast load (sized at [`DOWN_HEADROOM`] of the ceiling), every
//! worker is fresh, nothing queues, TTFT is well under the SLO and no order is on its way; and
//! only once that has held for one capacity lead time (what a wrong removal costs to undo).
//! Then every replica the plan allows goes in one step: the target is the largest the plan
//! asked for during the hold, so a dip inside it does not count.
//!
//! [`DOWN_HEADROOM`]: super::constants::DOWN_HEADROOM

use serde::Serialize;

use super::constants::DOWN_TTFT_SHARE;
use super::observe::Observed;
use super::types::{Clamp, PolicyConfig};

/// The policy's timers. Carried between decisions.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Timers {
    /// Since when data has been stale, ms.
    pub stale_since_ms: Option<u64>,
    /// Since when a scale-down has been allowed, ms.
    pub down_since_ms: Option<u64>,
    /// The largest target planned since `down_since_ms`.
    pub down_target: u32,
    /// Last time a backlog was seen, ms.
    pub last_backlog_ms: Option<u64>,
    /// Since when the backlog has stood without a break, ms.
    pub backlog_since_ms: Option<u64>,
    /// When the number of ready replicas last fell, ms.
    pub ready_fell_ms: Option<u64>,
    /// When the number of ready replicas last rose, ms.
    pub ready_rose_ms: Option<u64>,
    /// Last scale-up, ms.
    pub last_up_ms: Option<u64>,
    /// Last removal of serving replicas, ms.
    pub last_down_ms: Option<u64>,
    /// Consecutive decisions with TTFT over the breach factor while queueing.
    pub breach_ticks: u32,
}

impl Timers {
    /// When the number of ready replicas last changed, ms: the later of its last fall and
    /// its last rise.
    pub fn ready_changed_ms(&self) -> Option<u64> {
        self.ready_fell_ms.max(self.ready_rose_ms)
    }
}

/// Whether `t` lies within `window_ms` before `now_ms` (`None`: never happened).
pub fn within(t: Option<u64>, now_ms: u64, window_ms: u64) -> bool {
    t.is_some_and(|t| now_ms.saturating_sub(t) < window_ms)
}

/// What the guard allows this decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// No lower need: nothing to guard.
    NoNeed,
    /// A lower need, held back (by what).
    Held(Clamp),
    /// Remove down to this many.
    Remove(u32),
}

/// Whether a scale-down is forbidden now.
pub fn blocked(cfg: &PolicyConfig, o: &Observed, live_orders: u32) -> bool {
    let ttft_ok = o
        .ttft_s
        .is_none_or(|t| t < DOWN_TTFT_SHARE * cfg.ttft_target_s);
    // Any stale or invalid worker blocks a scale-down: its load is only assumed (the contract
    // is no scale-down on missing, stale or invalid data, partial included).
    !o.all_fresh || o.backlogged || !ttft_ok || live_orders > 0
}

/// Judges a scale-down from `current` to `target` after `hold_ms`. Pure.
pub fn judge(
    timers: &Timers,
    target: u32,
    current: u32,
    is_blocked: bool,
    now_ms: u64,
    hold_ms: u64,
) -> (Verdict, Timers) {
    let mut next = timers.clone();
    if target >= current {
        next.down_since_ms = None;
        next.down_target = 0;
        return (Verdict::NoNeed, next);
    }
    if is_blocked {
        next.down_since_ms = None;
        next.down_target = 0;
        return (Verdict::Held(Clamp::ScaleDownGuard), next);
    }
    let since = *next.down_since_ms.get_or_insert(now_ms);
    next.down_target = if timers.down_since_ms.is_some() {
        timers.down_target.max(target)
    } else {
        target
    };
    if now_ms.saturating_sub(since) < hold_ms {
        return (Verdict::Held(Clamp::Stabilization), next);
    }
    let to = next.down_target;
    next.down_since_ms = None;
    next.down_target = 0;
    (Verdict::Remove(to), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_need_waits_one_hold_and_then_goes_in_one_step() {
        let t = Timers::default();
        let (v, t) = judge(&t, 4, 10, false, 0, 60_000);
        assert_eq!(v, Verdict::Held(Clamp::Stabilization));
        // The plan wobbles up to 6 inside the hold: 6 is the target.
        let (v, t) = judge(&t, 6, 10, false, 30_000, 60_000);
        assert_eq!(v, Verdict::Held(Clamp::Stabilization));
        let (v, t) = judge(&t, 3, 10, false, 60_000, 60_000);
        assert_eq!(v, Verdict::Remove(6));
        assert_eq!(t.down_since_ms, None);
    }

    #[test]
    fn a_blocked_tick_restarts_the_hold() {
        let t = Timers::default();
        let (_, t) = judge(&t, 4, 10, false, 0, 60_000);
        let (v, t) = judge(&t, 4, 10, true, 30_000, 60_000);
        assert_eq!(v, Verdict::Held(Clamp::ScaleDownGuard));
        let (v, _) = judge(&t, 4, 10, false, 60_000, 60_000);
        assert_eq!(v, Verdict::Held(Clamp::Stabilization));
    }

    #[test]
    fn stale_workers_queues_and_orders_block() {
        let cfg = PolicyConfig::default();
        let fine = Observed {
            all_fresh: true,
            ttft_s: Some(0.1),
            ..Observed::default()
        };
        assert!(!blocked(&cfg, &fine, 0));
        assert!(blocked(&cfg, &fine, 1));
        assert!(blocked(
            &cfg,
            &Observed {
                all_fresh: false,
                ..fine.clone()
            },
            0
        ));
        assert!(blocked(
            &cfg,
            &Observed {
                backlogged: true,
                ..fine.clone()
            },
            0
        ));
        // TTFT 0.45 s is over 0.8 x 0.5 s.
        assert!(blocked(
            &cfg,
            &Observed {
                ttft_s: Some(0.45),
                ..fine
            },
            0
        ));
    }
}
