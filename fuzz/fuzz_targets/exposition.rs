//! Any bytes as a `/metrics` page, through the scanner, every engine's extraction, and the
//! signal and policy code: nothing may panic, the answer stays within bounds.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use keda_llm_scaler::config::ScalerConfig;
use keda_llm_scaler::core::cycle::Cycle;
use keda_llm_scaler::core::extract::{Engine, extract};
use keda_llm_scaler::core::fleet::{Observation, TargetRole};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static ScalerConfig {
    static C: OnceLock<ScalerConfig> = OnceLock::new();
    C.get_or_init(|| {
        let md = BTreeMap::from([("targets".to_string(), "a:1".to_string())]);
        ScalerConfig::from_metadata(&md, &BTreeMap::new()).expect("base config")
    })
}

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data).into_owned();
    for engine in [Engine::Auto, Engine::Vllm, Engine::Dynamo, Engine::Sglang, Engine::Trtllm] {
        let _ = extract(&body, engine, Some("qwen/qwen3-0.6b"));
    }
    let cfg = config();
    let mut cycle = Cycle::default();
    for t in [0u64, 5_000] {
        let obs = Observation::from_page("w".into(), TargetRole::Worker, Ok(body.clone()), Engine::Auto, None);
        let step = cycle.step(&cfg.decision.signal, &cfg.decision.policy, t, vec![obs]);
        let d = step.snapshot.decision.desired;
        assert!(d >= cfg.decision.policy.min_replicas && d <= cfg.decision.policy.max_replicas.max(cfg.decision.policy.min_replicas));
    }
});
