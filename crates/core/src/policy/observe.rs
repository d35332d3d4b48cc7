//! Observe: the signals as the policy reads them, fleet totals extrapolated from the fresh
//! subset to every ready replica, and whether the data may be acted on at all.

use super::constants::TRANSIENT_QUEUE_PER_REPLICA;
use super::types::{FleetTotal, PerReplica};
use crate::fleet::Signals;

/// One decision's view of the fleet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// Discovered workers (serving or starting).
    pub discovered: u32,
    /// Discovered workers that never answered a scrape (pods still starting).
    pub starting: u32,
    /// Workers serving: discovered and answered at least once.
    pub ready: u32,
    /// Workers with data from the latest cycle.
    pub fresh: u32,
    /// Enough fresh data to decide on (at least half the ready workers, or a fresh frontend
    /// when no worker exists).
    pub data_fresh: bool,
    /// Every ready worker fresh: the only state in which a scale-down is allowed.
    pub all_fresh: bool,
    /// Requests in flight (running + waiting).
    pub demand: FleetTotal,
    /// Requests waiting.
    pub queue: FleetTotal,
    /// A real queue (more than arrivals in transit).
    pub backlogged: bool,
    /// Whether a fresh worker exposes a prompt-token counter.
    pub token_counters: bool,
    /// Prompt tokens prefilled per second over the recent part of the window; `None` when
    /// no worker exposes the counter.
    pub recent_prompt_tokens: Option<f64>,
    /// Completions per second over the recent part of the window.
    pub recent_request_rate: f64,
    /// Requests per second that arrived over the same span: the completions plus the growth
    /// of the requests in flight over it (a draining backlog's completions are not arrivals,
    /// a growing queue's requests are; the newest span's where a burst makes it higher),
    /// never negative.
    pub recent_arrivals: f64,
    /// Growth of the requests in flight per second (the larger of the recent span's and the
    /// latest).
    pub in_flight_growth: f64,
    /// Growth of the requests in flight per second over the whole window.
    pub window_in_flight_growth: f64,
    /// The lower of the recent span's growth and the window's: a fleet past its knee grows
    /// its requests in flight over both, a burst's onset over the newest seconds.
    pub sustained_in_flight_growth: f64,
    /// Growth per second of the requests that arrived and whose prompt is not counted yet
    /// (arrivals minus first tokens; the growth in flight where no histogram counts first
    /// tokens): prompt tokens counted plus these at the mean prompt are the tokens arrived.
    pub recent_unprefilled_growth: f64,
    /// Mean prompt tokens per request prefilled (per completed request where no histogram
    /// counts first tokens; `None`: unknown).
    pub tokens_per_request: Option<f64>,
    /// Completions per second over the window.
    pub request_rate: f64,
    /// Prompt tokens prefilled per second over the window (`None`: no counter).
    pub prompt_tokens: Option<f64>,
    /// KV usage summed over ready replicas, in replica-fractions.
    pub kv_sum: Option<FleetTotal>,
    /// Highest KV fraction of any fresh replica.
    pub kv_max: Option<PerReplica>,
    /// TTFT quantile over the window, seconds.
    pub ttft_s: Option<f64>,
    /// Mean inter-token latency over the window, seconds.
    pub itl_s: Option<f64>,
    /// Preemptions per second.
    pub preemption_rate: f64,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads the signals. Pure.
