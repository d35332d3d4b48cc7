//! Learn: what the fleet has shown about itself, from its own counters. None of it is a key.
//!
//! A replica's capacity is learned in the units that load it, **requests per second** and
//! **prompt tokens per second** (rates do not depend on how many replicas share them, where
//! requests in flight do: they grow with latency, which grows as replicas are removed). For
//! each, a [`Bracket`] of operating points:
//!
//! - `good`: the highest per-replica rate served with TTFT and ITL under
//!   [`DOWN_TTFT_SHARE`] of their SLOs while no replica left within the TTFT window;
//! - `bad`: the lowest rate seen breaking an SLO at a settled point or after a removal, or the
//!   arrivals a standing queue could not keep up with (forgotten over [`BAD_FORGET_TAU_MS`]);
//!   a running batch that fills (the decode knee) bounds the request rate only: prompt tokens
//!   are prefill's load, whose symptom is TTFT;
//! - `saturated`: the highest throughput of a replica under a standing queue (what it does at
//!   least: a drowning fleet completes less than its knee).
//!
//! The rate to plan with is the better of `good` and `saturated` at the SLO's utilisation
//! ceiling, never past [`BAD_MARGIN`] x `bad`; while latency has room ([`EXPLORE_SHARE`] of the
//! SLOs) it is raised by up to [`EXPLORE`] past `good`: a search for the knee that never runs a
//! replica far beyond what it has been seen to do.
//!
//! Also learned: the **concurrency fallback** (requests in flight per replica, seeded by
//! `concurrencyPerReplica`) for fleets without completions or token counters yet; the **base
//! latencies** (TTFT and ITL at no load, for the ceiling and the predictions); and the
//! **capacity lead time**, from the orders the book saw filled.

use serde::Serialize;

use super::constants::{
    BAD_FORGET_TAU_MS, BAD_MARGIN, BASE_LATENCY_MAX_UTILIZATION, BASE_LATENCY_TAU_MS,
    CAPACITY_RECOVERY, CONCURRENCY_RANGE, DOWN_TTFT_SHARE, EXPLORE, EXPLORE_LEAD_MS,
    LEAD_TIME_MAX_MS, LEAD_TIME_PRIOR_MS, LEARN_ALPHA,
};
use super::forecast::alpha;
use super::observe::Observed;
use super::types::PolicyConfig;

/// An EWMA step with weight `alpha`; the first sample (`old` is `None`) is taken as it is.
fn ewma(old: Option<f64>, sample: f64, alpha: f64) -> f64 {
    match old {
        Some(v) => v + alpha * (sample - v),
        None => sample,
    }
}

/// One resource's operating points, per replica.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Bracket {
    /// Highest rate served within the SLOs (0: none yet).
    pub good: f64,
    /// Lowest rate seen breaking them (`None`: never).
    pub bad: Option<f64>,
    /// Throughput under a standing queue (0: never saturated).
    pub saturated: f64,
}

impl Bracket {
    fn healthy(&mut self, x: f64) {
        if !(x.is_finite() && x > 0.0) {
            return;
        }
        self.good = self.good.max(x);
        // A replica served this within the SLOs: it saturates no lower (an earlier sample
        // taken while the fleet changed under the queue read low).
        if self.saturated > 0.0 {
            self.saturated = self.saturated.max(self.good);
        }
        // Served within the SLOs near a breach's rate: the margin below it moves up past what
        // was served. Served at or past the breach's rate itself: that breach was not the
        // rate's doing (latency left over from an episode, a burst's onset), and the probe
        // resumes; keeping a bound at good / margin would be a breach never seen, and would
        // hold the plan at `good` for hours (long context: 5.5 requests/s a replica). A bound
        // set at `good` itself (a breach below it, `unhealthy`) is not cleared by the next
        // reading at `good`: `forget` has drifted it just above by then, so it moves up.
        // Tolerating that drift cost the step load its reversal bar (BENCHMARKS, v2.11).
        if let Some(b) = self.bad
            && self.good >= b * BAD_MARGIN
        {
            self.bad = (self.good < b).then_some(self.good / BAD_MARGIN);
        }
    }

