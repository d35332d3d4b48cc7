//! Fetches one metrics page: bounded time, bounded size, bounded concurrency.
//!
//! A failed, slow, oversized or undecodable scrape becomes a [`StaleReason`] for that target;
//! it never blocks other targets (each runs in its own task) or any RPC (RPCs only read
//! snapshots).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::core::fleet::{StaleKind, StaleReason};

/// Limits shared by every controller of one server.
#[derive(Debug, Clone)]
pub struct ScrapeLimits {
    /// Largest accepted (decompressed) body, bytes.
    pub max_body_bytes: usize,
    /// Concurrent scrapes across the whole server.
    pub concurrency: usize,
}

impl Default for ScrapeLimits {
    fn default() -> Self {
        ScrapeLimits {
            max_body_bytes: 8 << 20,
            concurrency: 64,
        }
    }
}

/// A shared HTTP client plus the server-wide concurrency bound.
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    max_body_bytes: usize,
}

fn stale(kind: StaleKind, detail: impl Into<String>) -> StaleReason {
    StaleReason {
        kind,
        detail: detail.into(),
    }
}

impl Scraper {
    /// Builds the client. Redirects are not followed: a target is the URL it was given.
    pub fn new(limits: &ScrapeLimits) -> Result<Scraper, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("keda-llm-scaler/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Scraper {
            client,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            max_body_bytes: limits.max_body_bytes,
        })
    }

    /// Fetches `url` within `timeout` (waiting for a concurrency permit included).
    pub async fn fetch(&self, url: &str, timeout: Duration) -> Result<String, StaleReason> {
        match tokio::time::timeout(timeout, self.fetch_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(stale(
                StaleKind::Timeout,
                format!("no complete answer within {timeout:?}"),
            )),
        }
    }

    async fn fetch_unbounded(&self, url: &str) -> Result<String, StaleReason> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| stale(StaleKind::Connect, "scraper shut down"))?;
        // Python clients would rename `vllm:` to `vllm_` in OpenMetrics; ask for 0.0.4 text.
        let mut resp = self
            .client
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(|e| stale(StaleKind::Connect, error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(stale(StaleKind::HttpStatus, format!("HTTP {status}")));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(stale(
                StaleKind::BodyTooLarge,
                format!("Content-Length over {} bytes", self.max_body_bytes),
            ));
        }
        let mut body = Vec::with_capacity(resp.content_length().map_or(64 << 10, |n| n as usize));
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| stale(StaleKind::Body, error_chain(&e)))?
        {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(stale(
                    StaleKind::BodyTooLarge,
                    format!("body over {} bytes", self.max_body_bytes),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| stale(StaleKind::Body, "body is not UTF-8"))
    }
}

/// `reqwest` hides the useful part (refused, reset, DNS) in the source chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
