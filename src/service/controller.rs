//! One background controller per ScaledObject, on its own clock.
//!
//! KEDA calls at irregular rates, concurrently, from several paths; decisions must not depend
//! on that. Each `(namespace, name)` gets a task that, every `scrapeIntervalSeconds`,
//! discovers targets, scrapes them concurrently, feeds the pure core
//! (`Fleet::apply_cycle` -> `Fleet::signals` -> `policy::decide`) and publishes an immutable
//! [`Snapshot`] through a `watch` channel. RPCs only read the latest snapshot.
//!
//! KEDA names a trigger only by its ScaledObject and its metadata (no trigger index travels),
//! so a controller is keyed by `(namespace, name, metadata)`: two triggers of one ScaledObject
//! each get their own controller and state, and a caller with other metadata for a name gets
//! its own controller instead of displacing the one KEDA uses. A trigger whose metadata
//! changed stops being asked and is dropped after `idle` without RPCs, like any idle one (an
//! open `StreamIsActive` counts as activity).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::config::{Admission, MAX_METADATA_BYTES, MetadataError, ScalerConfig};
use crate::core::cycle::{Cycle, Step};
use crate::core::fleet::Observation;
use crate::core::policy;
use crate::fetch::cycle::fetch_cycle;
use crate::fetch::scrape::{Scraper, Slots};
use crate::redact::echo;
use crate::service::telemetry::{SoLabels, Telemetry};

pub use crate::core::cycle::{HistoryEntry, Snapshot, TargetView};

/// Longest ScaledObject name: a Kubernetes object name (DNS-1123 subdomain).
pub const MAX_NAME_BYTES: usize = 253;
/// Longest namespace: a DNS-1123 label.
pub const MAX_NAMESPACE_BYTES: usize = 63;
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

    /// The trigger's metadata fingerprint (the `trigger` label).
    pub fn trigger(&self) -> &str {
        &self.labels.trigger
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

/// Where a controller's observations come from: the HTTP fetch cycle when serving
/// ([`HttpSource`]), a script in tests, so the loop's timing (ticks, idle reaping,
/// first-decision waits) is tested under paused time without sockets.
pub trait ObservationSource: std::fmt::Debug + Send + Sync + 'static {
    /// One cycle's observations for `config`, listing every target (see
    /// [`crate::fetch::cycle::fetch_cycle`]).
    fn observe<'a>(
        &'a self,
        config: &'a ScalerConfig,
        slots: &'a Slots,
        known_workers: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Vec<Observation>> + Send + 'a>>;
}

/// The live source: every target fetched over HTTP and read into observations.
#[derive(Debug, Clone)]
pub struct HttpSource(pub Scraper);

impl ObservationSource for HttpSource {
    fn observe<'a>(
        &'a self,
        config: &'a ScalerConfig,
        slots: &'a Slots,
        known_workers: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Vec<Observation>> + Send + 'a>> {
        Box::pin(observe(config, &self.0, slots, known_workers))
    }
}

/// Why no controller could be had.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Invalid metadata.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A controller limit is reached.
    #[error("{0}")]
    TooMany(String),
    /// The ref's name or namespace is not a Kubernetes name.
    #[error("{0}")]
    BadRef(String),
    /// The metric asked for is not this trigger's.
    #[error(
        "metricName {asked} is not served for this ScaledObject; expected {expected:?} (optionally with an sN- prefix)"
    )]
    UnknownMetric {
        /// What was asked, cut for the message.
        asked: String,
        /// The configured metric name.
        expected: String,
    },
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
    /// Most controllers of one namespace, so one tenant cannot fill the server.
    pub max_controllers_per_namespace: usize,
    /// Most triggers (distinct metadata) of one ScaledObject.
    pub max_triggers_per_scaledobject: usize,
}

