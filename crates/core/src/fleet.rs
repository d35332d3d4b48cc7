//! The scaler's memory of a fleet between scrape cycles, and the signals computed from it.
//!
//! Pure: [`Fleet::apply_cycle`] takes the outcome of one scrape cycle (every discovered target
//! with its extracted page or its failure) plus the cycle's timestamp, and [`Fleet::signals`]
//! reads the result. The same code runs live, in replay and in simulation.
//!
//! TTFT is kept as a sliding window of per-cycle bucket *deltas* summed across targets, so
//! the quantile covers exactly the requests that finished in the window, whatever happens to
//! individual workers: a counter reset counts the post-reset value (PromQL `increase`
//! semantics), a bucket-set change re-baselines the series, a new worker contributes from
//! its second scrape, and a departed worker's past deltas stay in the window.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::extract::{Engine, Extracted, Unusable, WorkerMetrics, extract};
use super::histogram::{DeltaError, Histogram};
use super::limits::{MAX_MERGED_TTFT_BUCKETS, WINDOW_SLOTS};

/// Whether a target is an inference worker or a (Dynamo) frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetRole {
    /// A worker: KV usage and running requests come from it.
    Worker,
    /// A frontend: TTFT, queue and request counters come from it when configured.
    Frontend,
}

/// Why a target has no fresh data this cycle. Bounded set: used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleKind {
    /// Connection refused, reset or DNS failure for the URL host.
    Connect,
    /// No complete answer within the scrape timeout.
    Timeout,
    /// Non-2xx HTTP status.
    HttpStatus,
    /// Body larger than the configured cap.
    BodyTooLarge,
    /// Body could not be read or decoded (not UTF-8, broken gzip).
    Body,
    /// The page parsed but held none of the families the scaler reads.
    NoKnownMetrics,
    /// The page exceeded the series limit.
    TooManySeries,
    /// The target is outside `--allow-targets`.
    NotAllowed,
    /// A value the scaler reads is negative, NaN or infinite: the whole reading is invalid.
    InvalidValue,
    /// No scrape slot of this ScaledObject freed up within the timeout (its own other
    /// targets are slow), so the target was never asked: the worker itself may be fine.
    PermitWait,
    /// Service discovery (DNS, HTTP SD) failed or returned something unusable.
    Discovery,
}

impl StaleKind {
    /// Every kind, for metric label sets.
    pub const ALL: [StaleKind; 11] = [
        StaleKind::Connect,
        StaleKind::Timeout,
        StaleKind::HttpStatus,
        StaleKind::BodyTooLarge,
        StaleKind::Body,
        StaleKind::NoKnownMetrics,
        StaleKind::TooManySeries,
        StaleKind::NotAllowed,
        StaleKind::InvalidValue,
        StaleKind::PermitWait,
        StaleKind::Discovery,
    ];

    /// Stable label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleKind::Connect => "connect",
            StaleKind::Timeout => "timeout",
            StaleKind::HttpStatus => "http_status",
            StaleKind::BodyTooLarge => "body_too_large",
            StaleKind::Body => "body",
            StaleKind::NoKnownMetrics => "no_known_metrics",
            StaleKind::TooManySeries => "too_many_series",
            StaleKind::NotAllowed => "not_allowed",
            StaleKind::InvalidValue => "invalid_value",
            StaleKind::PermitWait => "permit_wait",
            StaleKind::Discovery => "discovery",
        }
    }
}

/// A failed observation: bounded kind plus human detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleReason {
    /// Bounded classification.
    pub kind: StaleKind,
    /// Free text for logs and the debug API.
    pub detail: String,
}

/// One target's result in one cycle.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Target identity (its URL).
    pub id: String,
    /// Worker or frontend.
    pub role: TargetRole,
    /// Extracted page, or why there is none.
    pub outcome: Result<WorkerMetrics, StaleReason>,
    /// Malformed lines on the page (0 on failure).
    pub parse_errors: usize,
}

impl Observation {
    /// Turns a fetched page (or the fetch failure) into an observation. A page that holds
    /// none of the families the scaler reads is a failure too: the target is marked stale
    /// rather than read as an idle worker.
    pub fn from_page(
        id: String,
        role: TargetRole,
        page: Result<String, StaleReason>,
        engine: Engine,
        model: Option<&str>,
    ) -> Observation {
        let (outcome, parse_errors) = match page {
            Err(reason) => (Err(reason), 0),
            Ok(body) => {
                let Extracted {
                    metrics,
                    stats,
                    unusable,
                } = extract(&body, engine, model);
                if let Some(why) = unusable {
                    let reason = match why {
                        Unusable::InvalidValue(detail) => StaleReason {
                            kind: StaleKind::InvalidValue,
                            detail,
                        },
                        Unusable::TooManyBuckets(detail) => StaleReason {
                            kind: StaleKind::TooManySeries,
                            detail,
                        },
                    };
                    return Observation {
                        id,
                        role,
                        outcome: Err(reason),
                        parse_errors: stats.errors,
                    };
                }
                let known = metrics.dialect.is_some()
                    || metrics.waiting.is_some()
                    || metrics.running.is_some();
                if known {
                    (Ok(metrics), stats.errors)
                } else {
                    let detail = match &stats.first_error {
                        Some(first) => format!(
                            "no known metric families; {} malformed lines (first: {first})",
                            stats.errors
                        ),
                        None => format!("no known metric families among {} samples", stats.lines),
                    };
                    (
                        Err(StaleReason {
                            kind: StaleKind::NoKnownMetrics,
                            detail,
                        }),
                        stats.errors,
                    )
                }
            }
        };
        Observation {
            id,
            role,
            outcome,
            parse_errors,
        }
    }
}

