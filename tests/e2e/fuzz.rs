//! Bounded fuzz smoke in the test command: random mutations of the real captures through the
//! whole pure path (scanner, extraction, signals, policy), and random metadata through the
//! metadata parser. Nothing may panic; every error must name a key. The coverage-guided
//! harness (`fuzz/`, cargo-fuzz) runs the same two targets for longer; figures in BENCHMARKS.md.

use std::collections::BTreeMap;

use keda_llm_scaler::config::{KEYS, ScalerConfig};
use keda_llm_scaler::core::cycle::Cycle;
use keda_llm_scaler::core::extract::Engine;
use keda_llm_scaler::core::fleet::{Observation, TargetRole};
use keda_llm_scaler::core::policy::PolicyConfig;
use proptest::prelude::*;

use crate::common::{DYNAMO_FE, SGLANG, VLLM, fixture};

const SPECIAL: &[u8] = b"{}\",=\n# \\:+-.eEInfNa0123456789_le";

fn mutate(page: &[u8], ops: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut v = page.to_vec();
    for &(op, at, byte) in ops {
        if v.is_empty() {
            break;
        }
        let i = at % v.len();
        let b = SPECIAL[byte as usize % SPECIAL.len()];
        match op % 5 {
            0 => v[i] = b,
            1 => v.insert(i, b),
            2 => {
                v.remove(i);
            }
            3 => v.truncate(i),
            _ => {
                // Duplicate the line around i (repeated series, reordered families).
                let start = v[..i]
                    .iter()
                    .rposition(|c| *c == b'\n')
                    .map_or(0, |p| p + 1);
                let end = v[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(v.len(), |p| i + p + 1);
                let line = v[start..end].to_vec();
                v.splice(end..end, line);
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_captures_never_panic_the_pure_path(
        which in 0usize..3,
        ops in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..40),
        engine in prop::sample::select(vec![Engine::Auto, Engine::Vllm, Engine::Dynamo, Engine::Sglang]),
    ) {
        let page = fixture([VLLM, SGLANG, DYNAMO_FE][which]);
        let bytes = mutate(page.as_bytes(), &ops);
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let cfg = ScalerConfig::from_metadata(
            &BTreeMap::from([("targets".to_string(), "a:1".to_string())]),
            &BTreeMap::new(),
        ).expect("base config");
        let mut cycle = Cycle::default();
        for (t, b) in [(0u64, page.clone()), (5_000, body.clone()), (10_000, body)] {
            let obs = Observation::from_page("w".into(), TargetRole::Worker, Ok(b), engine, None);
            let step = cycle.step(&cfg.decision.signal, &PolicyConfig { max_replicas: 64, ..cfg.decision.policy.clone() }, t, vec![obs]);
            let d = &step.snapshot.decision;
            prop_assert!(d.desired >= 1 && d.desired <= 64);
            if let Some(q) = step.snapshot.signals.ttft_seconds {
                prop_assert!(q.is_finite() && q >= 0.0);
            }
        }
    }

    #[test]
    fn random_metadata_is_accepted_or_refused_naming_a_key(
        entries in prop::collection::vec(
            (prop::sample::select(KEYS.iter().map(|k| k.key).chain(["scalerAddress", "bogus", "portFromEnv"]).collect::<Vec<_>>()),
             "[ -~]{0,12}"),
            0..8),
    ) {
        let md: BTreeMap<String, String> = entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        match ScalerConfig::from_metadata(&md, &BTreeMap::new()) {
            Ok(c) => prop_assert!(c.decision.policy.min_replicas <= c.decision.policy.max_replicas),
            Err(e) => {
                let known = KEYS.iter().any(|k| k.key == e.key) || md.contains_key(&e.key);
                prop_assert!(known, "error names {:?}: {}", e.key, e);
            }
        }
    }
}
