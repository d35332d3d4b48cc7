//! One simulated vLLM worker serving Qwen3-0.6B on one H100: continuous batching with a
//! token budget per step, chunked prefill, KV capacity in tokens with LIFO preemption, and a
//! linear step-time model calibrated in `docs/simulator.md`. It renders `/metrics` with the
//! family names, types, buckets and labels of vLLM 0.19 (V1), so the scaler's real parser reads it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;

/// vLLM 0.19's `time_to_first_token_seconds` buckets (as in the captured `/metrics`).
pub const TTFT_BUCKETS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// vLLM 0.19's `inter_token_latency_seconds` buckets.
pub const ITL_BUCKETS: [f64; 19] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

/// vLLM 0.19's `e2e_request_latency_seconds` buckets.
pub const E2E_BUCKETS: [f64; 21] = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// The GPU a worker runs on: what sets its KV capacity, HBM bandwidth and compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gpu {
    /// H100 NVL 94 GB, the GPU of Azure NC40ads_H100_v5 (the reference node).
    H100Nvl,
    /// H100 SXM 80 GB.
    H100Sxm,
    /// H200 141 GB.
    H200,
}

impl Gpu {
    /// Every GPU, by its command-line name.
    pub const ALL: [Gpu; 3] = [Gpu::H100Nvl, Gpu::H100Sxm, Gpu::H200];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Gpu::H100Nvl => "h100-nvl",
            Gpu::H100Sxm => "h100-sxm",
            Gpu::H200 => "h200",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(s: &str) -> Option<Gpu> {
        Gpu::ALL.into_iter().find(|g| g.name() == s)
    }

    /// KV tokens at `gpu_memory_utilization` 0.9 (engine-model.md, "KV capacity").
    pub fn kv_capacity_tokens(self) -> u64 {
        match self {
            Gpu::H100Nvl => 760_000,
            Gpu::H100Sxm => 640_000,
            Gpu::H200 => 1_150_000,
        }
    }

    /// HBM bandwidth, bytes per second.
    pub fn hbm_bytes_per_s(self) -> f64 {
        match self {
            Gpu::H100Nvl => 3.9e12,
            Gpu::H100Sxm => 3.35e12,
            Gpu::H200 => 4.8e12,
        }
    }

    /// Sustained prefill FLOP/s: calibrated on H100 SXM so that 1 k and 32 k prompts run at the
    /// derived ~440 k and ~95 k tokens/s; NVL has ~0.85x the dense peak, H200 the SXM's compute.
    pub fn prefill_flop_per_s(self) -> f64 {
        match self {
            Gpu::H100Nvl => 0.85 * H100_SXM_PREFILL_FLOP_S,
            Gpu::H100Sxm | Gpu::H200 => H100_SXM_PREFILL_FLOP_S,
        }
    }
}

/// API server processes per pod by default: enough that the GPU, not the API process, is what
/// saturates a Qwen3-0.6B replica (one process passes ~95 req/s at 512/128, less than the GPU
/// serves), as an operator of a small model would set `--api-server-count`.
pub const DEFAULT_API_SERVERS: u32 = 4;

/// Sustained prefill FLOP/s of an H100 SXM on Qwen3-0.6B (see [`Gpu::prefill_flop_per_s`]).
const H100_SXM_PREFILL_FLOP_S: f64 = 4.4e14;