pub fn observe(s: &Signals) -> Observed {
    let discovered = count(s.discovered_workers);
    let starting = count(s.starting_workers).min(discovered);
    let ready = discovered - starting;
    let fresh = count(s.fresh_workers);
    // Stale replicas are assumed as loaded as the fresh ones: totals measured on the fresh
    // subset are extrapolated through the per-replica value. With no worker at all, what was
    // measured is a frontend's fleet-wide view, taken as is.
    let fleet = ready.max(fresh);
    let extrapolate = |measured: f64| {
        if fleet == 0 {
            FleetTotal(measured)
        } else {
            FleetTotal(measured).per(fresh.max(1)).times(fleet)
        }
    };
    let demand = extrapolate(s.waiting + s.running);
    // Completions and growth pair over the same span (a drain's completions are matched by
    // the fall of requests in flight over it): the recent span's, or the latest's when higher
    // (a burst that the recent span's average has not caught up with yet). The latest span's
    // completions count at most at the recent span's rate: a third as many scrapes make them
    // noisier, and the burst memory would hold that noise. Paired across spans instead, the
    // recent completions of a drain that has just ended would read as arrivals.
    let recent = s.recent_request_rate + extrapolate(s.recent_in_flight_growth).0;
    let latest =
        s.latest_request_rate.min(s.recent_request_rate) + extrapolate(s.latest_in_flight_growth).0;
    let recent_arrivals = recent.max(latest).max(0.0);
    let growth = extrapolate(s.recent_in_flight_growth.max(s.latest_in_flight_growth)).0;
    let queue = extrapolate(s.waiting);
    // A fleet scaled to zero has no workers to scrape; a fresh Dynamo frontend still sees every
    // request, so its numbers are evidence (of no demand, or of demand that must wake it).
    let frontend_fresh = s.fresh_frontends > 0 && s.fresh_frontends * 2 >= s.discovered_frontends;
    let data_fresh = (fresh > 0 && fresh * 2 >= ready) || (discovered == 0 && frontend_fresh);
    // Prompt tokens are counted as prompts are prefilled (vLLM: at the first token), so they
    // pair with first tokens; paired with completions, a burst of long prompts whose
    // decodes have not finished yet reads as longer prompts (long context seed 1: 16 k where
    // 9.6 k came), and every token forecast with it.
    let prompts_counted = s
        .first_token_rate
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(s.request_rate);
    let tokens_per_request = (prompts_counted > 0.0 && s.prompt_token_rate > 0.0)
        .then(|| s.prompt_token_rate / prompts_counted);
    Observed {
        discovered,
        starting,
        ready,
        fresh,
        data_fresh,
        all_fresh: fresh >= ready,
        demand,
        queue,
        backlogged: queue.0 >= TRANSIENT_QUEUE_PER_REPLICA * f64::from(ready.max(1)),
        token_counters: s.token_counters,
        recent_prompt_tokens: s
            .token_counters
            .then(|| extrapolate(s.recent_prompt_token_rate).0),
        recent_request_rate: s.recent_request_rate,
        recent_arrivals,
        in_flight_growth: growth,
        window_in_flight_growth: extrapolate(s.window_in_flight_growth).0,
        sustained_in_flight_growth: extrapolate(
            s.recent_in_flight_growth.min(s.window_in_flight_growth),
        )
        .0,
        recent_unprefilled_growth: s
            .recent_first_token_rate
            .map_or(recent_arrivals - s.recent_request_rate, |first| {
                recent_arrivals - first
            }),
        tokens_per_request,
        request_rate: s.request_rate,
        prompt_tokens: s.token_counters.then(|| extrapolate(s.prompt_token_rate).0),
        kv_sum: s.kv_usage_mean.map(|m| PerReplica(m).times(fleet)),
        kv_max: s.kv_usage_max.map(PerReplica),
        ttft_s: s.ttft_seconds,
        itl_s: s.itl_seconds,
        preemption_rate: s.preemption_rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_of_the_fresh_half_stand_for_the_whole_fleet() {
        // 4 ready, 2 fresh reporting 30 running and 6 waiting: per replica 18 in flight, so 72.
        let s = Signals {
            discovered_workers: 5,
            starting_workers: 1,
            fresh_workers: 2,
            running: 30.0,
            waiting: 6.0,
            token_counters: true,
            prompt_token_rate: 2000.0,
            recent_prompt_token_rate: 2000.0,
            request_rate: 4.0,
            kv_usage_mean: Some(0.25),
            ..Signals::default()
        };
        let o = observe(&s);
        assert_eq!((o.ready, o.starting, o.fresh), (4, 1, 2));
        assert!(o.data_fresh && !o.all_fresh);
        assert_eq!(o.demand, FleetTotal(72.0));
        assert_eq!(o.queue, FleetTotal(12.0));
        // 12 waiting over 4 replicas is 3 each: more than the 2 in transit.
        assert!(o.backlogged);
        assert!(o.token_counters);
        assert_eq!(o.recent_prompt_tokens, Some(4000.0));
        assert_eq!(o.tokens_per_request, Some(500.0));
        assert_eq!(o.kv_sum, Some(FleetTotal(1.0)));
    }

    #[test]
    fn the_mean_prompt_is_prompt_tokens_over_first_tokens_where_they_are_counted() {
        // A burst of long prompts (the long-context scenario's mix, 9.7 k on average): 175 k
        // prompt tokens a second counted for 18 first tokens a second, while the completions
        // over the window are still those of the load before (12 a second). Over completions
        // the prompts would read 14.6 k, and every token forecast with them.
        let s = Signals {
            discovered_workers: 3,
            fresh_workers: 3,
            token_counters: true,
            prompt_token_rate: 175_000.0,
            recent_prompt_token_rate: 175_000.0,
            request_rate: 12.0,
            first_token_rate: Some(18.0),
            ..Signals::default()
        };
        let t = observe(&s).tokens_per_request.unwrap_or(0.0);
        assert!((t - 175_000.0 / 18.0).abs() < 1e-9, "{t}");
        // Without a TTFT histogram, completions are all there is.
        let s = Signals {
            first_token_rate: None,
            ..s
        };
        assert_eq!(observe(&s).tokens_per_request, Some(175_000.0 / 12.0));
    }

    #[test]
    fn without_token_counters_the_prefill_load_is_unknown_not_zero() {
        let s = Signals {
            discovered_workers: 1,
            fresh_workers: 1,
            running: 3.0,
            ..Signals::default()
        };
        let o = observe(&s);
        assert!(!o.token_counters);
        assert_eq!(o.recent_prompt_tokens, None);
        assert!(!o.backlogged);
    }

    #[test]
    fn fewer_than_half_fresh_is_not_data_to_act_on() {
        let s = Signals {
            discovered_workers: 5,
            fresh_workers: 2,
            ..Signals::default()
        };
        assert!(!observe(&s).data_fresh);
    }
}