/// Configuration of the signal computation.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalConfig {
    /// Quantile of TTFT to report (0.95).
    pub ttft_quantile: f64,
    /// Sliding window for the TTFT quantile and rates, ms.
    pub window_ms: u64,
    /// Fewer completions than this in the window: the quantile is undefined.
    pub ttft_min_samples: f64,
}

/// What the scaler remembers of one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetState {
    /// Worker or frontend.
    pub role: TargetRole,
    /// First cycle that saw the target, ms.
    pub first_seen_ms: u64,
    /// Last cycle with a usable page, ms.
    pub last_ok_ms: Option<u64>,
    /// Set while the latest observation failed.
    pub stale: Option<StaleReason>,
    /// Malformed lines on the last page.
    pub parse_errors: usize,
    /// The last usable page's numbers (kept for the debug API; not used once stale).
    pub metrics: Option<WorkerMetrics>,
    #[serde(skip)]
    baseline: Baseline,
}

#[derive(Debug, Clone, Default)]
struct Baseline {
    ttft: BTreeMap<String, Histogram>,
    created: BTreeMap<String, f64>,
    requests: Option<f64>,
    preemptions: Option<f64>,
    prompt_tokens: Option<f64>,
    generation_tokens: Option<f64>,
    itl: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Default)]
struct CycleEntry {
    at_ms: u64,
    span_ms: u64,
    ttft: Histogram,
    requests: f64,
    preemptions: f64,
    /// Worker counters: prompt and generated tokens, inter-token latency sum and count.
    work: WorkDelta,
    /// Change of the requests in flight (waiting + running) over the cycle; zero for a cycle
    /// in which a target left the fresh set or came back to it (its requests would read as
    /// arrivals or as completions that were neither).
    in_flight_growth: f64,
}

/// Increases of the workers' token and inter-token-latency counters.
#[derive(Debug, Clone, Copy, Default)]
struct WorkDelta {
    prompt_tokens: f64,
    generation_tokens: f64,
    itl_sum: f64,
    itl_count: f64,
}

impl WorkDelta {
    fn add(&mut self, o: &WorkDelta) {
        self.prompt_tokens += o.prompt_tokens;
        self.generation_tokens += o.generation_tokens;
        self.itl_sum += o.itl_sum;
        self.itl_count += o.itl_count;
    }
}

/// The recent rates are over the last `1 / RECENT_SHARE` of the window (15 s of the default
/// 60 s): short enough to see a burst within a pod start, long enough to hold several scrapes.
pub const RECENT_SHARE: u64 = 4;

/// The newest `1 / LATEST_SHARE` of the recent span (5 s of the default 15 s, and at least
/// the latest cycle) gives the latest growth of requests in flight: a burst shows there a
/// cycle or two before the recent span's average catches up.
pub const LATEST_SHARE: u64 = 3;

/// Fleet memory. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    targets: BTreeMap<String, TargetState>,
    window: VecDeque<CycleEntry>,
    last_cycle_ms: Option<u64>,
    last_demand_ms: Option<u64>,
    /// Requests waiting and running over the fresh targets at the last cycle.
    in_flight: (Option<f64>, Option<f64>),
}

