//! The discrete-event simulation: requests arrive, a least-loaded router hands them to ready
//! pods, each pod's engine steps on its own, pods start and stop, and a control plane (our
//! scaler through KEDA + HPA, or one of the baselines) changes the replica count.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde::Serialize;

use crate::core::cycle::{Cycle, Snapshot, active_answer, metric_answer};
use crate::core::extract::Engine;
use crate::core::fleet::SignalConfig;
use crate::core::fleet::{Observation, StaleKind, StaleReason, TargetRole};
use crate::core::policy::{Binding, PolicyConfig, Reason};

use super::keda::{
    Behavior, Executor, Hpa, HpaSpec, Keda, MetricKind, hpa_for_keda_llm_scaler,
    keda_for_keda_llm_scaler,
};
use super::load::Request;
use super::prom::{Prometheus, Sample};
use super::rng::Rng;
use super::score::{Action, RunFacts, Scores, Served, score};
use super::worker::{EngineParams, Event as EngineEvent, Frontend, Worker, least_loaded};

/// The policies a scenario is run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// keda-llm-scaler through KEDA's external trigger and the HPA.
    KedaLlmScaler,
    /// A fixed fleet sized for the busiest 10 seconds of the load.
    StaticPeak,
    /// A fixed fleet sized for the mean load.
    StaticMean,
    /// The reference design: KEDA Prometheus trigger on TTFT p95 (threshold 0.5 s, 5 m rate),
    /// AverageValue, HPA defaults.
    KedaPrometheusTtft,
    /// KEDA Prometheus trigger on `sum(num_requests_waiting)` (threshold 10), HPA defaults.
    KedaPrometheusQueue,
    /// HPA on the mean `kv_cache_usage_perc` (target 0.5), default behavior.
    HpaKv,
    /// Knows the future: each minute exactly the replicas that minute's load needs, ready at
    /// once. Its GPU-hours are the lower bound the others are compared with.
    Oracle,
}

impl Policy {
    /// Every policy, ours first.
    pub const ALL: [Policy; 7] = [
        Policy::KedaLlmScaler,
        Policy::StaticPeak,
        Policy::StaticMean,
        Policy::KedaPrometheusTtft,
        Policy::KedaPrometheusQueue,
        Policy::HpaKv,
        Policy::Oracle,
    ];

    /// The name used in tables, JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Policy::KedaLlmScaler => "keda-llm-scaler",
            Policy::StaticPeak => "static-peak",
            Policy::StaticMean => "static-mean",
            Policy::KedaPrometheusTtft => "keda-prometheus-ttft",
            Policy::KedaPrometheusQueue => "keda-prometheus-queue",
            Policy::HpaKv => "hpa-kv",
            Policy::Oracle => "oracle",
        }
    }

    /// Parses a name.
    pub fn from_name(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// GPU node provisioning (cluster autoscaler) for pods that find no free node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeParams {
    /// Shortest provisioning time, seconds.
    pub provision_min_s: f64,
    /// Longest provisioning time, seconds (drawn uniformly between the two).
    pub provision_max_s: f64,
    /// Nodes that exist from the start and are never removed.
    pub warm_nodes: u32,
    /// An empty node is removed after this long (the cluster autoscaler's
    /// `scale-down-unneeded-time`).
    pub idle_release_s: f64,
}

/// What the simulation needs of keda-llm-scaler's configuration: the signal and policy settings
/// the live controller runs with, what it reads and how often. The tools build it from the
/// validated ScaledObject metadata, so the simulated scaler is configured as a deployed one.
#[derive(Debug, Clone)]
pub struct ScalerUnderTest {
    /// Metric dialect.
    pub engine: Engine,
    /// Model filter.
    pub model: Option<String>,
    /// Frontend targets (Dynamo), scraped beside the workers.
    pub frontends: Vec<String>,
    /// Signal computation.
    pub signal: SignalConfig,
    /// Decision policy.
    pub policy: PolicyConfig,
    /// Scrape and decision period, ms.
    pub scrape_interval_ms: u64,
}

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

