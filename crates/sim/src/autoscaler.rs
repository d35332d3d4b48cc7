//! The one interface every control plane in the arena implements: keda-llm-scaler, each rival
//! and the oracle. The event loop (`run`) knows nothing of any of them: it calls [`Autoscaler::tick`]
//! on the clocks the autoscaler asks for, hands it a [`View`] of what it could really observe,
//! and applies the replica count it returns, as a ReplicaSet controller would.

use serde::Serialize;

use crate::core::fleet::{StaleReason, TargetRole};
use crate::core::policy::{Binding, Reason};
use crate::prom::Prometheus;
use crate::worker::EngineParams;

/// One page (or failure) the simulated scaler scraped, kept for `simulate --record`.
#[derive(Debug, Clone)]
pub struct RecordedScrape {
    /// Target id (its URL).
    pub id: String,
    /// Worker or frontend.
    pub role: TargetRole,
    /// The page, or why there was none.
    pub page: Result<String, StaleReason>,
}

/// A decision of keda-llm-scaler (changes only).
#[derive(Debug, Clone, Serialize)]
pub struct DecisionPoint {
    /// Seconds.
    pub t_s: f64,
    /// The answer.
    pub desired: u32,
    /// Reason code.
    pub reason: Reason,
    /// Binding signal.
    pub binding: Binding,
    /// TTFT quantile the scaler saw.
    pub ttft_s: Option<f64>,
    /// The explanation line.
    pub detail: String,
    /// What the policy had learned after it (brackets, base latencies, lead time).
    pub learned: crate::core::policy::learn::Learned,
}

/// What a control plane can observe at a tick: the cluster's own objects (spec, ready and
/// provisioned replicas), the emulated Prometheus with its real scrape interval, the
/// in-flight count a per-pod sidecar would measure, and the workers' `/metrics` for a scaler
/// that scrapes them itself. Nothing else of the simulation is reachable.
pub struct View<'s> {
    /// Simulated time, ms.
    pub now_ms: u64,
    /// Replicas asked for (the scale subresource's spec).
    pub spec: u32,
    /// Pods serving.
    pub ready: u32,
    /// Pods that exist (starting, waiting for a node or serving).
    pub provisioned: u32,
    /// The cluster's Prometheus.
    pub prom: &'s Prometheus,
    /// The engine a planner profiled before deployment (Dynamo's pre-deployment profiling).
    pub engine: &'s EngineParams,
    /// Requests in flight at serving pods plus those queued for one, as Knative's
    /// queue-proxies and activator report them; `None` while metrics are out.
    pub in_flight: Option<f64>,
    /// Renders every pod's (and frontend's) `/metrics` as a scrape would find it now.
    pub pages: &'s dyn Fn() -> Vec<RecordedScrape>,
}

/// What a run keeps of a control plane besides its actions.
#[derive(Debug, Default)]
pub struct Extras {
    /// Its decisions with their reasons (keda-llm-scaler only).
    pub decisions: Vec<DecisionPoint>,
    /// Its scrape cycles, when recording (keda-llm-scaler only).
    pub frames: Vec<(u64, Vec<RecordedScrape>)>,
}

/// A control plane that sets the replica count.
pub trait Autoscaler {
    /// Its clocks, ms: `tick(k, ..)` runs every `clocks_ms()[k]` from that period on (KEDA's
    /// polling and the HPA's sync for an HPA-driven rival, the planner's own cadence for a
    /// direct one).
    fn clocks_ms(&self) -> Vec<u64>;

    /// Its own Prometheus scrape interval, ms, when its deployment documents one; otherwise
    /// the cluster's.
    fn prometheus_scrape_ms(&self) -> Option<u64> {
        None
    }

    /// Replicas at the start, given the steady fleet every dynamic policy starts from.
    fn initial_replicas(&self, steady: u32) -> u32 {
        steady
    }

    /// One tick of clock `clock`: the new spec replica count, or `None` to leave it.
    fn tick(&mut self, clock: usize, view: &View<'_>) -> Option<u32>;

    /// The value it last acted on, for the timeline.
    fn metric(&self) -> Option<f64> {
        None
    }

    /// The TTFT quantile it computed itself (keda-llm-scaler), for the timeline.
    fn own_ttft_s(&self) -> Option<f64> {
        None
    }

    /// What the run keeps of it when it ends.
    fn finish(&mut self) -> Extras {
        Extras::default()
    }
}

/// The HPA loop an HPA-driven rival runs through: KEDA or prometheus-adapter hands the HPA a
/// value at each sync; a missing value holds.
#[derive(Debug, Clone)]
pub struct HpaLoop {
    /// The HPA.
    pub hpa: crate::keda::Hpa,
    /// The value of the last sync.
    pub last: Option<f64>,
}

impl HpaLoop {
    /// Wraps an HPA.
    pub fn new(hpa: crate::keda::Hpa) -> HpaLoop {
        HpaLoop { hpa, last: None }
    }

    /// One HPA sync with the metric `value`.
    pub fn sync(&mut self, view: &View<'_>, value: Option<f64>) -> Option<u32> {
        self.last = value;
        let next = self
            .hpa
            .sync(view.now_ms, view.spec, view.provisioned, view.ready, value);
        (next != view.spec).then_some(next)
    }
}
