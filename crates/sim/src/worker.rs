//! One simulated vLLM worker serving Qwen3-0.6B on one H100: continuous batching with a
//! token budget per step, chunked prefill, KV capacity in tokens with LIFO preemption, and a
//! linear step-time model calibrated in `docs/simulator.md`. It renders `/metrics` with the
//! family names, types, buckets and labels of vLLM 0.19 (V1), so the scaler's real parser reads it.

use std::collections::VecDeque;
use std::fmt::Write as _;

/// vLLM 0.19's `time_to_first_token_seconds` buckets (as in the captured `/metrics`).
pub const TTFT_BUCKETS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// vLLM 0.19's `e2e_request_latency_seconds` buckets.
pub const E2E_BUCKETS: [f64; 21] = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// Engine constants. Defaults are the Qwen3-0.6B / H100 calibration (docs/simulator.md).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineParams {
    /// Fixed cost of one engine step, seconds.
    pub step_base_s: f64,
    /// Cost per prefill token in a step, seconds.
    pub prefill_token_s: f64,
    /// Cost per decoding sequence in a step, seconds.
    pub decode_seq_s: f64,
    /// Client-side time outside the engine (HTTP, tokenisation, first-token delivery), seconds.
    pub api_overhead_s: f64,
    /// `max_num_seqs`.
    pub max_num_seqs: usize,
    /// `max_num_batched_tokens` (the per-step token budget).
    pub max_batched_tokens: u32,
    /// KV cache capacity in tokens.
    pub kv_capacity_tokens: u64,
    /// KV block size, tokens (reported in `cache_config_info`).
    pub block_size: u32,
    /// `--served-model-name`.
    pub model: String,
}

impl Default for EngineParams {
    fn default() -> Self {
        EngineParams {
            step_base_s: 2.0e-3,
            prefill_token_s: 15.5e-6,
            decode_seq_s: 15.0e-6,
            api_overhead_s: 0.028,
            max_num_seqs: 256,
            max_batched_tokens: 8192,
            // 112 KiB per token, ~63.5 GB of KV at gpu-memory-utilization 0.9 on an 80 GB H100.
            kv_capacity_tokens: 580_000,
            block_size: 16,
            model: "Qwen/Qwen3-0.6B".to_string(),
        }
    }
}

impl EngineParams {
    /// Steady-state request rate one worker sustains for a length mix while each step stays
    /// under `max_step_s` (an inter-token latency bound), from the step-time model.
    pub fn capacity_rps(&self, mean_prompt: f64, mean_generate: f64, max_step_s: f64) -> f64 {
        // Per second: steps * base + rate * (prompt * b + generate * c) = 1, with
        // steps = 1 / max_step_s at the bound.
        let steps = 1.0 / max_step_s;
        let per_req = mean_prompt * self.prefill_token_s + mean_generate * self.decode_seq_s;
        ((1.0 - steps * self.step_base_s) / per_req).max(0.0)
    }
}

#[derive(Debug, Clone)]
struct Seq {
    id: u64,
    arrival_us: u64,
    /// Tokens to prefill (the prompt, plus generated tokens after a preemption).
    prefill: u32,
    prefilled: u32,
    generate: u32,
    generated: u32,
    kv: u32,
    first_token: bool,
    scheduled: u32,
}

/// Something the driver must know about after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The first token of request `id` was produced at the end of the step.
    FirstToken {
        /// Request id.
        id: u64,
    },
    /// Request `id` finished.
    Finished {
        /// Request id.
        id: u64,
    },
}

/// Cumulative counters, as a scrape would read them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// TTFT histogram bucket counts (non-cumulative per bucket; index 22 = +Inf).
    pub ttft_buckets: [u64; 23],
    /// TTFT sum, seconds.
    pub ttft_sum: f64,
    /// E2E latency bucket counts (index 21 = +Inf).
    pub e2e_buckets: [u64; 22],
    /// E2E latency sum, seconds.
    pub e2e_sum: f64,
    /// Finished requests.
    pub success: u64,
    /// Preemptions.
    pub preemptions: u64,
    /// Prompt tokens computed.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generation_tokens: u64,
    /// Requests refused because they cannot fit the KV cache at all.
    pub rejected: u64,
}

