//! The HTTP side: probes, the scaler's own `/metrics`, and `/debug/scaledobjects`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::clock;
use crate::core::fleet::Signals;
use crate::service::controller::Registry;
use crate::service::telemetry::Telemetry;

/// Shared state of the admin server.
#[derive(Clone)]
pub struct AdminState {
    /// Controllers.
    pub registry: Arc<Registry>,
    /// Own metrics.
    pub telemetry: Telemetry,
    /// Set once both servers are listening; cleared on shutdown.
    pub ready: Arc<AtomicBool>,
    /// File holding the bearer token `/debug/` requires; `None` leaves it open.
    pub token_file: Option<Arc<std::path::PathBuf>>,
}

/// The router. Probes and `/metrics` are open (kubelet and Prometheus need them); `/debug/`
/// needs the bearer token when one is configured.
pub fn router(state: AdminState) -> Router {
    let debug = Router::new()
        .route("/debug/scaledobjects", get(scaledobjects))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(debug)
        .with_state(state)
}

/// Byte comparison whose time does not depend on where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(s): State<AdminState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(path) = &s.token_file else {
        return next.run(request).await;
    };
    // Re-read on each request (a few bytes), so a rotated Secret applies without a restart.
    let expected = match std::fs::read_to_string(path.as_path()) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "debug API token file is unreadable or empty\n",
            )
                .into_response();
        }
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if presented.is_some_and(|p| same_secret(p.as_bytes(), expected.as_bytes())) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required for /debug/\n",
        )
            .into_response()
    }
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic text format for
/// everyone else (curl, promtool, older scrapers), which names counter families with `_total`.
async fn metrics(State(s): State<AdminState>, headers: axum::http::HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let body = s.telemetry.render();
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::service::telemetry::openmetrics_to_text(&body),
        )
            .into_response()
    }
}

/// The signals block of the debug API (the documented contract).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SignalsView {
    /// As in [`Signals`].
    pub ttft_seconds: Option<f64>,
    /// As in [`Signals`].
    pub ttft_saturated: bool,
    /// As in [`Signals`].
    pub ttft_samples: f64,
    /// As in [`Signals`].
    pub kv_usage_mean: Option<f64>,
    /// As in [`Signals`].
    pub kv_usage_max: Option<f64>,
    /// As in [`Signals`].
    pub kv_tokens_used: Option<f64>,
    /// As in [`Signals`].
    pub kv_capacity_tokens: Option<f64>,
    /// As in [`Signals`].
    pub waiting: f64,
    /// As in [`Signals`].
    pub running: f64,
    /// As in [`Signals`].
    pub request_rate: f64,
    /// As in [`Signals`].
    pub preemption_rate: f64,
    /// As in [`Signals`].
    pub fresh_workers: usize,
    /// As in [`Signals`].
    pub discovered_workers: usize,
    /// As in [`Signals`].
    pub starting_workers: usize,
    /// As in [`Signals`].
    pub fresh_frontends: usize,
    /// As in [`Signals`].
    pub discovered_frontends: usize,
    /// As in [`Signals`].
    #[serde(default)]
    pub token_counters: bool,
    /// As in [`Signals`].
    #[serde(default)]
    pub prompt_token_rate: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub generation_token_rate: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub recent_request_rate: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub recent_prompt_token_rate: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub recent_in_flight_growth: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub latest_in_flight_growth: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub latest_request_rate: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub window_in_flight_growth: f64,
    /// As in [`Signals`].
    #[serde(default)]
    pub recent_first_token_rate: Option<f64>,
    /// As in [`Signals`].
    #[serde(default)]
    pub first_token_rate: Option<f64>,
    /// As in [`Signals`].
    #[serde(default)]
    pub itl_seconds: Option<f64>,
}