/// Everything about the simulated cluster and control plane.
#[derive(Debug, Clone)]
pub struct SimParams {
    /// Engine constants.
    pub engine: EngineParams,
    /// Pod start and model load, seconds.
    pub pod_start_s: f64,
    /// Node provisioning, if pods may need new nodes.
    pub nodes: Option<NodeParams>,
    /// Replica bounds.
    pub min_replicas: u32,
    /// Replica bounds.
    pub max_replicas: u32,
    /// TTFT SLO, seconds.
    pub slo_s: f64,
    /// keda-llm-scaler's validated configuration, as far as the simulation uses it.
    pub scaler: ScalerUnderTest,
    /// KEDA `pollingInterval`, seconds.
    pub polling_s: f64,
    /// HPA sync period, seconds.
    pub hpa_sync_s: f64,
    /// Prometheus scrape interval for the baselines, seconds.
    pub prom_scrape_s: f64,
    /// Timeline sampling period, seconds.
    pub sample_s: f64,
    /// Keep every page keda-llm-scaler scraped (for `simulate --record`).
    pub record: bool,
    /// Workers are Dynamo vLLM workers behind a Dynamo frontend (the scaler reads KV from the
    /// workers' system port and TTFT and queue from the frontend).
    pub dynamo: bool,
}

/// One scenario: the load and what goes wrong.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A name for tables.
    pub name: String,
    /// Arrivals, sorted.
    pub requests: Vec<Request>,
    /// Simulated time, seconds (arrivals after it are ignored).
    pub duration_s: f64,
    /// Intervals (start, length) in seconds during which every metrics scrape fails.
    pub outages: Vec<(f64, f64)>,
    /// Burst onsets, seconds (for recovery time).
    pub onsets: Vec<f64>,
}

/// Replicas per minute that the oracle provisions, and the capacity it assumed.
#[derive(Debug, Clone, Serialize)]
pub struct OraclePlan {
    /// Requests per second one replica sustains within the SLO for this length mix.
    pub capacity_rps: f64,
    /// Replicas for each minute.
    pub per_minute: Vec<u32>,
    /// Replicas for the busiest 10 seconds (what static peak provisioning buys).
    pub peak_10s: u32,
}

impl OraclePlan {
    /// Sizes each minute for its arrivals at `capacity_rps` per replica.
    pub fn new(
        requests: &[Request],
        duration_s: f64,
        capacity_rps: f64,
        min: u32,
        max: u32,
    ) -> OraclePlan {
        let minutes = (duration_s / 60.0).ceil().max(1.0) as usize;
        let mut counts = vec![0u64; minutes];
        for r in requests {
            let m = (r.arrival_us / 60_000_000) as usize;
            if let Some(c) = counts.get_mut(m) {
                *c += 1;
            }
        }
        let per_minute = counts
            .iter()
            .map(|c| {
                ((*c as f64 / 60.0) / capacity_rps)
                    .ceil()
                    .clamp(f64::from(min), f64::from(max)) as u32
            })
            .collect();
        let mut tens = vec![0u64; (duration_s / 10.0).ceil().max(1.0) as usize];
        for r in requests {
            if let Some(c) = tens.get_mut((r.arrival_us / 10_000_000) as usize) {
                *c += 1;
            }
        }
        let busiest = tens.iter().copied().max().unwrap_or(0) as f64 / 10.0;
        let peak_10s = (busiest / capacity_rps)
            .ceil()
            .clamp(f64::from(min), f64::from(max)) as u32;
        OraclePlan {
            capacity_rps,
            per_minute,
            peak_10s,
        }
    }

    /// GPU-hours of the plan.
    pub fn gpu_hours(&self, duration_s: f64) -> f64 {
        let full = self.per_minute.len().saturating_sub(1);
        let last = duration_s - full as f64 * 60.0;
        self.per_minute
            .iter()
            .enumerate()
            .map(|(i, n)| f64::from(*n) * if i == full { last } else { 60.0 })
            .sum::<f64>()
            / 3600.0
    }

    /// The busiest minute's replicas.
    pub fn peak(&self) -> u32 {
        self.per_minute.iter().copied().max().unwrap_or(1)
    }

    /// Replicas for the mean load.
    pub fn mean(&self, requests: usize, duration_s: f64, min: u32, max: u32) -> u32 {
        ((requests as f64 / duration_s) / self.capacity_rps)
            .ceil()
            .clamp(f64::from(min), f64::from(max)) as u32
    }
}

