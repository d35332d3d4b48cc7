//! Fetches one metrics page: bounded time, bounded size, bounded concurrency.
//!
//! A failed, slow, oversized or undecodable scrape becomes a [`StaleReason`] for that target;
//! it never blocks other targets (each runs in its own task) or any RPC (RPCs only read
//! snapshots).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::fleet::{StaleKind, StaleReason};
use crate::fetch::allow::{AllowList, AllowingResolver};

/// Limits shared by every controller of one server.
#[derive(Debug, Clone)]
pub struct ScrapeLimits {
    /// Largest accepted (decompressed) body, bytes.
    pub max_body_bytes: usize,
    /// Concurrent scrapes across the whole server.
    pub concurrency: usize,
    /// Concurrent scrapes of one ScaledObject (its own slow targets wait on each other, not on
    /// other ScaledObjects').
    pub concurrency_per_scaledobject: usize,
    /// Concurrent scrapes of all ScaledObjects of one namespace, so one tenant cannot hold
    /// every server-wide slot.
    pub concurrency_per_namespace: usize,
    /// Honour `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` for scrapes. Off by default: pods scrape
    /// pod IPs, and a proxy would fetch names the allow-list never saw resolve.
    pub use_proxy: bool,
    /// Most lines (series and comments) a page may have; a label explosion beyond it marks
    /// the target stale instead of costing parse time and memory.
    pub max_series: usize,
    /// Where targets may be.
    pub allow: Arc<AllowList>,
    /// Most targets one ScaledObject may have (static, or discovered in one cycle).
    pub max_targets: usize,
    /// PEM CA bundle trusted for `https://` targets (none: HTTPS targets cannot be verified).
    pub ca_pem: Option<Vec<u8>>,
    /// File holding a bearer token sent with every scrape, re-read each time (rotating
    /// projected tokens keep working).
    pub bearer_token_file: Option<std::path::PathBuf>,
}

/// Default largest body, bytes (`--max-body-bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;
/// Default concurrent scrapes (`--scrape-concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default concurrent scrapes of one ScaledObject (`--scrape-concurrency-per-scaledobject`).
pub const DEFAULT_CONCURRENCY_PER_SCALEDOBJECT: usize = 16;
/// Default concurrent scrapes of one namespace (`--scrape-concurrency-per-namespace`): half
/// the server's, so no one tenant can hold every slot.
pub const DEFAULT_CONCURRENCY_PER_NAMESPACE: usize = 32;
/// Default most lines per page (`--max-series-per-scrape`).
pub const DEFAULT_MAX_SERIES: usize = 50_000;
/// Default most targets per ScaledObject (`--max-targets-per-scaledobject`).
pub const DEFAULT_MAX_TARGETS: usize = 2_000;

impl Default for ScrapeLimits {
    fn default() -> Self {
        ScrapeLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            concurrency: DEFAULT_CONCURRENCY,
            concurrency_per_scaledobject: DEFAULT_CONCURRENCY_PER_SCALEDOBJECT,
            concurrency_per_namespace: DEFAULT_CONCURRENCY_PER_NAMESPACE,
            use_proxy: false,
            max_series: DEFAULT_MAX_SERIES,
            allow: Arc::new(AllowList::default()),
            max_targets: DEFAULT_MAX_TARGETS,
            ca_pem: None,
            bearer_token_file: None,
        }
    }
}

/// A shared HTTP client plus the concurrency bounds (server, namespace, ScaledObject).
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    namespaces: Arc<Mutex<HashMap<String, Weak<Semaphore>>>>,
    per_namespace: usize,
    per_scaledobject: usize,
    use_proxy: bool,
    max_body_bytes: usize,
    max_series: usize,
    allow: Arc<AllowList>,
    bearer_token_file: Option<std::path::PathBuf>,
    max_targets: usize,
}

