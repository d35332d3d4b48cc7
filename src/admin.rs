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
use crate::controller::Registry;
use crate::core::fleet::Signals;
use crate::telemetry::Telemetry;

/// Shared state of the admin server.
#[derive(Clone)]
pub struct AdminState {
    /// Controllers.
    pub registry: Arc<Registry>,
    /// Own metrics.
    pub telemetry: Telemetry,
    /// Set once both servers are listening; cleared on shutdown.
    pub ready: Arc<AtomicBool>,
}

/// The router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/debug/scaledobjects", get(scaledobjects))
        .with_state(state)
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
            crate::telemetry::openmetrics_to_text(&body),
        )
            .into_response()
    }
}

/// The signals block of the debug API (the documented contract).
#[derive(Serialize)]
struct SignalsView {
    ttft_seconds: Option<f64>,
    ttft_saturated: bool,
    ttft_samples: f64,
    kv_usage_mean: Option<f64>,
    kv_usage_max: Option<f64>,
    kv_tokens_used: Option<f64>,
    kv_capacity_tokens: Option<f64>,
    waiting: f64,
    running: f64,
    request_rate: f64,
    preemption_rate: f64,
    fresh_workers: usize,
    total_workers: usize,
    fresh_frontends: usize,
    total_frontends: usize,
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
            total_workers: s.total_workers,
            fresh_frontends: s.fresh_frontends,
            total_frontends: s.total_frontends,
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
            Some(serde_json::json!({
                "namespace": c.labels.namespace,
                "name": c.labels.scaledobject,
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
                "targets": snap.targets,
                "cycle": snap.cycle,
                "age_seconds": now.saturating_sub(snap.at_ms) as f64 / 1000.0,
                "metric_name": c.config.metric_name,
                "scrape_interval_seconds": c.config.scrape_interval_ms as f64 / 1000.0,
            }))
        })
        .collect();
    Json(list)
}