/// A point of the timeline the report draws.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// Seconds.
    pub t_s: f64,
    /// Spec replicas.
    pub spec: u32,
    /// Serving pods.
    pub ready: u32,
    /// What the control plane's metric said (desired replicas for ours; raw value for
    /// baselines).
    pub metric: Option<f64>,
    /// Requests waiting, fleet-wide.
    pub waiting: u32,
    /// Requests running, fleet-wide.
    pub running: u32,
    /// Mean KV usage over serving pods.
    pub kv_mean: f64,
    /// Highest KV usage of a serving pod.
    pub kv_max: f64,
    /// Whether scrapes were failing.
    pub outage: bool,
    /// The TTFT quantile keda-llm-scaler computed (None: undefined or not this policy).
    pub scaler_ttft_s: Option<f64>,
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
}

/// What one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Scores.
    pub scores: Scores,
    /// Timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Rolling 1-minute true p95 TTFT by arrival minute, seconds.
    pub ttft_p95_by_minute: Vec<Option<f64>>,
    /// keda-llm-scaler's decisions (empty for baselines).
    pub decisions: Vec<DecisionPoint>,
    /// Actions.
    pub actions: Vec<Action>,
    /// Every request's fate (dropped after scoring in comparisons).
    #[serde(skip)]
    pub served: Vec<Served>,
    /// keda-llm-scaler's scrape cycles (time, scrapes), when recording.
    #[serde(skip)]
    pub frames: Vec<(u64, Vec<RecordedScrape>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    StepEnd { pod: usize, epoch: u64 },
    PodReady { pod: usize },
    NodeReady { node: usize },
    ScalerTick,
    PromScrape,
    KedaPoll,
    HpaSync,
    OracleMinute,
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    WaitingNode,
    Starting,
    Ready,
    Gone,
}

#[derive(Debug)]
struct Pod {
    phase: Phase,
    worker: Worker,
    epoch: u64,
    gpu_since_us: Option<u64>,
    node: Option<usize>,
    created_us: u64,
}

#[derive(Debug)]
struct Node {
    ready: bool,
    pod: Option<usize>,
    empty_since_us: Option<u64>,
    gone: bool,
    warm: bool,
}

/// Microseconds from seconds.
fn us(s: f64) -> u64 {
    (s.max(0.0) * 1e6).round() as u64
}

struct Sim<'a> {
    p: &'a SimParams,
    sc: &'a Scenario,
    policy: Policy,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    spec: u32,
    gateway: VecDeque<usize>,
    first_token: Vec<u64>,
    finished: Vec<u64>,
    dropped: u64,
    gpu_us: u128,
    last_gpu_change: u64,
    holding_gpu: u32,
    peak: u32,
    actions: Vec<Action>,
    timeline: Vec<TimelinePoint>,
    decisions: Vec<DecisionPoint>,
    recorded: Vec<(u64, Vec<RecordedScrape>)>,
    frontend: Frontend,
    rng: Rng,
    events: Vec<EngineEvent>,
    page: String,
    // control planes
    cycle: Cycle,
    snapshot: Option<Snapshot>,
    prom: Prometheus,
    hpa: Option<Hpa>,
    keda: Keda,
    executor: Executor,
    last_metric: Option<f64>,
    oracle: &'a OraclePlan,
}

