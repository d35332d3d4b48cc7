//! One background controller per ScaledObject, on its own clock.
//!
//! KEDA calls at irregular rates, concurrently, from several paths; decisions must not depend
//! on that. Each `(namespace, name)` gets a task that, every `scrapeIntervalSeconds`,
//! discovers targets, scrapes them concurrently, feeds the pure core
//! (`Fleet::apply_cycle` -> `Fleet::signals` -> `policy::decide`) and publishes an immutable
//! [`Snapshot`] through a `watch` channel. RPCs only read the latest snapshot.
//!
//! Controllers start on first sight, are replaced when the metadata changes, and are dropped
//! after `idle` without RPCs (an open `StreamIsActive` counts as activity).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::config::{MetadataError, ScalerConfig};
use crate::core::cycle::{Cycle, Step};
use crate::core::fleet::{Observation, StaleKind, StaleReason, TargetRole};
use crate::core::policy;
use crate::discover::discover;
use crate::scrape::Scraper;
use crate::telemetry::{SoLabels, Telemetry};

pub use crate::core::cycle::{HistoryEntry, Snapshot, TargetView};

/// Largest accepted metadata map (keys plus values), bytes.
pub const MAX_METADATA_BYTES: usize = 64 << 10;

/// Handle to a running controller.
#[derive(Debug)]
pub struct Controller {
    /// Namespace and name.
    pub labels: SoLabels,
    /// The validated configuration.
    pub config: Arc<ScalerConfig>,
    metadata: BTreeMap<String, String>,
    snapshot: watch::Receiver<Option<Arc<Snapshot>>>,
    last_rpc_ms: AtomicU64,
    open_streams: AtomicUsize,
    cancel: CancellationToken,
}

impl Controller {
    /// The latest snapshot, if a cycle has completed.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }

    /// The latest snapshot, waiting up to `wait` for the first cycle of a new controller.
    pub async fn latest_or_wait(&self, wait: Duration) -> Option<Arc<Snapshot>> {
        if let Some(s) = self.latest() {
            return Some(s);
        }
        let mut rx = self.snapshot.clone();
        let waited = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(guard)) => guard.clone(),
            _ => None,
        }
    }

    /// A receiver of every published snapshot (for `StreamIsActive`).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshot.clone()
    }

    /// Marks RPC activity (keeps the controller alive).
    pub fn touch(&self) {
        self.last_rpc_ms
            .store(clock::monotonic_ms(), Ordering::Relaxed);
    }

    /// Counts an open stream for the lifetime of the returned guard.
    pub fn stream_guard(self: &Arc<Self>) -> StreamGuard {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Whether the controller's task has been told to stop (replaced, idle or shutdown).
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A token cancelled when this controller stops.
    pub fn stopped(&self) -> CancellationToken {
        self.cancel.clone()
    }

    fn same_metadata(&self, other: &HashMap<String, String>) -> bool {
        self.metadata.len() == other.len()
            && other.iter().all(|(k, v)| self.metadata.get(k) == Some(v))
    }
}

/// Keeps a controller alive while a stream is open.
#[derive(Debug)]
pub struct StreamGuard(Arc<Controller>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Why no controller could be had.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Invalid metadata.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The server-wide controller limit is reached.
    #[error("controller limit reached ({0} ScaledObjects); raise --max-controllers")]
    TooMany(usize),
    /// The ref has no name.
    #[error("ScaledObjectRef.name is empty")]
    NoName,
}

/// Server-wide settings of the registry.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Server-wide metadata defaults.
    pub defaults: BTreeMap<String, String>,
    /// Drop a controller after this long without RPCs.
    pub idle: Duration,
    /// Most controllers at once.
    pub max_controllers: usize,
}

/// Default time a controller lives without RPCs (`--controller-idle-seconds`).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(600);
/// Default most controllers (`--max-controllers`).
pub const DEFAULT_MAX_CONTROLLERS: usize = 1000;

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            defaults: BTreeMap::new(),
            idle: DEFAULT_IDLE,
            max_controllers: DEFAULT_MAX_CONTROLLERS,
        }
    }
}

type Key = (String, String);

