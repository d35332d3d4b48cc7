//! Any bytes as ScaledObject metadata (`key=value` lines): accepted, or refused with an error
//! naming a key; never a panic.
#![no_main]

use std::collections::BTreeMap;

use keda_llm_scaler::config::{KEYS, ScalerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let md: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match ScalerConfig::from_metadata(&md, &BTreeMap::new()) {
        Ok(c) => assert!(c.decision.policy.min_replicas <= c.decision.policy.max_replicas),
        Err(e) => assert!(KEYS.iter().any(|k| k.key == e.key) || md.contains_key(&e.key)),
    }
});
