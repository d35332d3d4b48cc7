//! ScaledObject trigger metadata -> a validated, typed [`ScalerConfig`].
//!
//! Every key, its default and its meaning live in [`KEYS`]; the README's metadata reference
//! is generated from the same table (`keda-llm-scaler keys`). Parsing happens once per
//! controller; a bad value is an [`MetadataError`] naming the key and the accepted values,
//! which the gRPC layer turns into `INVALID_ARGUMENT`.

mod keys;
mod targets;

use std::collections::BTreeMap;

use crate::core::extract::Engine;
use crate::core::fleet::SignalConfig;
use crate::core::policy::PolicyConfig;

use keys::{KEDA_KEYS, Lookup, err};
pub use keys::{KEYS, KeySpec, MetadataError, Value};
pub use targets::{Discovery, target_url};

/// The validated configuration of one ScaledObject's controller.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerConfig {
    /// Worker discovery.
    pub discovery: Discovery,
    /// Dynamo frontend metrics URLs.
    pub frontends: Vec<String>,
    /// How this trigger decides (all that replay and the simulator need).
    pub decision: DecisionConfig,
    /// Per-request scrape timeout, ms.
    pub scrape_timeout_ms: u64,
    /// Metric name returned by GetMetricSpec.
    pub metric_name: String,
}

/// How a trigger decides, apart from where its pages come from: what it reads of a page, the
/// signal and policy settings and the decision period. Replay and the simulator run on this
/// alone, so neither has to invent a scrape target.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionConfig {
    /// Metric dialect.
    pub engine: Engine,
    /// Model filter.
    pub model: Option<String>,
    /// Signal computation.
    pub signal: SignalConfig,
    /// Decision policy.
    pub policy: PolicyConfig,
    /// Scrape and decision period, ms.
    pub scrape_interval_ms: u64,
}

fn metric_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// Refuses unknown keys (a typo must not fall back to a default) and a key set both directly
/// and through `FromEnv` (one would silently win).
fn check_keys(metadata: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    for key in metadata.keys() {
        let base = key.strip_suffix("FromEnv").unwrap_or(key);
        if !KEYS.iter().any(|k| k.key == base) && !KEDA_KEYS.contains(&key.as_str()) {
            let accepted: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
            return Err(err(
                key,
                format!("unknown key; accepted keys: {}", accepted.join(", ")),
            ));
        }
    }
    for key in metadata.keys() {
        if let Some(base) = key.strip_suffix("FromEnv")
            && metadata.contains_key(base)
        {
            return Err(err(
                key,
                format!("set `{base}` or `{key}`, not both (one would silently win)"),
            ));
        }
    }
    Ok(())
}

impl DecisionConfig {
    /// Parses and validates the decision keys of trigger metadata (with server-wide
    /// `defaults`, then the built-in defaults of [`KEYS`]); where to scrape is not needed.
    pub fn from_metadata(
        metadata: &BTreeMap<String, String>,
        defaults: &BTreeMap<String, String>,
    ) -> Result<DecisionConfig, MetadataError> {
        check_keys(metadata)?;
        decision(&Lookup { metadata, defaults })
    }
}

