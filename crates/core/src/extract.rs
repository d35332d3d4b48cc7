//! From one scraped page to the handful of numbers the scaler needs, for every engine
//! dialect: vLLM (V0 and V1), NVIDIA Dynamo frontend and worker (old and new KV names),
//! SGLang and TensorRT-LLM.
//!
//! Names are matched modulo `:`/`_` (`vllm:x` == `vllm_x`), because Python's OpenMetrics
//! writer and Prometheus remote storage both rewrite the colon. Each role lists its candidate
//! families in priority order; the first family present on the page wins, so a Dynamo worker
//! page that re-exposes the engine's `vllm:*` metrics does not double-count.

use std::collections::BTreeMap;

use serde::Serialize;

use super::expo::{self, Sample, ScanStats};
use super::histogram::Histogram;
use super::limits::MAX_TTFT_BUCKETS;

/// Which engine dialects to read. `Auto` accepts every family, in priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Accept all dialects; the page's families decide.
    Auto,
    /// vLLM V0/V1 (`vllm:*`).
    Vllm,
    /// NVIDIA Dynamo frontend (`dynamo_frontend_*`) and worker (`dynamo_component_*`); the
    /// worker port also re-exposes the engine's own metrics, which are read as well.
    Dynamo,
    /// SGLang (`sglang:*`).
    Sglang,
    /// TensorRT-LLM (`trtllm_*`, and the older unprefixed names).
    Trtllm,
}

impl Engine {
    /// Accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "auto, vllm, dynamo, sglang, trtllm";

    /// Parses the `engine` metadata value.
    pub fn parse(s: &str) -> Option<Engine> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(Engine::Auto),
            "vllm" => Some(Engine::Vllm),
            "dynamo" => Some(Engine::Dynamo),
            "sglang" => Some(Engine::Sglang),
            "trtllm" | "tensorrt-llm" => Some(Engine::Trtllm),
            _ => None,
        }
    }

    fn admits(self, dialect: Engine) -> bool {
        match self {
            Engine::Auto => true,
            // Dynamo workers re-expose the engine's native metrics on the same port.
            Engine::Dynamo => true,
            other => other == dialect,
        }
    }
}

/// What a family means to the scaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Ttft,
    KvUsage,
    Waiting,
    Running,
    Inflight,
    Preemptions,
    Requests,
    CacheConfigInfo,
    KvCapacityTokens,
    KvMaxBlocks,
    KvTokensPerBlock,
    FrontendTotalKvBlocks,
    FrontendKvBlockSize,
    FrontendWorkerActiveBlocks,
    /// Dynamo >= 1.3: requests waiting inside each worker's engine, as the frontend sees them.
    FrontendWorkerWaiting,
    /// Dynamo >= 1.3: requests per frontend pipeline stage (`stage` label), read by stage.
    FrontendStageRequests,
    /// Cumulative prompt (prefill) tokens.
    PromptTokens,
    /// Cumulative generated (decode) tokens.
    GenerationTokens,
    /// `_sum` of the inter-token latency histogram, seconds.
    ItlSum,
    /// `_count` of the inter-token latency histogram.
    ItlCount,
}

