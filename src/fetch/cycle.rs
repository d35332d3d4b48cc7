//! One fetch cycle of a ScaledObject trigger: discover its targets, fetch every page
//! concurrently within the trigger's slots and timeout, and hand each page (or why there is
//! none) to a reader. The controller reads pages into observations; `record` writes them down.
//! Both get the same discovery, allow-list checks and failure handling from here.

use std::time::Duration;

use tokio::task::JoinSet;
use tracing::warn;

use crate::config::{Discovery, ScalerConfig};
use crate::core::fleet::{StaleKind, StaleReason, TargetRole};
use crate::fetch::discover::discover;
use crate::fetch::scrape::{Scraper, Slots};

/// What a fetch gave for one target: the page, or why there is none.
pub type Page = Result<String, StaleReason>;

fn discovery_source(d: &Discovery) -> String {
    match d {
        Discovery::Static(_) => "static targets".into(),
        Discovery::HttpSd { url, .. } => url.clone(),
        Discovery::Service { host, port, .. } => format!("{host}:{port}"),
    }
}

/// Discovers and fetches every target of one cycle concurrently and returns what `read` made
/// of each page, in target order. `read` runs on the blocking pool (parsing a 57 KB page is
/// ~90 µs of CPU; a thousand arriving together must not delay the RPCs KEDA waits on). If
/// discovery fails, the previously known workers are read as failed with the discovery error,
/// so the policy holds instead of seeing an empty fleet; with none known yet, the discovery
/// itself is the failed target, so its reason reaches the debug API and the counters.
pub async fn fetch_cycle<T: Send + 'static>(
    config: &ScalerConfig,
    scraper: &Scraper,
    slots: &Slots,
    known_workers: Vec<String>,
    read: impl Fn(String, TargetRole, Page) -> T + Clone + Send + Sync + 'static,
) -> Vec<T> {
    let timeout = Duration::from_millis(config.scrape_timeout_ms);
    let mut out: Vec<(String, T)> = Vec::new();
    let mut targets: Vec<(String, TargetRole, bool)> = Vec::new();
    // Pod IPs from an allowed Service name were checked as the name resolved.
    let vouched = matches!(config.discovery, Discovery::Service { .. });
    match discover(&config.discovery, scraper, slots, timeout).await {
        Ok(urls) => targets.extend(urls.into_iter().map(|u| (u, TargetRole::Worker, vouched))),
        Err(e) => {
            let reason = StaleReason {
                kind: e.kind(),
                detail: crate::redact::text(&e.to_string()),
            };
            let ids = if known_workers.is_empty() {
                vec![format!(
                    "discovery: {}",
                    crate::redact::url(&discovery_source(&config.discovery))
                )]
            } else {
                known_workers
            };
            for id in ids {
                let value = read(id.clone(), TargetRole::Worker, Err(reason.clone()));
                out.push((id, value));
            }
        }
    }
    targets.extend(
        config
            .frontends
            .iter()
            .map(|u| (u.clone(), TargetRole::Frontend, false)),
    );

    let mut tasks = JoinSet::new();
    for (url, role, vouched) in targets {
        let scraper = scraper.clone();
        let slots = slots.clone();
        let read = read.clone();
        tasks.spawn(async move {
            let page = if vouched {
                scraper.fetch_vouched(&url, timeout, &slots).await
            } else {
                scraper.fetch(&url, timeout, &slots).await
            };
            let id = url.clone();
            let reader = read.clone();
            let value = match tokio::task::spawn_blocking(move || reader(url, role, page)).await {
                Ok(v) => v,
                Err(e) => read(
                    id.clone(),
                    role,
                    Err(StaleReason {
                        kind: StaleKind::Body,
                        detail: format!("reading the page failed: {e}"),
                    }),
                ),
            };
            (id, value)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(x) => out.push(x),
            Err(e) => warn!(error = %e, "fetch task failed"),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}
