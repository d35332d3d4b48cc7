//! ScaledObject trigger metadata -> a validated, typed [`ScalerConfig`].
//!
//! Every key, its default and its meaning live in [`KEYS`]; the README's metadata reference
//! is generated from the same table (`keda-llm-scaler keys`). Parsing happens once per
//! controller; a bad value is an [`MetadataError`] naming the key and the accepted values,
//! which the gRPC layer turns into `INVALID_ARGUMENT`.

use std::collections::BTreeMap;

use crate::core::extract::Engine;
use crate::core::fleet::SignalConfig;
use crate::core::policy::PolicyConfig;

/// One documented metadata key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// camelCase key as written in the ScaledObject.
    pub key: &'static str,
    /// Type as shown to users.
    pub kind: &'static str,
    /// Default ("" = none).
    pub default: &'static str,
    /// Meaning, one sentence.
    pub meaning: &'static str,
}

/// Every metadata key the scaler accepts, with defaults. The single source of defaults.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "targets",
        kind: "list",
        default: "",
        meaning: "Comma-separated worker `host:port` or `http(s)://` URLs to scrape. Exactly one of `targets`, `service` and `httpSd` is required.",
    },
    KeySpec {
        key: "service",
        kind: "string",
        default: "",
        meaning: "Headless Service (`name`, `name.namespace` or FQDN) resolved by DNS every cycle, one worker per A/AAAA record.",
    },
    KeySpec {
        key: "httpSd",
        kind: "URL",
        default: "",
        meaning: "Prometheus HTTP service-discovery endpoint (`[{\"targets\": [\"host:port\"]}]`) fetched every cycle, one worker per target; for fleets outside Kubernetes and the demo.",
    },
    KeySpec {
        key: "port",
        kind: "integer",
        default: "",
        meaning: "Metrics port of the pods behind `service` (required with `service`).",
    },
    KeySpec {
        key: "metricsPath",
        kind: "string",
        default: "/metrics",
        meaning: "HTTP path of the metrics endpoint for `service` and bare `host:port` targets.",
    },
    KeySpec {
        key: "scheme",
        kind: "`http` or `https`",
        default: "http",
        meaning: "Scheme for `service` and bare `host:port` targets.",
    },
    KeySpec {
        key: "frontendTargets",
        kind: "list",
        default: "",
        meaning: "Dynamo frontend endpoints; when set, TTFT, queue and request rate come from them and KV from the workers.",
    },
    KeySpec {
        key: "engine",
        kind: "one of `auto`, `vllm`, `dynamo`, `sglang`, `trtllm`",
        default: "auto",
        meaning: "Metric dialect; `auto` detects it from the families present.",
    },
    KeySpec {
        key: "model",
        kind: "string",
        default: "",
        meaning: "Only read series whose `model`/`model_name` label equals this (case-insensitive); empty reads all.",
    },
    KeySpec {
        key: "minReplicas",
        kind: "integer",
        default: "1",
        meaning: "Lower bound of the answer.",
    },
    KeySpec {
        key: "maxReplicas",
        kind: "integer",
        default: "10",
        meaning: "Upper bound of the answer.",
    },
    KeySpec {
        key: "ttftTargetMs",
        kind: "number",
        default: "500",
        meaning: "TTFT SLO in milliseconds.",
    },
    KeySpec {
        key: "ttftQuantile",
        kind: "number in (0,1)",
        default: "0.95",
        meaning: "Quantile of TTFT to hold under the target.",
    },
    KeySpec {
        key: "ttftWindowSeconds",
        kind: "number",
        default: "60",
        meaning: "Sliding window for the TTFT quantile and request rates.",
    },
    KeySpec {
        key: "ttftMinSamples",
        kind: "integer",
        default: "20",
        meaning: "With fewer completions in the window the quantile is undefined (no evidence, never 0).",
    },
    KeySpec {
        key: "kvCacheTarget",
        kind: "number in (0,1]",
        default: "0.8",
        meaning: "KV usage fraction to keep each replica under.",
    },
    KeySpec {
        key: "scrapeIntervalSeconds",
        kind: "number",
        default: "5",
        meaning: "Scrape and decision period of this ScaledObject's controller.",
    },
    KeySpec {
        key: "scrapeTimeoutSeconds",
        kind: "number",
        default: "2",
        meaning: "Per-target scrape timeout, the wait for a scrape slot included; at most the interval (unset: 2 s, or 80 % of a shorter interval).",
    },
    KeySpec {
        key: "scaleDownWindowSeconds",
        kind: "number",
        default: "300",
        meaning: "How long a lower need must hold before scaling down.",
    },
    KeySpec {
        key: "scaleUpUtilization",
        kind: "number in (0,1]",
        default: "0.8",
        meaning: "Utilisation (demand / (replicas x concurrencyPerReplica)) above which capacity is added.",
    },
    KeySpec {
        key: "scaleDownUtilization",
        kind: "number in (0,1)",
        default: "0.6",
        meaning: "Projected utilisation after removing replicas must stay below this for the whole scale-down window.",
    },
    KeySpec {
        key: "concurrencyPerReplica",
        kind: "number",
        default: "48",
        meaning: "Seed of the per-replica capacity: requests in flight at the TTFT knee (Qwen3-0.6B on one H100 saturates near 60-70 in flight); calibrated online within 0.5x-1.5x from TTFT.",
    },
    KeySpec {
        key: "postScaleUpHoldSeconds",
        kind: "number",
        default: "600",
        meaning: "No scale-down for this long after a scale-up.",
    },
    KeySpec {
        key: "scaleDownStepSeconds",
        kind: "number",
        default: "120",
        meaning: "Period of scale-down steps.",
    },
    KeySpec {
        key: "scaleDownMaxPercent",
        kind: "number",
        default: "10",
        meaning: "Each scale-down step removes at most this percentage of ready replicas (at least 1).",
    },
    KeySpec {
        key: "maxScaleUpFactor",
        kind: "number >= 1",
        default: "2",
        meaning: "Scale up at most to this multiple of supply per decision, or by `maxScaleUpStep`, whichever is larger.",
    },
    KeySpec {
        key: "maxScaleUpStep",
        kind: "integer",
        default: "4",
        meaning: "Additive scale-up allowance per decision (see `maxScaleUpFactor`).",
    },
    KeySpec {
        key: "pendingTimeoutSeconds",
        kind: "number",
        default: "600",
        meaning: "A requested replica not serving by then stops counting as supply (reason `capacity_blocked`).",
    },
    KeySpec {
        key: "hpaTolerance",
        kind: "number in [0,0.5]",
        default: "0",
        meaning: "The HPA tolerance of your cluster; set 0.1 where `behavior.*.tolerance: 0` is not supported, so small scale-ups are pushed past the dead band.",
    },
    KeySpec {
        key: "activationWindowSeconds",
        kind: "number",
        default: "300",
        meaning: "IsActive stays true this long after the last sign of demand.",
    },
    KeySpec {
        key: "staleHoldSeconds",
        kind: "number",
        default: "120",
        meaning: "After this long without fresh data, GetMetrics returns UNAVAILABLE so KEDA's `fallback` takes over.",
    },
    KeySpec {
        key: "metricName",
        kind: "string `[a-z0-9-]`",
        default: "llm-desired-replicas",
        meaning: "Name of the single metric reported to KEDA (stable for the ScaledObject's lifetime).",
    },
];