fn bucket_index(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

/// One engine.
#[derive(Debug, Clone)]
pub struct Worker {
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    kv_used: u64,
    stepping: bool,
    step_prefill: u64,
    /// Cumulative counters.
    pub counters: Counters,
}

impl Default for Worker {
    fn default() -> Self {
        Worker::new()
    }
}

impl Worker {
    /// An idle engine.
    pub fn new() -> Worker {
        Worker {
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv_used: 0,
            stepping: false,
            step_prefill: 0,
            counters: Counters::default(),
        }
    }

    /// Requests waiting for admission.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests in the running batch.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// KV usage fraction.
    pub fn kv_usage(&self, p: &EngineParams) -> f64 {
        self.kv_used as f64 / p.kv_capacity_tokens as f64
    }

    /// Whether a step is in progress.
    pub fn is_stepping(&self) -> bool {
        self.stepping
    }

    /// Hands a request to the engine.
    pub fn enqueue(&mut self, id: u64, arrival_us: u64, prompt: u32, generate: u32) {
        self.waiting.push_back(Seq {
            id,
            arrival_us,
            prefill: prompt.max(1),
            prefilled: 0,
            generate: generate.max(1),
            generated: 0,
            kv: 0,
            first_token: false,
            scheduled: 0,
        });
    }

    /// Every request this engine holds, with whether it has produced its first token
    /// (what is lost when the pod is removed).
    pub fn drain(&mut self) -> Vec<(u64, bool)> {
        let out = self
            .running
            .drain(..)
            .chain(self.waiting.drain(..))
            .map(|s| (s.id, s.first_token))
            .collect();
        self.kv_used = 0;
        self.stepping = false;
        out
    }

    fn preempt(&mut self, idx: usize) {
        let mut s = self.running.remove(idx);
        self.kv_used -= u64::from(s.kv);
        // Recompute mode: the prompt and what was generated are prefilled again.
        s.prefill = s.prefill.saturating_add(s.generated);
        s.generate = s.generate.saturating_sub(s.generated).max(1);
        s.generated = 0;
        s.prefilled = 0;
        s.kv = 0;
        s.scheduled = 0;
        self.counters.preemptions += 1;
        self.waiting.push_front(s);
    }

    /// Plans the next step; returns its duration in microseconds, or `None` when idle.
    pub fn begin_step(&mut self, p: &EngineParams) -> Option<u64> {
        if self.running.is_empty() && self.waiting.is_empty() {
            self.stepping = false;
            return None;
        }
        let cap = p.kv_capacity_tokens;
        let mut budget = p.max_batched_tokens;
        let mut prefill: u64 = 0;
        let mut decode: u64 = 0;
        let mut i = 0;
        while i < self.running.len() {
            let s = &self.running[i];
            let want = if s.prefilled < s.prefill {
                (s.prefill - s.prefilled).min(budget)
            } else {
                1.min(budget)
            };
            if want == 0 {
                self.running[i].scheduled = 0;
                i += 1;
                continue;
            }
            // Out of KV: preempt the most recently admitted sequence (vLLM's LIFO order).
            if self.kv_used + u64::from(want) > cap {
                let last = self.running.len() - 1;
                self.preempt(last);
                continue;
            }
            let s = &mut self.running[i];
            if s.prefilled < s.prefill {
                prefill += u64::from(want);
            } else {
                decode += 1;
            }
            s.scheduled = want;
            s.kv += want;
            self.kv_used += u64::from(want);
            budget -= want;
            i += 1;
        }
        while budget > 0 && self.running.len() < p.max_num_seqs {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let want = (front.prefill - front.prefilled).min(budget);
            if self.kv_used + u64::from(want) > cap {
                break;
            }
            let Some(mut s) = self.waiting.pop_front() else {
                break;
            };
            s.scheduled = want;
            s.kv += want;
            self.kv_used += u64::from(want);
            budget -= want;
            prefill += u64::from(want);
            self.running.push(s);
        }
        if prefill == 0 && decode == 0 {
            // Nothing fits even alone (a prompt larger than the whole KV cache): vLLM rejects
            // such a request; it never produces a token.
            if self.running.is_empty() {
                self.waiting.pop_front();
                self.counters.rejected += 1;
            }
            self.stepping = false;
            return None;
        }
        self.stepping = true;
        self.step_prefill = prefill;
        let secs =
            p.step_base_s + p.prefill_token_s * prefill as f64 + p.decode_seq_s * decode as f64;
        Some((secs * 1e6).round().max(1.0) as u64)
    }

    /// Completes the planned step at `now_us`, appending first tokens and completions to `out`.
    pub fn end_step(&mut self, now_us: u64, out: &mut Vec<Event>) {
        self.stepping = false;
        self.counters.prompt_tokens += self.step_prefill;
        let mut finished_any = false;
        for s in &mut self.running {
            if s.scheduled == 0 {
                continue;
            }
            if s.prefilled < s.prefill {
                s.prefilled += s.scheduled;
                if s.prefilled >= s.prefill {
                    // The step that completes the prefill samples the first token.
                    s.generated += 1;
                    self.counters.generation_tokens += 1;
                    if !s.first_token {
                        s.first_token = true;
                        let ttft = now_us.saturating_sub(s.arrival_us) as f64 / 1e6;
                        self.counters.ttft_buckets[bucket_index(&TTFT_BUCKETS, ttft)] += 1;
                        self.counters.ttft_sum += ttft;
                        out.push(Event::FirstToken { id: s.id });
                    }
                }
            } else {
                s.generated += 1;
                self.counters.generation_tokens += 1;
            }
            s.scheduled = 0;
            if s.generated >= s.generate {
                finished_any = true;
            }
        }
        if finished_any {
            let mut kv_freed = 0u64;
            let counters = &mut self.counters;
            self.running.retain(|s| {
                if s.generated >= s.generate && s.prefilled >= s.prefill {
                    kv_freed += u64::from(s.kv);
                    let e2e = now_us.saturating_sub(s.arrival_us) as f64 / 1e6;
                    counters.e2e_buckets[bucket_index(&E2E_BUCKETS, e2e)] += 1;
                    counters.e2e_sum += e2e;
                    counters.success += 1;
                    out.push(Event::Finished { id: s.id });
                    false
                } else {
                    true
                }
            });
            self.kv_used -= kv_freed;
        }
    }

    /// Renders `/metrics` as vLLM 0.19 (V1) does for the families the scaler and dashboards
    /// read.
    pub fn render(&self, p: &EngineParams, out: &mut String) {
        let labels = format!("engine=\"0\",model_name=\"{}\"", p.model);
        let c = &self.counters;
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {v:?}\n"
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name}_total {help}\n# TYPE {name}_total counter\n{name}_total{{{labels}}} {v}.0\n"
            );
        };
        gauge(
            out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            self.running.len() as f64,
        );
        gauge(
            out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            self.waiting.len() as f64,
        );
        gauge(
            out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            self.kv_usage(p),
        );
        counter(
            out,
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            c.preemptions,
        );
        counter(
            out,
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            c.prompt_tokens,
        );
        counter(
            out,
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            c.generation_tokens,
        );
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter"
        );
        for (reason, v) in [
            ("stop", c.success),
            ("length", 0),
            ("abort", 0),
            ("error", 0),
            ("repetition", 0),
        ] {
            let _ = writeln!(
                out,
                "vllm:request_success_total{{engine=\"0\",finished_reason=\"{reason}\",model_name=\"{}\"}} {v}.0",
                p.model
            );
        }
        histogram(
            out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &p.model,
            &TTFT_BUCKETS,
            &c.ttft_buckets,
            c.ttft_sum,
        );
        histogram(
            out,
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &p.model,
            &E2E_BUCKETS,
            &c.e2e_buckets,
            c.e2e_sum,
        );
        let _ = write!(
            out,
            "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{block_size=\"{}\",cache_dtype=\"auto\",engine=\"0\",gpu_memory_utilization=\"0.9\",num_gpu_blocks=\"{}\"}} 1.0\n",
            p.block_size,
            p.kv_capacity_tokens / u64::from(p.block_size.max(1))
        );
    }
}

