//! The scaler's own Prometheus metrics and the tracing subscriber.
//!
//! Metric names follow Prometheus conventions: `keda_llm_scaler_` prefix, base units
//! (seconds, ratios), `_total` on counters; label values are bounded (namespace and
//! ScaledObject names, bounded reason/kind enums, gRPC method and code).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::core::cycle::Snapshot;
use crate::service::tls::TlsEvent;

/// Labels identifying one trigger of one ScaledObject.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SoLabels {
    /// ScaledObject namespace.
    pub namespace: String,
    /// ScaledObject name.
    pub scaledobject: String,
    /// The trigger: a short fingerprint of its metadata (KEDA sends no trigger index), so two
    /// triggers of one ScaledObject keep separate series.
    pub trigger: String,
}

/// ScaledObject trigger plus a bounded qualifier (reason, stat, state, result).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SoKindLabels {
    /// ScaledObject namespace.
    pub namespace: String,
    /// ScaledObject name.
    pub scaledobject: String,
    /// Bounded qualifier.
    pub kind: String,
    /// The trigger's metadata fingerprint (see [`SoLabels::trigger`]).
    pub trigger: String,
}

/// gRPC method and status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// RPC method name (`GetMetrics`, ...).
    pub method: String,
    /// gRPC status code name (`Ok`, `InvalidArgument`, ...).
    pub code: String,
}

/// A bounded event kind with no ScaledObject (TLS events).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Bounded qualifier.
    pub kind: String,
}

/// gRPC method only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// RPC method name.
    pub method: String,
}

type GaugeF = Gauge<f64, AtomicU64>;

/// All metric families of one server.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    desired: Family<SoLabels, GaugeF>,
    active: Family<SoLabels, GaugeF>,
    ttft: Family<SoLabels, GaugeF>,
    ttft_samples: Family<SoLabels, GaugeF>,
    kv_usage: Family<SoKindLabels, GaugeF>,
    requests: Family<SoKindLabels, GaugeF>,
    request_rate: Family<SoLabels, GaugeF>,
    workers: Family<SoKindLabels, GaugeF>,
    decision_reason: Family<SoKindLabels, GaugeF>,
    data_stale: Family<SoLabels, GaugeF>,
    binding: Family<SoKindLabels, GaugeF>,
    pending: Family<SoLabels, GaugeF>,
    capacity: Family<SoLabels, GaugeF>,
    scrapes: Family<SoKindLabels, Counter>,
    parse_errors: Family<SoLabels, Counter>,
    rpcs: Family<RpcLabels, Counter>,
    rpc_seconds: Family<MethodLabels, Histogram, fn() -> Histogram>,
    controllers: GaugeF,
    ttft_target: Family<SoLabels, GaugeF>,
    last_decision: Family<SoLabels, GaugeF>,
    tls_events: Family<KindLabels, Counter>,
}