/// Keys KEDA itself puts in the trigger metadata; accepted and ignored.
const KEDA_KEYS: &[&str] = &["scalerAddress", "enableTLS", "unsafeSsl"];

/// A metadata problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata key `{key}`: {message}")]
pub struct MetadataError {
    /// The offending key (or the key that is missing).
    pub key: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> MetadataError {
    MetadataError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Where the workers come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Discovery {
    /// A fixed list of metrics URLs.
    Static(Vec<String>),
    /// A Prometheus HTTP service-discovery endpoint fetched every cycle.
    HttpSd {
        /// The endpoint.
        url: String,
        /// Path of each target's metrics, starting with `/`.
        path: String,
        /// `http` or `https` for the targets.
        scheme: String,
    },
    /// A headless Service resolved by DNS every cycle.
    Service {
        /// DNS name.
        host: String,
        /// Metrics port.
        port: u16,
        /// Path, starting with `/`.
        path: String,
        /// `http` or `https`.
        scheme: String,
    },
}

/// The validated configuration of one ScaledObject's controller.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerConfig {
    /// Worker discovery.
    pub discovery: Discovery,
    /// Dynamo frontend metrics URLs.
    pub frontends: Vec<String>,
    /// Metric dialect.
    pub engine: Engine,
    /// Model filter.
    pub model: Option<String>,
    /// Signal computation.
    pub signal: SignalConfig,
    /// Decision policy.
    pub policy: PolicyConfig,
    /// Scrape period, ms.
    pub scrape_interval_ms: u64,
    /// Per-request scrape timeout, ms.
    pub scrape_timeout_ms: u64,
    /// Metric name returned by GetMetricSpec.
    pub metric_name: String,
}

/// Looks keys up in the trigger metadata first, then in the server-wide defaults.
struct Lookup<'a> {
    metadata: &'a BTreeMap<String, String>,
    defaults: &'a BTreeMap<String, String>,
}