/// Everything the policy and the operators see about a fleet at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Signals {
    /// When the signals were computed, ms on the controller's clock.
    pub at_ms: u64,
    /// TTFT quantile over the window, seconds; `None` when undefined (too few samples).
    pub ttft_seconds: Option<f64>,
    /// The quantile's rank fell in `+Inf`: TTFT is at least `ttft_seconds`.
    pub ttft_saturated: bool,
    /// Completions in the TTFT window.
    pub ttft_samples: f64,
    /// Mean KV usage fraction across fresh workers.
    pub kv_usage_mean: Option<f64>,
    /// Max KV usage fraction across fresh workers.
    pub kv_usage_max: Option<f64>,
    /// KV tokens in use across fresh workers whose capacity is known.
    pub kv_tokens_used: Option<f64>,
    /// KV capacity in tokens across fresh workers whose capacity is known.
    pub kv_capacity_tokens: Option<f64>,
    /// Requests waiting, fleet total.
    pub waiting: f64,
    /// Requests running, fleet total.
    pub running: f64,
    /// Requests per second over the window.
    pub request_rate: f64,
    /// Preemptions per second over the window.
    pub preemption_rate: f64,
    /// Whether a fresh worker exposes a prompt-token counter (so a zero rate is a measured
    /// zero).
    pub token_counters: bool,
    /// Prompt (prefill) tokens per second over the window, summed over fresh workers.
    pub prompt_token_rate: f64,
    /// Requests per second over the last quarter of the window.
    pub recent_request_rate: f64,
    /// Prompt tokens per second over the last quarter of the window.
    pub recent_prompt_token_rate: f64,
    /// Growth of the requests in flight (waiting + running) per second over the same span as
    /// the recent rates: completions plus this are the requests that arrived (a draining
    /// backlog's completions are not arrivals; a queue that grows is).
    pub recent_in_flight_growth: f64,
    /// The same growth over the newest third of that span (at least the latest cycle).
    pub latest_in_flight_growth: f64,
    /// Requests completed per second over the same newest span as `latest_in_flight_growth`:
    /// the two add up to the latest arrivals (a drain that ended within the recent span has
    /// its completions in the recent rate but not its fall in the latest growth).
    pub latest_request_rate: f64,
    /// The same growth over the whole window (the span the window's latency describes).
    pub window_in_flight_growth: f64,
    /// First tokens (TTFT observations) per second over the same span, `None` when no fresh
    /// target exposes a TTFT histogram: the requests whose prompt tokens were counted.
    pub recent_first_token_rate: Option<f64>,
    /// First tokens per second over the whole window (`None` as above): vLLM counts a
    /// request's prompt tokens when its first token comes out, so the window's prompt tokens
    /// over these are the mean prompt of the requests prefilled in it.
    pub first_token_rate: Option<f64>,
    /// Generated tokens per second over the window, summed over fresh workers.
    pub generation_token_rate: f64,
    /// Mean inter-token latency over the window, seconds (`None`: too few tokens or no
    /// histogram).
    pub itl_seconds: Option<f64>,
    /// Workers with data from the latest cycle.
    pub fresh_workers: usize,
    /// Workers discovered in the latest cycle.
    pub discovered_workers: usize,
    /// Discovered workers that have never answered a scrape: pods still starting (a headless
    /// Service with `publishNotReadyAddresses` lists them before vLLM listens). They are not
    /// serving yet, so they count neither as ready nor as stale.
    pub starting_workers: usize,
    /// Frontends with data from the latest cycle.
    pub fresh_frontends: usize,
    /// Frontends configured.
    pub discovered_frontends: usize,
    /// Last time demand was seen (requests in flight or arriving), ms.
    pub last_demand_ms: Option<u64>,
}

impl TargetState {
    /// Whether the latest observation succeeded (its numbers are current).
    fn is_fresh(&self) -> bool {
        self.stale.is_none() && self.metrics.is_some()
    }
}

impl Fleet {
    /// Current per-target state, by id.
    pub fn targets(&self) -> &BTreeMap<String, TargetState> {
        &self.targets
    }

    /// Applies one scrape cycle taken at `now_ms`. `observations` must list every target
    /// discovered this cycle; targets absent from it have departed and are forgotten.
    pub fn apply_cycle(&mut self, cfg: &SignalConfig, now_ms: u64, observations: Vec<Observation>) {
        let mut entry = CycleEntry {
            at_ms: now_ms,
            span_ms: self.last_cycle_ms.map_or(0, |t| now_ms.saturating_sub(t)),
            ..CycleEntry::default()
        };
        let present: std::collections::BTreeSet<String> =
            observations.iter().map(|o| o.id.clone()).collect();
        // Requests in flight are compared only across the same fresh targets: one that left
        // or went stale takes its requests out of the sum, one that came back brings them in,
        // and neither is a completion or an arrival. A target answering for the first time
        // (a new pod) starts empty and counts.
        let mut continuous = !self
            .targets
            .iter()
            .any(|(id, t)| t.is_fresh() && !present.contains(id));
        self.targets.retain(|id, _| present.contains(id));

        let frontends_configured = observations.iter().any(|o| o.role == TargetRole::Frontend);
        for obs in observations {
            let state = self.targets.entry(obs.id).or_insert_with(|| TargetState {
                role: obs.role,
                first_seen_ms: now_ms,
                last_ok_ms: None,
                stale: None,
                parse_errors: 0,
                metrics: None,
                baseline: Baseline::default(),
            });
            state.role = obs.role;
            state.parse_errors = obs.parse_errors;
            let (was_fresh, was_seen) = (state.is_fresh(), state.last_ok_ms.is_some());
            match obs.outcome {
                Err(reason) => state.stale = Some(reason),
                Ok(metrics) => {
                    // With frontends configured, TTFT and request counts come from them only,
                    // so a Dynamo worker re-exposing vLLM's histogram is not double-counted.
                    let counts_latency = !frontends_configured || obs.role == TargetRole::Frontend;
                    let fresh_baseline = state
                        .last_ok_ms
                        .is_some_and(|t| now_ms.saturating_sub(t) <= cfg.window_ms);
                    if counts_latency
                        && fresh_baseline
                        && accumulate(&state.baseline, &metrics, &mut entry).is_err()
                    {
                        state.stale = Some(StaleReason {
                            kind: StaleKind::TooManySeries,
                            detail: format!(
                                "TTFT bucket bounds differ from the fleet's: merging them would pass {MAX_MERGED_TTFT_BUCKETS} distinct bounds"
                            ),
                        });
                        continuous &= !was_fresh;
                        continue;
                    }
                    // Token and inter-token counters are the engines' own, read on workers only
                    // (a Dynamo worker re-exposes vLLM's).
                    if obs.role == TargetRole::Worker && fresh_baseline {
                        entry.work.add(&work_increase(&state.baseline, &metrics));
                    }
                    state.baseline = Baseline {
                        ttft: metrics.ttft.clone(),
                        created: metrics.ttft_created.clone(),
                        requests: metrics.requests_total,
                        preemptions: metrics.preemptions_total,
                        prompt_tokens: metrics.prompt_tokens_total,
                        generation_tokens: metrics.generation_tokens_total,
                        itl: metrics.itl_total,
                    };
                    state.last_ok_ms = Some(now_ms);
                    state.stale = None;
                    state.metrics = Some(metrics);
                }
            }
            let fresh = state.is_fresh();
            continuous &= (fresh || !was_fresh) && (!fresh || was_fresh || !was_seen);
        }

        let busy = self
            .fresh(None)
            .any(|(_, m)| m.waiting.unwrap_or(0.0) > 0.0 || m.running.unwrap_or(0.0) > 0.0);
        if busy || entry.requests > 0.0 {
            self.last_demand_ms = Some(now_ms);
        }
        let measured = self.measure_in_flight();
        let before = std::mem::replace(&mut self.in_flight, measured);
        if continuous && self.last_cycle_ms.is_some() {
            let total = |(w, r): (Option<f64>, Option<f64>)| w.unwrap_or(0.0) + r.unwrap_or(0.0);
            entry.in_flight_growth = total(self.in_flight) - total(before);
        }
        self.push_window(cfg, entry);
        while self
            .window
            .front()
            .is_some_and(|e| now_ms.saturating_sub(e.at_ms) >= cfg.window_ms)
        {
            self.window.pop_front();
        }
        self.last_cycle_ms = Some(now_ms);
    }