    fn unhealthy(&mut self, x: f64) {
        if !(x.is_finite() && x > 0.0) {
            return;
        }
        // A breach below a rate already served well is not the knee: it is latency left over
        // from an episode (requests admitted half-prefilled during a backlog get their first
        // tokens after it), a drowned fleet's reading, or a change the latency guard answers.
        // It stops the probe past `good` and leaves `good` standing.
        let x = x.max(self.good);
        self.bad = Some(self.bad.map_or(x, |b| b.min(x)));
    }

    /// A queue stood at every replica while they completed `throughput` each and `arrivals`
    /// each came in. The throughput is what a replica can do *at least* (a fleet drowning in
    /// a burst, its clients timing out, completes less than its knee), so the highest reading
    /// stands. Arrivals at or above the throughput are a rate it could not keep up with;
    /// fewer arrivals than completions are a backlog draining, which says nothing of the
    /// rate that breaks a replica.
    fn saturated_at(&mut self, throughput: f64, arrivals: f64) {
        if !(throughput.is_finite() && throughput > 0.0) {
            return;
        }
        self.saturated = self.saturated.max(throughput);
        if arrivals.is_finite() && arrivals >= throughput {
            self.unhealthy(arrivals);
        }
    }

    fn forget(&mut self, dt_ms: u64) {
        let drift = (dt_ms as f64 / BAD_FORGET_TAU_MS).exp();
        if let Some(b) = self.bad.as_mut() {
            *b *= drift;
        }
        // A fleet's mix changes: the best saturated reading fades at the same pace.
        self.saturated /= drift;
    }

    /// The per-replica rate to plan with (`None`: nothing learned yet): the best of what was
    /// served within the SLOs and the saturated throughput at the utilisation `ceiling` the
    /// SLO allows of it (a replica was seen to complete that much, and the queueing model
    /// keeps its latency within the SLO at that share), never past [`BAD_MARGIN`] x `bad`.
    /// `explore` (a margin, [`explore_margin`]; 0: none) allows up to that share past `good`
    /// where the saturated reading does not already bound it (a reading at or below what was
    /// served well is a drowned fleet's, not the knee).
    pub fn capacity(&self, explore: f64, ceiling: f64) -> Option<f64> {
        let floor = self.saturated * ceiling;
        let limit = |x: f64| self.bad.map_or(x, |b| x.min(b * BAD_MARGIN));
        let known = limit(self.good.max(floor)).max(self.good);
        if known <= 0.0 {
            return None;
        }
        let probe = if explore > 0.0 && floor <= self.good {
            limit(self.good * (1.0 + explore))
        } else {
            known
        };
        Some(probe.max(known))
    }
}

/// How far past the rates served well a plan may explore at capacity lead time `lead_ms`:
/// [`EXPLORE`] up to [`EXPLORE_LEAD_MS`], then in proportion, so that a failed probe risks
/// about the same number of slow requests whatever the lead.
pub fn explore_margin(lead_ms: f64) -> f64 {
    if lead_ms.is_finite() && lead_ms > EXPLORE_LEAD_MS {
        EXPLORE * EXPLORE_LEAD_MS / lead_ms
    } else {
        EXPLORE
    }
}

/// What the policy has learned. Carried between decisions.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Learned {
    /// Requests per second per replica.
    pub requests: Bracket,
    /// Prompt tokens per second per replica.
    pub prompt_tokens: Bracket,
    /// Requests in flight per replica at the TTFT knee, the fallback (0: the seed).
    pub concurrency: f64,
    /// TTFT quantile at no load, seconds.
    pub ttft_base_s: Option<f64>,
    /// Mean inter-token latency at no load, seconds.
    pub itl_base_s: Option<f64>,
    /// Capacity lead time, ms (`None`: no order seen filled yet).
    pub lead_ms: Option<f64>,
    /// Mean prompt tokens per request, last seen (0: none completed yet).
    pub tokens_per_request: f64,
}