fn rpc_histogram() -> Histogram {
    // 10 µs .. ~0.3 s: GetMetrics is expected in the tens of microseconds.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 16))
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("keda_llm_scaler");
        let t = Telemetry {
            registry: Arc::new(Registry::default()),
            desired: Family::default(),
            active: Family::default(),
            ttft: Family::default(),
            ttft_samples: Family::default(),
            kv_usage: Family::default(),
            requests: Family::default(),
            request_rate: Family::default(),
            workers: Family::default(),
            decision_reason: Family::default(),
            data_stale: Family::default(),
            binding: Family::default(),
            pending: Family::default(),
            capacity: Family::default(),
            scrapes: Family::default(),
            parse_errors: Family::default(),
            rpcs: Family::default(),
            rpc_seconds: Family::new_with_constructor(rpc_histogram as fn() -> Histogram),
            ttft_target: Family::default(),
            last_decision: Family::default(),
            tls_events: Family::default(),
            controllers: GaugeF::default(),
        };
        r.register(
            "desired_replicas",
            "Desired replica count answered to KEDA",
            t.desired.clone(),
        );
        r.register(
            "active",
            "1 when the fleet has demand (IsActive)",
            t.active.clone(),
        );
        r.register(
            "ttft_quantile_seconds",
            "Configured TTFT quantile over the window; NaN when undefined",
            t.ttft.clone(),
        );
        r.register(
            "ttft_window_samples",
            "Completed requests in the TTFT window",
            t.ttft_samples.clone(),
        );
        r.register(
            "kv_cache_usage_ratio",
            "KV-cache usage across fresh workers (kind=mean|max)",
            t.kv_usage.clone(),
        );
        r.register(
            "requests",
            "Requests in the fleet (kind=waiting|running)",
            t.requests.clone(),
        );
        r.register(
            "request_rate_per_second",
            "Request completions per second over the window",
            t.request_rate.clone(),
        );
        r.register(
            "workers",
            "Discovered workers by freshness (kind=fresh|stale)",
            t.workers.clone(),
        );
        r.register(
            "decision_reason",
            "1 for the reason of the current decision",
            t.decision_reason.clone(),
        );
        r.register(
            "data_stale",
            "1 while the controller holds on stale or missing data",
            t.data_stale.clone(),
        );
        r.register(
            "scrapes",
            "Scrapes by result (kind=ok or a stale reason)",
            t.scrapes.clone(),
        );
        r.register(
            "parse_errors",
            "Malformed exposition lines skipped",
            t.parse_errors.clone(),
        );
        r.register(
            "grpc_requests",
            "gRPC requests by method and status code",
            t.rpcs.clone(),
        );
        r.register(
            "grpc_request_duration_seconds",
            "gRPC handling time by method",
            t.rpc_seconds.clone(),
        );
        r.register(
            "controllers",
            "ScaledObject controllers running",
            t.controllers.clone(),
        );
        r.register(
            "binding_signal",
            "1 for the signal that set the current answer (kind=concurrency|kv_cache|backlog|latency|none)",
            t.binding.clone(),
        );
        r.register(
            "pending_replicas",
            "Replicas asked for and not serving yet, counted as supply",
            t.pending.clone(),
        );
        r.register(
            "capacity_per_replica",
            "Calibrated requests in flight one replica takes at the TTFT knee",
            t.capacity.clone(),
        );
        r.register(
            "ttft_target_seconds",
            "TTFT SLO the quantile is held under (ttftTargetMs)",
            t.ttft_target.clone(),
        );
        r.register(
            "last_decision_timestamp_seconds",
            "Unix time of the latest decision; time() minus this is the answer's age",
            t.last_decision.clone(),
        );
        r.register(
            "tls_events",
            "TLS handshakes that failed or timed out, and certificate reloads done or rejected",
            t.tls_events.clone(),
        );
        // Every family is exported from the start ("avoid missing metrics"): a dashboard's
        // rate() over TLS events has a series before the first handshake fails.
        for e in TlsEvent::ALL {
            t.tls_events
                .get_or_create(&KindLabels {
                    kind: e.as_str().to_string(),
                })
                .inc_by(0);
        }
        Telemetry {
            registry: Arc::new(r),
            ..t
        }
    }

    /// Renders the registry as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Records one RPC.
    pub fn rpc(&self, method: &str, code: tonic::Code, seconds: f64) {
        self.rpcs
            .get_or_create(&RpcLabels {
                method: method.to_string(),
                code: format!("{code:?}"),
            })
            .inc();
        self.rpc_seconds
            .get_or_create(&MethodLabels {
                method: method.to_string(),
            })
            .observe(seconds);
    }

    /// Records one scrape result.
    pub fn scrape(&self, so: &SoLabels, result: &str, parse_errors: usize) {
        self.scrapes.get_or_create(&kind(so, result)).inc();
        // Created at zero on the first scrape so rate() has a series before the first error.
        self.parse_errors
            .get_or_create(so)
            .inc_by(parse_errors as u64);
    }

    /// Counts a TLS event.
    pub fn tls_event(&self, event: TlsEvent) {
        self.tls_events
            .get_or_create(&KindLabels {
                kind: event.as_str().to_string(),
            })
            .inc();
    }

    /// Sets the number of running controllers.
    pub fn set_controllers(&self, n: usize) {
        self.controllers.set(n as f64);
    }

    /// Publishes a snapshot's figures.
    pub fn publish(&self, so: &SoLabels, snap: &Snapshot, ttft_target_seconds: f64) {
        let s = &snap.signals;
        let d = &snap.decision;
        self.ttft_target.get_or_create(so).set(ttft_target_seconds);
        self.last_decision
            .get_or_create(so)
            .set(crate::clock::unix_seconds());
        self.desired.get_or_create(so).set(f64::from(d.desired));
        self.active
            .get_or_create(so)
            .set(if d.active { 1.0 } else { 0.0 });
        self.ttft
            .get_or_create(so)
            .set(s.ttft_seconds.unwrap_or(f64::NAN));
        self.ttft_samples.get_or_create(so).set(s.ttft_samples);
        self.kv_usage
            .get_or_create(&kind(so, "mean"))
            .set(s.kv_usage_mean.unwrap_or(f64::NAN));
        self.kv_usage
            .get_or_create(&kind(so, "max"))
            .set(s.kv_usage_max.unwrap_or(f64::NAN));
        self.requests
            .get_or_create(&kind(so, "waiting"))
            .set(s.waiting);
        self.requests
            .get_or_create(&kind(so, "running"))
            .set(s.running);
        self.request_rate.get_or_create(so).set(s.request_rate);
        self.workers
            .get_or_create(&kind(so, "fresh"))
            .set(s.fresh_workers as f64);
        self.workers
            .get_or_create(&kind(so, "starting"))
            .set(s.starting_workers as f64);
        // Starting pods (never answered yet) are pending supply, not stale data.
        self.workers.get_or_create(&kind(so, "stale")).set(
            s.discovered_workers
                .saturating_sub(s.fresh_workers)
                .saturating_sub(s.starting_workers) as f64,
        );
        for reason in crate::core::policy::Reason::ALL {
            let on = if reason == d.reason { 1.0 } else { 0.0 };
            self.decision_reason
                .get_or_create(&kind(so, reason.as_str()))
                .set(on);
        }
        for b in crate::core::policy::Binding::ALL {
            let on = if b == d.binding { 1.0 } else { 0.0 };
            self.binding.get_or_create(&kind(so, b.as_str())).set(on);
        }
        self.pending
            .get_or_create(so)
            .set(f64::from(d.inputs.pending));
        self.capacity
            .get_or_create(so)
            .set(d.inputs.capacity_per_replica);
        let stale = d.reason == crate::core::policy::Reason::DataStale;
        self.data_stale
            .get_or_create(so)
            .set(if stale { 1.0 } else { 0.0 });
    }

    /// Drops every series of a ScaledObject whose controller stopped.
    pub fn forget(&self, so: &SoLabels) {
        for f in [
            &self.desired,
            &self.active,
            &self.ttft,
            &self.ttft_samples,
            &self.request_rate,
            &self.data_stale,
            &self.ttft_target,
            &self.last_decision,
            &self.pending,
            &self.capacity,
        ] {
            f.remove(so);
        }
        self.parse_errors.remove(so);
        let kinds = [
            "mean", "max", "waiting", "running", "fresh", "starting", "stale", "ok",
        ];
        let reasons = crate::core::policy::Reason::ALL.map(|r| r.as_str());
        let stale_kinds = crate::core::fleet::StaleKind::ALL.map(|k| k.as_str());
        let bindings = crate::core::policy::Binding::ALL.map(|b| b.as_str());
        for k in kinds
            .iter()
            .chain(&reasons)
            .chain(&stale_kinds)
            .chain(&bindings)
        {
            let l = kind(so, k);
            self.kv_usage.remove(&l);
            self.requests.remove(&l);
            self.workers.remove(&l);
            self.decision_reason.remove(&l);
            self.scrapes.remove(&l);
            self.binding.remove(&l);
        }
    }
}

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4: counter families are named with
/// their `_total` suffix in `# HELP`/`# TYPE`, and `# UNIT` and `# EOF` lines are dropped.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{tag}{name}_total {tail}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn kind(so: &SoLabels, k: &str) -> SoKindLabels {
    SoKindLabels {
        namespace: so.namespace.clone(),
        scaledobject: so.scaledobject.clone(),
        kind: k.to_string(),
        trigger: so.trigger.clone(),
    }
}

/// Installs the global tracing subscriber: human-readable text, or JSON lines. `RUST_LOG`
/// wins over `default_level`.
pub fn init_tracing(json: bool, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A subscriber may already be installed (tests); that one keeps working.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counters_with_total_and_drops_openmetrics_only_lines() {
        let om = "# HELP x_scrapes Scrapes.\n# TYPE x_scrapes counter\nx_scrapes_total{kind=\"ok\"} 3\n# HELP x_up Up.\n# TYPE x_up gauge\n# UNIT x_up ratio\nx_up 1.0\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP x_scrapes_total Scrapes.\n# TYPE x_scrapes_total counter\nx_scrapes_total{kind=\"ok\"} 3\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1.0\n"
        );
    }
}