impl Sim<'_> {
    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn in_outage(&self) -> bool {
        let t = self.now as f64 / 1e6;
        self.sc.outages.iter().any(|(s, d)| t >= *s && t < s + d)
    }

    fn account_gpu(&mut self) {
        self.gpu_us += u128::from(self.now - self.last_gpu_change) * u128::from(self.holding_gpu);
        self.last_gpu_change = self.now;
        self.holding_gpu = self
            .pods
            .iter()
            .filter(|p| p.gpu_since_us.is_some() && p.phase != Phase::Gone)
            .count() as u32;
        self.peak = self.peak.max(self.holding_gpu);
    }

    fn alive(&self) -> impl Iterator<Item = (usize, &Pod)> {
        self.pods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.phase != Phase::Gone)
    }

    fn ready_count(&self) -> u32 {
        self.alive()
            .filter(|(_, p)| p.phase == Phase::Ready)
            .count() as u32
    }

    fn arrive(&mut self, req: usize) {
        self.frontend.queued += 1;
        self.frontend.inflight += 1;
        self.route(req);
    }

    fn route(&mut self, req: usize) {
        let best = least_loaded(
            self.pods
                .iter()
                .enumerate()
                .filter(|(_, p)| p.phase == Phase::Ready)
                .map(|(i, p)| (i, &p.worker)),
        );
        match best {
            None => self.gateway.push_back(req),
            Some(i) => {
                let r = self.sc.requests[req];
                self.pods[i]
                    .worker
                    .enqueue(req as u64, self.now, r.prompt, r.generate);
                if !self.pods[i].worker.is_stepping() {
                    self.kick(i);
                }
            }
        }
    }

    fn kick(&mut self, i: usize) {
        if let Some(d) = self.pods[i].worker.begin_step(&self.p.engine) {
            let epoch = self.pods[i].epoch;
            self.at(self.now + d, Ev::StepEnd { pod: i, epoch });
        }
    }

    fn add_pod(&mut self) {
        let id = self.pods.len();
        let mut pod = Pod {
            phase: Phase::Starting,
            worker: Worker::new(),
            epoch: 0,
            gpu_since_us: None,
            node: None,
            created_us: self.now,
        };
        match self.p.nodes.clone() {
            None => {
                pod.gpu_since_us = Some(self.now);
                self.pods.push(pod);
                self.at(self.now + us(self.p.pod_start_s), Ev::PodReady { pod: id });
            }
            Some(np) => {
                let free = self
                    .nodes
                    .iter()
                    .position(|n| !n.gone && n.ready && n.pod.is_none());
                match free {
                    Some(n) => {
                        self.nodes[n].pod = Some(id);
                        self.nodes[n].empty_since_us = None;
                        pod.node = Some(n);
                        pod.gpu_since_us = Some(self.now);
                        self.pods.push(pod);
                        self.at(self.now + us(self.p.pod_start_s), Ev::PodReady { pod: id });
                    }
                    None => {
                        // A node being provisioned and not yet promised to a pod, or a new one.
                        let pending = self
                            .nodes
                            .iter()
                            .position(|n| !n.gone && !n.ready && n.pod.is_none());
                        let n = match pending {
                            Some(n) => n,
                            None => {
                                let t = np.provision_min_s
                                    + self.rng.next_f64()
                                        * (np.provision_max_s - np.provision_min_s).max(0.0);
                                self.nodes.push(Node {
                                    ready: false,
                                    pod: None,
                                    empty_since_us: None,
                                    gone: false,
                                    warm: false,
                                });
                                let n = self.nodes.len() - 1;
                                self.at(self.now + us(t), Ev::NodeReady { node: n });
                                n
                            }
                        };
                        self.nodes[n].pod = Some(id);
                        pod.node = Some(n);
                        pod.phase = Phase::WaitingNode;
                        self.pods.push(pod);
                    }
                }
            }
        }
    }

    fn remove_pod(&mut self, i: usize) {
        let lost = self.pods[i].worker.drain();
        for (_, had_first) in lost {
            if !had_first {
                self.dropped += 1;
                self.frontend.queued = self.frontend.queued.saturating_sub(1);
            }
            self.frontend.inflight = self.frontend.inflight.saturating_sub(1);
        }
        self.pods[i].phase = Phase::Gone;
        self.pods[i].epoch += 1;
        self.prom.end(i as u64, self.now / 1000);
        if let Some(n) = self.pods[i].node.take() {
            let node = &mut self.nodes[n];
            node.pod = None;
            if node.ready {
                node.empty_since_us = Some(self.now);
            }
        }
    }

    /// Applies a new spec replica count, as the ReplicaSet controller would.
    fn set_spec(&mut self, target: u32) {
        let target = target.clamp(
            self.p.min_replicas.min(self.p.max_replicas),
            self.p.max_replicas,
        );
        if target == self.spec {
            return;
        }
        self.actions.push(Action {
            t_s: self.now as f64 / 1e6,
            from: self.spec,
            to: target,
        });
        let alive: Vec<usize> = self.alive().map(|(i, _)| i).collect();
        let have = alive.len() as u32;
        if target > have {
            for _ in have..target {
                self.add_pod();
            }
        } else if target < have {
            // Not-ready pods go first, then the most recently created.
            let mut order = alive;
            order.sort_by_key(|&i| {
                let p = &self.pods[i];
                (p.phase == Phase::Ready, Reverse(p.created_us), Reverse(i))
            });
            for &i in order.iter().take((have - target) as usize) {
                self.remove_pod(i);
            }
        }
        self.spec = target;
        self.account_gpu();
    }

    fn scraped(&self, i: usize) -> Option<Sample> {
        let p = &self.pods[i];
        if p.phase != Phase::Ready {
            return None;
        }
        let c = &p.worker.counters;
        let mut ttft = [0u64; 23];
        let mut acc = 0;
        for (b, n) in ttft.iter_mut().zip(c.ttft_buckets) {
            acc += n;
            *b = acc;
        }
        Some(Sample {
            t_ms: self.now / 1000,
            ttft,
            waiting: p.worker.waiting() as f64,
            running: p.worker.running() as f64,
            kv: p.worker.kv_usage(&self.p.engine),
        })
    }

    fn scaler_tick(&mut self) {
        let outage = self.in_outage();
        let mut observations = Vec::new();
        let mut scrapes = Vec::new();
        let ids: Vec<usize> = self
            .alive()
            .filter(|(_, p)| p.phase != Phase::WaitingNode)
            .map(|(i, _)| i)
            .collect();
        for i in ids {
            let id = format!("http://pod-{i}:8000/metrics");
            let page = if outage || self.pods[i].phase != Phase::Ready {
                Err(StaleReason {
                    kind: StaleKind::Connect,
                    detail: if outage {
                        "metrics outage (simulated)".to_string()
                    } else {
                        "connection refused: pod starting".to_string()
                    },
                })
            } else {
                self.page.clear();
                if self.p.dynamo {
                    self.pods[i]
                        .worker
                        .render_dynamo(&self.p.engine, &mut self.page);
                } else {
                    self.pods[i].worker.render(&self.p.engine, &mut self.page);
                }
                Ok(self.page.clone())
            };
            if self.p.record {
                scrapes.push(RecordedScrape {
                    id: id.clone(),
                    role: TargetRole::Worker,
                    page: page.clone(),
                });
            }
            observations.push(Observation::from_page(
                id,
                TargetRole::Worker,
                page,
                self.p.scaler.engine,
                self.p.scaler.model.as_deref(),
            ));
        }
        for id in self.p.scaler.frontends.clone() {
            let page = if outage {
                Err(StaleReason {
                    kind: StaleKind::Connect,
                    detail: "metrics outage (simulated)".to_string(),
                })
            } else {
                self.page.clear();
                self.frontend.render(&self.p.engine.model, &mut self.page);
                Ok(self.page.clone())
            };
            if self.p.record {
                scrapes.push(RecordedScrape {
                    id: id.clone(),
                    role: TargetRole::Frontend,
                    page: page.clone(),
                });
            }
            observations.push(Observation::from_page(
                id,
                TargetRole::Frontend,
                page,
                self.p.scaler.engine,
                self.p.scaler.model.as_deref(),
            ));
        }
        if self.p.record {
            self.recorded.push((self.now / 1000, scrapes));
        }
        let step = self.cycle.step(
            &self.p.scaler.signal,
            &self.p.scaler.policy,
            self.now / 1000,
            observations,
        );
        if step.changed {
            let d = &step.snapshot.decision;
            self.decisions.push(DecisionPoint {
                t_s: self.now as f64 / 1e6,
                desired: d.desired,
                reason: d.reason,
                binding: d.binding,
                ttft_s: step.snapshot.signals.ttft_seconds,
                detail: d.detail.clone(),
            });
        }
        self.snapshot = Some(step.snapshot);
    }

    fn prom_scrape(&mut self) {
        if self.in_outage() {
            return;
        }
        let ids: Vec<usize> = self.alive().map(|(i, _)| i).collect();
        for i in ids {
            if let Some(s) = self.scraped(i) {
                self.prom.ingest(i as u64, s);
            }
        }
        self.prom.compact(self.now / 1000);
    }

    fn hpa_sync(&mut self) {
        let now_ms = self.now / 1000;
        let s = self.alive().count() as u32;
        let ready = self.ready_count();
        let value = match self.policy {
            Policy::KedaLlmScaler => {
                let answer = metric_answer(self.snapshot.as_ref())
                    .map(f64::from)
                    .map_err(|_| ());
                self.last_metric = answer.ok();
                self.keda.metric_for_hpa(answer, self.spec)
            }
            Policy::KedaPrometheusTtft => {
                // ignoreNullValues (default true): an empty or NaN result reads as 0.
                let v = self
                    .prom
                    .ttft_quantile(now_ms, 300_000, 0.95)
                    .unwrap_or(0.0);
                self.last_metric = Some(v);
                Some(v)
            }
            Policy::KedaPrometheusQueue => {
                let v = self.prom.sum_waiting(now_ms).unwrap_or(0.0);
                self.last_metric = Some(v);
                Some(v)
            }
            Policy::HpaKv => {
                // Through prometheus-adapter: no series, no metric, and the HPA holds.
                let v = self.prom.mean_kv(now_ms);
                self.last_metric = v;
                v
            }
            _ => None,
        };
        if let Some(hpa) = self.hpa.as_mut() {
            let next = hpa.sync(now_ms, self.spec, s, ready, value);
            self.set_spec(next);
        }
    }

    fn sample(&mut self) {
        let serving: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|p| p.phase == Phase::Ready)
            .collect();
        let kv: Vec<f64> = serving
            .iter()
            .map(|p| p.worker.kv_usage(&self.p.engine))
            .collect();
        let point = TimelinePoint {
            t_s: self.now as f64 / 1e6,
            spec: self.spec,
            ready: serving.len() as u32,
            metric: self.last_metric,
            waiting: serving
                .iter()
                .map(|p| p.worker.waiting() as u32)
                .sum::<u32>()
                + self.gateway.len() as u32,
            running: serving.iter().map(|p| p.worker.running() as u32).sum(),
            kv_mean: if kv.is_empty() {
                0.0
            } else {
                kv.iter().sum::<f64>() / kv.len() as f64
            },
            kv_max: kv.iter().copied().fold(0.0, f64::max),
            outage: self.in_outage(),
            scaler_ttft_s: self.snapshot.as_ref().and_then(|s| s.signals.ttft_seconds),
        };
        self.timeline.push(point);
    }

    fn release_idle_nodes(&mut self) {
        let Some(np) = self.p.nodes.clone() else {
            return;
        };
        let now = self.now;
        for n in &mut self.nodes {
            if !n.gone
                && !n.warm
                && n.ready
                && n.pod.is_none()
                && let Some(since) = n.empty_since_us
                && now - since >= us(np.idle_release_s)
            {
                n.gone = true;
            }
        }
    }
}