fn decision(l: &Lookup<'_>) -> Result<DecisionConfig, MetadataError> {
    let engine_text = l.get("engine");
    let engine = Engine::parse(&engine_text).ok_or_else(|| {
        err(
            "engine",
            format!("expected one of {}, got {engine_text:?}", Engine::ACCEPTED),
        )
    })?;
    let min_replicas = l.integer("minReplicas")?;
    let max_replicas = l.integer("maxReplicas")?;
    if max_replicas < min_replicas {
        return Err(err(
            "maxReplicas",
            format!("must be >= minReplicas ({min_replicas}), got {max_replicas}"),
        ));
    }
    let scrape_interval_ms = l.millis("scrapeIntervalSeconds")?;
    let window_ms = l.millis("ttftWindowSeconds")?;
    if window_ms < scrape_interval_ms * 2 {
        return Err(err(
            "ttftWindowSeconds",
            "must cover at least two scrape intervals",
        ));
    }
    // Deprecated keys still validated, so a ScaledObject that sets them wrongly hears of it.
    for key in [
        "postScaleUpHoldSeconds",
        "scaleDownStepSeconds",
        "scaleDownMaxPercent",
    ] {
        l.number(key)?;
    }
    let up = l.number("scaleUpUtilization")?;
    let down = l.number("scaleDownUtilization")?;
    if down >= up {
        return Err(err(
            "scaleDownUtilization",
            format!("must be below scaleUpUtilization ({up}), got {down}"),
        ));
    }
    Ok(DecisionConfig {
        engine,
        model: l.raw("model"),
        signal: SignalConfig {
            ttft_quantile: l.number("ttftQuantile")?,
            window_ms,
            ttft_min_samples: f64::from(l.integer("ttftMinSamples")?),
        },
        policy: PolicyConfig {
            min_replicas,
            max_replicas,
            ttft_target_s: l.number("ttftTargetMs")? / 1000.0,
            itl_target_s: l.number("itlTargetMs")? / 1000.0,
            kv_target: l.number("kvCacheTarget")?,
            headroom_fraction: l.number("headroomPercent")? / 100.0,
            spare_replicas: l.integer("spareReplicas")?,
            concurrency_per_replica: l.number("concurrencyPerReplica")?,
            ttft_window_ms: window_ms,
            scale_down_hold_ms: match l.raw("scaleDownWindowSeconds") {
                Some(_) => Some(l.millis("scaleDownWindowSeconds")?),
                None => None,
            },
            max_scale_up_factor: l.number("maxScaleUpFactor")?,
            max_scale_up_step: l.integer("maxScaleUpStep")?,
            pending_timeout_ms: l.millis("pendingTimeoutSeconds")?,
            stale_hold_ms: l.millis("staleHoldSeconds")?,
            activation_window_ms: l.millis("activationWindowSeconds")?,
            hpa_tolerance: l.number("hpaTolerance")?,
            config_hash: config_hash(l.metadata, l.defaults),
        },
        scrape_interval_ms,
    })
}

impl ScalerConfig {
    /// Parses and validates trigger metadata, falling back to server-wide `defaults` (the
    /// same keys) and then to the built-in defaults of [`KEYS`].
    pub fn from_metadata(
        metadata: &BTreeMap<String, String>,
        defaults: &BTreeMap<String, String>,
    ) -> Result<ScalerConfig, MetadataError> {
        check_keys(metadata)?;
        let l = Lookup { metadata, defaults };
        let (discovery, frontends) = targets::where_to_scrape(&l)?;
        let decision = decision(&l)?;
        let scrape_interval_ms = decision.scrape_interval_ms;
        let scrape_timeout_ms = l.millis("scrapeTimeoutSeconds")?;
        // A cycle must end before the next starts: an explicit timeout above the interval is
        // the author's mistake and said so; the default shrinks to 80 % of a short interval.
        let scrape_timeout_ms = if l.raw("scrapeTimeoutSeconds").is_some() {
            if scrape_timeout_ms > scrape_interval_ms {
                return Err(err(
                    "scrapeTimeoutSeconds",
                    format!(
                        "must not exceed scrapeIntervalSeconds ({} s), got {} s",
                        scrape_interval_ms as f64 / 1000.0,
                        scrape_timeout_ms as f64 / 1000.0
                    ),
                ));
            }
            scrape_timeout_ms
        } else {
            scrape_timeout_ms.min(
                scrape_interval_ms
                    .saturating_sub(scrape_interval_ms / 5)
                    .max(10),
            )
        };
        let metric_name = l.get("metricName");
        if !metric_name_ok(&metric_name) {
            return Err(err(
                "metricName",
                format!("expected lowercase [a-z0-9-], at most 63 characters, got {metric_name:?}"),
            ));
        }
        Ok(ScalerConfig {
            discovery,
            frontends,
            decision,
            scrape_timeout_ms,
            metric_name,
        })
    }
}

