//! The metadata keys: each key's name, type and range, default and meaning in one table
//! ([`KEYS`]) that the parser, the `keys` command, the README table and validation all read,
//! and the lookup that reads a key from the trigger metadata, then the server defaults, then
//! the table.

use std::collections::BTreeMap;

/// What a key's value must be: the type and, for numbers, the accepted range. The parser, the
/// `keys` table and the README read the same value, so a range lives in one place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Comma-separated `host:port` or `http(s)://` URLs.
    List,
    /// Free text.
    Text,
    /// An `http://` or `https://` URL.
    Url,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A name KEDA and the HPA accept: lowercase `[a-z0-9-]`, at most 63 characters.
    Name,
    /// An integer in `[min, max]`.
    Integer {
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// A number in `[min, max]` (in the key's unit: seconds, milliseconds, percent, ...).
    Number {
        /// Smallest accepted.
        min: f64,
        /// Largest accepted.
        max: f64,
    },
}

impl Value {
    /// The type as the keys table shows it.
    pub fn describe(&self) -> String {
        match self {
            Value::List => "list".into(),
            Value::Text => "string".into(),
            Value::Url => "URL".into(),
            Value::OneOf(words) => format!(
                "one of {}",
                words
                    .iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Name => "string `[a-z0-9-]`, at most 63".into(),
            Value::Integer { min, max } => format!("integer in [{min}, {max}]"),
            Value::Number { min, max } => format!("number in [{min}, {max}]"),
        }
    }
}

/// One documented metadata key: name, type and range, default, meaning.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// camelCase key as written in the ScaledObject.
    pub key: &'static str,
    /// Type and accepted range.
    pub value: Value,
    /// Default ("" = none).
    pub default: &'static str,
    /// Meaning, one sentence.
    pub meaning: &'static str,
}