    /// Adds one cycle to the window, folding it into the latest slot when both fall within
    /// the same `window / WINDOW_SLOTS`, so the window's size does not depend on the interval.
    fn push_window(&mut self, cfg: &SignalConfig, entry: CycleEntry) {
        let slot_ms = (cfg.window_ms / WINDOW_SLOTS).max(1);
        if let Some(last) = self.window.back_mut()
            && last.at_ms / slot_ms == entry.at_ms / slot_ms
            && mergeable(&last.ttft, &entry.ttft)
        {
            last.ttft.add(&entry.ttft);
            last.span_ms += entry.span_ms;
            last.requests += entry.requests;
            last.preemptions += entry.preemptions;
            last.work.add(&entry.work);
            last.in_flight_growth += entry.in_flight_growth;
            return;
        }
        self.window.push_back(entry);
        // Only bucket sets that keep changing can get here: the oldest slot goes rather than
        // the window growing.
        while self.window.len() > 2 * WINDOW_SLOTS as usize {
            self.window.pop_front();
        }
    }

    /// Slots currently held by the TTFT window (bounded by `2 x WINDOW_SLOTS`).
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Fresh targets (latest observation succeeded), optionally of one role.
    fn fresh(&self, role: Option<TargetRole>) -> impl Iterator<Item = (&str, &WorkerMetrics)> {
        self.targets
            .iter()
            .filter(move |(_, s)| s.is_fresh() && role.is_none_or(|r| r == s.role))
            .filter_map(|(id, s)| s.metrics.as_ref().map(|m| (id.as_str(), m)))
    }

    /// Requests waiting and running over the fresh targets, fleet totals (`None`: no fresh
    /// target reports them).
    fn measure_in_flight(&self) -> (Option<f64>, Option<f64>) {
        let has_frontends = self
            .targets
            .values()
            .any(|t| t.role == TargetRole::Frontend);
        let (mut worker_running, mut worker_waiting) = (None::<f64>, None::<f64>);
        for (_, m) in self.fresh(Some(TargetRole::Worker)) {
            if let Some(r) = m.running {
                *worker_running.get_or_insert(0.0) += r;
            }
            if let Some(w) = m.waiting {
                *worker_waiting.get_or_insert(0.0) += w;
            }
        }
        let (mut fe_running, mut fe_waiting) = (None::<f64>, None::<f64>);
        let mut fe_without_engines = false;
        for (_, m) in self.fresh(Some(TargetRole::Frontend)) {
            if let Some(r) = m.running {
                *fe_running.get_or_insert(0.0) += r;
            }
            if let Some(w) = m.waiting {
                *fe_waiting.get_or_insert(0.0) += w;
            }
            fe_without_engines |= m.waiting_excludes_engines;
        }
        // The frontend queue includes requests not yet routed to any worker, so it wins when
        // configured; a Dynamo >= 1.3 frontend that reports only its routing queue gets the
        // workers' engine queues added. Running requests are best counted where they run.
        let waiting = match (has_frontends, fe_waiting) {
            (true, Some(fe)) if fe_without_engines => Some(fe + worker_waiting.unwrap_or(0.0)),
            (true, fe) => fe.or(worker_waiting),
            (false, _) => worker_waiting,
        };
        (waiting, worker_running.or(fe_running))
    }