/// What a decision adds to the learning besides the observation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// Milliseconds since the previous decision.
    pub dt_ms: u64,
    /// No backlog and no change of the fleet within the TTFT window: latency describes this
    /// fleet at this load, not an episode still draining.
    pub settled: bool,
    /// Within a TTFT window after a removal: a breach now is the removal's.
    pub trial: bool,
    /// No replica left within the TTFT window: latency within the SLOs is evidence for the
    /// rate now (the fleet only grew, or stood, under it).
    pub served_well: bool,
    /// A queue has stood at every replica for the whole recent part of the window, so the
    /// recent completion rate is a saturated replica's throughput.
    pub saturated: bool,
    /// The fleet does not keep up: its requests in flight grow, over the window and its
    /// recent part, by more than [`super::constants::KEEPING_UP_SHARE`] of its completions.
    pub filling: bool,
    /// Mean age of orders that filled this decision, ms.
    pub filled_lead_ms: Option<f64>,
    /// Arrivals per replica: requests/s and prompt tokens/s.
    pub arrivals: (f64, f64),
}

impl Learned {
    /// The capacity lead time to plan with, ms.
    pub fn lead_ms(&self) -> f64 {
        self.lead_ms.unwrap_or(LEAD_TIME_PRIOR_MS)
    }

    /// Whether a rate capacity is known (else the concurrency fallback sizes).
    pub fn knows_rates(&self) -> bool {
        self.requests.good > 0.0 || self.requests.saturated > 0.0
    }

    /// The concurrency capacity per replica.
    pub fn concurrency(&self, cfg: &PolicyConfig) -> f64 {
        if self.concurrency > 0.0 {
            self.concurrency
        } else {
            cfg.concurrency_per_replica
        }
    }

    /// Utilisation of the replicas now, against the saturated throughput where known, else
    /// requests in flight against the concurrency capacity.
    pub fn utilization(&self, cfg: &PolicyConfig, o: &Observed) -> f64 {
        let ready = f64::from(o.ready.max(1));
        if self.requests.saturated > 0.0 {
            o.request_rate / ready / self.requests.saturated
        } else {
            o.demand.0 / ready / self.concurrency(cfg)
        }
    }

    /// A replica was seen failing at these per-replica rates (requests/s, prompt tokens/s):
    /// a breach at a settled point or on trial, or a removal on trial that had to be undone
    /// because the fleet showed distress (a failed probe, `decide`). Both are bad, so the
    /// same plan is not made again until the bound is forgotten.
    pub fn unhealthy_at(&mut self, (requests, prompt_tokens): (f64, f64)) {
        self.requests.unhealthy(requests);
        self.prompt_tokens.unhealthy(prompt_tokens);
    }