/// `(dialect, role, family name)`; within a role, earlier rows win.
const FAMILIES: &[(Engine, Role, &str)] = &[
    (
        Engine::Dynamo,
        Role::Ttft,
        "dynamo_frontend_time_to_first_token_seconds",
    ),
    (Engine::Vllm, Role::Ttft, "vllm:time_to_first_token_seconds"),
    (
        Engine::Sglang,
        Role::Ttft,
        "sglang:time_to_first_token_seconds",
    ),
    (
        Engine::Trtllm,
        Role::Ttft,
        "trtllm_time_to_first_token_seconds",
    ),
    (Engine::Trtllm, Role::Ttft, "time_to_first_token_seconds"),
    (
        Engine::Dynamo,
        Role::KvUsage,
        "dynamo_component_gpu_cache_usage_percent",
    ),
    (
        Engine::Dynamo,
        Role::KvUsage,
        "dynamo_component_kvstats_gpu_cache_usage_percent",
    ),
    (Engine::Vllm, Role::KvUsage, "vllm:kv_cache_usage_perc"),
    (Engine::Vllm, Role::KvUsage, "vllm:gpu_cache_usage_perc"),
    (Engine::Sglang, Role::KvUsage, "sglang:token_usage"),
    (Engine::Trtllm, Role::KvUsage, "trtllm_kv_cache_utilization"),
    // Dynamo < 1.3 only: from handler start to the first token, so prefill counts as queue.
    // Used only when the page has neither stage nor worker-waiting families (see `finish`).
    (
        Engine::Dynamo,
        Role::Waiting,
        "dynamo_frontend_queued_requests",
    ),
    (Engine::Vllm, Role::Waiting, "vllm:num_requests_waiting"),
    (Engine::Sglang, Role::Waiting, "sglang:num_queue_reqs"),
    (Engine::Trtllm, Role::Waiting, "trtllm_num_requests_waiting"),
    (Engine::Vllm, Role::Running, "vllm:num_requests_running"),
    (Engine::Sglang, Role::Running, "sglang:num_running_reqs"),
    (Engine::Trtllm, Role::Running, "trtllm_num_requests_running"),
    // Dynamo >= 1.3 name; `inflight_requests` is its deprecated twin.
    (
        Engine::Dynamo,
        Role::Inflight,
        "dynamo_frontend_active_requests",
    ),
    (
        Engine::Dynamo,
        Role::Inflight,
        "dynamo_frontend_inflight_requests",
    ),
    (
        Engine::Dynamo,
        Role::Inflight,
        "dynamo_component_inflight_requests",
    ),
    (
        Engine::Vllm,
        Role::Preemptions,
        "vllm:num_preemptions_total",
    ),
    (
        Engine::Dynamo,
        Role::Requests,
        "dynamo_frontend_requests_total",
    ),
    (Engine::Vllm, Role::Requests, "vllm:request_success_total"),
    (Engine::Sglang, Role::Requests, "sglang:num_requests_total"),
    (
        Engine::Trtllm,
        Role::Requests,
        "trtllm_request_success_total",
    ),
    (Engine::Trtllm, Role::Requests, "request_success_total"),
    (
        Engine::Vllm,
        Role::CacheConfigInfo,
        "vllm:cache_config_info",
    ),
    (
        Engine::Sglang,
        Role::KvCapacityTokens,
        "sglang:max_total_num_tokens",
    ),
    (
        Engine::Trtllm,
        Role::KvMaxBlocks,
        "trtllm_kv_cache_max_blocks",
    ),
    (
        Engine::Trtllm,
        Role::KvTokensPerBlock,
        "trtllm_kv_cache_tokens_per_block",
    ),
    (
        Engine::Dynamo,
        Role::FrontendTotalKvBlocks,
        "dynamo_frontend_model_total_kv_blocks",
    ),
    (
        Engine::Dynamo,
        Role::FrontendKvBlockSize,
        "dynamo_frontend_model_kv_cache_block_size",
    ),
    (
        Engine::Dynamo,
        Role::FrontendWorkerActiveBlocks,
        "dynamo_frontend_worker_active_decode_blocks",
    ),
    (
        Engine::Dynamo,
        Role::FrontendWorkerWaiting,
        "dynamo_frontend_worker_waiting_requests",
    ),
    (
        Engine::Dynamo,
        Role::FrontendStageRequests,
        "dynamo_frontend_stage_requests",
    ),
    (Engine::Vllm, Role::PromptTokens, "vllm:prompt_tokens_total"),
    (
        Engine::Sglang,
        Role::PromptTokens,
        "sglang:prompt_tokens_total",
    ),
    (
        Engine::Vllm,
        Role::GenerationTokens,
        "vllm:generation_tokens_total",
    ),
    (
        Engine::Sglang,
        Role::GenerationTokens,
        "sglang:generation_tokens_total",
    ),
    (
        Engine::Vllm,
        Role::ItlSum,
        "vllm:inter_token_latency_seconds_sum",
    ),
    // vLLM before 0.11 named the same histogram `time_per_output_token`.
    (
        Engine::Vllm,
        Role::ItlSum,
        "vllm:time_per_output_token_seconds_sum",
    ),
    (
        Engine::Sglang,
        Role::ItlSum,
        "sglang:time_per_output_token_seconds_sum",
    ),
    (
        Engine::Vllm,
        Role::ItlCount,
        "vllm:inter_token_latency_seconds_count",
    ),
    (
        Engine::Vllm,
        Role::ItlCount,
        "vllm:time_per_output_token_seconds_count",
    ),
    (
        Engine::Sglang,
        Role::ItlCount,
        "sglang:time_per_output_token_seconds_count",
    ),
];

