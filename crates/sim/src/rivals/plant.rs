//! What a model-based planner knows of the engine: the profile Dynamo's pre-deployment
//! profiling produces (prefill time by prompt length, decode step by batch and context), and
//! the request mix read back from the workers' token and request counters.

use crate::prom::{CounterFamily, Prometheus};
use crate::worker::EngineParams;

/// The request mix a planner sees: mean prompt and output tokens per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Mean prompt tokens (ISL).
    pub isl: f64,
    /// Mean output tokens (OSL).
    pub osl: f64,
}

/// Before any request completed: a chat-sized guess.
const PRIOR: Mix = Mix {
    isl: 1000.0,
    osl: 200.0,
};

impl Mix {
    /// ISL and OSL from `rate(prompt_tokens) / rate(request_success)` and
    /// `rate(generation_tokens) / rate(request_success)` over the last minute; the previous
    /// mix while nothing completed.
    pub fn observe(prom: &Prometheus, now_ms: u64, previous: Option<Mix>) -> Mix {
        let rate = |f| prom.rate(f, now_ms, 60_000);
        match (
            rate(CounterFamily::Success),
            rate(CounterFamily::PromptTokens),
            rate(CounterFamily::GenerationTokens),
        ) {
            (Some(done), Some(p), Some(g)) if done > 0.0 => Mix {
                isl: (p / done).max(1.0),
                osl: (g / done).max(1.0),
            },
            _ => previous.unwrap_or(PRIOR),
        }
    }
}

/// Time to first token of one prompt on an idle engine, seconds.
pub fn prefill_s(e: &EngineParams, isl: f64) -> f64 {
    e.step_s(e.prefill_s(0, isl.max(1.0) as u32), 1, 0)
}

/// Decode step with `c` running sequences of the mix, seconds.
pub fn decode_step_s(e: &EngineParams, mix: Mix, c: f64) -> f64 {
    let ctx = mix.isl + mix.osl / 2.0;
    e.step_s(0.0, c.max(1.0) as usize, (c.max(1.0) * ctx) as u64)
}

/// The MPC planner's plant: requests per second one replica serves,
/// `1 / (T_prefill + OSL x T_decode(c_sat) / c_sat)` with
/// `c_sat = min(0.9 x KV / (ISL + OSL), max_num_seqs)`, and never more than the replica's API
/// server passes (a profile of the deployment measures both).
pub fn service_rate(e: &EngineParams, mix: Mix) -> f64 {
    let c_sat = (0.9 * e.kv_capacity_tokens as f64 / (mix.isl + mix.osl))
        .min(e.max_num_seqs as f64)
        .max(1.0);
    let engine = 1.0 / (prefill_s(e, mix.isl) + mix.osl * decode_step_s(e, mix, c_sat) / c_sat);
    engine.min(e.api_rate())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plant_of_a_chat_mix_on_h100_nvl() {
        let e = EngineParams::default();
        let mix = Mix {
            isl: 1000.0,
            osl: 250.0,
        };
        // c_sat = min(0.9 x 760 k / 1250, 1024) = 547.2; the step at 547 x 1125 tokens of
        // context reads ~70.6 GB: (1.19 + 70.6) GB / 3.12 TB/s + 0.6 ms + 1.1 ms ~ 24.7 ms.
        let step = decode_step_s(&e, mix, 547.2);
        assert!((step * 1e3 - 24.7).abs() < 0.5, "{step}");
        let mu = service_rate(&e, mix);
        // T_prefill of 1000 tokens ~ 2.66 ms of compute + 1.05 ms of step ~ 3.7 ms;
        // 1 / (3.7 ms + 250 x 24.7 ms / 547.2) ~ 67 req/s.
        assert!((prefill_s(&e, 1000.0) * 1e3 - 3.7).abs() < 0.1);
        assert!((mu - 67.0).abs() < 2.0, "{mu}");
    }
}