/// Every metadata key the scaler accepts, with defaults. The single source of defaults.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "targets",
        value: Value::List,
        default: "",
        meaning: "Comma-separated worker `host:port` or `http(s)://` URLs to scrape. Exactly one of `targets`, `service` and `httpSd` is required.",
    },
    KeySpec {
        key: "service",
        value: Value::Text,
        default: "",
        meaning: "Headless Service (`name`, `name.namespace` or FQDN) resolved by DNS every cycle, one worker per A/AAAA record.",
    },
    KeySpec {
        key: "httpSd",
        value: Value::Url,
        default: "",
        meaning: "Prometheus HTTP service-discovery endpoint (`[{\"targets\": [\"host:port\"]}]`) fetched every cycle, one worker per target; for fleets outside Kubernetes and the demo.",
    },
    KeySpec {
        key: "port",
        value: Value::Integer { min: 1, max: 65535 },
        default: "",
        meaning: "Metrics port of the pods behind `service` (required with `service`).",
    },
    KeySpec {
        key: "metricsPath",
        value: Value::Text,
        default: "/metrics",
        meaning: "HTTP path of the metrics endpoint for `service` and bare `host:port` targets.",
    },
    KeySpec {
        key: "scheme",
        value: Value::OneOf(&["http", "https"]),
        default: "http",
        meaning: "Scheme for `service` and bare `host:port` targets.",
    },
    KeySpec {
        key: "frontendTargets",
        value: Value::List,
        default: "",
        meaning: "Dynamo frontend endpoints; when set, TTFT, queue and request rate come from them and KV from the workers.",
    },
    KeySpec {
        key: "engine",
        value: Value::OneOf(&["auto", "vllm", "dynamo", "sglang", "trtllm"]),
        default: "auto",
        meaning: "Metric dialect; `auto` detects it from the families present.",
    },
    KeySpec {
        key: "model",
        value: Value::Text,
        default: "",
        meaning: "Only read series whose `model`/`model_name` label equals this (case-insensitive); empty reads all.",
    },
    KeySpec {
        key: "minReplicas",
        value: Value::Integer {
            min: 0,
            max: 10_000,
        },
        default: "1",
        meaning: "Lower bound of the answer.",
    },
    KeySpec {
        key: "maxReplicas",
        value: Value::Integer {
            min: 1,
            max: 10_000,
        },
        default: "10",
        meaning: "Upper bound of the answer.",
    },
    KeySpec {
        key: "ttftTargetMs",
        value: Value::Number {
            min: 1.0,
            max: 600_000.0,
        },
        default: "500",
        meaning: "TTFT SLO in milliseconds: the fleet is sized so that the predicted TTFT quantile stays under it.",
    },
    KeySpec {
        key: "itlTargetMs",
        value: Value::Number {
            min: 1.0,
            max: 60_000.0,
        },
        default: "50",
        meaning: "Inter-token latency SLO (mean over the window) in milliseconds; sized for like the TTFT.",
    },
    KeySpec {
        key: "ttftQuantile",
        value: Value::Number {
            min: 0.01,
            max: 0.999,
        },
        default: "0.95",
        meaning: "Quantile of TTFT to hold under the target.",
    },
    KeySpec {
        key: "ttftWindowSeconds",
        value: Value::Number {
            min: 1.0,
            max: 3600.0,
        },
        default: "60",
        meaning: "Sliding window for the TTFT quantile and request rates.",
    },
    KeySpec {
        key: "ttftMinSamples",
        value: Value::Integer {
            min: 1,
            max: 1_000_000,
        },
        default: "20",
        meaning: "With fewer completions in the window the quantile is undefined (no evidence, never 0).",
    },
    KeySpec {
        key: "kvCacheTarget",
        value: Value::Number {
            min: 0.05,
            max: 1.0,
        },
        default: "0.8",
        meaning: "KV usage fraction to keep each replica under.",
    },
    KeySpec {
        key: "scrapeIntervalSeconds",
        value: Value::Number {
            min: 0.05,
            max: 3600.0,
        },
        default: "5",
        meaning: "Scrape and decision period of this ScaledObject's controller.",
    },
    KeySpec {
        key: "scrapeTimeoutSeconds",
        value: Value::Number {
            min: 0.01,
            max: 600.0,
        },
        default: "2",
        meaning: "Per-target scrape timeout, the wait for a scrape slot included; at most the interval (unset: 2 s, or 80 % of a shorter interval).",
    },
    KeySpec {
        key: "scaleDownWindowSeconds",
        value: Value::Number {
            min: 0.0,
            max: 86_400.0,
        },
        default: "",
        meaning: "Deprecated: how long a lower need must hold before replicas are removed; unset, one learned capacity lead time (pod start, plus node provisioning when pods wait for nodes).",
    },
    KeySpec {
        key: "scaleUpUtilization",
        value: Value::Number {
            min: 0.05,
            max: 1.0,
        },
        default: "0.8",
        meaning: "Deprecated, ignored: the utilisation ceiling now follows from the SLOs and the learned base latency.",
    },
    KeySpec {
        key: "scaleDownUtilization",
        value: Value::Number {
            min: 0.01,
            max: 0.99,
        },
        default: "0.6",
        meaning: "Deprecated, ignored: a scale-down now plans the remaining fleet at 0.85 of the SLO's ceiling.",
    },
    KeySpec {
        key: "concurrencyPerReplica",
        value: Value::Number {
            min: 0.1,
            max: 100_000.0,
        },
        default: "48",
        meaning: "Deprecated seed of the concurrency fallback (requests in flight per replica), used only until the prefill capacity is learned from the token counters, or where they are absent; calibrated online within 0.5x-4x from TTFT.",
    },
    KeySpec {
        key: "postScaleUpHoldSeconds",
        value: Value::Number {
            min: 0.0,
            max: 86_400.0,
        },
        default: "600",
        meaning: "Deprecated, ignored: the scale-down hold is one capacity lead time.",
    },
    KeySpec {
        key: "scaleDownStepSeconds",
        value: Value::Number {
            min: 0.0,
            max: 86_400.0,
        },
        default: "120",
        meaning: "Deprecated, ignored: a scale-down removes what the plan allows in one step.",
    },
    KeySpec {
        key: "scaleDownMaxPercent",
        value: Value::Number {
            min: 1.0,
            max: 100.0,
        },
        default: "10",
        meaning: "Deprecated, ignored (see `scaleDownStepSeconds`).",
    },
    KeySpec {
        key: "maxScaleUpFactor",
        value: Value::Number {
            min: 1.0,
            max: 100.0,
        },
        default: "2",
        meaning: "Scale up at most to this multiple of supply per decision, or by `maxScaleUpStep`, whichever is larger.",
    },
    KeySpec {
        key: "maxScaleUpStep",
        value: Value::Integer {
            min: 1,
            max: 10_000,
        },
        default: "4",
        meaning: "Additive scale-up allowance per decision (see `maxScaleUpFactor`).",
    },
    KeySpec {
        key: "pendingTimeoutSeconds",
        value: Value::Number {
            min: 1.0,
            max: 86_400.0,
        },
        default: "600",
        meaning: "An ordered replica not serving by then stops counting as supply (reason `capacity_blocked`); an order the fleet no longer needs is withdrawn at once.",
    },
    KeySpec {
        key: "headroomPercent",
        value: Value::Number {
            min: 0.0,
            max: 500.0,
        },
        default: "0",
        meaning: "Warm capacity: this percentage of the sized need is added on top (burst tolerance and cold-start cover, paid in GPUs).",
    },
    KeySpec {
        key: "spareReplicas",
        value: Value::Integer { min: 0, max: 1000 },
        default: "0",
        meaning: "Warm capacity: this many replicas are added on top of the sized need (and its headroom) whenever there is demand. Where GPU nodes are provisioned on demand (minutes), `1` is recommended: in the arena it takes the diurnal day from 90.8 % to 100 % of requests within the SLO and the ramp from 86.9 % to 99.9 % (BENCHMARKS.md, node provisioning).",
    },
    KeySpec {
        key: "hpaTolerance",
        value: Value::Number { min: 0.0, max: 0.5 },
        default: "0",
        meaning: "The HPA tolerance of your cluster; set 0.1 where `behavior.*.tolerance: 0` is not supported, so small scale-ups are pushed past the dead band.",
    },
    KeySpec {
        key: "activationWindowSeconds",
        value: Value::Number {
            min: 0.0,
            max: 86_400.0,
        },
        default: "300",
        meaning: "IsActive stays true this long after the last sign of demand.",
    },
    KeySpec {
        key: "staleHoldSeconds",
        value: Value::Number {
            min: 0.0,
            max: 86_400.0,
        },
        default: "120",
        meaning: "After this long without fresh data, GetMetrics returns UNAVAILABLE so KEDA's `fallback` takes over.",
    },
    KeySpec {
        key: "metricName",
        value: Value::Name,
        default: "llm-desired-replicas",
        meaning: "Name of the single metric reported to KEDA (stable for the ScaledObject's lifetime).",
    },
];