/// Frontend pipeline stages before a worker starts prefilling (`dynamo_frontend_stage_requests`
/// `stage` values that are queue, not work). `dispatch` is left out: it lasts until the first
/// token, so it holds every request being prefilled.
const QUEUE_STAGES: [&str; 2] = ["preprocess", "route"];

/// Everything the scaler reads from one worker's (or frontend's) page.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerMetrics {
    /// The dialect whose TTFT/KV families were found (`None`: no known family at all).
    pub dialect: Option<&'static str>,
    /// TTFT histograms per series (labels minus `le`, rendered sorted), cumulative.
    #[serde(skip)]
    pub ttft: BTreeMap<String, Histogram>,
    /// Per-series `_created` timestamps of the TTFT histogram, where exposed.
    #[serde(skip)]
    pub ttft_created: BTreeMap<String, f64>,
    /// KV-cache usage fraction 0..1 (mean over the page's engines / DP ranks).
    pub kv_usage: Option<f64>,
    /// KV capacity in tokens, when the page tells.
    pub kv_capacity_tokens: Option<f64>,
    /// Requests waiting (queued), summed over series.
    pub waiting: Option<f64>,
    /// Requests running (in the batch), summed over series.
    pub running: Option<f64>,
    /// Cumulative preemptions.
    pub preemptions_total: Option<f64>,
    /// Cumulative finished (or, for Dynamo, received) requests.
    pub requests_total: Option<f64>,
    /// Whether `waiting` already counts the engines' own queues. A Dynamo >= 1.3 frontend
    /// without `worker_waiting_requests` reports only its own (routing) queue, so the workers'
    /// engine queues are added to it fleet-wide; every other page counts everything it knows.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub waiting_excludes_engines: bool,
    /// Cumulative prompt (prefill) tokens.
    pub prompt_tokens_total: Option<f64>,
    /// Cumulative generated tokens.
    pub generation_tokens_total: Option<f64>,
    /// Cumulative inter-token latency `(sum seconds, count)`, from one histogram family.
    pub itl_total: Option<(f64, f64)>,
}

/// Why a page that parsed cannot be used: a value no engine would report, which must never
/// be summed as if it were load (a negative gauge would lower the fleet's demand; a NaN
/// would read as zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// A gauge or counter the scaler reads is negative, NaN or infinite.
    InvalidValue(String),
    /// A TTFT histogram series has more buckets than [`MAX_TTFT_BUCKETS`].
    TooManyBuckets(String),
}

/// The result of reading one page: the numbers plus the scanner's counts.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// The numbers.
    pub metrics: WorkerMetrics,
    /// Scanner statistics (malformed lines are counted there).
    pub stats: ScanStats,
    /// Set when the page holds a value that makes the whole reading invalid.
    pub unusable: Option<Unusable>,
}

/// Compares metric names treating `:` and `_` as equal.
fn same_name(exposed: &[u8], family: &[u8]) -> bool {
    exposed.len() == family.len()
        && exposed
            .iter()
            .zip(family)
            .all(|(a, b)| a == b || (*a == b':' && *b == b'_') || (*a == b'_' && *b == b':'))
}

/// Suffix of a histogram sample line, when it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Plain,
    Bucket,
    Created,
}

fn classify(name: &str, engine: Engine) -> Option<(usize, Part)> {
    let bytes = name.as_bytes();
    // Cheap reject: every family we read starts with one of these letters.
    if !matches!(bytes.first(), Some(b'v' | b'd' | b's' | b't' | b'r')) {
        return None;
    }
    for (index, (dialect, role, family)) in FAMILIES.iter().enumerate() {
        if !engine.admits(*dialect) {
            continue;
        }
        let fam = family.as_bytes();
        if *role == Role::Ttft {
            if let Some(base) = name.strip_suffix("_bucket")
                && same_name(base.as_bytes(), fam)
            {
                return Some((index, Part::Bucket));
            }
            if let Some(base) = name.strip_suffix("_created")
                && same_name(base.as_bytes(), fam)
            {
                return Some((index, Part::Created));
            }
            continue;
        }
        if same_name(bytes, fam) {
            return Some((index, Part::Plain));
        }
    }
    None
}