/// The scrape client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ScraperError {
    /// The HTTP client.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The CA bundle.
    #[error("scrape CA bundle: {0}")]
    Ca(String),
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<tokio_rustls::rustls::ClientConfig, ScraperError> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| ScraperError::Ca(e.to_string()))?;
            roots.add(c).map_err(|e| ScraperError::Ca(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ScraperError::Ca("no CERTIFICATE block".into()));
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ScraperError::Ca(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Every detail passes through the redactor: HTTP client errors quote the URL.
fn stale(kind: StaleKind, detail: impl Into<String>) -> StaleReason {
    StaleReason {
        kind,
        detail: crate::redact::text(&detail.into()),
    }
}

/// The scrape slots of one ScaledObject: its own, and its namespace's (shared with the other
/// ScaledObjects there). Taken before a server-wide slot, so a tenant whose targets hang waits
/// on itself.
#[derive(Debug, Clone)]
pub struct Slots {
    scaledobject: Arc<Semaphore>,
    namespace: Arc<Semaphore>,
}

/// Which bound a scrape waited on when its timeout ran out before it could start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    ScaledObject,
    Namespace,
    Server,
}

impl Bound {
    fn describe(self) -> &'static str {
        match self {
            Bound::ScaledObject => {
                "this ScaledObject's other targets hold all of its scrape slots (--scrape-concurrency-per-scaledobject)"
            }
            Bound::Namespace => {
                "this namespace's ScaledObjects hold all of its scrape slots (--scrape-concurrency-per-namespace)"
            }
            Bound::Server => "every server-wide scrape slot is taken (--scrape-concurrency)",
        }
    }
}

/// The three permits one scrape holds while it runs.
struct Held {
    _scaledobject: OwnedSemaphorePermit,
    _namespace: OwnedSemaphorePermit,
    _server: OwnedSemaphorePermit,
}