impl ScalerConfig {
    /// What the simulator runs of this configuration: the same signal and policy settings, the
    /// dialect, model filter, frontends and interval (where to scrape is the simulation's).
    pub fn under_test(&self) -> crate::sim::run::ScalerUnderTest {
        crate::sim::run::ScalerUnderTest {
            engine: self.decision.engine,
            model: self.decision.model.clone(),
            frontends: self.frontends.clone(),
            signal: self.decision.signal.clone(),
            policy: self.decision.policy.clone(),
            scrape_interval_ms: self.decision.scrape_interval_ms,
        }
    }
}

/// Largest accepted metadata map (keys plus values), bytes: metadata travels in every RPC, and a
/// huge map is a mistake or an attack, refused before any work is done with it.
pub const MAX_METADATA_BYTES: usize = 64 << 10;

/// The limits a trigger's metadata must fit before a controller starts for it.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Largest metadata map, bytes.
    pub max_metadata_bytes: usize,
    /// Most static targets.
    pub max_targets: usize,
}

impl ScalerConfig {
    /// Admits one trigger's metadata as KEDA sends it: within the size limit, valid, and with
    /// no more static targets than allowed. Returns the sorted metadata (the controller's
    /// identity) and the configuration.
    pub fn admit(
        metadata: &std::collections::HashMap<String, String>,
        defaults: &BTreeMap<String, String>,
        limits: &Admission,
    ) -> Result<(BTreeMap<String, String>, ScalerConfig), MetadataError> {
        let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > limits.max_metadata_bytes {
            let largest = metadata
                .iter()
                .max_by_key(|(k, v)| k.len() + v.len())
                .map_or(String::new(), |(k, _)| crate::redact::cut(k));
            return Err(err(
                &largest,
                format!(
                    "metadata is {size} bytes, over the {}-byte limit (this key is the largest)",
                    limits.max_metadata_bytes
                ),
            ));
        }
        let sorted: BTreeMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let config = ScalerConfig::from_metadata(&sorted, defaults)?;
        if let Discovery::Static(urls) = &config.discovery
            && urls.len() > limits.max_targets
        {
            return Err(err(
                "targets",
                format!(
                    "{} targets, over the limit of {} per ScaledObject",
                    urls.len(),
                    limits.max_targets
                ),
            ));
        }
        Ok((sorted, config))
    }
}