impl Lookup<'_> {
    fn raw(&self, key: &str) -> Option<String> {
        let from = |m: &BTreeMap<String, String>| {
            m.get(key)
                .or_else(|| m.get(&format!("{key}FromEnv")))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        from(self.metadata).or_else(|| from(self.defaults))
    }

    fn get(&self, key: &str) -> String {
        self.raw(key)
            .unwrap_or_else(|| spec(key).default.to_string())
    }

    fn number(&self, key: &str, min: f64, max: f64) -> Result<f64, MetadataError> {
        let text = self.get(key);
        let value: f64 = text.parse().map_err(|_| {
            err(
                key,
                format!("expected a number in [{min}, {max}], got {text:?}"),
            )
        })?;
        if !value.is_finite() || value < min || value > max {
            return Err(err(
                key,
                format!("expected a number in [{min}, {max}], got {text:?}"),
            ));
        }
        Ok(value)
    }

    fn integer(&self, key: &str, min: u32, max: u32) -> Result<u32, MetadataError> {
        let text = self.get(key);
        text.parse::<u32>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| {
                err(
                    key,
                    format!("expected an integer in [{min}, {max}], got {text:?}"),
                )
            })
    }

    fn millis(&self, key: &str, min_s: f64, max_s: f64) -> Result<u64, MetadataError> {
        Ok((self.number(key, min_s, max_s)? * 1000.0).round() as u64)
    }
}

fn spec(key: &str) -> &'static KeySpec {
    KEYS.iter()
        .find(|k| k.key == key)
        .unwrap_or_else(|| panic!("metadata key {key} missing from KEYS"))
}

/// Normalises one target to a metrics URL: `host:port` gets `scheme://` and `metricsPath`.
pub fn target_url(key: &str, raw: &str, scheme: &str, path: &str) -> Result<String, MetadataError> {
    let raw = raw.trim();
    let url = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("{scheme}://{raw}{path}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        err(
            key,
            format!("{raw:?} is not a `host:port` or http(s) URL ({e})"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(err(
            key,
            format!("{raw:?} is not a `host:port` or http(s) URL"),
        ));
    }
    Ok(parsed.to_string())
}

fn target_list(
    l: &Lookup<'_>,
    key: &str,
    scheme: &str,
    path: &str,
) -> Result<Vec<String>, MetadataError> {
    let Some(raw) = l.raw(key) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = target_url(key, item, scheme, path)?;
        if !out.contains(&url) {
            out.push(url);
        }
    }
    if out.is_empty() {
        return Err(err(key, "expected at least one `host:port` or URL"));
    }
    Ok(out)
}

fn metric_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

impl ScalerConfig {
    /// Parses and validates trigger metadata, falling back to server-wide `defaults` (the
    /// same keys) and then to the built-in defaults of [`KEYS`].
    pub fn from_metadata(
        metadata: &BTreeMap<String, String>,
        defaults: &BTreeMap<String, String>,
    ) -> Result<ScalerConfig, MetadataError> {
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
        let l = Lookup { metadata, defaults };

        let scheme = l.get("scheme").to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(err(
                "scheme",
                format!("expected http or https, got {scheme:?}"),
            ));
        }
        let path = l.get("metricsPath");
        if !path.starts_with('/') {
            return Err(err(
                "metricsPath",
                format!("expected a path starting with '/', got {path:?}"),
            ));
        }
        let targets = target_list(&l, "targets", &scheme, &path)?;
        let sources = usize::from(!targets.is_empty())
            + usize::from(l.raw("service").is_some())
            + usize::from(l.raw("httpSd").is_some());
        if sources > 1 {
            let key = if l.raw("httpSd").is_some() {
                "httpSd"
            } else {
                "service"
            };
            return Err(err(
                key,
                "set exactly one of `targets`, `service` and `httpSd`",
            ));
        }
        let discovery = if !targets.is_empty() {
            Discovery::Static(targets)
        } else if let Some(raw) = l.raw("httpSd") {
            if !(raw.starts_with("http://") || raw.starts_with("https://")) {
                return Err(err(
                    "httpSd",
                    format!("expected an http:// or https:// URL, got {raw:?}"),
                ));
            }
            // Parsed now, so `http://` (no host) fails here and not on every cycle.
            let url = target_url("httpSd", &raw, &scheme, &path)?;
            Discovery::HttpSd {
                url,
                path: path.clone(),
                scheme: scheme.clone(),
            }
        } else if let Some(host) = l.raw("service") {
            if host.contains('/') || host.contains(':') || host.contains(char::is_whitespace) {
                return Err(err(
                    "service",
                    format!("expected a DNS name such as `vllm-workers.llm.svc`, got {host:?}"),
                ));
            }
            if l.raw("port").is_none() {
                return Err(err(
                    "port",
                    "required with `service`: the pods' metrics port",
                ));
            }
            let port = u16::try_from(l.integer("port", 1, 65535)?)
                .map_err(|_| err("port", "out of range"))?;
            Discovery::Service {
                host,
                port,
                path: path.clone(),
                scheme: scheme.clone(),
            }
        } else {
            return Err(err(
                "targets",
                "one of `targets` (comma-separated host:port or URLs), `service` (headless Service name) or `httpSd` (discovery URL) is required",
            ));
        };
        let frontends = target_list(&l, "frontendTargets", &scheme, &path)?;