impl Scraper {
    /// Builds the client. Redirects are not followed: a target is the URL it was given; proxy
    /// variables are ignored unless `use_proxy` is set.
    /// The process-wide rustls crypto provider must be installed first (`main` does it once;
    /// [`crate::service::tls::install_crypto_provider`]).
    pub fn new(limits: &ScrapeLimits) -> Result<Scraper, ScraperError> {
        let mut builder = reqwest::Client::builder();
        if !limits.use_proxy {
            builder = builder.no_proxy();
        }
        let client = builder
            .tls_backend_preconfigured(tls_config(limits.ca_pem.as_deref())?)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(AllowingResolver(limits.allow.clone())))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("keda-llm-scaler/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Scraper {
            client,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            namespaces: Arc::new(Mutex::new(HashMap::new())),
            per_namespace: limits.concurrency_per_namespace.max(1),
            per_scaledobject: limits.concurrency_per_scaledobject.max(1),
            use_proxy: limits.use_proxy,
            max_body_bytes: limits.max_body_bytes,
            max_series: limits.max_series.max(1),
            allow: limits.allow.clone(),
            bearer_token_file: limits.bearer_token_file.clone(),
            max_targets: limits.max_targets.max(1),
        })
    }

    /// Fresh slots for a new ScaledObject controller in `namespace`.
    pub fn slots(&self, namespace: &str) -> Slots {
        let mut map = self
            .namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Namespaces whose controllers are all gone have no strong reference left.
        map.retain(|_, w| w.strong_count() > 0);
        let namespace = match map.get(namespace).and_then(Weak::upgrade) {
            Some(s) => s,
            None => {
                let s = Arc::new(Semaphore::new(self.per_namespace));
                map.insert(namespace.to_string(), Arc::downgrade(&s));
                s
            }
        };
        Slots {
            scaledobject: Arc::new(Semaphore::new(self.per_scaledobject)),
            namespace,
        }
    }

    /// Most targets one ScaledObject may have.
    pub fn max_targets(&self) -> usize {
        self.max_targets
    }

    /// The allow-list this client enforces.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Refuses a URL whose host is an IP literal outside the allow-list (names are checked
    /// when they resolve, in the client's resolver).
    pub fn check_literal(&self, url: &str) -> Result<(), StaleReason> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Ok(());
        };
        let Some(ip) = parsed
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        else {
            return Ok(());
        };
        match self.allow.refusal(ip) {
            None => Ok(()),
            Some(why) => Err(stale(StaleKind::NotAllowed, why)),
        }
    }

    /// Fetches a URL discovered from an allowed Service name: its IP was already checked
    /// against the allow-list when the name resolved.
    pub async fn fetch_vouched(
        &self,
        url: &str,
        timeout: Duration,
        slots: &Slots,
    ) -> Result<String, StaleReason> {
        self.fetch_checked(url, timeout, slots).await
    }

    /// Fetches `url` within `timeout`, the wait for a scrape slot included.
    pub async fn fetch(
        &self,
        url: &str,
        timeout: Duration,
        slots: &Slots,
    ) -> Result<String, StaleReason> {
        self.check_literal(url)?;
        self.fetch_checked(url, timeout, slots).await
    }

    async fn fetch_checked(
        &self,
        url: &str,
        timeout: Duration,
        slots: &Slots,
    ) -> Result<String, StaleReason> {
        let deadline = crate::clock::deadline(timeout);
        if self.use_proxy {
            // Through a proxy the client never resolves the target itself, so the allow-list
            // is checked here, before anything is sent.
            tokio::time::timeout_at(deadline, self.check_name(url))
                .await
                .map_err(|_| {
                    stale(
                        StaleKind::Timeout,
                        format!("resolving the target took longer than {timeout:?}"),
                    )
                })??;
        }
        let _held = self.acquire(slots, deadline).await.map_err(|bound| {
            stale(
                StaleKind::PermitWait,
                format!(
                    "not scraped: no slot within {timeout:?} because {}",
                    bound.describe()
                ),
            )
        })?;
        match tokio::time::timeout_at(deadline, self.fetch_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(stale(
                StaleKind::Timeout,
                format!("the worker gave no complete answer within {timeout:?}"),
            )),
        }
    }

    /// Refuses a target whose host name resolves to no allowed address.
    async fn check_name(&self, url: &str) -> Result<(), StaleReason> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Ok(());
        };
        let Some(host) = parsed.host_str() else {
            return Ok(());
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return Ok(()); // a literal, checked by check_literal
        }
        let port = parsed.port_or_known_default().unwrap_or(80);
        match crate::fetch::allow::resolve_allowed(&self.allow, bare, port).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(stale(StaleKind::NotAllowed, e.to_string()))
            }
            Err(e) => Err(stale(StaleKind::Connect, format!("resolving {bare}: {e}"))),
        }
    }

    async fn acquire(&self, slots: &Slots, deadline: tokio::time::Instant) -> Result<Held, Bound> {
        let take = |sem: &Arc<Semaphore>, bound: Bound| {
            let sem = sem.clone();
            async move {
                match tokio::time::timeout_at(deadline, sem.acquire_owned()).await {
                    Ok(Ok(p)) => Ok(p),
                    _ => Err(bound),
                }
            }
        };
        let scaledobject = take(&slots.scaledobject, Bound::ScaledObject).await?;
        let namespace = take(&slots.namespace, Bound::Namespace).await?;
        let server = take(&self.permits, Bound::Server).await?;
        Ok(Held {
            _scaledobject: scaledobject,
            _namespace: namespace,
            _server: server,
        })
    }

    async fn fetch_unbounded(&self, url: &str) -> Result<String, StaleReason> {
        // Python clients would rename `vllm:` to `vllm_` in OpenMetrics; ask for 0.0.4 text.
        let mut req = self.client.get(url).header(
            reqwest::header::ACCEPT,
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        );
        if let Some(path) = &self.bearer_token_file {
            // A few bytes; re-read each time so a rotated token is picked up.
            let token = std::fs::read_to_string(path).map_err(|e| {
                stale(
                    StaleKind::Connect,
                    format!("reading bearer token {}: {e}", path.display()),
                )
            })?;
            req = req.bearer_auth(token.trim());
        }
        let mut resp = req.send().await.map_err(|e| {
            let chain = error_chain(&e);
            let kind = if chain.contains("--allow-targets") {
                StaleKind::NotAllowed
            } else {
                StaleKind::Connect
            };
            stale(kind, chain)
        })?;
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
        let lines = body.iter().filter(|b| **b == b'\n').count();
        if lines > self.max_series {
            return Err(stale(
                StaleKind::TooManySeries,
                format!("{lines} lines, over the limit of {}", self.max_series),
            ));
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