fn series_key(sample: &Sample<'_>) -> String {
    let mut labels: Vec<(&str, &str)> = sample
        .labels
        .iter()
        .filter(|(k, _)| *k != "le")
        .map(|(k, v)| (*k, v.as_ref()))
        .collect();
    labels.sort_unstable();
    let mut key = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

fn model_matches(sample: &Sample<'_>, model: Option<&str>) -> bool {
    let Some(want) = model else { return true };
    match sample.label("model_name").or_else(|| sample.label("model")) {
        Some(have) => have.eq_ignore_ascii_case(want),
        None => true,
    }
}

#[derive(Default)]
struct Accumulator {
    /// Per family index: summed plain values and how many series contributed.
    plain: BTreeMap<usize, (f64, usize)>,
    /// Per TTFT family index: series -> (le, cumulative) pairs.
    buckets: BTreeMap<usize, BTreeMap<String, Vec<(f64, f64)>>>,
    created: BTreeMap<usize, BTreeMap<String, f64>>,
    cache_config_tokens: Option<f64>,
    /// `dynamo_frontend_stage_requests` summed over the queue stages, and whether the family
    /// was on the page at all.
    stage_queue: Option<f64>,
    /// The first value that makes the page unusable.
    unusable: Option<Unusable>,
}

/// A value an engine can report for the families the scaler reads: gauges, counters and
/// bucket counts are all finite and non-negative.
fn valid_value(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// Reads one page. `model` restricts samples carrying a `model`/`model_name` label to that
/// model (case-insensitive, as Dynamo lower-cases it on some families).
pub fn extract(body: &str, engine: Engine, model: Option<&str>) -> Extracted {
    let mut acc = Accumulator::default();
    let stats = expo::scan(
        body,
        |name| classify(name, engine).is_some(),
        |sample| {
            if !model_matches(&sample, model) {
                return;
            }
            let Some((index, part)) = classify(sample.name, engine) else {
                return;
            };
            // The first unusable value decides the page; nothing after it is kept.
            if acc.unusable.is_some() {
                return;
            }
            match part {
                Part::Bucket => {
                    let Some(le) = sample.label("le").and_then(|v| v.parse::<f64>().ok()) else {
                        return;
                    };
                    if !valid_value(sample.value) || le.is_nan() {
                        acc.unusable = Some(Unusable::InvalidValue(format!(
                            "{}{{le=\"{le}\"}} is {}",
                            sample.name, sample.value
                        )));
                        return;
                    }
                    let series = acc
                        .buckets
                        .entry(index)
                        .or_default()
                        .entry(series_key(&sample))
                        .or_default();
                    if series.len() >= MAX_TTFT_BUCKETS {
                        acc.unusable = Some(Unusable::TooManyBuckets(format!(
                            "{} has more than {MAX_TTFT_BUCKETS} buckets in one series",
                            sample.name
                        )));
                        return;
                    }
                    series.push((le, sample.value));
                }
                Part::Created => {
                    acc.created
                        .entry(index)
                        .or_default()
                        .insert(series_key(&sample), sample.value);
                }
                Part::Plain => {
                    if FAMILIES[index].1 == Role::CacheConfigInfo {
                        let blocks = sample
                            .label("num_gpu_blocks")
                            .and_then(|v| v.parse::<f64>().ok());
                        let size = sample
                            .label("block_size")
                            .and_then(|v| v.parse::<f64>().ok());
                        if let (Some(blocks), Some(size)) = (blocks, size) {
                            *acc.cache_config_tokens.get_or_insert(0.0) += blocks * size;
                        }
                        return;
                    }
                    if !valid_value(sample.value) {
                        acc.unusable = Some(Unusable::InvalidValue(format!(
                            "{} is {}",
                            FAMILIES[index].2, sample.value
                        )));
                        return;
                    }
                    if FAMILIES[index].1 == Role::FrontendStageRequests {
                        let queue = sample
                            .label("stage")
                            .is_some_and(|stage| QUEUE_STAGES.contains(&stage));
                        *acc.stage_queue.get_or_insert(0.0) +=
                            if queue { sample.value } else { 0.0 };
                        return;
                    }
                    let slot = acc.plain.entry(index).or_insert((0.0, 0));
                    slot.0 += sample.value;
                    slot.1 += 1;
                }
            }
        },
    );
    let unusable = acc.unusable.take();
    Extracted {
        metrics: acc.finish(),
        stats,
        unusable,
    }
}

impl Accumulator {
    /// The first family (in table order) of `role` that appeared: `(sum, series)`.
    fn first(&self, role: Role) -> Option<(f64, usize)> {
        self.first_index(role).map(|(_, v)| v)
    }

    /// Like [`Accumulator::first`], with the family's index.
    fn first_index(&self, role: Role) -> Option<(usize, (f64, usize))> {
        self.plain
            .iter()
            .find(|(index, _)| FAMILIES[**index].1 == role)
            .map(|(index, v)| (*index, *v))
    }

    fn finish(mut self) -> WorkerMetrics {
        let mut m = WorkerMetrics::default();
        if let Some((&index, series)) = self.buckets.iter_mut().next() {
            m.dialect = Some(dialect_name(FAMILIES[index].0));
            m.ttft = std::mem::take(series)
                .into_iter()
                .map(|(k, pairs)| (k, Histogram::from_pairs(pairs)))
                .collect();
            m.ttft_created = self.created.remove(&index).unwrap_or_default();
        }
        if let Some((index, (sum, n))) = self
            .plain
            .iter()
            .find(|(index, _)| FAMILIES[**index].1 == Role::KvUsage)
        {
            m.dialect.get_or_insert(dialect_name(FAMILIES[*index].0));
            // Out-of-range fractions are clamped: a gauge above 1 means "full", not "more".
            m.kv_usage = Some((sum / *n as f64).clamp(0.0, 1.0));
        }
        m.waiting = self.first(Role::Waiting).map(|v| v.0);
        // Dynamo >= 1.3 frontends tell queue from prefill: the routing queue (stages before
        // dispatch) plus, where exposed, each worker's engine queue. Without the latter the
        // workers' own pages supply the engine queues (`waiting_excludes_engines`).
        let worker_waiting = self.first(Role::FrontendWorkerWaiting).map(|v| v.0);
        if self.stage_queue.is_some() || worker_waiting.is_some() {
            m.waiting = Some(self.stage_queue.unwrap_or(0.0) + worker_waiting.unwrap_or(0.0));
            m.waiting_excludes_engines = worker_waiting.is_none();
        }
        m.running = self.first(Role::Running).map(|v| v.0);
        if m.running.is_none()
            && let Some((inflight, _)) = self.first(Role::Inflight)
        {
            // Dynamo's in-flight (active) count includes the queued requests.
            m.running = Some((inflight - m.waiting.unwrap_or(0.0)).max(0.0));
        }
        m.preemptions_total = self.first(Role::Preemptions).map(|v| v.0);
        m.requests_total = self.first(Role::Requests).map(|v| v.0);
        m.prompt_tokens_total = self.first(Role::PromptTokens).map(|v| v.0);
        m.generation_tokens_total = self.first(Role::GenerationTokens).map(|v| v.0);
        // Sum and count only from the same family (the table lists them in the same order).
        m.itl_total = match (
            self.first_index(Role::ItlSum),
            self.first_index(Role::ItlCount),
        ) {
            (Some((si, (sum, _))), Some((ci, (count, _))))
                if FAMILIES[si].2.strip_suffix("_sum") == FAMILIES[ci].2.strip_suffix("_count") =>
            {
                Some((sum, count))
            }
            _ => None,
        };
        m.kv_capacity_tokens = self.kv_capacity();
        if m.kv_usage.is_none()
            && let (Some((active, _)), Some((total, _))) = (
                self.first(Role::FrontendWorkerActiveBlocks),
                self.first(Role::FrontendTotalKvBlocks),
            )
            && total > 0.0
        {
            m.kv_usage = Some((active / total).clamp(0.0, 1.0));
        }
        m
    }

    fn kv_capacity(&self) -> Option<f64> {
        let positive = |v: Option<f64>| v.filter(|x| *x > 0.0);
        if let Some(tokens) = positive(self.cache_config_tokens) {
            return Some(tokens);
        }
        if let Some(tokens) = positive(self.first(Role::KvCapacityTokens).map(|v| v.0)) {
            return Some(tokens);
        }
        if let (Some(blocks), Some(per)) = (
            positive(self.first(Role::KvMaxBlocks).map(|v| v.0)),
            positive(self.first(Role::KvTokensPerBlock).map(|v| v.0)),
        ) {
            return Some(blocks * per);
        }
        // Dynamo reports 0 blocks until the engine is up: 0 means unknown, not full.
        match (
            positive(self.first(Role::FrontendTotalKvBlocks).map(|v| v.0)),
            positive(self.first(Role::FrontendKvBlockSize).map(|v| v.0)),
        ) {
            (Some(blocks), Some(size)) => Some(blocks * size),
            _ => None,
        }
    }
}

fn dialect_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Auto => "auto",
        Engine::Vllm => "vllm",
        Engine::Dynamo => "dynamo",
        Engine::Sglang => "sglang",
        Engine::Trtllm => "trtllm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_and_underscore_spellings_match() {
        let page = "vllm_num_requests_waiting{engine=\"0\"} 4\nvllm:num_requests_running 2\n";
        let m = extract(page, Engine::Auto, None).metrics;
        assert_eq!(m.waiting, Some(4.0));
        assert_eq!(m.running, Some(2.0));
    }

    #[test]
    fn forced_engine_ignores_other_dialects() {
        let page = "sglang:num_queue_reqs 9\nvllm:num_requests_waiting 1\n";
        assert_eq!(extract(page, Engine::Vllm, None).metrics.waiting, Some(1.0));
        assert_eq!(
            extract(page, Engine::Sglang, None).metrics.waiting,
            Some(9.0)
        );
    }

    #[test]
    fn newer_kv_name_wins_over_deprecated_one() {
        let page = "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.3\n";
        assert_eq!(
            extract(page, Engine::Auto, None).metrics.kv_usage,
            Some(0.3)
        );
        let old_only = "vllm:gpu_cache_usage_perc 0.9\n";
        assert_eq!(
            extract(old_only, Engine::Auto, None).metrics.kv_usage,
            Some(0.9)
        );
    }

    #[test]
    fn dynamo_inflight_minus_queued_is_running() {
        let page = "dynamo_frontend_inflight_requests{model=\"m\"} 7\ndynamo_frontend_queued_requests{model=\"m\"} 3\n";
        let m = extract(page, Engine::Dynamo, None).metrics;
        assert_eq!((m.waiting, m.running), (Some(3.0), Some(4.0)));
    }

    #[test]
    fn dynamo_1_3_stages_tell_queue_from_prefill() {
        // The example output in Dynamo's autoscaling guide (after the metrics refactor,
        // ai-dynamo/dynamo PR #8162): 5 active, 2 in dispatch (being prefilled), none queued.
        let page = "dynamo_frontend_active_requests{model=\"Qwen/Qwen3-0.6B\"} 5\n\
                    dynamo_frontend_stage_requests{stage=\"preprocess\",phase=\"\"} 0\n\
                    dynamo_frontend_stage_requests{stage=\"route\",phase=\"aggregated\"} 0\n\
                    dynamo_frontend_stage_requests{stage=\"dispatch\",phase=\"aggregated\"} 2\n\
                    dynamo_frontend_queued_requests{model=\"Qwen/Qwen3-0.6B\"} 2\n\
                    dynamo_frontend_inflight_requests{model=\"Qwen/Qwen3-0.6B\"} 5\n";
        let m = extract(page, Engine::Dynamo, Some("Qwen/Qwen3-0.6B")).metrics;
        assert_eq!((m.waiting, m.running), (Some(0.0), Some(5.0)));
        assert!(
            m.waiting_excludes_engines,
            "engine queues come from the workers"
        );
        // With the per-worker engine queue exposed too, the frontend sees the whole queue.
        let full = format!(
            "{page}dynamo_frontend_stage_requests{{stage=\"route\",phase=\"aggregated\"}} 1\n\
             dynamo_frontend_worker_waiting_requests{{worker_id=\"1\",dp_rank=\"0\",worker_type=\"decode\"}} 3\n"
        );
        let m = extract(&full, Engine::Dynamo, None).metrics;
        assert_eq!(m.waiting, Some(4.0));
        assert!(!m.waiting_excludes_engines);
        // Before the refactor only queued_requests exists, prefill included.
        let old = "dynamo_frontend_inflight_requests{model=\"m\"} 5\ndynamo_frontend_queued_requests{model=\"m\"} 2\n";
        let m = extract(old, Engine::Dynamo, None).metrics;
        assert_eq!((m.waiting, m.running), (Some(2.0), Some(3.0)));
    }

    #[test]
    fn histogram_series_grouped_minus_le_whatever_its_position() {
        let page = "x_bucket{le=\"1\",a=\"b\"} 1\n\
                    vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.5\"} 3\n\
                    vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",engine=\"0\"} 4\n\
                    vllm:time_to_first_token_seconds_bucket{engine=\"1\",le=\"+Inf\"} 1\n";
        let m = extract(page, Engine::Auto, None).metrics;
        assert_eq!(m.ttft.len(), 2);
        assert_eq!(
            m.ttft["engine=0"].buckets,
            vec![(0.5, 3.0), (f64::INFINITY, 4.0)]
        );
    }

    #[test]
    fn negative_and_non_finite_values_make_the_page_unusable() {
        for bad in ["-1000", "NaN", "+Inf", "-Inf"] {
            let page = format!(
                "vllm:num_requests_running{{engine=\"0\"}} 30\nvllm:num_requests_waiting{{engine=\"0\"}} {bad}\n"
            );
            let e = extract(&page, Engine::Auto, None);
            match e.unusable {
                Some(Unusable::InvalidValue(d)) => {
                    assert!(d.contains("vllm:num_requests_waiting"), "{d}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let bucket = "vllm:time_to_first_token_seconds_bucket{le=\"0.5\"} -3\n";
        assert!(matches!(
            extract(bucket, Engine::Auto, None).unusable,
            Some(Unusable::InvalidValue(_))
        ));
        // Another model's bad sample is not this ScaledObject's business.
        let other = "vllm:num_requests_waiting{model_name=\"b\"} -1\nvllm:num_requests_waiting{model_name=\"a\"} 2\n";
        let e = extract(other, Engine::Auto, Some("a"));
        assert_eq!((e.unusable, e.metrics.waiting), (None, Some(2.0)));
    }

    #[test]
    fn a_histogram_with_too_many_buckets_is_refused() {
        let mut page = String::new();
        for i in 0..=MAX_TTFT_BUCKETS {
            page.push_str(&format!(
                "vllm:time_to_first_token_seconds_bucket{{le=\"{i}\"}} {i}\n"
            ));
        }
        assert!(matches!(
            extract(&page, Engine::Auto, None).unusable,
            Some(Unusable::TooManyBuckets(_))
        ));
    }

    #[test]
    fn model_filter_is_case_insensitive() {
        let page = "dynamo_frontend_queued_requests{model=\"qwen/qwen3-0.6b\"} 2\ndynamo_frontend_queued_requests{model=\"other\"} 5\n";
        let m = extract(page, Engine::Auto, Some("Qwen/Qwen3-0.6B")).metrics;
        assert_eq!(m.waiting, Some(2.0));
    }

    /// The real captures in `../shared/fixtures/real-metrics/` (read as they are).
    fn capture(name: &str) -> String {
        let path = format!(
            "{}/../../../shared/fixtures/real-metrics/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn token_counters_and_inter_token_latency_from_the_real_captures() {
        let v = extract(
            &capture("vllm-0.19.1_v1_llama3.1-8b_a100_kvwarden.txt"),
            Engine::Auto,
            None,
        )
        .metrics;
        // `vllm:prompt_tokens_total`, not `_cached_total` or `_by_source_total` beside it.
        assert_eq!(v.prompt_tokens_total, Some(115_898.0));
        assert_eq!(v.generation_tokens_total, Some(18_488.0));
        assert_eq!(v.itl_total, Some((412.552094290033, 17_571.0)));
        let s = extract(
            &capture("sglang-0.4.0era_llama3.1-8b_sglang-docs.txt"),
            Engine::Auto,
            None,
        )
        .metrics;
        assert_eq!(s.prompt_tokens_total, Some(8.128902e6));
        assert_eq!(s.generation_tokens_total, Some(7.557572e6));
        assert_eq!(s.itl_total, Some((866_964.5791549598, 7.400757e6)));
    }

    #[test]
    fn an_itl_sum_without_its_own_count_is_not_a_mean() {
        // Sum from the current name, count only from the pre-0.11 one: no pairing.
        let page = "vllm:inter_token_latency_seconds_sum 10\nvllm:time_per_output_token_seconds_count 400\n";
        assert_eq!(extract(page, Engine::Auto, None).metrics.itl_total, None);
        let page = "vllm:time_per_output_token_seconds_sum 10\nvllm:time_per_output_token_seconds_count 400\n";
        assert_eq!(
            extract(page, Engine::Auto, None).metrics.itl_total,
            Some((10.0, 400.0))
        );
    }
}