/// Dynamo frontend buckets for `time_to_first_token_seconds` (from the captured `/metrics`).
pub const DYNAMO_TTFT_BUCKETS: [f64; 18] = [
    0.0, 0.0022, 0.0047, 0.01, 0.022, 0.047, 0.1, 0.22, 0.47, 1.0, 2.2, 4.7, 10.0, 22.0, 48.0,
    100.0, 220.0, 480.0,
];

impl Worker {
    /// Renders a Dynamo vLLM worker's system port: the `dynamo_component_*` KV gauges, then the
    /// engine's own `vllm:*` families it re-exposes.
    pub fn render_dynamo(&self, p: &EngineParams, out: &mut String) {
        let labels = format!(
            "dp_rank=\"0\",dynamo_component=\"backend\",model=\"{}\"",
            p.model.to_lowercase()
        );
        let blocks = p.kv_capacity_tokens / u64::from(p.block_size.max(1));
        let _ = write!(
            out,
            "# HELP dynamo_component_total_blocks Total KV blocks\n# TYPE dynamo_component_total_blocks gauge\ndynamo_component_total_blocks{{{labels}}} {blocks}\n# HELP dynamo_component_gpu_cache_usage_percent GPU cache usage (0.0-1.0)\n# TYPE dynamo_component_gpu_cache_usage_percent gauge\ndynamo_component_gpu_cache_usage_percent{{{labels}}} {:?}\n# HELP dynamo_component_inflight_requests Requests in flight\n# TYPE dynamo_component_inflight_requests gauge\ndynamo_component_inflight_requests{{dynamo_component=\"backend\",dynamo_endpoint=\"generate\",dynamo_namespace=\"sim-qwen3-agg\"}} {}\n",
            self.kv_usage(p),
            self.running() + self.waiting()
        );
        self.render(p, out);
    }
}

