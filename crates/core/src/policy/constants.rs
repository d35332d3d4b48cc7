//! Every constant of the policy in one place, each with the reason for its value
//! (`docs/policy.md` explains them in context). None of them is a metadata key: they describe
//! how an inference engine behaves, not what a user wants.

/// The highest utilisation of any resource (prefill tokens per second, in-flight requests) a
/// fleet is sized for. Queueing delay grows as `1 / (1 - rho)`: past 0.8 a +-10 % swing in
/// arrivals moves TTFT by a factor of two, which no SLO margin absorbs. The MPC planner's
/// goodput-per-GPU optimum sits between 0.6 and 0.8 on the arena's loads for the same reason.
pub const MAX_UTILIZATION: f64 = 0.8;

/// The lowest utilisation ceiling the TTFT SLO may impose. Below it the latency is the
/// prompt's own prefill, not load: adding replicas would not buy TTFT back.
pub const MIN_UTILIZATION: f64 = 0.3;

/// A scale-down plans the remaining fleet at this share of the utilisation ceiling. Without a
/// band between the scale-up and scale-down points, +-10 % noise in the load would alternate
/// them; 0.85 leaves an 18 % rise before the next scale-up.
pub const DOWN_HEADROOM: f64 = 0.85;

/// Exploration: while TTFT (and ITL) stay under [`EXPLORE_SHARE`] of their SLOs, a replica may
/// be planned at up to this much more than the highest rate it has been seen to serve within
/// them. With [`DOWN_HEADROOM`] a scale-down then raises the per-replica load by at most
/// 1.5 x 0.85 = 1.275 each lead time: the smallest probe that can still take one replica of
/// five (a 25 % step), while a probe past the knee costs at most a lead time of slow requests
/// before the breach is remembered.
pub const EXPLORE: f64 = 0.5;

/// The exploration margin ([`EXPLORE`]) holds for capacity lead times up to this, ms; past it
/// the margin shrinks in proportion to the lead. A probe past the knee costs a lead time of
/// slow requests before new capacity comes, so what a probe risks is the margin times the
/// lead: the 50 % was chosen for pod starts of about a minute (45-75 s, and a scrape and an
/// HPA sync on top); a GPU node's 5-11 minutes made the same probe a 10-minute outage (the
/// ramp with node provisioning and a spare replica: 80 % of requests within the SLO).
pub const EXPLORE_LEAD_MS: f64 = 90_000.0;

/// Latency under this share of its SLO leaves room to explore.
pub const EXPLORE_SHARE: f64 = 0.5;

/// Plans stay this far below the lowest per-replica rate seen breaking the SLO.
pub const BAD_MARGIN: f64 = 0.85;

/// A rate seen breaking the SLO is forgotten with this time constant, ms (6 h): a fleet whose
/// mix or software changed gets to probe again, about once an hour at [`BAD_MARGIN`].
pub const BAD_FORGET_TAU_MS: f64 = 21_600_000.0;

/// A fleet keeps up with its load while its requests in flight grow by less than this share
/// of its completions per second. A ramp that doubles the load in ten minutes grows them by
/// well under 1 % (Little: the requests' residence times the arrivals' growth); a fleet past
/// its knee fills its running batch and KV cache at the excess of arrivals over what it
/// completes, minutes before its latency shows it.
pub const KEEPING_UP_SHARE: f64 = 0.05;

/// A scale-down also needs TTFT under this share of the SLO: a fleet already near its SLO has
/// no replica to spare, whatever the model says.
pub const DOWN_TTFT_SHARE: f64 = 0.8;

/// Time constant of the load level, ms: a burst seen at one scrape keeps counting for a few.
pub const LEVEL_TAU_MS: f64 = 10_000.0;

/// Shortest time constant of the trend and of the noise estimate, ms (they use the capacity
/// lead time when it is longer: the forecast horizon and its smoothing are the same length).
pub const TREND_TAU_MIN_MS: f64 = 30_000.0;

/// Time constant of the remembered peak (the burst memory), ms. A burst faster than a pod
/// start is served only by capacity already there, so a removal plans for the recent peak
/// decayed over this: after a burst, capacity follows the load down over a quarter of an hour
/// instead of at the first quiet lead time. In both Azure production traces bursts recur after
/// quiet gaps of 2 to 10 minutes; a 300 s memory (the HPA's default stabilisation) kept half a
/// peak after 3.5 minutes and met the next burst short (docs/policy.md, the forecast).
pub const PEAK_TAU_MS: f64 = 900_000.0;

/// A value at this share of the remembered peak is the burst back (renewing the memory).
pub const RENEW_SHARE: f64 = 0.8;

/// The burst memory's floor (see `forecast`) rises towards higher values over this many lead
/// times. A value's excess over it then reads a linear climb lasting half a lead time at 0.88
/// of its height, one lead time at 0.79, two at 0.63 (0.5 of it came within one lead time) and
/// thirty (a day's curve) at 0.07: near what capacity ordered at the climb's start could not
/// have served, erring high on the slower climbs, with one number of state.
pub const RISE_SPAN_LEADS: f64 = 2.0;