/// Default time a controller lives without RPCs (`--controller-idle-seconds`).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(600);
/// Default most controllers (`--max-controllers`).
pub const DEFAULT_MAX_CONTROLLERS: usize = 1000;
/// Default most controllers per namespace (`--max-controllers-per-namespace`).
pub const DEFAULT_MAX_CONTROLLERS_PER_NAMESPACE: usize = 200;
/// Default most triggers per ScaledObject (`--max-triggers-per-scaledobject`): a ScaledObject
/// with more than a few external triggers of one scaler is a mistake or an attack.
pub const DEFAULT_MAX_TRIGGERS_PER_SCALEDOBJECT: usize = 8;

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            defaults: BTreeMap::new(),
            idle: DEFAULT_IDLE,
            max_controllers: DEFAULT_MAX_CONTROLLERS,
            max_controllers_per_namespace: DEFAULT_MAX_CONTROLLERS_PER_NAMESPACE,
            max_triggers_per_scaledobject: DEFAULT_MAX_TRIGGERS_PER_SCALEDOBJECT,
        }
    }
}

/// `(namespace, name)`; each holds the ScaledObject's triggers.
type Key = (String, String);

/// Whether `s` is a DNS-1123 subdomain (`label` false) or label (`label` true).
fn kubernetes_name(s: &str, label: bool) -> bool {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if label {
        ok_label(s)
    } else {
        s.split('.').all(ok_label)
    }
}

fn check_ref(namespace: &str, name: &str) -> Result<(), RegistryError> {
    if name.is_empty() {
        return Err(RegistryError::BadRef(
            "ScaledObjectRef.name is empty".into(),
        ));
    }
    if name.len() > MAX_NAME_BYTES || !kubernetes_name(name, false) {
        return Err(RegistryError::BadRef(format!(
            "ScaledObjectRef.name {} is not a Kubernetes object name (lowercase DNS-1123 subdomain, at most {MAX_NAME_BYTES} bytes)",
            echo(name)
        )));
    }
    // KEDA always sends the namespace; an empty one is accepted for hand-made calls.
    if !namespace.is_empty()
        && (namespace.len() > MAX_NAMESPACE_BYTES || !kubernetes_name(namespace, true))
    {
        return Err(RegistryError::BadRef(format!(
            "ScaledObjectRef.namespace {} is not a Kubernetes namespace (DNS-1123 label, at most {MAX_NAMESPACE_BYTES} bytes)",
            echo(namespace)
        )));
    }
    Ok(())
}

/// A short fingerprint of one trigger's metadata (FNV-1a over sorted `key=value` lines).
fn trigger_fingerprint(metadata: &BTreeMap<String, String>) -> String {
    let full = crate::config::config_hash(metadata, &BTreeMap::new());
    full[..8].to_string()
}