/// Engine constants. Defaults are the Qwen3-0.6B / H100 NVL model of
/// `../shared/docs/engine-model.md`, explained beside its anchors in docs/simulator.md.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineParams {
    /// The GPU.
    pub gpu: Gpu,
    /// Weights read once per step, bytes (~596 M parameters in bf16).
    pub weight_bytes: f64,
    /// KV cache bytes per token (2 x 28 layers x 8 KV heads x 128 x 2 B).
    pub kv_bytes_per_token: f64,
    /// Share of HBM bandwidth a decode step achieves.
    pub hbm_efficiency: f64,
    /// Linear (non-attention) work per token, FLOP.
    pub linear_flop_per_token: f64,
    /// Attention work per token per token of context, FLOP.
    pub attention_flop_per_token_ctx: f64,
    /// Fixed host-side cost of one engine step (scheduling, sampling, launch), seconds.
    pub step_overhead_s: f64,
    /// Per-sequence cost of a step (sampling, detokenisation), seconds.
    pub per_seq_s: f64,
    /// Shortest step (the measured ITL median at low load), seconds.
    pub min_step_s: f64,
    /// Client-visible latency outside the engine that costs no capacity (HTTP, network,
    /// first-token delivery), seconds.
    pub frontend_latency_s: f64,
    /// Work of an API server process per request (tokenisation, streaming); one process
    /// serves requests one after another, so its rate is `1 / frontend_service_s`, seconds.
    pub frontend_service_s: f64,
    /// API server processes per pod (vLLM's `--api-server-count`).
    pub api_servers: u32,
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
        EngineParams::for_gpu(Gpu::H100Nvl)
    }
}

impl EngineParams {
    /// The Qwen3-0.6B model on `gpu`, with vLLM V1's scheduler defaults for >= 70 GiB GPUs.
    pub fn for_gpu(gpu: Gpu) -> EngineParams {
        EngineParams {
            gpu,
            weight_bytes: 1.19e9,
            kv_bytes_per_token: 114_688.0,
            hbm_efficiency: 0.8,
            linear_flop_per_token: 0.88e9,
            attention_flop_per_token_ctx: 229_376.0,
            step_overhead_s: 0.6e-3,
            per_seq_s: 2.0e-6,
            min_step_s: 2.0e-3,
            frontend_latency_s: 0.025,
            frontend_service_s: 1.0 / 95.0,
            api_servers: DEFAULT_API_SERVERS,
            max_num_seqs: 1024,
            max_batched_tokens: 8192,
            kv_capacity_tokens: gpu.kv_capacity_tokens(),
            block_size: 16,
            model: "Qwen/Qwen3-0.6B".to_string(),
        }
    }

    /// Compute time of prefilling `n` tokens that follow `before` tokens of the same
    /// sequence: the linear term plus attention over the context each token sees.
    pub fn prefill_s(&self, before: u32, n: u32) -> f64 {
        let n = f64::from(n);
        let ctx = f64::from(before) + n / 2.0;
        n * (self.linear_flop_per_token + self.attention_flop_per_token_ctx * ctx)
            / self.gpu.prefill_flop_per_s()
    }

    /// Duration of one step carrying `prefill_s` seconds of prefill compute and `seqs` running
    /// sequences whose decoders' KV holds `kv_tokens` tokens.
    pub fn step_s(&self, prefill_s: f64, seqs: usize, kv_tokens: u64) -> f64 {
        let read = (self.weight_bytes + kv_tokens as f64 * self.kv_bytes_per_token)
            / (self.hbm_efficiency * self.gpu.hbm_bytes_per_s());
        (self.step_overhead_s + read + seqs as f64 * self.per_seq_s + prefill_s)
            .max(self.min_step_s)
    }