/// All controllers of one server.
#[derive(Debug)]
pub struct Registry {
    controllers: RwLock<HashMap<Key, Arc<Controller>>>,
    settings: RegistrySettings,
    scraper: Scraper,
    telemetry: Telemetry,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Registry {
    /// Creates the registry and its idle reaper.
    pub fn new(
        settings: RegistrySettings,
        scraper: Scraper,
        telemetry: Telemetry,
        shutdown: CancellationToken,
    ) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            controllers: RwLock::new(HashMap::new()),
            settings,
            scraper,
            telemetry,
            shutdown,
        });
        let weak = Arc::downgrade(&registry);
        let period =
            (registry.settings.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        let stop = registry.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(period) => {}
                }
                let Some(registry) = weak.upgrade() else {
                    break;
                };
                registry.reap_idle();
            }
        });
        registry
    }

    /// The controller for a ScaledObject, started (or replaced) as needed.
    pub fn controller(
        &self,
        namespace: &str,
        name: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Arc<Controller>, RegistryError> {
        if name.is_empty() {
            return Err(RegistryError::NoName);
        }
        let key = (namespace.to_string(), name.to_string());
        if let Some(c) = self.read().get(&key)
            && c.same_metadata(metadata)
            && !c.is_stopped()
        {
            c.touch();
            return Ok(c.clone());
        }
        let sorted: BTreeMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Metadata travels in every RPC; a huge map is a mistake or an attack, refused before
        // any work is done with it.
        let size: usize = sorted.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_METADATA_BYTES {
            let largest = sorted
                .iter()
                .max_by_key(|(k, v)| k.len() + v.len())
                .map_or(String::new(), |(k, _)| k.clone());
            return Err(RegistryError::Metadata(MetadataError {
                key: largest,
                message: format!(
                    "metadata is {size} bytes, over the {MAX_METADATA_BYTES}-byte limit (this key is the largest)"
                ),
            }));
        }
        let config = Arc::new(ScalerConfig::from_metadata(
            &sorted,
            &self.settings.defaults,
        )?);
        if let crate::config::Discovery::Static(urls) = &config.discovery
            && urls.len() > self.scraper.max_targets()
        {
            return Err(RegistryError::Metadata(MetadataError {
                key: "targets".into(),
                message: format!(
                    "{} targets, over the limit of {} per ScaledObject",
                    urls.len(),
                    self.scraper.max_targets()
                ),
            }));
        }
        // Targets written as IP literals are checked now, so the author sees INVALID_ARGUMENT;
        // names are checked when they resolve (a per-target `not_allowed`).
        let literals = match &config.discovery {
            crate::config::Discovery::Static(urls) => urls.iter().map(|u| ("targets", u)).collect(),
            crate::config::Discovery::HttpSd { url, .. } => vec![("httpSd", url)],
            crate::config::Discovery::Service { .. } => Vec::new(),
        };
        for (key, url) in literals
            .into_iter()
            .chain(config.frontends.iter().map(|u| ("frontendTargets", u)))
        {
            if let Err(r) = self.scraper.check_literal(url) {
                return Err(RegistryError::Metadata(MetadataError {
                    key: key.to_string(),
                    message: format!("{url}: {}", r.detail),
                }));
            }
        }

        let mut map = self.write();
        if let Some(c) = map.get(&key)
            && c.same_metadata(metadata)
            && !c.is_stopped()
        {
            c.touch();
            return Ok(c.clone());
        }
        if !map.contains_key(&key) && map.len() >= self.settings.max_controllers {
            return Err(RegistryError::TooMany(self.settings.max_controllers));
        }
        let labels = SoLabels {
            namespace: key.0.clone(),
            scaledobject: key.1.clone(),
        };
        if let Some(old) = map.remove(&key) {
            info!(namespace, name, "metadata changed: replacing controller");
            old.cancel.cancel();
        }
        let (tx, rx) = watch::channel(None);
        let cancel = self.shutdown.child_token();
        let controller = Arc::new(Controller {
            labels: labels.clone(),
            config: config.clone(),
            metadata: sorted,
            snapshot: rx,
            last_rpc_ms: AtomicU64::new(clock::monotonic_ms()),
            open_streams: AtomicUsize::new(0),
            cancel: cancel.clone(),
        });
        map.insert(key, controller.clone());
        self.telemetry.set_controllers(map.len());
        drop(map);
        info!(
            namespace,
            name,
            interval_ms = config.scrape_interval_ms,
            "controller started"
        );
        tokio::spawn(run(
            config,
            self.scraper.clone(),
            self.telemetry.clone(),
            labels,
            tx,
            cancel,
        ));
        Ok(controller)
    }

    /// Every controller, sorted by namespace and name.
    pub fn all(&self) -> Vec<Arc<Controller>> {
        let mut list: Vec<_> = self.read().values().cloned().collect();
        list.sort_by(|a, b| a.labels.cmp(&b.labels));
        list
    }

    fn reap_idle(&self) {
        let now = clock::monotonic_ms();
        let idle_ms = u64::try_from(self.settings.idle.as_millis()).unwrap_or(u64::MAX);
        let mut map = self.write();
        map.retain(|(ns, name), c| {
            let idle = now.saturating_sub(c.last_rpc_ms.load(Ordering::Relaxed)) > idle_ms;
            let keep = !idle || c.open_streams.load(Ordering::Relaxed) > 0;
            if !keep {
                info!(
                    namespace = ns.as_str(),
                    name = name.as_str(),
                    "controller idle: dropping"
                );
                c.cancel.cancel();
            }
            keep
        });
        self.telemetry.set_controllers(map.len());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Arc<Controller>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts
        // and removals), so a poisoned lock is still safe to use.
        self.controllers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Arc<Controller>>> {
        self.controllers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The controller loop.
async fn run(
    config: Arc<ScalerConfig>,
    scraper: Scraper,
    telemetry: Telemetry,
    labels: SoLabels,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    cancel: CancellationToken,
) {
    let mut cycle = Cycle::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(config.scrape_interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now_ms = clock::monotonic_ms();
        let observations = tokio::select! {
            () = cancel.cancelled() => break,
            obs = scrape_cycle(&config, &scraper, cycle.known_workers()) => obs,
        };
        for o in &observations {
            let result = match &o.outcome {
                Ok(_) => "ok",
                Err(r) => r.kind.as_str(),
            };
            telemetry.scrape(&labels, result, o.parse_errors);
            if let Err(r) = &o.outcome {
                debug!(
                    namespace = labels.namespace.as_str(),
                    name = labels.scaledobject.as_str(),
                    target = o.id.as_str(),
                    reason = r.kind.as_str(),
                    detail = r.detail.as_str(),
                    "target stale"
                );
            }
        }
        let Step { snapshot, changed } =
            cycle.step(&config.signal, &config.policy, now_ms, observations);
        let decision = &snapshot.decision;
        if changed {
            if decision.reason == policy::Reason::DataStale {
                warn!(
                    namespace = labels.namespace.as_str(),
                    name = labels.scaledobject.as_str(),
                    desired = decision.desired,
                    detail = decision.detail.as_str(),
                    "holding on stale data"
                );
            } else {
                info!(
                    namespace = labels.namespace.as_str(),
                    name = labels.scaledobject.as_str(),
                    desired = decision.desired,
                    reason = decision.reason.as_str(),
                    detail = decision.detail.as_str(),
                    "decision"
                );
            }
        }
        telemetry.publish(&labels, &snapshot, config.policy.ttft_target_s);
        tx.send_replace(Some(Arc::new(snapshot)));
    }
    telemetry.forget(&labels);
    debug!(
        namespace = labels.namespace.as_str(),
        name = labels.scaledobject.as_str(),
        "controller stopped"
    );
}

fn discovery_source(d: &crate::config::Discovery) -> String {
    match d {
        crate::config::Discovery::Static(_) => "static targets".into(),
        crate::config::Discovery::HttpSd { url, .. } => url.clone(),
        crate::config::Discovery::Service { host, port, .. } => format!("{host}:{port}"),
    }
}

/// Discovers and scrapes every target of one cycle concurrently; the result lists every
/// target, sorted by id. If discovery fails, the previously known workers are reported
/// stale with the discovery error (so the policy holds instead of seeing an empty fleet).
async fn scrape_cycle(
    config: &ScalerConfig,
    scraper: &Scraper,
    known_workers: Vec<String>,
) -> Vec<Observation> {
    let timeout = Duration::from_millis(config.scrape_timeout_ms);
    let mut out = Vec::new();
    let mut targets: Vec<(String, TargetRole, bool)> = Vec::new();
    // Pod IPs from an allowed Service name were checked as the name resolved.
    let vouched = matches!(config.discovery, crate::config::Discovery::Service { .. });
    match discover(&config.discovery, scraper, timeout).await {
        Ok(urls) => targets.extend(urls.into_iter().map(|u| (u, TargetRole::Worker, vouched))),
        Err(e) => {
            let reason = StaleReason {
                kind: if matches!(e, crate::discover::DiscoverError::NotAllowed { .. }) {
                    StaleKind::NotAllowed
                } else {
                    StaleKind::Connect
                },
                detail: e.to_string(),
            };
            // With no worker known yet, the discovery itself is shown as the stale target, so
            // the reason reaches the debug API and the scrape counters.
            let ids = if known_workers.is_empty() {
                vec![format!(
                    "discovery: {}",
                    discovery_source(&config.discovery)
                )]
            } else {
                known_workers
            };
            out.extend(ids.into_iter().map(|id| Observation {
                id,
                role: TargetRole::Worker,
                outcome: Err(reason.clone()),
                parse_errors: 0,
            }));
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
        let engine = config.engine;
        let model = config.model.clone();
        tasks.spawn(async move {
            let page = if vouched {
                scraper.fetch_vouched(&url, timeout).await
            } else {
                scraper.fetch(&url, timeout).await
            };
            // Parsing is CPU work (~90 µs per 57 KB vLLM page): off the async workers, so a
            // thousand pages arriving together cannot delay the RPCs KEDA is waiting on.
            let id = url.clone();
            match tokio::task::spawn_blocking(move || {
                Observation::from_page(url, role, page, engine, model.as_deref())
            })
            .await
            {
                Ok(obs) => obs,
                Err(e) => Observation {
                    id,
                    role,
                    outcome: Err(StaleReason {
                        kind: StaleKind::Body,
                        detail: format!("parsing task failed: {e}"),
                    }),
                    parse_errors: 0,
                },
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(obs) => out.push(obs),
            Err(e) => warn!(error = %e, "scrape task failed"),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