    /// Computes the signals as of the latest cycle.
    pub fn signals(&self, cfg: &SignalConfig) -> Signals {
        let mut ttft = Histogram::default();
        let (mut requests, mut preemptions, mut span_ms) = (0.0, 0.0, 0u64);
        let mut work = WorkDelta::default();
        // The recent part of the window: a burst shows there within a few scrapes, where the
        // whole window's rate takes the window to catch up.
        let now = self.last_cycle_ms.unwrap_or(0);
        let recent_from = now.saturating_sub(cfg.window_ms / RECENT_SHARE);
        let (mut recent_requests, mut recent_prompt, mut recent_span) = (0.0, 0.0, 0u64);
        let (mut recent_growth, mut recent_first_tokens, mut growth) = (0.0, 0.0, 0.0);
        let latest_from = now.saturating_sub(cfg.window_ms / RECENT_SHARE / LATEST_SHARE);
        let (mut latest_growth, mut latest_requests, mut latest_span) = (0.0, 0.0, 0u64);
        let newest = self.window.len().saturating_sub(1);
        for (i, e) in self.window.iter().enumerate() {
            ttft.add(&e.ttft);
            requests += e.requests;
            preemptions += e.preemptions;
            work.add(&e.work);
            span_ms += e.span_ms;
            growth += e.in_flight_growth;
            if e.at_ms > recent_from {
                recent_requests += e.requests;
                recent_prompt += e.work.prompt_tokens;
                recent_growth += e.in_flight_growth;
                recent_first_tokens += e.ttft.count();
                recent_span += e.span_ms;
            }
            if e.at_ms > latest_from || i == newest {
                latest_growth += e.in_flight_growth;
                latest_requests += e.requests;
                latest_span += e.span_ms;
            }
        }
        let recent_per_second = |n: f64| per_second(n, recent_span);
        let samples = ttft.count();
        let quantile = if samples >= cfg.ttft_min_samples.max(1.0) {
            ttft.quantile(cfg.ttft_quantile)
        } else {
            None
        };
        let window_per_second = |n: f64| per_second(n, span_ms);

        let count = |role| self.targets.values().filter(|s| s.role == role).count();
        let fresh_count = |role| self.fresh(Some(role)).count();

        let mut kv = Vec::new();
        let (mut used, mut capacity, mut known) = (0.0, 0.0, false);
        for (_, m) in self.fresh(Some(TargetRole::Worker)) {
            if let Some(u) = m.kv_usage {
                kv.push(u);
                if let Some(cap) = m.kv_capacity_tokens {
                    used += u * cap;
                    capacity += cap;
                    known = true;
                }
            }
        }
        let (waiting, running) = self.in_flight;
        // First-token rates are known only where some fresh target exposes a TTFT histogram.
        let counts_first_tokens = self.fresh(None).any(|(_, m)| !m.ttft.is_empty());

        Signals {
            at_ms: self.last_cycle_ms.unwrap_or(0),
            ttft_seconds: quantile.map(|q| q.value),
            ttft_saturated: quantile.is_some_and(|q| q.saturated),
            ttft_samples: samples,
            kv_usage_mean: (!kv.is_empty()).then(|| kv.iter().sum::<f64>() / kv.len() as f64),
            kv_usage_max: kv.iter().copied().reduce(f64::max),
            kv_tokens_used: known.then_some(used),
            kv_capacity_tokens: known.then_some(capacity),
            waiting: waiting.unwrap_or(0.0),
            running: running.unwrap_or(0.0),
            request_rate: window_per_second(requests),
            preemption_rate: window_per_second(preemptions),
            token_counters: self
                .fresh(Some(TargetRole::Worker))
                .any(|(_, m)| m.prompt_tokens_total.is_some()),
            prompt_token_rate: window_per_second(work.prompt_tokens),
            recent_request_rate: recent_per_second(recent_requests),
            recent_prompt_token_rate: recent_per_second(recent_prompt),
            recent_in_flight_growth: recent_per_second(recent_growth),
            latest_in_flight_growth: per_second(latest_growth, latest_span),
            latest_request_rate: per_second(latest_requests, latest_span),
            window_in_flight_growth: window_per_second(growth),
            recent_first_token_rate: counts_first_tokens
                .then(|| recent_per_second(recent_first_tokens)),
            first_token_rate: counts_first_tokens.then(|| window_per_second(samples)),
            generation_token_rate: window_per_second(work.generation_tokens),
            itl_seconds: (work.itl_count >= cfg.ttft_min_samples.max(1.0))
                .then(|| work.itl_sum / work.itl_count),
            fresh_workers: fresh_count(TargetRole::Worker),
            discovered_workers: count(TargetRole::Worker),
            starting_workers: self
                .targets
                .values()
                .filter(|t| t.role == TargetRole::Worker && t.last_ok_ms.is_none())
                .count(),
            fresh_frontends: fresh_count(TargetRole::Frontend),
            discovered_frontends: count(TargetRole::Frontend),
            last_demand_ms: self.last_demand_ms,
        }
    }
}

/// Whether adding `b` into `a` keeps `a` within [`MAX_MERGED_TTFT_BUCKETS`] bounds (equal bound
/// sets add bucket by bucket; different ones merge over the union).
/// `n` over `span_ms` as a rate per second (0 over an empty span).
fn per_second(n: f64, span_ms: u64) -> f64 {
    if span_ms > 0 {
        n * 1000.0 / span_ms as f64
    } else {
        0.0
    }
}

fn mergeable(a: &Histogram, b: &Histogram) -> bool {
    a.same_bounds(b) || a.buckets.len() + b.buckets.len() <= MAX_MERGED_TTFT_BUCKETS
}

/// The fleet-wide histogram of a cycle would hold more than [`MAX_MERGED_TTFT_BUCKETS`].
#[derive(Debug)]
struct TooManyBounds;