    /// Requests per second a pod's API servers pass.
    pub fn api_rate(&self) -> f64 {
        f64::from(self.api_servers.max(1)) / self.frontend_service_s
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
    /// Prompt tokens of the requests that produced their first token (as vLLM counts them).
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generation_tokens: u64,
    /// Requests refused because they cannot fit the KV cache at all.
    pub rejected: u64,
    /// Inter-token latency bucket counts, one per decoded token (index 19 = +Inf).
    pub itl_buckets: [u64; 20],
    /// Inter-token latency sum, seconds.
    pub itl_sum: f64,
    /// Requests the client gave up on (timeouts).
    pub aborted: u64,
}

fn bucket_index(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

/// One engine.
///
/// The batch is kept in aggregate so that a step costs what changes in it, not the batch
/// size: decoding sequences all gain one token per step, so each is stored with the step it
/// joined the decode and the step it will finish, the fleet-wide KV of decoders is one sum,
/// and a heap yields the sequences that finish. Prefilling sequences (a few per step at most)
/// are walked. The schedule is vLLM V1's with decodes served first: every running decode gets
/// its token, then prefill chunks in admission order take the rest of the token budget, then
/// waiting requests are admitted while budget, `max_num_seqs` and KV allow; out of KV, the
/// most recently admitted sequence is preempted (recompute).
#[derive(Debug, Clone)]
pub struct Worker {
    waiting: VecDeque<Seq>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Running slots in admission order (entries of freed slots are skipped by generation).
    order: Vec<(usize, u32)>,
    /// Slots prefilling, in admission order.
    prefilling: Vec<usize>,
    /// (finish step, slot, generation) of decoding sequences.
    finishing: BinaryHeap<Reverse<(u64, usize, u32)>>,
    decoders: usize,
    decode_kv: u64,
    kv_used: u64,
    /// Steps completed.
    step_no: u64,
    stepping: bool,
    /// This step's prefill chunks (slot, generation, tokens) and decoders.
    chunks: Vec<(usize, u32, u32)>,
    step_decoders: usize,
    step_us: u64,
    /// Steps the current plan covers (more than one only for a run of identical decode steps).
    run_steps: u64,
    rejected_ids: Vec<u64>,
    /// Cumulative counters.
    pub counters: Counters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prefill,
    /// Decoding since the end of step `since`, with `kv` tokens and `generated` tokens then.
    Decode {
        since: u64,
    },
    Free,
}

#[derive(Debug, Clone)]
struct Slot {
    seq: Seq,
    state: State,
    generation: u32,
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
            slots: Vec::new(),
            free: Vec::new(),
            order: Vec::new(),
            prefilling: Vec::new(),
            finishing: BinaryHeap::new(),
            decoders: 0,
            decode_kv: 0,
            kv_used: 0,
            step_no: 0,
            stepping: false,
            chunks: Vec::new(),
            step_decoders: 0,
            step_us: 0,
            run_steps: 1,
            rejected_ids: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Requests waiting for admission.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests in the running batch.
    pub fn running(&self) -> usize {
        self.prefilling.len() + self.decoders
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
        });
    }

    /// A decoding slot's sequence as of now (its tokens since it joined the decode added).
    fn current(&self, slot: usize) -> Seq {
        let s = &self.slots[slot];
        let mut seq = s.seq.clone();
        if let State::Decode { since } = s.state {
            let gained = (self.step_no - since) as u32;
            seq.generated += gained;
            seq.kv += gained;
        }
        seq
    }

    /// Takes `slot` out of the batch, returning its sequence as of now.
    fn release(&mut self, slot: usize) -> Seq {
        let seq = self.current(slot);
        match self.slots[slot].state {
            State::Decode { .. } => {
                self.decoders -= 1;
                self.decode_kv -= u64::from(seq.kv);
            }
            State::Prefill => {
                if let Some(i) = self.prefilling.iter().position(|&x| x == slot) {
                    self.prefilling.remove(i);
                }
            }
            State::Free => return seq,
        }
        self.kv_used -= u64::from(seq.kv);
        let s = &mut self.slots[slot];
        s.state = State::Free;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        seq
    }