        let engine_text = l.get("engine");
        let engine = Engine::parse(&engine_text).ok_or_else(|| {
            err(
                "engine",
                format!("expected one of {}, got {engine_text:?}", Engine::ACCEPTED),
            )
        })?;
        let model = l.raw("model");

        let min_replicas = l.integer("minReplicas", 0, 10_000)?;
        let max_replicas = l.integer("maxReplicas", 1, 10_000)?;
        if max_replicas < min_replicas {
            return Err(err(
                "maxReplicas",
                format!("must be >= minReplicas ({min_replicas}), got {max_replicas}"),
            ));
        }
        let scrape_interval_ms = l.millis("scrapeIntervalSeconds", 0.05, 3600.0)?;
        let scrape_timeout_ms = l.millis("scrapeTimeoutSeconds", 0.01, 600.0)?;
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
        let window_ms = l.millis("ttftWindowSeconds", 1.0, 3600.0)?;
        if window_ms < scrape_interval_ms * 2 {
            return Err(err(
                "ttftWindowSeconds",
                "must cover at least two scrape intervals",
            ));
        }
        let up = l.number("scaleUpUtilization", 0.05, 1.0)?;
        let down = l.number("scaleDownUtilization", 0.01, 0.99)?;
        if down >= up {
            return Err(err(
                "scaleDownUtilization",
                format!("must be below scaleUpUtilization ({up}), got {down}"),
            ));
        }
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
            engine,
            model,
            signal: SignalConfig {
                ttft_quantile: l.number("ttftQuantile", 0.01, 0.999)?,
                window_ms,
                ttft_min_samples: f64::from(l.integer("ttftMinSamples", 1, 1_000_000)?),
            },
            policy: PolicyConfig {
                min_replicas,
                max_replicas,
                ttft_target_s: l.number("ttftTargetMs", 1.0, 600_000.0)? / 1000.0,
                kv_target: l.number("kvCacheTarget", 0.05, 1.0)?,
                scale_up_utilization: up,
                scale_down_utilization: down,
                concurrency_per_replica: l.number("concurrencyPerReplica", 0.1, 100_000.0)?,
                scale_down_window_ms: l.millis("scaleDownWindowSeconds", 0.0, 86_400.0)?,
                ttft_window_ms: window_ms,
                post_scale_up_hold_ms: l.millis("postScaleUpHoldSeconds", 0.0, 86_400.0)?,
                scale_down_step_ms: l.millis("scaleDownStepSeconds", 0.0, 86_400.0)?,
                scale_down_max_fraction: l.number("scaleDownMaxPercent", 1.0, 100.0)? / 100.0,
                max_scale_up_factor: l.number("maxScaleUpFactor", 1.0, 100.0)?,
                max_scale_up_step: l.integer("maxScaleUpStep", 1, 10_000)?,
                pending_timeout_ms: l.millis("pendingTimeoutSeconds", 1.0, 86_400.0)?,
                stale_hold_ms: l.millis("staleHoldSeconds", 0.0, 86_400.0)?,
                activation_window_ms: l.millis("activationWindowSeconds", 0.0, 86_400.0)?,
                hpa_tolerance: l.number("hpaTolerance", 0.0, 0.5)?,
                config_hash: config_hash(metadata, defaults),
            },
            scrape_interval_ms,
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
            engine: self.engine,
            model: self.model.clone(),
            frontends: self.frontends.clone(),
            signal: self.signal.clone(),
            policy: self.policy.clone(),
            scrape_interval_ms: self.scrape_interval_ms,
        }
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

/// Parses `key=value` pairs given on the command line into a defaults map, validating keys.
pub fn parse_defaults(pairs: &[String]) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut out = BTreeMap::new();
    for pair in pairs
        .iter()
        .flat_map(|p| p.split(','))
        .filter(|p| !p.trim().is_empty())
    {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| err(pair, "expected key=value"))?;
        let key = key.trim();
        if !KEYS.iter().any(|k| k.key == key) {
            return Err(err(key, "unknown key"));
        }
        out.insert(key.to_string(), value.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.policy.min_replicas, 1);
        assert_eq!(c.policy.max_replicas, 10);
        assert_eq!(c.policy.ttft_target_s, 0.5);
        assert_eq!(c.signal.ttft_quantile, 0.95);
        assert_eq!(c.scrape_interval_ms, 5000);
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
        assert_eq!(c.policy.max_replicas, 16);
        assert_eq!(c.policy.ttft_target_s, 0.3);
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