/// Longest lull a recurring burst is remembered across at full strength, ms (an hour): a
/// burst that comes back after longer is the daily curve's business, not the memory's, and
/// an hour bounds what holding a peak can cost.
pub const RECURRENCE_MAX_MS: f64 = 3_600_000.0;

/// An order older than this many capacity lead times is late (a quota, a clamped HPA, a
/// node that does not come): it is kept only while the forecast needs it, where an order on
/// time is kept for the remembered burst too (withdrawing it would throw away a pod start, or
/// a node's provisioning, that is nearly done).
pub const LATE_ORDER_LEADS: f64 = 2.0;

/// Time constant of the trend skill's record, ms (30 minutes): it spans several bursts of
/// either Azure trace (2 to 10 minutes apart) and a day's curve has shown its trend many times
/// over in it; a traffic that changes character is relearned within about as long.
pub const SKILL_TAU_MS: f64 = 1_800_000.0;

/// The trend skill starts from this much evidence that rises come as extrapolated, on its
/// scale of predicted rises as shares of the value predicted (about three predictions made on
/// a burst's climb, each near a third of the value it predicts, or ten of a ramp's 10 % rises).
pub const SKILL_PRIOR: f64 = 1.0;

/// A rise is credited with at most this multiple of its prediction: trends are noisy, and
/// those that stand out of the noise are more often the high ones, so a ramp delivers its
/// mean trend only if the low predictions' surplus counts; capped so that one step after a
/// flat trend does not outweigh a record of bursts.
pub const SKILL_SURPLUS_MAX: f64 = 2.0;

/// A prediction is scored only if its rise clears this many noise units (mean absolute
/// deviations of the value) at the trend's shortest horizon, [`TREND_TAU_MIN_MS`], and the
/// square root of the horizon's multiple of it beyond (a noise trend's extrapolation grows as
/// a random walk does). Three units over 30 s (4.4 at a 66 s lead): a Poisson load's own
/// trend stays under it (about 0.6 units on the arena's Poisson load; a flat bar of 2 units
/// let it through often enough to leave 0.86 of the trend for the flash crowd that came
/// next), a burst's climb clears it (the code trace's rises about 7 units over its lead).
pub const SKILL_Z: f64 = 3.0;

/// Predictions awaiting their outcome, at most (one each 1/32 of a lead time): bounded state
/// whatever the lead time.
pub const SKILL_PENDING_MAX: usize = 32;

/// Width of the forecast's upper band, in noise units (mean absolute deviation). One deviation
/// covers about 80 % of Gaussian noise, the MPC planner's p80.
pub const BAND_Z: f64 = 1.0;

/// Capacity lead time before any order has been seen filled, ms: a Qwen3-0.6B vLLM pod on a
/// warm GPU node starts in about a minute (engine-model.md).
pub const LEAD_TIME_PRIOR_MS: f64 = 60_000.0;

/// Longest lead time learned, ms (a GPU node that takes longer is a quota problem, not a
/// forecast horizon).
pub const LEAD_TIME_MAX_MS: f64 = 1_800_000.0;

/// Weight of a new observation in the learned lead time.
pub const LEARN_ALPHA: f64 = 0.3;

/// Time constant of the learned base latencies (TTFT and ITL at no load), ms: a change of
/// request mix shows within a few minutes.
pub const BASE_LATENCY_TAU_MS: f64 = 300_000.0;

/// Base latencies are learned only below this utilisation, where `1 - rho` is not noise.
pub const BASE_LATENCY_MAX_UTILIZATION: f64 = 0.7;

/// Waiting requests per serving replica that are arrivals in transit, not a backlog:
/// continuous batching admits them at the next engine step, milliseconds later.
pub const TRANSIENT_QUEUE_PER_REPLICA: f64 = 2.0;

/// A backlog is planned to drain within this many seconds on top of the arrivals.
pub const DRAIN_S: f64 = 60.0;

/// TTFT above this multiple of the SLO while queueing is a breach.
pub const BREACH_FACTOR: f64 = 1.1;

/// Consecutive breaches before the latency guard adds capacity.
pub const BREACH_TICKS: u32 = 2;

/// The latency guard adds this share of the ready replicas (at least one).
pub const GUARD_STEP: f64 = 0.25;

/// KV usage at which a replica is about to preempt.
pub const KV_FULL: f64 = 0.95;

/// The concurrency fallback's capacity stays within this range of `concurrencyPerReplica`.
pub const CONCURRENCY_RANGE: (f64, f64) = (0.5, 4.0);

/// An earlier cut of a learned capacity drifts back by this share per decision while TTFT has
/// plenty of headroom.
pub const CAPACITY_RECOVERY: f64 = 0.05;