/// Runs one policy on one scenario.
pub fn run(
    policy: Policy,
    sc: &Scenario,
    p: &SimParams,
    oracle: &OraclePlan,
    seed: u64,
) -> RunResult {
    let n = sc.requests.len();
    let keda = keda_for_keda_llm_scaler();
    let hpa = |metric, behavior| {
        Some(Hpa::new(HpaSpec {
            min: p.min_replicas.max(1),
            max: p.max_replicas,
            behavior,
            metric,
            tolerance: 0.1,
        }))
    };
    let hpa = match policy {
        Policy::KedaLlmScaler => Some(hpa_for_keda_llm_scaler(p.min_replicas, p.max_replicas)),
        Policy::KedaPrometheusTtft => hpa(MetricKind::ExternalAverageValue { target: 0.5 }, None),
        Policy::KedaPrometheusQueue => hpa(MetricKind::ExternalAverageValue { target: 10.0 }, None),
        Policy::HpaKv => hpa(
            MetricKind::PodsAverage { target: 0.5 },
            Some(Behavior::kubernetes_defaults()),
        ),
        _ => None,
    };
    let mut sim = Sim {
        p,
        sc,
        policy,
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        pods: Vec::new(),
        nodes: Vec::new(),
        spec: 0,
        gateway: VecDeque::new(),
        first_token: vec![u64::MAX; n],
        finished: vec![u64::MAX; n],
        dropped: 0,
        gpu_us: 0,
        last_gpu_change: 0,
        holding_gpu: 0,
        peak: 0,
        actions: Vec::new(),
        timeline: Vec::new(),
        decisions: Vec::new(),
        recorded: Vec::new(),
        frontend: Frontend::default(),
        rng: Rng::new(seed).fork(0x5eed),
        events: Vec::new(),
        page: String::with_capacity(8 << 10),
        cycle: Cycle::default(),
        snapshot: None,
        prom: Prometheus::new(600_000),
        hpa,
        keda,
        executor: Executor::new(p.min_replicas, 300_000, 0),
        last_metric: None,
        oracle,
    };

    // Every policy starts from the fleet the first minute needs, already serving; warm nodes
    // hold it.
    let initial = match policy {
        Policy::StaticPeak => oracle.peak_10s,
        Policy::StaticMean => oracle.mean(n, sc.duration_s, p.min_replicas, p.max_replicas),
        _ => oracle.per_minute.first().copied().unwrap_or(p.min_replicas),
    }
    .clamp(p.min_replicas.max(1), p.max_replicas);
    if let Some(np) = &p.nodes {
        for _ in 0..np.warm_nodes.max(initial) {
            sim.nodes.push(Node {
                ready: true,
                pod: None,
                empty_since_us: Some(0),
                gone: false,
                warm: true,
            });
        }
    }
    for _ in 0..initial {
        sim.add_pod();
        if let Some(last) = sim.pods.last_mut() {
            last.phase = Phase::Ready;
        }
    }
    sim.spec = initial;
    sim.queue.clear();
    sim.account_gpu();

    let end = us(sc.duration_s);
    let scrape_us = p.scaler.scrape_interval_ms * 1000;
    match policy {
        Policy::KedaLlmScaler => {
            sim.at(scrape_us, Ev::ScalerTick);
            sim.at(us(p.polling_s), Ev::KedaPoll);
            sim.at(us(p.hpa_sync_s), Ev::HpaSync);
        }
        Policy::KedaPrometheusTtft | Policy::KedaPrometheusQueue | Policy::HpaKv => {
            sim.at(us(p.prom_scrape_s), Ev::PromScrape);
            sim.at(us(p.hpa_sync_s), Ev::HpaSync);
        }
        Policy::Oracle => sim.at(60_000_000, Ev::OracleMinute),
        Policy::StaticPeak | Policy::StaticMean => {}
    }
    sim.at(0, Ev::Sample);

    let mut next_req = 0usize;
    loop {
        let next_ev = sim.queue.peek().map(|Reverse((t, _, _))| *t);
        let next_arrival = sc.requests.get(next_req).map(|r| r.arrival_us);
        let take_arrival = match (next_arrival, next_ev) {
            (Some(a), Some(e)) => a <= e,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_arrival {
            let a = next_arrival.unwrap_or(end);
            if a >= end {
                next_req = n;
                continue;
            }
            sim.now = a;
            sim.arrive(next_req);
            next_req += 1;
            continue;
        }
        let Some(Reverse((t, _, ev))) = sim.queue.pop() else {
            break;
        };
        if t >= end {
            sim.now = end;
            break;
        }
        sim.now = t;
        match ev {
            Ev::StepEnd { pod, epoch } => {
                if sim.pods[pod].phase != Phase::Ready || sim.pods[pod].epoch != epoch {
                    continue;
                }
                let mut events = std::mem::take(&mut sim.events);
                sim.pods[pod].worker.end_step(t, &mut events);
                let overhead = p.engine.api_overhead_s;
                for e in events.drain(..) {
                    match e {
                        EngineEvent::FirstToken { id } => {
                            sim.first_token[id as usize] = t;
                            let arrived = sc.requests[id as usize].arrival_us;
                            sim.frontend
                                .first_token((t - arrived) as f64 / 1e6 + overhead);
                        }
                        EngineEvent::Finished { id } => {
                            sim.finished[id as usize] = t;
                            sim.frontend.inflight = sim.frontend.inflight.saturating_sub(1);
                            sim.frontend.completed += 1;
                        }
                    }
                }
                sim.events = events;
                sim.kick(pod);
            }
            Ev::PodReady { pod } => {
                if sim.pods[pod].phase == Phase::Starting {
                    sim.pods[pod].phase = Phase::Ready;
                    while let Some(req) = sim.gateway.pop_front() {
                        sim.route(req);
                    }
                }
            }
            Ev::NodeReady { node } => {
                sim.nodes[node].ready = true;
                match sim.nodes[node].pod {
                    Some(pod) if sim.pods[pod].phase == Phase::WaitingNode => {
                        sim.pods[pod].phase = Phase::Starting;
                        sim.pods[pod].gpu_since_us = Some(t);
                        sim.account_gpu();
                        sim.at(t + us(p.pod_start_s), Ev::PodReady { pod });
                    }
                    _ => {
                        sim.nodes[node].pod = None;
                        sim.nodes[node].empty_since_us = Some(t);
                    }
                }
            }
            Ev::ScalerTick => {
                sim.scaler_tick();
                sim.at(t + scrape_us, Ev::ScalerTick);
            }
            Ev::PromScrape => {
                sim.prom_scrape();
                sim.at(t + us(p.prom_scrape_s), Ev::PromScrape);
            }
            Ev::KedaPoll => {
                let active = active_answer(sim.snapshot.as_ref());
                let ok = metric_answer(sim.snapshot.as_ref()).is_ok() && active.is_ok();
                sim.keda.poll(ok);
                // A fallback-active trigger counts as active (keda-protocol.md §2.7).
                let fallback_active = sim.keda.failures() > 3;
                let is_active = active.unwrap_or(false) || fallback_active;
                if let Some(n) = sim.executor.request_scale(
                    t / 1000,
                    sim.spec,
                    is_active,
                    !ok && !fallback_active,
                ) {
                    sim.set_spec(n);
                }
                sim.at(t + us(p.polling_s), Ev::KedaPoll);
            }
            Ev::HpaSync => {
                sim.hpa_sync();
                sim.at(t + us(p.hpa_sync_s), Ev::HpaSync);
            }
            Ev::OracleMinute => {
                let m = (t / 60_000_000) as usize;
                if let Some(&want) = sim.oracle.per_minute.get(m) {
                    let before = sim.pods.len();
                    sim.set_spec(want);
                    // Clairvoyant: its new pods serve at once.
                    let fresh: Vec<usize> = (before..sim.pods.len()).collect();
                    for i in fresh {
                        sim.pods[i].phase = Phase::Ready;
                        sim.pods[i].gpu_since_us.get_or_insert(t);
                        sim.pods[i].epoch += 1;
                    }
                    sim.account_gpu();
                    while let Some(req) = sim.gateway.pop_front() {
                        sim.route(req);
                    }
                }
                sim.at(t + 60_000_000, Ev::OracleMinute);
            }
            Ev::Sample => {
                sim.sample();
                sim.release_idle_nodes();
                sim.at(t + us(p.sample_s), Ev::Sample);
            }
        }
    }
    sim.now = end;
    sim.account_gpu();

    let overhead = us(p.engine.api_overhead_s);
    let served: Vec<Served> = sc
        .requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.arrival_us < end)
        .map(|(i, r)| Served {
            arrival_us: r.arrival_us,
            ttft_us: (sim.first_token[i] != u64::MAX)
                .then(|| sim.first_token[i] - r.arrival_us + overhead),
            decode_us: (sim.finished[i] != u64::MAX && sim.first_token[i] != u64::MAX)
                .then(|| sim.finished[i] - sim.first_token[i]),
            generated: r.generate,
        })
        .collect();
    let scores = score(
        policy.name(),
        RunFacts {
            served: &served,
            actions: &sim.actions,
            outages: &sc.outages,
            onsets: &sc.onsets,
            duration_s: sc.duration_s,
            slo_s: p.slo_s,
            gpu_seconds: sim.gpu_us as f64 / 1e6,
            oracle_gpu_hours: oracle.gpu_hours(sc.duration_s),
            peak_replicas: sim.peak,
            dropped: sim.dropped,
        },
    );
    let ttft_p95_by_minute = super::score::window_p95(&served, 60.0, sc.duration_s);
    RunResult {
        scores,
        timeline: sim.timeline,
        ttft_p95_by_minute,
        decisions: sim.decisions,
        actions: sim.actions,
        served,
        frames: sim.recorded,
    }
}