    fn admit(&mut self, seq: Seq) -> usize {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i].seq = seq;
                self.slots[i].state = State::Prefill;
                i
            }
            None => {
                self.slots.push(Slot {
                    seq,
                    state: State::Prefill,
                    generation: 0,
                });
                self.slots.len() - 1
            }
        };
        self.order.push((slot, self.slots[slot].generation));
        self.prefilling.push(slot);
        slot
    }

    /// Every slot that holds a running sequence.
    fn live_slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state != State::Free)
            .map(|(i, _)| i)
    }

    /// Every request this engine holds, with whether it has produced its first token
    /// (what is lost when the pod is removed).
    pub fn drain(&mut self) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        self.drain_into(&mut out);
        out
    }

    /// [`Self::drain`] into `out`.
    pub fn drain_into(&mut self, out: &mut Vec<(u64, bool)>) {
        let live: Vec<usize> = self.live_slots().collect();
        for slot in live {
            let s = self.release(slot);
            out.push((s.id, s.first_token));
        }
        out.extend(self.waiting.drain(..).map(|s| (s.id, s.first_token)));
        self.order.clear();
        self.finishing.clear();
        self.kv_used = 0;
        self.decode_kv = 0;
        self.run_steps = 1;
        self.stepping = false;
    }

    /// Ids of the requests refused since the last call (prompts larger than the KV cache).
    pub fn take_rejected(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.rejected_ids)
    }

    /// Removes every request that arrived before `cutoff_us` (its client gave up), appending
    /// its id and whether it had its first token to `out`.
    pub fn cancel_arrived_before(&mut self, cutoff_us: u64, out: &mut Vec<(u64, bool)>) {
        if self.stepping {
            // A step in flight owns its batch; the sweep comes back after it.
            return;
        }
        let before = out.len();
        let old: Vec<usize> = self
            .live_slots()
            .filter(|&i| self.slots[i].seq.arrival_us < cutoff_us)
            .collect();
        for slot in old {
            let s = self.release(slot);
            out.push((s.id, s.first_token));
        }
        self.waiting.retain(|s| {
            if s.arrival_us < cutoff_us {
                out.push((s.id, s.first_token));
                false
            } else {
                true
            }
        });
        self.counters.aborted += (out.len() - before) as u64;
    }

    /// Preempts the most recently admitted running sequence (recompute mode: its prompt and
    /// what it generated are prefilled again); false when nothing runs.
    fn preempt_newest(&mut self) -> bool {
        while let Some((slot, generation)) = self.order.pop() {
            let s = &self.slots[slot];
            if s.generation != generation || s.state == State::Free {
                continue;
            }
            let mut seq = self.release(slot);
            seq.prefill = seq.prefill.saturating_add(seq.generated);
            seq.generate = seq.generate.saturating_sub(seq.generated).max(1);
            seq.generated = 0;
            seq.prefilled = 0;
            seq.kv = 0;
            self.counters.preemptions += 1;
            self.waiting.push_front(seq);
            return true;
        }
        false
    }

    /// Plans the next step; returns its duration in microseconds, or `None` when idle.
    ///
    /// A batch of decoders with nothing to prefill or admit steps identically until its next
    /// sequence finishes: that run is planned as one, its steps timed at the run's mean KV, and
    /// [`Self::interrupt`] cuts it short when a request arrives.
    pub fn begin_step(&mut self, p: &EngineParams) -> Option<u64> {
        if self.running() == 0 && self.waiting.is_empty() {
            self.stepping = false;
            return None;
        }
        let cap = p.kv_capacity_tokens;
        self.run_steps = 1;
        if self.waiting.is_empty() && self.prefilling.is_empty() && self.decoders > 0 {
            let b = self.decoders as u64;
            let to_finish = self
                .finishing
                .peek()
                .map_or(1, |Reverse((at, _, _))| at.saturating_sub(self.step_no));
            let kv_room = cap.saturating_sub(self.kv_used) / b;
            let k = to_finish.min(kv_room).min(MAX_RUN_STEPS);
            if k >= 2 {
                let secs = p.step_s(0.0, self.decoders, self.decode_kv + b * k / 2);
                self.step_us = (secs * 1e6).round().max(1.0) as u64;
                self.run_steps = k;
                self.step_decoders = self.decoders;
                self.chunks.clear();
                // The run's KV is taken now; an interrupt gives back what it did not use.
                self.decode_kv += b * k;
                self.kv_used += b * k;
                self.stepping = true;
                return Some(self.step_us * k);
            }
        }
        // Decodes first: each needs one more KV slot.
        while self.decoders > 0 && self.kv_used + self.decoders as u64 > cap {
            if !self.preempt_newest() {
                break;
            }
        }
        let decoders = self.decoders;
        let mut budget = p.max_batched_tokens.saturating_sub(decoders as u32);
        let mut prefill_s = 0.0;
        let mut prefill: u64 = 0;
        self.chunks.clear();
        let mut i = 0;
        while i < self.prefilling.len() && budget > 0 {
            let slot = self.prefilling[i];
            let s = &self.slots[slot].seq;
            let want = (s.prefill - s.prefilled).min(budget);
            if self.kv_used + decoders as u64 + u64::from(want) > cap {
                // Out of KV: the newest sequence goes back to the queue (maybe this one).
                if !self.preempt_newest() {
                    break;
                }
                if let Some(at) = self.prefilling.iter().position(|&x| x == slot) {
                    i = at;
                }
                continue;
            }
            prefill_s += p.prefill_s(s.prefilled, want);
            let generation = self.slots[slot].generation;
            let s = &mut self.slots[slot].seq;
            s.kv += want;
            self.kv_used += u64::from(want);
            budget -= want;
            prefill += u64::from(want);
            self.chunks.push((slot, generation, want));
            i += 1;
        }
        while budget > 0 && self.running() < p.max_num_seqs {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let want = (front.prefill - front.prefilled).min(budget);
            if self.kv_used + decoders as u64 + u64::from(want) > cap {
                break;
            }
            let Some(mut s) = self.waiting.pop_front() else {
                break;
            };
            prefill_s += p.prefill_s(s.prefilled, want);
            s.kv += want;
            self.kv_used += u64::from(want);
            budget -= want;
            prefill += u64::from(want);
            let slot = self.admit(s);
            self.chunks.push((slot, self.slots[slot].generation, want));
        }
        if prefill == 0 && decoders == 0 {
            // Nothing fits even alone (a prompt larger than the whole KV cache): vLLM rejects
            // such a request; it never produces a token.
            if self.running() == 0
                && let Some(s) = self.waiting.pop_front()
            {
                self.counters.rejected += 1;
                self.rejected_ids.push(s.id);
            }
            self.stepping = false;
            return None;
        }
        // The decoders' new tokens take their KV slots now.
        self.decode_kv += decoders as u64;
        self.kv_used += decoders as u64;
        self.stepping = true;
        self.step_decoders = decoders;
        let secs = p.step_s(prefill_s, self.running(), self.decode_kv);
        self.step_us = (secs * 1e6).round().max(1.0) as u64;
        Some(self.step_us)
    }

    fn finish(&mut self, slot: usize, now_us: u64, out: &mut Vec<Event>) {
        let s = self.release(slot);
        let e2e = now_us.saturating_sub(s.arrival_us) as f64 / 1e6;
        self.counters.e2e_buckets[bucket_index(&E2E_BUCKETS, e2e)] += 1;
        self.counters.e2e_sum += e2e;
        self.counters.success += 1;
        out.push(Event::Finished { id: s.id });
    }

    /// Cuts a run of decode steps short `elapsed_us` after it began: it ends with the step in
    /// progress. Returns the run's new duration from its start, or `None` when the plan is a
    /// single step already.
    pub fn interrupt(&mut self, elapsed_us: u64) -> Option<u64> {
        if !self.stepping || self.run_steps <= 1 {
            return None;
        }
        let keep = elapsed_us / self.step_us.max(1) + 1;
        if keep >= self.run_steps {
            return None;
        }
        let unused = self.step_decoders as u64 * (self.run_steps - keep);
        self.decode_kv -= unused;
        self.kv_used -= unused;
        self.run_steps = keep;
        Some(keep * self.step_us)
    }

    /// Completes the planned step (or run of steps) at `now_us`, appending first tokens and
    /// completions to `out`.
    pub fn end_step(&mut self, now_us: u64, out: &mut Vec<Event>) {
        self.stepping = false;
        let steps = std::mem::replace(&mut self.run_steps, 1).max(1);
        self.step_no += steps;
        let step = self.step_no;
        let decoded = self.step_decoders as u64 * steps;
        self.counters.generation_tokens += decoded;
        if decoded > 0 {
            let itl = self.step_us as f64 / 1e6;
            self.counters.itl_buckets[bucket_index(&ITL_BUCKETS, itl)] += decoded;
            self.counters.itl_sum += itl * decoded as f64;
        }
        let chunks = std::mem::take(&mut self.chunks);
        for &(slot, generation, tokens) in &chunks {
            if self.slots[slot].state != State::Prefill || self.slots[slot].generation != generation
            {
                continue;
            }
            let s = &mut self.slots[slot].seq;
            s.prefilled += tokens;
            if s.prefilled < s.prefill {
                continue;
            }
            // The step that completes the prefill samples the first token.
            s.generated += 1;
            self.counters.generation_tokens += 1;
            if !s.first_token {
                s.first_token = true;
                // vLLM V1 counts a prompt once, whole, when its first token comes out
                // (`IterationStats.update_from_output`: no output streams for a partial
                // prefill): neither chunks in progress nor a preemption's recompute.
                self.counters.prompt_tokens += u64::from(s.prefill);
                let ttft = now_us.saturating_sub(s.arrival_us) as f64 / 1e6;
                self.counters.ttft_buckets[bucket_index(&TTFT_BUCKETS, ttft)] += 1;
                self.counters.ttft_sum += ttft;
                out.push(Event::FirstToken { id: s.id });
            }
            if s.generated >= s.generate {
                self.finish(slot, now_us, out);
                continue;
            }
            let remaining = u64::from(s.generate - s.generated);
            let kv = u64::from(s.kv);
            if let Some(i) = self.prefilling.iter().position(|&x| x == slot) {
                self.prefilling.remove(i);
            }
            let generation = self.slots[slot].generation;
            self.slots[slot].state = State::Decode { since: step };
            self.decoders += 1;
            self.decode_kv += kv;
            self.finishing
                .push(Reverse((step + remaining, slot, generation)));
        }
        self.chunks = chunks;
        while let Some(&Reverse((at, slot, generation))) = self.finishing.peek() {
            if at > step {
                break;
            }
            self.finishing.pop();
            let s = &self.slots[slot];
            if s.generation == generation && matches!(s.state, State::Decode { .. }) {
                self.finish(slot, now_us, out);
            }
        }
        if self.order.len() > 4 * (self.running() + 16) {
            // Compact the admission order of freed entries.
            let slots = &self.slots;
            self.order
                .retain(|&(i, g)| slots[i].generation == g && slots[i].state != State::Free);
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
            self.running() as f64,
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
            ("abort", c.aborted),
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
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &p.model,
            &ITL_BUCKETS,
            &c.itl_buckets,
            c.itl_sum,
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

/// Longest run of identical decode steps planned as one (a scrape inside a run sees the KV of
/// its end; at most this many steps' worth).
const MAX_RUN_STEPS: u64 = 256;

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
        // One prefill step of 512 tokens: ~1.3 ms of compute on the NVL plus the step's fixed
        // cost and weight read.
        let prefill_us = (p.step_s(p.prefill_s(0, 512), 1, 0) * 1e6).round() as u64;
        assert_eq!(first.0, prefill_us);
        assert!((2200..2350).contains(&prefill_us), "{prefill_us}");
        // 127 decode steps of one sequence each, on the measured 2 ms floor.
        assert_eq!(end, prefill_us + 127 * 2000);
        assert_eq!(w.counters.success, 1);
        assert_eq!(w.kv_usage(&p), 0.0);
        assert_eq!(w.counters.itl_buckets.iter().sum::<u64>(), 127);
    }

    #[test]
    fn prefill_cost_grows_with_context_as_the_anchors_say() {
        // engine-model.md, H100 SXM: ~440 k tok/s at 1 k, ~240 k at 8 k, ~95 k at 32 k.
        let p = EngineParams::for_gpu(Gpu::H100Sxm);
        for (len, rate) in [(1024u32, 440e3), (8192, 240e3), (32_768, 95e3)] {
            let got = f64::from(len) / p.prefill_s(0, len);
            assert!((got / rate - 1.0).abs() < 0.1, "{len}: {got:.0} tok/s");
        }
        // Chunks add up to the whole prompt's cost.
        let whole = p.prefill_s(0, 16_384);
        let chunks: f64 = (0..2).map(|i| p.prefill_s(i * 8192, 8192)).sum();
        assert!((whole - chunks).abs() < 1e-9);
        // NVL runs prefill at 0.85x the SXM rate.
        let nvl = EngineParams::for_gpu(Gpu::H100Nvl);
        assert!((p.prefill_s(0, 4096) / nvl.prefill_s(0, 4096) - 0.85).abs() < 1e-9);
    }

    #[test]
    fn decode_step_time_follows_the_kv_read() {
        // engine-model.md, H100 SXM: 256 sequences at 1 k context ~12.8 ms; a full pool ~28 ms.
        let p = EngineParams::for_gpu(Gpu::H100Sxm);
        let b256 = p.step_s(0.0, 256, 256 * 1024);
        assert!((b256 * 1e3 - 12.8).abs() < 0.7, "{b256}");
        let full = p.step_s(0.0, 512, p.kv_capacity_tokens);
        assert!((full * 1e3 - 28.0).abs() < 2.0, "{full}");
        assert_eq!(p.step_s(0.0, 1, 100), p.min_step_s);
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
        let expect: f64 = [(0, 1000), (1000, 1000), (2000, 500)]
            .iter()
            .map(|&(b, n)| p.step_s(p.prefill_s(b, n), 1, 0))
            .sum();
        assert!(((t as f64) / 1e6 - expect).abs() < 3e-6, "{t}");
        assert_eq!(w.counters.prompt_tokens, 2500);
        // As vLLM V1 counts it: nothing for a prompt whose prefill is still in chunks.
        let mut w = Worker::new();
        w.enqueue(1, 0, 2500, 1);
        let mut out = Vec::new();
        let d = w.begin_step(&p).expect("work");
        w.end_step(d, &mut out);
        assert_eq!(w.counters.prompt_tokens, 0);
    }

    #[test]
    fn a_run_of_decode_steps_is_planned_as_one_and_cut_short_by_an_arrival() {
        let p = EngineParams::default();
        let mut w = Worker::new();
        w.enqueue(1, 0, 100, 50);
        w.enqueue(2, 0, 100, 80);
        let mut out = Vec::new();
        let d = w.begin_step(&p).expect("prefill");
        w.end_step(d, &mut out);
        assert_eq!(out.len(), 2, "both first tokens");
        // Both decode; the first finishes in 49 steps: one plan of 49 floor-length steps.
        let run = w.begin_step(&p).expect("run");
        assert_eq!(run, 49 * 2000);
        // A request arrives 10.5 steps in: the run ends with its 11th step.
        w.enqueue(3, 0, 100, 10);
        assert_eq!(w.interrupt(21_000), Some(11 * 2000));
        out.clear();
        w.end_step(d + 22_000, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.counters.generation_tokens, 2 + 2 * 11);
        // Then the newcomer is admitted with the decoders, and everything completes.
        let (_, events) = run_to_idle(&mut w, &p, d + 22_000);
        let finished = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Finished { .. }))
            .count();
        assert_eq!(finished, 3);
        assert_eq!(w.counters.generation_tokens, 50 + 80 + 10);
        assert_eq!(w.kv_usage(&p), 0.0);
        assert_eq!(w.counters.itl_buckets.iter().sum::<u64>(), 49 + 79 + 9);
    }

    #[test]
    fn a_client_timeout_frees_the_request_and_its_kv() {
        let p = EngineParams::default();
        let mut w = Worker::new();
        w.enqueue(1, 0, 100, 1000);
        w.enqueue(2, 5_000_000, 100, 1000);
        let mut out = Vec::new();
        let d = w.begin_step(&p).expect("work");
        w.end_step(d, &mut out);
        let mut gone = Vec::new();
        w.cancel_arrived_before(1_000_000, &mut gone);
        assert_eq!(gone, vec![(1, true)]);
        assert_eq!(w.running(), 1);
        assert_eq!(w.counters.aborted, 1);
        assert!(w.kv_usage(&p) > 0.0 && w.kv_usage(&p) < 120.0 / p.kv_capacity_tokens as f64);
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
        // The preempted sequence's recompute is work, but vLLM counts each prompt once.
        assert_eq!(w.counters.prompt_tokens, 1000);
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