/// A short, stable hash of the effective metadata (FNV-1a over sorted `key=value` lines),
/// quoted in every decision so a replay can tell which configuration produced it.
pub fn config_hash(
    metadata: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in defaults.iter().chain(metadata.iter()) {
        for b in k.bytes().chain([b'=']).chain(v.bytes()).chain([b'\n']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// One `key=value` pair, both sides trimmed; `None` without an `=`. The one reader of pairs
/// on the command line (`--default`, `--set`).
pub fn split_pair(pair: &str) -> Option<(&str, &str)> {
    pair.split_once('=').map(|(k, v)| (k.trim(), v.trim()))
}

/// Applies `--set key=value` pairs (the flag named `flag`) over `metadata`; the keys are
/// validated when the result is parsed as a [`ScalerConfig`].
pub fn set_pairs(
    metadata: &mut impl Extend<(String, String)>,
    pairs: &[String],
    flag: &str,
) -> Result<(), MetadataError> {
    for pair in pairs {
        let (key, value) = split_pair(pair)
            .ok_or_else(|| err(pair, format!("{flag} {pair:?}: expected key=value")))?;
        metadata.extend([(key.to_string(), value.to_string())]);
    }
    Ok(())
}

/// Parses `key=value` pairs given on the command line into a defaults map, validating keys.
pub fn parse_defaults(pairs: &[String]) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut out = BTreeMap::new();
    for pair in pairs
        .iter()
        .flat_map(|p| p.split(','))
        .filter(|p| !p.trim().is_empty())
    {
        let (key, value) = split_pair(pair).ok_or_else(|| err(pair, "expected key=value"))?;
        if !KEYS.iter().any(|k| k.key == key) {
            return Err(err(key, "unknown key"));
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_within_its_own_range_and_every_key_parses_alone() {
        for k in KEYS {
            match k.value {
                Value::Number { min, max } if !k.default.is_empty() => {
                    let v: f64 = k.default.parse().expect("numeric default");
                    assert!(
                        (min..=max).contains(&v),
                        "{}: {v} outside [{min}, {max}]",
                        k.key
                    );
                }
                Value::Integer { min, max } if !k.default.is_empty() => {
                    let v: u32 = k.default.parse().expect("integer default");
                    assert!(
                        (min..=max).contains(&v),
                        "{}: {v} outside [{min}, {max}]",
                        k.key
                    );
                }
                Value::OneOf(words) if !k.default.is_empty() => {
                    assert!(words.contains(&k.default), "{}", k.key);
                }
                _ => {}
            }
        }
        // A value just past a range is refused naming the key and the range from the table.
        let e = ScalerConfig::from_metadata(
            &md(&[("targets", "a:1"), ("kvCacheTarget", "1.01")]),
            &BTreeMap::new(),
        )
        .expect_err("out of range");
        assert_eq!(e.key, "kvCacheTarget");
        assert!(e.message.contains("[0.05, 1]"), "{}", e.message);
    }

    fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<ScalerConfig, MetadataError> {
        ScalerConfig::from_metadata(&md(pairs), &BTreeMap::new())
    }

    #[test]
    fn defaults_apply() {
        let c = parse(&[
            ("targets", "10.0.0.1:8000, http://w2:9/m"),
            ("scalerAddress", "x:6000"),
        ])
        .unwrap();
        assert_eq!(
            c.discovery,
            Discovery::Static(vec![
                "http://10.0.0.1:8000/metrics".into(),
                "http://w2:9/m".into()
            ])
        );
        assert_eq!(c.decision.policy.min_replicas, 1);
        assert_eq!(c.decision.policy.max_replicas, 10);
        assert_eq!(c.decision.policy.ttft_target_s, 0.5);
        assert_eq!(c.decision.signal.ttft_quantile, 0.95);
        assert_eq!(c.decision.scrape_interval_ms, 5000);
        assert_eq!(c.metric_name, "llm-desired-replicas");
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "targets"),
            (&[("targets", "a:1"), ("minReplicas", "-1")], "minReplicas"),
            (
                &[
                    ("targets", "a:1"),
                    ("minReplicas", "5"),
                    ("maxReplicas", "2"),
                ],
                "maxReplicas",
            ),
            (&[("targets", "a:1"), ("engine", "tgi")], "engine"),
            (
                &[("targets", "a:1"), ("ttftQuantile", "1.5")],
                "ttftQuantile",
            ),
            (
                &[("targets", "a:1"), ("kvCacheTarget", "abc")],
                "kvCacheTarget",
            ),
            (&[("targets", "ftp://a:1")], "targets"),
            (&[("service", "svc")], "port"),
            (&[("service", "svc"), ("port", "x")], "port"),
            (&[("targets", "a:1"), ("service", "svc")], "service"),
            (&[("targets", "a:1"), ("minReplica", "1")], "minReplica"),
            (
                &[("targets", "a:1"), ("metricName", "Bad_Name")],
                "metricName",
            ),
        ];
        for (pairs, key) in cases {
            let e = parse(pairs).unwrap_err();
            assert_eq!(&e.key, key, "{pairs:?} -> {e}");
        }
    }

    #[test]
    fn server_defaults_and_from_env_keys() {
        let defaults = parse_defaults(&["maxReplicas=16,ttftTargetMs=300".into()]).unwrap();
        let c = ScalerConfig::from_metadata(&md(&[("targetsFromEnv", "w:1")]), &defaults).unwrap();
        assert_eq!(c.decision.policy.max_replicas, 16);
        assert_eq!(c.decision.policy.ttft_target_s, 0.3);
        assert!(parse_defaults(&["nope=1".into()]).is_err());
    }

    #[test]
    fn service_discovery() {
        let c = parse(&[("service", "vllm.llm.svc.cluster.local"), ("port", "8000")]).unwrap();
        assert_eq!(
            c.discovery,
            Discovery::Service {
                host: "vllm.llm.svc.cluster.local".into(),
                port: 8000,
                path: "/metrics".into(),
                scheme: "http".into()
            }
        );
    }
}