/// What `/debug/scaledobjects` says of one trigger, as a client reads it back (the demo does);
/// the server writes more fields (candidates, clamps, inputs, targets), which readers may skip.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DebugEntryView {
    /// Namespace.
    pub namespace: String,
    /// ScaledObject name.
    pub name: String,
    /// The trigger's metadata fingerprint.
    pub trigger: String,
    /// The answer GetMetrics gives.
    pub desired_replicas: u32,
    /// The answer IsActive gives.
    pub active: bool,
    /// GetMetrics answers UNAVAILABLE.
    pub unavailable: bool,
    /// Reason code.
    pub reason: crate::core::policy::Reason,
    /// Binding signal.
    pub binding: crate::core::policy::Binding,
    /// Explanation.
    pub detail: String,
    /// The signals of the latest cycle.
    pub signals: SignalsView,
    /// Recent changes of answer or reason, newest last.
    pub history: Vec<crate::core::cycle::HistoryEntry>,
}

impl From<&Signals> for SignalsView {
    fn from(s: &Signals) -> Self {
        SignalsView {
            ttft_seconds: s.ttft_seconds,
            ttft_saturated: s.ttft_saturated,
            ttft_samples: s.ttft_samples,
            kv_usage_mean: s.kv_usage_mean,
            kv_usage_max: s.kv_usage_max,
            kv_tokens_used: s.kv_tokens_used,
            kv_capacity_tokens: s.kv_capacity_tokens,
            waiting: s.waiting,
            running: s.running,
            request_rate: s.request_rate,
            preemption_rate: s.preemption_rate,
            fresh_workers: s.fresh_workers,
            discovered_workers: s.discovered_workers,
            starting_workers: s.starting_workers,
            fresh_frontends: s.fresh_frontends,
            discovered_frontends: s.discovered_frontends,
            token_counters: s.token_counters,
            prompt_token_rate: s.prompt_token_rate,
            generation_token_rate: s.generation_token_rate,
            recent_request_rate: s.recent_request_rate,
            recent_prompt_token_rate: s.recent_prompt_token_rate,
            recent_in_flight_growth: s.recent_in_flight_growth,
            latest_in_flight_growth: s.latest_in_flight_growth,
            latest_request_rate: s.latest_request_rate,
            window_in_flight_growth: s.window_in_flight_growth,
            recent_first_token_rate: s.recent_first_token_rate,
            first_token_rate: s.first_token_rate,
            itl_seconds: s.itl_seconds,
        }
    }
}

async fn scaledobjects(State(s): State<AdminState>) -> Json<Vec<serde_json::Value>> {
    let now = clock::monotonic_ms();
    let list = s
        .registry
        .all()
        .into_iter()
        .filter_map(|c| {
            let snap = c.latest()?;
            // Target URLs may carry credentials (userinfo, `?token=`): shown redacted.
            let targets: Vec<_> = snap
                .targets
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    t.url = crate::redact::url(&t.url);
                    t
                })
                .collect();
            Some(serde_json::json!({
                "namespace": c.labels.namespace,
                "name": c.labels.scaledobject,
                "trigger": c.labels.trigger,
                "desired_replicas": snap.decision.desired,
                "active": snap.decision.active,
                "unavailable": snap.decision.unavailable,
                "reason": snap.decision.reason.as_str(),
                "detail": snap.decision.detail,
                "binding": snap.decision.binding.as_str(),
                "candidates": snap.decision.candidates,
                "clamps": snap.decision.clamps,
                "inputs": snap.decision.inputs,
                "config_hash": snap.decision.config_hash,
                "history": snap.history,
                "signals": SignalsView::from(&snap.signals),
                "targets": targets,
                "cycle": snap.cycle,
                "age_seconds": now.saturating_sub(snap.at_ms) as f64 / 1000.0,
                "metric_name": c.config.metric_name,
                "scrape_interval_seconds": c.config.decision.scrape_interval_ms as f64 / 1000.0,
            }))
        })
        .collect();
    Json(list)
}