/// Adds this observation's increase over `baseline` to the cycle entry.
fn accumulate(
    baseline: &Baseline,
    now: &WorkerMetrics,
    entry: &mut CycleEntry,
) -> Result<(), TooManyBounds> {
    for (series, hist) in &now.ttft {
        let Some(prev) = baseline.ttft.get(series) else {
            continue; // a new series contributes from its second scrape
        };
        let restarted = match (baseline.created.get(series), now.ttft_created.get(series)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
        let delta = if restarted {
            Ok(hist.clone())
        } else {
            match hist.delta_since(prev) {
                Err(DeltaError::CounterReset) => Ok(hist.clone()),
                other => other,
            }
        };
        if let Ok(delta) = delta {
            if !mergeable(&entry.ttft, &delta) {
                return Err(TooManyBounds);
            }
            entry.ttft.add(&delta);
        }
    }
    entry.requests += counter_increase(baseline.requests, now.requests_total);
    entry.preemptions += counter_increase(baseline.preemptions, now.preemptions_total);
    Ok(())
}

/// The workers' token and inter-token-latency counters' increase over `baseline`.
fn work_increase(baseline: &Baseline, now: &WorkerMetrics) -> WorkDelta {
    let (itl_sum, itl_count) = match (baseline.itl, now.itl_total) {
        (Some((s0, c0)), Some((s1, c1))) if c1 >= c0 && s1 >= s0 => (s1 - s0, c1 - c0),
        (Some(_), Some((s1, c1))) => (s1, c1),
        _ => (0.0, 0.0),
    };
    WorkDelta {
        prompt_tokens: counter_increase(baseline.prompt_tokens, now.prompt_tokens_total),
        generation_tokens: counter_increase(
            baseline.generation_tokens,
            now.generation_tokens_total,
        ),
        itl_sum,
        itl_count,
    }
}

/// `increase()` of a counter between two points: the post-reset value after a reset.
fn counter_increase(before: Option<f64>, after: Option<f64>) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) if a >= b => a - b,
        (Some(_), Some(a)) => a,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{Engine, extract};

    const INF: f64 = f64::INFINITY;

    fn cfg() -> SignalConfig {
        SignalConfig {
            ttft_quantile: 0.95,
            window_ms: 60_000,
            ttft_min_samples: 1.0,
        }
    }

    fn page(buckets: &[(f64, f64)], waiting: f64, kv: f64) -> WorkerMetrics {
        let mut text =
            format!("vllm:num_requests_waiting {waiting}\nvllm:kv_cache_usage_perc {kv}\n");
        for (le, c) in buckets {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                le.to_string()
            };
            text.push_str(&format!(
                "vllm:time_to_first_token_seconds_bucket{{le=\"{le}\"}} {c}\n"
            ));
        }
        extract(&text, Engine::Auto, None).metrics
    }

    fn ok(id: &str, m: WorkerMetrics) -> Observation {
        Observation {
            id: id.into(),
            role: TargetRole::Worker,
            outcome: Ok(m),
            parse_errors: 0,
        }
    }

    #[test]
    fn quantile_from_deltas_summed_across_workers() {
        let mut f = Fleet::default();
        let c = cfg();
        f.apply_cycle(
            &c,
            0,
            vec![
                ok(
                    "a",
                    page(&[(0.1, 100.0), (1.0, 100.0), (INF, 100.0)], 0.0, 0.1),
                ),
                ok("b", page(&[(0.1, 0.0), (1.0, 0.0), (INF, 0.0)], 0.0, 0.3)),
            ],
        );
        assert_eq!(
            f.signals(&c).ttft_seconds,
            None,
            "first scrape is only a baseline"
        );
        // a: +10 fast; b: +10 slow (0.1..1.0]. 20 samples; rank 19 -> 9/10 into (0.1, 1.0].
        f.apply_cycle(
            &c,
            5_000,
            vec![
                ok(
                    "a",
                    page(&[(0.1, 110.0), (1.0, 110.0), (INF, 110.0)], 0.0, 0.1),
                ),
                ok("b", page(&[(0.1, 0.0), (1.0, 10.0), (INF, 10.0)], 2.0, 0.3)),
            ],
        );
        let s = f.signals(&c);
        assert_eq!(s.ttft_samples, 20.0);
        assert!((s.ttft_seconds.unwrap() - (0.1 + 0.9 * 0.9)).abs() < 1e-9);
        assert_eq!(s.waiting, 2.0);
        assert!((s.kv_usage_mean.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(s.kv_usage_max, Some(0.3));
    }

    #[test]
    fn counter_reset_counts_post_reset_value_and_window_expires() {
        let mut f = Fleet::default();
        let c = cfg();
        f.apply_cycle(
            &c,
            0,
            vec![ok("a", page(&[(1.0, 50.0), (INF, 50.0)], 0.0, 0.0))],
        );
        f.apply_cycle(
            &c,
            5_000,
            vec![ok("a", page(&[(1.0, 3.0), (INF, 4.0)], 0.0, 0.0))],
        );
        assert_eq!(f.signals(&c).ttft_samples, 4.0);
        f.apply_cycle(
            &c,
            70_000,
            vec![ok("a", page(&[(1.0, 3.0), (INF, 4.0)], 0.0, 0.0))],
        );
        let s = f.signals(&c);
        assert_eq!(s.ttft_samples, 0.0);
        assert_eq!(s.ttft_seconds, None);
    }

    #[test]
    fn window_memory_does_not_depend_on_the_interval() {
        let c = SignalConfig {
            window_ms: 3_600_000,
            ..cfg()
        };
        let mut f = Fleet::default();
        let mut count = 0.0;
        for cycle in 0..20_000u64 {
            count += 1.0;
            f.apply_cycle(
                &c,
                cycle * 50,
                vec![ok("a", page(&[(0.1, count), (INF, count)], 1.0, 0.5))],
            );
        }
        assert!(
            f.window_len() <= WINDOW_SLOTS as usize,
            "{}",
            f.window_len()
        );
        // Folding cycles into slots keeps every observation.
        assert_eq!(f.signals(&c).ttft_samples, 19_999.0);
    }

    #[test]
    fn an_invalid_page_is_stale_with_its_reason_never_zero_load() {
        let obs = Observation::from_page(
            "w".into(),
            TargetRole::Worker,
            Ok("vllm:num_requests_running -1000\nvllm:kv_cache_usage_perc 0.5\n".into()),
            Engine::Auto,
            None,
        );
        let reason = obs.outcome.expect_err("invalid");
        assert_eq!(reason.kind, StaleKind::InvalidValue);
        assert!(reason.detail.contains("-1000"), "{}", reason.detail);
    }

    #[test]
    fn stale_and_departed_workers() {
        let mut f = Fleet::default();
        let c = cfg();
        f.apply_cycle(
            &c,
            0,
            vec![ok("a", page(&[], 1.0, 0.5)), ok("b", page(&[], 1.0, 0.9))],
        );
        let stale = Observation {
            id: "b".into(),
            role: TargetRole::Worker,
            outcome: Err(StaleReason {
                kind: StaleKind::Timeout,
                detail: "slow".into(),
            }),
            parse_errors: 0,
        };
        f.apply_cycle(&c, 5_000, vec![ok("a", page(&[], 1.0, 0.5)), stale]);
        let s = f.signals(&c);
        assert_eq!((s.fresh_workers, s.discovered_workers), (1, 2));
        assert_eq!(s.kv_usage_max, Some(0.5), "stale data is not used");
        f.apply_cycle(&c, 10_000, vec![ok("a", page(&[], 1.0, 0.5))]);
        assert_eq!(f.signals(&c).discovered_workers, 1);
    }

    #[test]
    fn token_rates_over_the_window_and_its_recent_quarter() {
        // One worker: 1000 prompt tokens/s for 45 s, then 5000/s for 15 s; ITL 2 s over 200
        // tokens per 5 s.
        let c = cfg();
        let mut f = Fleet::default();
        let (mut prompt, mut itl_sum, mut itl_count) = (0.0, 0.0, 0.0);
        for i in 0..=12u64 {
            let text = format!(
                "vllm:num_requests_running 1\nvllm:prompt_tokens_total {prompt}\nvllm:generation_tokens_total {}\nvllm:inter_token_latency_seconds_sum {itl_sum}\nvllm:inter_token_latency_seconds_count {itl_count}\n",
                prompt / 10.0
            );
            f.apply_cycle(
                &c,
                i * 5000,
                vec![ok("a", extract(&text, Engine::Auto, None).metrics)],
            );
            prompt += if i < 9 { 5000.0 } else { 25_000.0 };
            itl_sum += 2.0;
            itl_count += 200.0;
        }
        let s = f.signals(&c);
        assert!(s.token_counters);
        // Window: (9 x 5000 + 3 x 25000) / 60 s = 2000; recent 15 s: 5000.
        assert!(
            (s.prompt_token_rate - 2000.0).abs() < 1e-9,
            "{}",
            s.prompt_token_rate
        );
        assert!(
            (s.recent_prompt_token_rate - 5000.0).abs() < 1e-9,
            "{}",
            s.recent_prompt_token_rate
        );
        assert!((s.generation_token_rate - 200.0).abs() < 1e-9);
        assert_eq!(s.itl_seconds, Some(0.01));
    }

    /// A worker page with requests waiting and running, `done` completions so far and
    /// `first` TTFT observations (all under 0.1 s).
    fn busy(waiting: f64, running: f64, done: f64, first: f64) -> WorkerMetrics {
        let text = format!(
            "vllm:num_requests_waiting {waiting}\nvllm:num_requests_running {running}\nvllm:request_success_total {done}\nvllm:time_to_first_token_seconds_bucket{{le=\"0.1\"}} {first}\nvllm:time_to_first_token_seconds_bucket{{le=\"+Inf\"}} {first}\n"
        );
        extract(&text, Engine::Auto, None).metrics
    }

    #[test]
    fn arrivals_are_completions_plus_the_growth_in_flight_over_the_same_span() {
        // 100 completions/s throughout. For 15 s the queue grows by 50 each 5 s (110/s
        // arrived: 100 completed, 10 more wait), then the backlog drains 150 in 5 s.
        let c = cfg();
        let mut f = Fleet::default();
        let (mut done, mut waiting) = (0.0, 0.0);
        for i in 0..=3u64 {
            f.apply_cycle(&c, i * 5000, vec![ok("a", busy(waiting, 20.0, done, done))]);
            done += 500.0;
            waiting += 50.0;
        }
        let s = f.signals(&c);
        assert!((s.recent_request_rate - 100.0).abs() < 1e-9, "{s:?}");
        assert!((s.recent_in_flight_growth - 10.0).abs() < 1e-9, "{s:?}");
        assert!((s.latest_in_flight_growth - 10.0).abs() < 1e-9, "{s:?}");
        assert!((s.window_in_flight_growth - 10.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.recent_first_token_rate, Some(100.0));
        // The drain: 150 fewer in flight over the latest 5 s, 100 completions a second.
        f.apply_cycle(&c, 20_000, vec![ok("a", busy(0.0, 20.0, done, done))]);
        let s = f.signals(&c);
        // Over the recent 15 s: +50 +50 -150 = -50, i.e. -3.3/s against 100/s completed.
        assert!(
            (s.recent_in_flight_growth + 50.0 / 15.0).abs() < 1e-9,
            "{s:?}"
        );
        assert!((s.latest_in_flight_growth + 30.0).abs() < 1e-9, "{s:?}");
        // Over the whole window (20 s): +50 +50 +50 -150, the fleet kept up after all.
        assert!(s.window_in_flight_growth.abs() < 1e-9, "{s:?}");
        assert!((s.latest_request_rate - 100.0).abs() < 1e-9, "{s:?}");
        // The drain is over: 20 completions a second in the latest 5 s, none in flight
        // more or less; the recent span still holds the drain's completions.
        done += 100.0;
        f.apply_cycle(&c, 25_000, vec![ok("a", busy(0.0, 20.0, done, done))]);
        let s = f.signals(&c);
        assert!((s.latest_request_rate - 20.0).abs() < 1e-9, "{s:?}");
        assert!(
            (s.recent_request_rate - 1100.0 / 15.0).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(s.latest_in_flight_growth, 0.0, "{s:?}");
    }

    #[test]
    fn first_tokens_over_the_window_count_the_prompts_counted_not_the_completions() {
        // A burst of long prompts: 120 first tokens a second while the decodes that finish
        // are still the 100 a second of before. vLLM counts a prompt at its first token, so
        // prompt tokens pair with the 120.
        let c = cfg();
        let mut f = Fleet::default();
        let (mut done, mut first) = (0.0, 0.0);
        for i in 0..=3u64 {
            f.apply_cycle(&c, i * 5000, vec![ok("a", busy(0.0, 20.0, done, first))]);
            done += 500.0;
            first += 600.0;
        }
        let s = f.signals(&c);
        assert!((s.request_rate - 100.0).abs() < 1e-9, "{s:?}");
        assert!(
            s.first_token_rate.is_some_and(|r| (r - 120.0).abs() < 1e-9),
            "{s:?}"
        );
        // No histogram anywhere: unknown, not zero.
        let mut g = Fleet::default();
        let bare = |done: f64| {
            extract(
                &format!("vllm:num_requests_running 1\nvllm:request_success_total {done}\n"),
                Engine::Auto,
                None,
            )
            .metrics
        };
        g.apply_cycle(&c, 0, vec![ok("a", bare(0.0))]);
        g.apply_cycle(&c, 5000, vec![ok("a", bare(500.0))]);
        assert_eq!(g.signals(&c).first_token_rate, None);
    }

    #[test]
    fn requests_in_flight_of_a_worker_that_left_or_went_stale_are_neither_arrivals_nor_completions()
    {
        let c = cfg();
        let mut f = Fleet::default();
        let stale = |id: &str| Observation {
            id: id.into(),
            role: TargetRole::Worker,
            outcome: Err(StaleReason {
                kind: StaleKind::Timeout,
                detail: "slow".into(),
            }),
            parse_errors: 0,
        };
        let both = |f: &mut Fleet, t: u64| {
            f.apply_cycle(
                &c,
                t,
                vec![
                    ok("a", busy(0.0, 40.0, 0.0, 0.0)),
                    ok("b", busy(0.0, 40.0, 0.0, 0.0)),
                ],
            );
        };
        both(&mut f, 0);
        both(&mut f, 5000);
        // "b" goes stale (its 40 leave the sum), comes back (they return), then leaves.
        f.apply_cycle(
            &c,
            10_000,
            vec![ok("a", busy(0.0, 40.0, 0.0, 0.0)), stale("b")],
        );
        assert_eq!(f.signals(&c).recent_in_flight_growth, 0.0);
        both(&mut f, 15_000);
        assert_eq!(f.signals(&c).latest_in_flight_growth, 0.0);
        f.apply_cycle(&c, 20_000, vec![ok("a", busy(0.0, 40.0, 0.0, 0.0))]);
        let s = f.signals(&c);
        assert_eq!(
            (s.recent_in_flight_growth, s.latest_in_flight_growth),
            (0.0, 0.0)
        );
        // A new pod answering for the first time starts empty and counts: 10 arrived for it.
        f.apply_cycle(
            &c,
            25_000,
            vec![
                ok("a", busy(0.0, 40.0, 0.0, 0.0)),
                ok("c", busy(0.0, 10.0, 0.0, 0.0)),
            ],
        );
        assert!((f.signals(&c).latest_in_flight_growth - 2.0).abs() < 1e-9);
        // No TTFT histogram anywhere: first tokens are unknown, not zero.
        let mut g = Fleet::default();
        g.apply_cycle(&c, 0, vec![ok("a", page(&[], 1.0, 0.5))]);
        assert_eq!(g.signals(&c).recent_first_token_rate, None);
    }
}