/// All controllers of one server.
#[derive(Debug)]
pub struct Registry {
    controllers: RwLock<HashMap<Key, Vec<Arc<Controller>>>>,
    settings: RegistrySettings,
    scraper: Scraper,
    source: Arc<dyn ObservationSource>,
    telemetry: Telemetry,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Registry {
    /// Creates the registry and its idle reaper. `scraper` admits targets (allow-list, limits)
    /// and hands out scrape slots; `source` produces each cycle's observations.
    pub fn new(
        settings: RegistrySettings,
        scraper: Scraper,
        source: Arc<dyn ObservationSource>,
        telemetry: Telemetry,
        shutdown: CancellationToken,
    ) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            controllers: RwLock::new(HashMap::new()),
            settings,
            scraper,
            source,
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

    /// The controller of one ScaledObject trigger, started as needed. With `metric`, the
    /// metric asked for is checked before anything starts.
    pub fn controller(
        &self,
        namespace: &str,
        name: &str,
        metadata: &HashMap<String, String>,
        metric: Option<&str>,
    ) -> Result<Arc<Controller>, RegistryError> {
        check_ref(namespace, name)?;
        let key = (namespace.to_string(), name.to_string());
        if let Some(c) = self.find(&key, metadata) {
            check_metric(&c.config, metric)?;
            c.touch();
            return Ok(c);
        }
        let (sorted, config) = ScalerConfig::admit(
            metadata,
            &self.settings.defaults,
            &Admission {
                max_metadata_bytes: MAX_METADATA_BYTES,
                max_targets: self.scraper.max_targets(),
            },
        )?;
        check_metric(&config, metric)?;
        let config = Arc::new(config);
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
                    message: format!("{}: {}", crate::redact::url(url), r.detail),
                }));
            }
        }

        let mut map = self.write();
        if let Some(c) = live(map.get(&key), metadata) {
            c.touch();
            return Ok(c);
        }
        let total: usize = map.values().map(Vec::len).sum();
        if total >= self.settings.max_controllers {
            return Err(RegistryError::TooMany(format!(
                "controller limit reached ({} ScaledObject triggers server-wide; --max-controllers)",
                self.settings.max_controllers
            )));
        }
        let in_namespace: usize = map
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, v)| v.len())
            .sum();
        if in_namespace >= self.settings.max_controllers_per_namespace {
            return Err(RegistryError::TooMany(format!(
                "controller limit of namespace {} reached ({} triggers; --max-controllers-per-namespace)",
                echo(namespace),
                self.settings.max_controllers_per_namespace
            )));
        }
        let siblings = map.entry(key.clone()).or_default();
        siblings.retain(|c| !c.is_stopped());
        if siblings.len() >= self.settings.max_triggers_per_scaledobject {
            return Err(RegistryError::TooMany(format!(
                "{}/{} already has {} triggers with other metadata (--max-triggers-per-scaledobject; a trigger whose metadata changed is dropped after --controller-idle-seconds without calls)",
                echo(namespace),
                echo(name),
                self.settings.max_triggers_per_scaledobject
            )));
        }
        let labels = SoLabels {
            namespace: key.0.clone(),
            scaledobject: key.1.clone(),
            trigger: trigger_fingerprint(&sorted),
        };
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
        siblings.push(controller.clone());
        let triggers = siblings.len();
        self.telemetry.set_controllers(total + 1);
        drop(map);
        info!(
            namespace,
            name,
            trigger = labels.trigger.as_str(),
            triggers,
            interval_ms = config.decision.scrape_interval_ms,
            "controller started"
        );
        tokio::spawn(run(
            config,
            self.source.clone(),
            self.scraper.slots(namespace),
            self.telemetry.clone(),
            labels,
            tx,
            cancel,
        ));
        Ok(controller)
    }

    fn find(&self, key: &Key, metadata: &HashMap<String, String>) -> Option<Arc<Controller>> {
        live(self.read().get(key), metadata)
    }

    /// Every controller, sorted by namespace, name and trigger.
    pub fn all(&self) -> Vec<Arc<Controller>> {
        let mut list: Vec<_> = self.read().values().flatten().cloned().collect();
        list.sort_by(|a, b| a.labels.cmp(&b.labels));
        list
    }

    fn reap_idle(&self) {
        let now = clock::monotonic_ms();
        let idle_ms = u64::try_from(self.settings.idle.as_millis()).unwrap_or(u64::MAX);
        let mut map = self.write();
        for ((ns, name), triggers) in map.iter_mut() {
            triggers.retain(|c| {
                let idle = now.saturating_sub(c.last_rpc_ms.load(Ordering::Relaxed)) > idle_ms;
                let keep = !c.is_stopped() && (!idle || c.open_streams.load(Ordering::Relaxed) > 0);
                if !keep {
                    info!(
                        namespace = ns.as_str(),
                        name = name.as_str(),
                        trigger = c.trigger(),
                        "controller idle: dropping"
                    );
                    c.cancel.cancel();
                }
                keep
            });
        }
        map.retain(|_, triggers| !triggers.is_empty());
        self.telemetry
            .set_controllers(map.values().map(Vec::len).sum());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Vec<Arc<Controller>>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts
        // and removals), so a poisoned lock is still safe to use.
        self.controllers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Vec<Arc<Controller>>>> {
        self.controllers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The running trigger of `triggers` with exactly this metadata.
fn live(
    triggers: Option<&Vec<Arc<Controller>>>,
    metadata: &HashMap<String, String>,
) -> Option<Arc<Controller>> {
    triggers?
        .iter()
        .find(|c| c.same_metadata(metadata) && !c.is_stopped())
        .cloned()
}

fn check_metric(config: &ScalerConfig, metric: Option<&str>) -> Result<(), RegistryError> {
    let Some(asked) = metric else { return Ok(()) };
    let bare = crate::core::cycle::strip_index_prefix(asked);
    if bare.is_empty() || bare == config.metric_name {
        Ok(())
    } else {
        Err(RegistryError::UnknownMetric {
            asked: echo(asked),
            expected: config.metric_name.clone(),
        })
    }
}

/// The controller loop.
async fn run(
    config: Arc<ScalerConfig>,
    source: Arc<dyn ObservationSource>,
    slots: Slots,
    telemetry: Telemetry,
    labels: SoLabels,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    cancel: CancellationToken,
) {
    let mut cycle = Cycle::default();
    let mut ticker =
        tokio::time::interval(Duration::from_millis(config.decision.scrape_interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now_ms = clock::monotonic_ms();
        let observations = tokio::select! {
            () = cancel.cancelled() => break,
            obs = source.observe(&config, &slots, cycle.known_workers()) => obs,
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
                    target = %crate::redact::url(&o.id),
                    reason = r.kind.as_str(),
                    detail = r.detail.as_str(),
                    "target stale"
                );
            }
        }
        let Step { snapshot, changed } = cycle.step(
            &config.decision.signal,
            &config.decision.policy,
            now_ms,
            observations,
        );
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
        telemetry.publish(&labels, &snapshot, config.decision.policy.ttft_target_s);
        tx.send_replace(Some(Arc::new(snapshot)));
    }
    telemetry.forget(&labels);
    debug!(
        namespace = labels.namespace.as_str(),
        name = labels.scaledobject.as_str(),
        "controller stopped"
    );
}

/// One cycle's observations: every target fetched and read into the core's terms.
async fn observe(
    config: &ScalerConfig,
    scraper: &Scraper,
    slots: &Slots,
    known_workers: Vec<String>,
) -> Vec<Observation> {
    let engine = config.decision.engine;
    let model = config.decision.model.clone();
    fetch_cycle(
        config,
        scraper,
        slots,
        known_workers,
        move |id, role, page| Observation::from_page(id, role, page, engine, model.as_deref()),
    )
    .await
}

#[cfg(test)]
mod tests {
    //! The loop's timing under paused time: a scripted source instead of sockets, so idle
    //! reaping, streams, the first-decision wait and staleness are tested by advancing the
    //! clock, not by sleeping.

    use std::sync::Mutex;

    use super::*;
    use crate::core::extract::Engine;
    use crate::core::fleet::{StaleKind, StaleReason, TargetRole};
    use crate::fetch::scrape::ScrapeLimits;

    /// Serves one worker whose page the test sets; `delay` holds each cycle back.
    #[derive(Debug, Default)]
    struct Script {
        page: Mutex<Option<String>>,
        delay: Duration,
    }

    impl ObservationSource for Script {
        fn observe<'a>(
            &'a self,
            _config: &'a ScalerConfig,
            _slots: &'a Slots,
            _known: Vec<String>,
        ) -> Pin<Box<dyn Future<Output = Vec<Observation>> + Send + 'a>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                let page = match self.page.lock().map(|p| p.clone()) {
                    Ok(Some(p)) => Ok(p),
                    _ => Err(StaleReason {
                        kind: StaleKind::Timeout,
                        detail: "scripted outage".into(),
                    }),
                };
                vec![Observation::from_page(
                    "http://w:8000/metrics".into(),
                    TargetRole::Worker,
                    page,
                    Engine::Auto,
                    None,
                )]
            })
        }
    }

    const BUSY: &str =
        "vllm:num_requests_running 10\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0.5\n";

    fn registry(source: Arc<Script>, idle: Duration) -> Arc<Registry> {
        crate::service::tls::install_crypto_provider();
        let scraper = Scraper::new(&ScrapeLimits::default()).expect("scraper");
        Registry::new(
            RegistrySettings {
                idle,
                ..RegistrySettings::default()
            },
            scraper,
            source,
            Telemetry::new(),
            CancellationToken::new(),
        )
    }

    fn metadata(extra: &[(&str, &str)]) -> HashMap<String, String> {
        [("targets", "w:8000"), ("scrapeIntervalSeconds", "5")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn script(page: Option<&str>, delay: Duration) -> Arc<Script> {
        Arc::new(Script {
            page: Mutex::new(page.map(str::to_string)),
            delay,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn idle_controllers_are_dropped_and_open_streams_keep_them() {
        let reg = registry(script(Some(BUSY), Duration::ZERO), Duration::from_secs(60));
        let a = reg.controller("llm", "a", &metadata(&[]), None).expect("a");
        let b = reg.controller("llm", "b", &metadata(&[]), None).expect("b");
        let stream = b.stream_guard();
        assert!(a.latest_or_wait(Duration::from_secs(2)).await.is_some());
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(reg.all().len(), 2, "within the idle time both stay");
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(a.is_stopped(), "idle for 80 s of a 60 s limit");
        assert!(!b.is_stopped(), "an open stream counts as activity");
        assert_eq!(reg.all().len(), 1);
        drop(stream);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert!(b.is_stopped() && reg.all().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_decision_wait_bounds_a_slow_first_cycle() {
        let reg = registry(
            script(Some(BUSY), Duration::from_secs(4)),
            Duration::from_secs(600),
        );
        let c = reg
            .controller("llm", "slow", &metadata(&[]), None)
            .expect("c");
        let waited = crate::clock::Stopwatch::start();
        assert!(
            c.latest_or_wait(Duration::from_millis(1500))
                .await
                .is_none()
        );
        assert_eq!(waited.elapsed(), Duration::from_millis(1500));
        assert!(c.latest_or_wait(Duration::from_secs(5)).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn stale_data_holds_then_answers_unavailable_after_stale_hold() {
        let source = script(Some(BUSY), Duration::ZERO);
        let reg = registry(source.clone(), Duration::from_secs(3600));
        let md = metadata(&[("staleHoldSeconds", "120")]);
        let c = reg.controller("llm", "stale", &md, None).expect("c");
        let first = c
            .latest_or_wait(Duration::from_secs(1))
            .await
            .expect("first");
        let held = first.decision.desired;
        *source.page.lock().expect("page") = None;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let snap = c.latest().expect("snapshot");
        assert_eq!(snap.decision.reason, policy::Reason::DataStale);
        assert_eq!(snap.decision.desired, held, "held, never lowered");
        assert!(!snap.decision.unavailable);
        // The first blind cycle was at 5 s; by 137 s the newest one is past 120 s of it.
        tokio::time::sleep(Duration::from_secs(77)).await;
        assert!(c.latest().expect("snapshot").decision.unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trigger_with_other_metadata_is_another_controller_and_the_old_one_goes_idle() {
        let reg = registry(script(Some(BUSY), Duration::ZERO), Duration::from_secs(60));
        let old = reg
            .controller("llm", "so", &metadata(&[("kvCacheTarget", "0.8")]), None)
            .expect("old");
        let new_md = metadata(&[("kvCacheTarget", "0.7")]);
        let new = reg.controller("llm", "so", &new_md, None).expect("new");
        assert_ne!(old.trigger(), new.trigger());
        assert!(
            !old.is_stopped(),
            "no replacement: the old metadata may be a second trigger"
        );
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            reg.controller("llm", "so", &new_md, None).expect("touch");
        }
        assert!(old.is_stopped() && !new.is_stopped());
        assert_eq!(reg.all().len(), 1);
    }
}