/// Keys KEDA itself puts in the trigger metadata; accepted and ignored.
pub(crate) const KEDA_KEYS: &[&str] = &["scalerAddress", "enableTLS", "unsafeSsl"];

/// A metadata problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata key `{key}`: {message}")]
pub struct MetadataError {
    /// The offending key (or the key that is missing).
    pub key: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

pub(crate) fn err(key: &str, message: impl Into<String>) -> MetadataError {
    MetadataError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Looks keys up in the trigger metadata first, then in the server-wide defaults.
pub(crate) struct Lookup<'a> {
    pub(crate) metadata: &'a BTreeMap<String, String>,
    pub(crate) defaults: &'a BTreeMap<String, String>,
}

impl Lookup<'_> {
    pub(crate) fn raw(&self, key: &str) -> Option<String> {
        let from = |m: &BTreeMap<String, String>| {
            m.get(key)
                .or_else(|| m.get(&format!("{key}FromEnv")))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        from(self.metadata).or_else(|| from(self.defaults))
    }

    pub(crate) fn get(&self, key: &str) -> String {
        self.raw(key)
            .unwrap_or_else(|| spec(key).default.to_string())
    }

    pub(crate) fn number(&self, key: &str) -> Result<f64, MetadataError> {
        let Value::Number { min, max } = spec(key).value else {
            return Err(err(key, "is not a numeric key (KEYS)"));
        };
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

    pub(crate) fn integer(&self, key: &str) -> Result<u32, MetadataError> {
        let Value::Integer { min, max } = spec(key).value else {
            return Err(err(key, "is not an integer key (KEYS)"));
        };
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

    /// A number of seconds, as milliseconds.
    pub(crate) fn millis(&self, key: &str) -> Result<u64, MetadataError> {
        Ok((self.number(key)? * 1000.0).round() as u64)
    }
}

pub(crate) fn spec(key: &str) -> &'static KeySpec {
    KEYS.iter()
        .find(|k| k.key == key)
        .unwrap_or_else(|| panic!("metadata key {key} missing from KEYS"))
}