    /// Folds one fresh observation in. Pure.
    pub fn learn(&self, cfg: &PolicyConfig, o: &Observed, e: Evidence) -> Learned {
        let mut next = self.clone();
        if let Some(sample) = e.filled_lead_ms {
            let lead = ewma(self.lead_ms, sample, LEARN_ALPHA);
            next.lead_ms = Some(lead.clamp(1.0, LEAD_TIME_MAX_MS));
        }
        if let Some(t) = o.tokens_per_request.filter(|t| t.is_finite() && *t > 0.0) {
            next.tokens_per_request = t;
        }
        next.requests.forget(e.dt_ms);
        next.prompt_tokens.forget(e.dt_ms);
        let ready = f64::from(o.ready.max(1));
        let slo = cfg.ttft_target_s;

        // The brackets.
        let (req, tok) = e.arrivals;
        if e.saturated && o.ready > 0 {
            next.requests
                .saturated_at(o.recent_request_rate / ready, req);
            if let Some(p) = o.recent_prompt_tokens {
                next.prompt_tokens.saturated_at(p / ready, tok);
            }
        } else if o.all_fresh && o.ready > 0 && !o.backlogged {
            let over =
                |v: Option<f64>, target: f64, share: f64| v.is_some_and(|v| v > share * target);
            let breach = over(o.ttft_s, slo, 1.0) || over(o.itl_s, cfg.itl_target_s, 1.0);
            let within = o.ttft_s.is_some()
                && !over(o.ttft_s, slo, DOWN_TTFT_SHARE)
                && !over(o.itl_s, cfg.itl_target_s, DOWN_TTFT_SHARE);
            // A settled fleet that does not keep up is past its knee as surely as one whose
            // latency breaks, and minutes earlier: past the decode knee TTFT stays flat while
            // the running batch and the KV cache fill, until the cache is full. That knee is
            // decode's, so it bounds the request rate, not the prompt tokens a replica
            // prefills (the conversation trace's fleet filled at 80 k prompt tokens/s a
            // replica and served its peak at 120 k, with fewer requests of longer prompts).
            if breach && (e.settled || e.trial) {
                next.unhealthy_at((req, tok));
            } else if e.filling && (e.settled || e.trial) {
                next.requests.unhealthy(req);
            } else if within && e.served_well {
                // The latency is the window's, so the rate it vouches for is the window's
                // too: the recent part's rate is noisier, and the highest of many noisy
                // readings would be a rate the fleet never sustained.
                next.requests.healthy(o.request_rate / ready);
                if let Some(p) = o.prompt_tokens {
                    next.prompt_tokens.healthy(p / ready);
                }
            }
        }

        // Concurrency capacity (the fallback), within its range of the seed.
        let seed = cfg.concurrency_per_replica;
        let mut conc = self.concurrency(cfg);
        let per_replica = o.demand.0 / ready;
        if let Some(ttft) = o.ttft_s {
            if e.settled && ttft > slo && per_replica < conc && o.demand.0 > 0.0 {
                conc *= (slo / ttft).max(0.8);
            } else if ttft < 0.5 * slo && !o.backlogged && per_replica > conc {
                // Replicas serve this many each with TTFT under half the SLO: measured capacity.
                conc = per_replica;
            } else if ttft < 0.5 * slo && conc < seed {
                conc += (seed - conc) * CAPACITY_RECOVERY;
            }
        }
        next.concurrency = conc.clamp(CONCURRENCY_RANGE.0 * seed, CONCURRENCY_RANGE.1 * seed);

        // Base latencies, at a utilisation known well enough for 1 - rho to mean something.
        let rho = self.utilization(cfg, o);
        if e.settled && !o.backlogged && rho < BASE_LATENCY_MAX_UTILIZATION {
            let a = alpha(e.dt_ms.max(1), BASE_LATENCY_TAU_MS);
            let fold = |old: Option<f64>, sample: f64| Some(ewma(old, sample, a));
            if let Some(t) = o.ttft_s.filter(|t| t.is_finite() && *t >= 0.0) {
                next.ttft_base_s = fold(self.ttft_base_s, t * (1.0 - rho.max(0.0)));
            }
            if let Some(t) = o.itl_s.filter(|t| t.is_finite() && *t >= 0.0) {
                next.itl_base_s = fold(self.itl_base_s, t * (1.0 - rho.max(0.0)));
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::FleetTotal;
    use super::*;

    fn fleet(ready: u32, rps: f64, waiting: f64, ttft: f64) -> Observed {
        Observed {
            discovered: ready,
            ready,
            fresh: ready,
            data_fresh: true,
            all_fresh: true,
            token_counters: true,
            recent_prompt_tokens: Some(rps * 1000.0),
            request_rate: rps,
            recent_request_rate: rps,
            queue: FleetTotal(waiting),
            demand: FleetTotal(waiting + 10.0 * f64::from(ready)),
            backlogged: waiting >= 2.0 * f64::from(ready),
            ttft_s: Some(ttft),
            ..Observed::default()
        }
    }

    fn settled(o: &Observed) -> Evidence {
        let r = f64::from(o.ready.max(1));
        Evidence {
            dt_ms: 5000,
            settled: true,
            served_well: true,
            saturated: o.backlogged,
            arrivals: (o.request_rate / r, o.request_rate * 1000.0 / r),
            ..Evidence::default()
        }
    }

    #[test]
    fn a_saturated_fleet_shows_its_throughput_and_what_it_could_not_keep_up_with() {
        let cfg = PolicyConfig::default();
        // 4 replicas, 40 waiting, 120 completions/s: 30 per replica once the queue has stood
        // for the recent part of the window (`decide` says so from its timers), while 45 per
        // replica arrived (the queue grew by 60/s): 45 is a breach, so nothing at or above it
        // is planned.
        let o = fleet(4, 120.0, 40.0, 0.9);
        let queued = Evidence {
            arrivals: (45.0, 45_000.0),
            ..settled(&o)
        };
        let just_queued = Evidence {
            saturated: false,
            ..queued
        };
        let l = Learned::default().learn(&cfg, &o, just_queued);
        assert_eq!(l.requests.saturated, 0.0);
        let l = l.learn(&cfg, &o, queued);
        assert_eq!(l.requests.saturated, 30.0);
        assert_eq!(l.requests.bad, Some(45.0));
        assert_eq!(l.prompt_tokens.saturated, 30_000.0);
        assert_eq!(l.prompt_tokens.bad, Some(45_000.0));
        // A drowned fleet's reading (20 each, clients timing out, 60 each still arriving)
        // does not lower what a replica was seen to do: the highest reading stands.
        let o2 = fleet(4, 80.0, 400.0, 9.0);
        let drowned = Evidence {
            arrivals: (60.0, 60_000.0),
            ..settled(&o2)
        };
        let l = l.learn(&cfg, &o2, drowned);
        assert_eq!(
            l.requests.bad,
            Some(45.0 * (5000.0 / BAD_FORGET_TAU_MS).exp())
        );
        // (It fades over BAD_FORGET_TAU_MS: 5 s of 6 h.)
        assert!(
            (l.requests.saturated - 30.0).abs() < 0.01,
            "{:?}",
            l.requests
        );
        // With nothing served well yet the plan is the reading at the SLO's utilisation.
        assert!((l.requests.capacity(0.0, 0.8).unwrap_or(0.0) - 24.0).abs() < 0.01);
    }

    #[test]
    fn rates_served_within_the_slo_are_good_and_a_breach_is_bad() {
        let cfg = PolicyConfig::default();
        let o = fleet(2, 20.0, 0.0, 0.1);
        let l = Learned::default().learn(&cfg, &o, settled(&o));
        assert_eq!(l.requests.good, 10.0);
        // A replica left within the window (fewer carried the load earlier than now): the
        // window's latency is no evidence for this rate.
        let o = fleet(2, 30.0, 0.0, 0.1);
        let l2 = l.learn(
            &cfg,
            &o,
            Evidence {
                settled: false,
                served_well: false,
                ..settled(&o)
            },
        );
        assert_eq!(l2.requests.good, 10.0);
        // Pods joined within the window (not settled, but none left): served well at 15 each.
        let l3 = l.learn(
            &cfg,
            &o,
            Evidence {
                settled: false,
                ..settled(&o)
            },
        );
        assert_eq!(l3.requests.good, 15.0);
        // 2 replicas at 24/s break the 0.5 s SLO: bad at 12; good stays 10; exploring is
        // capped at 0.85 x 12.
        let o = fleet(2, 24.0, 0.0, 0.7);
        let l = l.learn(&cfg, &o, settled(&o));
        assert_eq!(l.requests.bad, Some(12.0));
        assert_eq!(l.requests.good, 10.0);
        assert!((l.requests.capacity(EXPLORE, 0.8).unwrap_or(0.0) - 10.2).abs() < 1e-9);
        assert_eq!(l.requests.capacity(0.0, 0.8), Some(10.0));
    }

    #[test]
    fn a_draining_queue_shows_throughput_but_no_breaking_rate() {
        // 4 replicas complete 120/s under a standing queue while 20/s arrive: the backlog
        // drains. 30 a replica is what they do at least; nothing says 20 or 30 breaks them.
        let cfg = PolicyConfig::default();
        let o = fleet(4, 120.0, 400.0, 2.0);
        let draining = Evidence {
            arrivals: (5.0, 5_000.0),
            ..settled(&o)
        };
        let l = Learned::default().learn(&cfg, &o, draining);
        assert_eq!(l.requests.saturated, 30.0);
        assert_eq!(l.requests.bad, None);
        assert_eq!(l.prompt_tokens.bad, None);
    }

    #[test]
    fn a_settled_fleet_that_does_not_keep_up_is_past_its_knee_though_its_latency_is_fine() {
        // Served 50 a replica well; now 4 replicas take 60 each and their requests in flight
        // grow (the running batch fills past the decode knee) while TTFT is still well
        // within the SLO: 60 is a breaking rate, and 50 stays good.
        let cfg = PolicyConfig::default();
        let mut l = Learned::default();
        l.requests.good = 50.0;
        let o = fleet(4, 240.0, 0.0, 0.1);
        let filling = Evidence {
            filling: true,
            served_well: false,
            ..settled(&o)
        };
        let next = l.learn(&cfg, &o, filling);
        assert_eq!(next.requests.bad, Some(60.0));
        assert_eq!(next.requests.good, 50.0);
        // The fill is the decode knee's: it says nothing of the prompt tokens a replica can
        // prefill (60 k a replica here), which a TTFT breach bounds instead.
        assert_eq!(next.prompt_tokens.bad, None);
        let breaking = fleet(4, 240.0, 0.0, 0.9);
        let next = l.learn(&cfg, &breaking, filling);
        assert_eq!(next.prompt_tokens.bad, Some(60_000.0));
        // The same fleet keeping up vouches for 60 instead.
        let next = l.learn(&cfg, &o, settled(&o));
        assert_eq!((next.requests.good, next.requests.bad), (60.0, None));
        // Filling while a pod starts or a queue drains is not this fleet's knee.
        let unsettled = Evidence {
            settled: false,
            ..filling
        };
        assert_eq!(l.learn(&cfg, &o, unsettled).requests.bad, None);
    }

    #[test]
    fn the_exploration_margin_shrinks_with_a_long_lead() {
        // Pod starts: the whole 50 %. A 10-minute GPU node: 50 % x 90 / 600 = 7.5 %, so the
        // margin times the lead a failed probe waits through is 45 s either way.
        assert_eq!(explore_margin(60_000.0), EXPLORE);
        assert_eq!(explore_margin(EXPLORE_LEAD_MS), EXPLORE);
        assert!((explore_margin(600_000.0) - 0.075).abs() < 1e-12);
        assert_eq!(explore_margin(f64::NAN), EXPLORE);
        let b = Bracket {
            good: 100.0,
            bad: None,
            saturated: 0.0,
        };
        assert_eq!(b.capacity(explore_margin(600_000.0), 0.8), Some(107.5));
    }

    #[test]
    fn a_breach_below_a_rate_served_well_stops_the_probe_and_keeps_good() {
        // Served 30 a replica well, then a settled breach at 12 a replica (latency left over
        // from an episode): good stays 30, the probe past it stops.
        let mut b = Bracket {
            good: 30.0,
            bad: None,
            saturated: 0.0,
        };
        b.unhealthy(12.0);
        assert_eq!(b.good, 30.0);
        assert_eq!(b.bad, Some(30.0));
        assert_eq!(b.capacity(EXPLORE, 0.8), Some(30.0));
        // A breach above it is the knee's bound, as before.
        let mut b = Bracket { bad: None, ..b };
        b.unhealthy(40.0);
        assert_eq!((b.good, b.bad), (30.0, Some(40.0)));
        assert_eq!(b.capacity(EXPLORE, 0.8), Some(34.0));
    }

    #[test]
    fn a_breach_at_a_rate_later_served_well_is_forgotten() {
        // A breach at 30 a replica, then 27 served well (within the margin): the bound moves
        // up to 27 / 0.85 and the plan stays at 27.
        let mut b = Bracket {
            good: 20.0,
            bad: Some(30.0),
            saturated: 0.0,
        };
        b.healthy(27.0);
        assert!((b.bad.unwrap_or(0.0) - 27.0 / BAD_MARGIN).abs() < 1e-9);
        assert!((b.capacity(EXPLORE, 0.8).unwrap_or(0.0) - 27.0).abs() < 1e-9);
        // Then 32 served well, past the breach's own rate: it was not the knee, and the probe
        // past what was served resumes.
        b.healthy(32.0);
        assert_eq!(b.bad, None);
        assert_eq!(b.capacity(EXPLORE, 0.8), Some(48.0));
    }

    #[test]
    fn exploration_goes_a_bounded_step_past_the_best_seen() {
        let b = Bracket {
            good: 10.0,
            bad: None,
            saturated: 0.0,
        };
        assert_eq!(b.capacity(EXPLORE, 0.8), Some(15.0));
        let b = Bracket {
            saturated: 15.0,
            ..b
        };
        // Saturated at 15: 15 x 0.8 = 12 is both the plan and the probe's cap.
        assert_eq!(b.capacity(EXPLORE, 0.8), Some(12.0));
        assert_eq!(b.capacity(0.0, 0.8), Some(12.0));
        // A reading at 11 (x 0.8 = 8.8, under what was served well) is a drowned fleet's, not
        // the knee: it does not cap the probe.
        let b = Bracket {
            saturated: 11.0,
            ..b
        };
        assert_eq!(b.capacity(EXPLORE, 0.8), Some(15.0));
        assert_eq!(b.capacity(0.0, 0.8), Some(10.0));
        assert_eq!(Bracket::default().capacity(EXPLORE, 0.8), None);
    }

    #[test]
    fn a_breach_is_forgotten_slowly() {
        let mut b = Bracket {
            good: 8.5,
            bad: Some(10.0),
            saturated: 0.0,
        };
        b.forget(3_600_000);
        // e^(1/6) = 1.18 after an hour.
        assert!((b.bad.unwrap_or(0.0) - 10.0 * (1.0f64 / 6.0).exp()).abs() < 1e-9);
    }

    #[test]
    fn a_filled_order_teaches_the_lead_time() {
        let cfg = PolicyConfig::default();
        let e = |ms| Evidence {
            filled_lead_ms: Some(ms),
            ..Evidence::default()
        };
        let o = fleet(2, 0.0, 0.0, 0.1);
        let l = Learned::default();
        assert_eq!(l.lead_ms(), LEAD_TIME_PRIOR_MS);
        let l = l.learn(&cfg, &o, e(90_000.0));
        assert_eq!(l.lead_ms(), 90_000.0);
        let l = l.learn(&cfg, &o, e(190_000.0));
        assert!((l.lead_ms() - 120_000.0).abs() < 1e-6);
    }

    #[test]
    fn base_latency_is_the_latency_with_the_load_taken_out() {
        let cfg = PolicyConfig::default();
        let l = Learned {
            requests: Bracket {
                saturated: 20.0,
                ..Bracket::default()
            },
            ..Learned::default()
        };
        // 2 replicas at 10/s each of 20: rho 0.5; TTFT p95 0.2 s -> base 0.1 s.
        let o = Observed {
            itl_s: Some(0.02),
            ..fleet(2, 20.0, 0.0, 0.2)
        };
        let l = l.learn(&cfg, &o, settled(&o));
        assert!((l.ttft_base_s.unwrap_or(0.0) - 0.1).abs() < 1e-9);
        assert!((l.itl_base_s.unwrap_or(0.0) - 0.01).abs() < 1e-9);
        // Not while a backlog drains.
        let busy = fleet(2, 20.0, 40.0, 5.0);
        let l2 = l.learn(&cfg, &busy, settled(&busy));
        assert_eq!(l2.ttft_base_s, l.ttft_base_s);
    }
}