/// The Dynamo frontend's view of the fleet (it routes every request).
#[derive(Debug, Clone, Default)]
pub struct Frontend {
    /// Requests between arrival and first token (`dynamo_frontend_queued_requests`).
    pub queued: u64,
    /// Requests between arrival and completion.
    pub inflight: u64,
    /// TTFT bucket counts (index 18 = +Inf).
    pub ttft_buckets: [u64; 19],
    /// TTFT sum, seconds.
    pub ttft_sum: f64,
    /// Completed requests.
    pub completed: u64,
}

impl Frontend {
    /// Records a first token seen by the client after `ttft_s`.
    pub fn first_token(&mut self, ttft_s: f64) {
        self.queued = self.queued.saturating_sub(1);
        self.ttft_buckets[bucket_index(&DYNAMO_TTFT_BUCKETS, ttft_s)] += 1;
        self.ttft_sum += ttft_s;
    }

    /// Renders the frontend's `/metrics` (names, buckets and labels of the captured Dynamo
    /// frontend, model label lower-cased as the frontend does).
    pub fn render(&self, model: &str, out: &mut String) {
        let m = model.to_lowercase();
        let _ = write!(
            out,
            "# HELP dynamo_frontend_inflight_requests Number of inflight requests\n# TYPE dynamo_frontend_inflight_requests gauge\ndynamo_frontend_inflight_requests{{model=\"{m}\"}} {}\n# HELP dynamo_frontend_queued_requests Number of requests in HTTP processing queue\n# TYPE dynamo_frontend_queued_requests gauge\ndynamo_frontend_queued_requests{{model=\"{m}\"}} {}\n# HELP dynamo_frontend_requests_total Total number of LLM requests processed\n# TYPE dynamo_frontend_requests_total counter\ndynamo_frontend_requests_total{{endpoint=\"chat_completions\",error_type=\"\",model=\"{m}\",request_type=\"stream\",status=\"success\"}} {}\n# HELP dynamo_frontend_time_to_first_token_seconds Time to first token in seconds\n# TYPE dynamo_frontend_time_to_first_token_seconds histogram\n",
            self.inflight, self.queued, self.completed
        );
        let mut cumulative = 0u64;
        for (i, b) in DYNAMO_TTFT_BUCKETS.iter().enumerate() {
            cumulative += self.ttft_buckets[i];
            let _ = writeln!(
                out,
                "dynamo_frontend_time_to_first_token_seconds_bucket{{model=\"{m}\",le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += self.ttft_buckets[DYNAMO_TTFT_BUCKETS.len()];
        let _ = writeln!(
            out,
            "dynamo_frontend_time_to_first_token_seconds_bucket{{model=\"{m}\",le=\"+Inf\"}} {cumulative}\ndynamo_frontend_time_to_first_token_seconds_sum{{model=\"{m}\"}} {}\ndynamo_frontend_time_to_first_token_seconds_count{{model=\"{m}\"}} {cumulative}",
            self.ttft_sum
        );
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    model: &str,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
    let mut cumulative = 0u64;
    for (i, b) in bounds.iter().enumerate() {
        cumulative += counts[i];
        let _ = writeln!(
            out,
            "{name}_bucket{{engine=\"0\",le=\"{b:?}\",model_name=\"{model}\"}} {cumulative}.0"
        );
    }
    cumulative += counts[bounds.len()];
    let _ = writeln!(
        out,
        "{name}_bucket{{engine=\"0\",le=\"+Inf\",model_name=\"{model}\"}} {cumulative}.0\n{name}_count{{engine=\"0\",model_name=\"{model}\"}} {cumulative}.0\n{name}_sum{{engine=\"0\",model_name=\"{model}\"}} {sum:?}"
    );
}

/// The router of both the simulator and the demo: the ready worker with the fewest requests
/// (running plus waiting), the lowest key on a tie.
pub fn least_loaded<'a, K: Ord + Copy>(ready: impl Iterator<Item = (K, &'a Worker)>) -> Option<K> {
    ready
        .min_by_key(|(k, w)| (w.running() + w.waiting(), *k))
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_to_idle(w: &mut Worker, p: &EngineParams, mut now: u64) -> (u64, Vec<(u64, Event)>) {
        let mut events = Vec::new();
        let mut out = Vec::new();
        while let Some(d) = w.begin_step(p) {
            now += d;
            w.end_step(now, &mut out);
            events.extend(out.drain(..).map(|e| (now, e)));
        }
        (now, events)
    }

    #[test]
    fn one_request_prefills_then_decodes() {
        let p = EngineParams::default();
        let mut w = Worker::new();
        w.enqueue(1, 0, 512, 128);
        let (end, events) = run_to_idle(&mut w, &p, 0);
        let first = events
            .iter()
            .find(|(_, e)| matches!(e, Event::FirstToken { .. }))
            .expect("first token");
        // One prefill step: base + 512 prefill tokens.
        let prefill_us = ((p.step_base_s + 512.0 * p.prefill_token_s) * 1e6).round() as u64;
        assert_eq!(first.0, prefill_us);
        // 127 decode steps of one sequence each.
        let decode_us = ((p.step_base_s + p.decode_seq_s) * 1e6).round() as u64;
        assert_eq!(end, prefill_us + 127 * decode_us);
        assert_eq!(w.counters.success, 1);
        assert_eq!(w.kv_usage(&p), 0.0);
    }

    #[test]
    fn chunked_prefill_and_budget() {
        let p = EngineParams {
            max_batched_tokens: 1000,
            ..EngineParams::default()
        };
        let mut w = Worker::new();
        w.enqueue(1, 0, 2500, 1);
        let (_, events) = run_to_idle(&mut w, &p, 0);
        // 1000 + 1000 + 500 tokens: the first token comes with the third step.
        let t = events[0].0;
        let expect = 3.0 * p.step_base_s + 2500.0 * p.prefill_token_s;
        assert!(((t as f64) / 1e6 - expect).abs() < 3e-6, "{t}");
        assert_eq!(w.counters.prompt_tokens, 2500);
    }

    #[test]
    fn kv_exhaustion_preempts_the_newest() {
        let p = EngineParams {
            kv_capacity_tokens: 1200,
            ..EngineParams::default()
        };
        let mut w = Worker::new();
        w.enqueue(1, 0, 500, 300);
        w.enqueue(2, 0, 500, 300);
        let (_, events) = run_to_idle(&mut w, &p, 0);
        assert!(w.counters.preemptions > 0);
        assert_eq!(
            events
                .iter()
                .filter(|(_, e)| matches!(e, Event::Finished { .. }))
                .count(),
            2
        );
        assert_eq!(
            w.counters.ttft_buckets.iter().sum::<u64>(),
            2,
            "TTFT recorded once each"
        );
    }

    #[test]
    fn max_num_seqs_caps_the_batch() {
        let p = EngineParams {
            max_num_seqs: 4,
            ..EngineParams::default()
        };
        let mut w = Worker::new();
        for i in 0..10 {
            w.enqueue(i, 0, 10, 50);
        }
        w.begin_step(&p);
        assert_eq!(w.running(), 4);
        assert_eq!(w.waiting(), 6);
    }

    #[test]
    fn dynamo_pages_read_as_the_captures_do() {
        use crate::core::extract::{Engine, extract};
        let p = EngineParams::default();
        let mut w = Worker::new();
        w.enqueue(1, 0, 100, 5);
        let mut page = String::new();
        w.render_dynamo(&p, &mut page);
        let x = extract(&page, Engine::Dynamo, Some("Qwen/Qwen3-0.6B"));
        assert_eq!(x.stats.errors, 0, "{page}");
        assert!(x.metrics.kv_usage.is_some());
        let mut f = Frontend {
            queued: 3,
            inflight: 5,
            ..Frontend::default()
        };
        f.first_token(0.3);
        let mut page = String::new();
        f.render("Qwen/Qwen3-0.6B", &mut page);
        let x = extract(&page, Engine::Dynamo, Some("Qwen/Qwen3-0.6B"));
        assert_eq!(x.stats.errors, 0, "{page}");
        assert_eq!(x.metrics.waiting, Some(2.0));
        assert_eq!(x.metrics.ttft.values().map(|h| h.count()).sum::<f64>(), 1.0);
    }

    #[test]
    fn renders_what_the_scaler_reads() {
        let p = EngineParams::default();
        let mut w = Worker::new();
        w.enqueue(1, 0, 100, 2);
        w.enqueue(2, 0, 100, 200);
        let mut out = Vec::new();
        let d = w.begin_step(&p).expect("work");
        w.end_step(d, &mut out);
        let mut page = String::new();
        w.render(&p, &mut page);
        let x = crate::core::extract::extract(
            &page,
            crate::core::extract::Engine::Vllm,
            Some("qwen/qwen3-0.6b"),
        );
        assert_eq!(x.stats.errors, 0, "{page}");
        assert_eq!(x.metrics.running, Some(2.0));
        assert_eq!(x.metrics.waiting, Some(0.0));
        assert!(x.metrics.dialect.is_some());
    }
}
