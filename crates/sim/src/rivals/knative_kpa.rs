//! Knative's Pod Autoscaler (knative/serving `pkg/autoscaler/scaling/autoscaler.go`;
//! autoscaling-design.md §2.2; arena.md), a direct autoscaler ticking every 2 s on the
//! concurrency its queue-proxies and activator report: desired = ceil(observed concurrency /
//! (target x 70 % target utilisation)) over a 60 s stable window, and over a 6 s panic window
//! that takes over when its desire reaches 2x the ready pods (panic threshold 200 %); no
//! scale-down while panicking, which lasts until a stable window passes without the
//! condition; scale-down at most by half per tick (max-scale-down-rate 2). No metrics: hold.
//! Default target: 100 (`autoscaling.knative.dev/target`). Knob: the target.

use std::collections::VecDeque;

use crate::autoscaler::{Autoscaler, View};

use super::{Knob, Rival, Setup};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "knative-kpa",
    source: "knative/serving pkg/autoscaler (KPA)",
    knobs: &[Knob {
        name: "target",
        default: 100.0,
        grid: &[10.0, 25.0, 50.0, 100.0, 200.0],
        tuned: 10.0,
    }],
    build,
};

/// The KPA's tick.
const TICK_MS: u64 = 2000;
/// Stable window.
const STABLE_MS: u64 = 60_000;
/// Panic window (10 % of the stable window).
const PANIC_MS: u64 = 6000;
/// Panic threshold, as a multiple of the ready pods.
const PANIC_THRESHOLD: f64 = 2.0;
/// `container-concurrency-target-percentage`.
const TARGET_UTILISATION: f64 = 0.7;
/// `max-scale-down-rate`.
const MAX_SCALE_DOWN_RATE: f64 = 2.0;

fn build(_: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    Box::new(Kpa {
        target: v[0].max(1e-9) * TARGET_UTILISATION,
        samples: VecDeque::new(),
        panic_since_ms: None,
        panic_desire: 0,
        last: None,
    })
}

struct Kpa {
    target: f64,
    samples: VecDeque<(u64, f64)>,
    panic_since_ms: Option<u64>,
    panic_desire: u32,
    last: Option<f64>,
}

impl Kpa {
    fn average(&self, now_ms: u64, window_ms: u64) -> Option<f64> {
        let from = now_ms.saturating_sub(window_ms);
        let w: Vec<f64> = self
            .samples
            .iter()
            .filter(|(t, _)| *t > from)
            .map(|(_, v)| *v)
            .collect();
        (!w.is_empty()).then(|| w.iter().sum::<f64>() / w.len() as f64)
    }
}

impl Autoscaler for Kpa {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![TICK_MS]
    }

    fn tick(&mut self, _: usize, view: &View<'_>) -> Option<u32> {
        let now = view.now_ms;
        let observed = view.in_flight?;
        self.samples.push_back((now, observed));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| *t + STABLE_MS <= now)
        {
            self.samples.pop_front();
        }
        let stable = self.average(now, STABLE_MS)?;
        let panic = self.average(now, PANIC_MS)?;
        self.last = Some(stable);
        let want_stable = (stable / self.target).ceil() as u32;
        let want_panic = (panic / self.target).ceil() as u32;
        let ready = view.ready.max(1);
        if f64::from(want_panic) / f64::from(ready) >= PANIC_THRESHOLD {
            if self.panic_since_ms.is_none() {
                self.panic_desire = view.spec;
            }
            self.panic_since_ms = Some(now);
        } else if self
            .panic_since_ms
            .is_some_and(|since| now >= since + STABLE_MS)
        {
            self.panic_since_ms = None;
        }
        let mut want = if self.panic_since_ms.is_some() {
            // Panicking: the panic window decides and never lowers the count.
            self.panic_desire = self.panic_desire.max(want_panic);
            self.panic_desire
        } else {
            want_stable
        };
        let floor = (f64::from(ready) / MAX_SCALE_DOWN_RATE).floor() as u32;
        want = want.max(floor);
        (want != view.spec).then_some(want)
    }

    fn metric(&self) -> Option<f64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{setup, view};
    use super::*;
    use crate::prom::Prometheus;

    #[test]
    fn stable_window_then_panic_on_a_doubling() {
        let (prom, engine) = (Prometheus::default(), Default::default());
        let mut k = build(&setup(), &[100.0]);
        let at = |t: u64, c: f64, spec: u32| {
            let mut v = view(&prom, &engine, t, spec, spec, spec);
            v.in_flight = Some(c);
            v
        };
        // 140 in flight at an effective target of 70 per pod: 2 pods, as running.
        for t in (2..=60).step_by(2) {
            assert_eq!(k.tick(0, &at(t * 1000, 140.0, 2)), None, "{t}");
        }
        // A jump to 560: the 6 s panic window wants 8 >= 2 x 2 ready, so the KPA panics and
        // follows the panic window at once.
        let first = k.tick(0, &at(62_000, 560.0, 2));
        assert!(first.is_some_and(|n| n >= 4), "{first:?}");
        // Back at 140 while panicking: no scale-down.
        let spec = first.unwrap_or(2);
        for t in (64..=80).step_by(2) {
            assert!(
                k.tick(0, &at(t * 1000, 140.0, spec))
                    .is_none_or(|n| n >= spec)
            );
        }
        // No metrics (an outage): hold.
        let mut v = at(82_000, 0.0, spec);
        v.in_flight = None;
        assert_eq!(k.tick(0, &v), None);
    }
}
