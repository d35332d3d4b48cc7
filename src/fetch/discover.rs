//! Which targets to scrape this cycle: a static list, or one URL per A/AAAA record of a
//! headless Service (re-resolved every cycle, so new and departed pods show up without
//! a Kubernetes API watch or RBAC).

use std::net::IpAddr;
use std::time::Duration;

use crate::config::Discovery;
use crate::core::fleet::StaleKind;
use crate::fetch::scrape::{Scraper, Slots};

/// Discovery failed; the controller keeps the previous target set and marks it stale.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoverError {
    /// The resolver answered with an error.
    #[error("DNS lookup of {host} failed: {message}")]
    Lookup {
        /// Name looked up.
        host: String,
        /// Resolver message.
        message: String,
    },
    /// The resolver did not answer in time.
    #[error("DNS lookup of {host} timed out")]
    Timeout {
        /// Name looked up.
        host: String,
    },
    /// Discovery returned more targets than one ScaledObject may have.
    #[error(
        "discovery returned {found} targets, over the limit of {limit} per ScaledObject (--max-targets-per-scaledobject)"
    )]
    TooMany {
        /// Targets found.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// Every address the Service resolved to is outside `--allow-targets`.
    #[error("{host} resolves to {found} address(es), none allowed by --allow-targets")]
    NotAllowed {
        /// Name looked up.
        host: String,
        /// Addresses found.
        found: usize,
    },
    /// The HTTP service-discovery endpoint failed or answered something else than the
    /// Prometheus HTTP SD format.
    #[error("service discovery {url}: {message}")]
    HttpSd {
        /// The endpoint.
        url: String,
        /// Why.
        message: String,
        /// The endpoint (or a target it named) is outside `--allow-targets`.
        not_allowed: bool,
    },
}

impl DiscoverError {
    /// The stale kind the workers held on this failure get: `not_allowed` when the allow-list
    /// refused, `discovery` for everything else (never `connect`, which names a worker).
    pub fn kind(&self) -> StaleKind {
        match self {
            DiscoverError::NotAllowed { .. }
            | DiscoverError::HttpSd {
                not_allowed: true, ..
            } => StaleKind::NotAllowed,
            _ => StaleKind::Discovery,
        }
    }
}

#[derive(serde::Deserialize)]
struct SdGroup {
    targets: Vec<String>,
}

/// Metrics URL of one pod IP.
pub fn url_for(scheme: &str, ip: IpAddr, port: u16, path: &str) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}{path}"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}{path}"),
    }
}

/// Resolves the targets of one cycle, sorted and de-duplicated. More than the per-ScaledObject
/// limit is an error (the previous targets are held stale), never a silent truncation, which
/// would look like a smaller fleet.
pub async fn discover(
    discovery: &Discovery,
    scraper: &Scraper,
    slots: &Slots,
    timeout: Duration,
) -> Result<Vec<String>, DiscoverError> {
    let urls = discover_unbounded(discovery, scraper, slots, timeout).await?;
    if urls.len() > scraper.max_targets() {
        return Err(DiscoverError::TooMany {
            found: urls.len(),
            limit: scraper.max_targets(),
        });
    }
    Ok(urls)
}

async fn discover_unbounded(
    discovery: &Discovery,
    scraper: &Scraper,
    slots: &Slots,
    timeout: Duration,
) -> Result<Vec<String>, DiscoverError> {
    match discovery {
        Discovery::Static(urls) => Ok(urls.clone()),
        Discovery::HttpSd { url, path, scheme } => {
            let fail = |message: String, not_allowed: bool| DiscoverError::HttpSd {
                url: url.clone(),
                message,
                not_allowed,
            };
            let body = scraper
                .fetch(url, timeout, slots)
                .await
                .map_err(|r| fail(r.detail, r.kind == StaleKind::NotAllowed))?;
            let groups: Vec<SdGroup> = serde_json::from_str(&body)
                .map_err(|e| fail(format!("not HTTP SD JSON: {e}"), false))?;
            let mut urls = Vec::new();
            for t in groups.into_iter().flat_map(|g| g.targets) {
                urls.push(
                    crate::config::target_url("httpSd", &t, scheme, path)
                        .map_err(|e| fail(e.to_string(), false))?,
                );
            }
            urls.sort();
            urls.dedup();
            Ok(urls)
        }
        Discovery::Service {
            host,
            port,
            path,
            scheme,
        } => {
            let lookup = tokio::net::lookup_host((host.as_str(), *port));
            let addrs = tokio::time::timeout(timeout, lookup)
                .await
                .map_err(|_| DiscoverError::Timeout { host: host.clone() })?
                .map_err(|e| DiscoverError::Lookup {
                    host: host.clone(),
                    message: e.to_string(),
                })?;
            let addrs: Vec<std::net::SocketAddr> = addrs.collect();
            let found = addrs.len();
            let allowed = scraper.allow_list().filter_resolved(host, addrs);
            if found > 0 && allowed.is_empty() {
                return Err(DiscoverError::NotAllowed {
                    host: host.clone(),
                    found,
                });
            }
            let mut urls: Vec<String> = allowed
                .into_iter()
                .map(|a| url_for(scheme, a.ip(), *port, path))
                .collect();
            urls.sort();
            urls.dedup();
            Ok(urls)
        }
    }
}
