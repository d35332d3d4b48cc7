//! The discrete-event simulation: requests arrive at a pod's API server (a server of its own
//! capacity), a least-loaded router hands them to ready pods, each pod's engine steps on its
//! own, clients give up after their timeout, pods start (a drawn time) and stop (killing what
//! they hold), and one [`Autoscaler`] changes the replica count on its own clocks.
//!
//! The loop knows no autoscaler by name: keda-llm-scaler, every rival and the oracle reach it
//! through the trait, and see only a [`View`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde::Serialize;

use crate::core::extract::Engine;
use crate::core::fleet::SignalConfig;
use crate::core::fleet::{StaleKind, StaleReason, TargetRole};
use crate::core::policy::PolicyConfig;

use super::autoscaler::{Autoscaler, View};
pub use super::autoscaler::{DecisionPoint, RecordedScrape};
use super::keda::Cluster;
use super::load::Request;
use super::prom::{Prometheus, Sample};
use super::rng::Rng;
use super::score::{Action, Fate, RunFacts, Scores, Served, Slo, score};
use super::worker::{EngineParams, Event as EngineEvent, Frontend, Worker};

/// A duration drawn uniformly between two bounds, seconds (pod starts, node provisioning).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Shortest.
    pub min_s: f64,
    /// Longest.
    pub max_s: f64,
}

impl Spread {
    /// One draw.
    pub fn draw(&self, rng: &mut Rng) -> f64 {
        self.min_s + rng.next_f64() * (self.max_s - self.min_s).max(0.0)
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        (self.min_s + self.max_s.max(self.min_s)) / 2.0
    }
}

/// GPU node provisioning (cluster autoscaler) for pods that find no free node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeParams {
    /// Provisioning time of a new GPU node (AKS: 5-11 min).
    pub provision: Spread,
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

/// Everything about the simulated cluster, its clients and the scoring.
#[derive(Debug, Clone)]
pub struct SimParams {
    /// Engine constants.
    pub engine: EngineParams,
    /// Pod start and model load.
    pub pod_start: Spread,
    /// Node provisioning, if pods may need new nodes.
    pub nodes: Option<NodeParams>,
    /// Replica bounds.
    pub min_replicas: u32,
    /// Replica bounds.
    pub max_replicas: u32,
    /// The scoring SLOs.
    pub slo: Slo,
    /// A client gives up on a request without its last token after this long, seconds.
    pub client_timeout_s: f64,
    /// The first seconds of a run are not scored.
    pub warmup_s: f64,
    /// The HPA the cluster runs.
    pub cluster: Cluster,
    /// keda-llm-scaler's validated configuration, as far as the simulation uses it.
    pub scaler: ScalerUnderTest,
    /// KEDA `pollingInterval`, seconds.
    pub polling_s: f64,
    /// HPA sync period, seconds.
    pub hpa_sync_s: f64,
    /// The cluster's Prometheus scrape interval, seconds.
    pub prom_scrape_s: f64,
    /// Timeline sampling period, seconds.
    pub sample_s: f64,
    /// Keep every page keda-llm-scaler scraped (for `simulate --record`).
    pub record: bool,
    /// Workers are Dynamo vLLM workers behind a Dynamo frontend (the scaler reads KV from the
    /// workers' system port and TTFT and queue from the frontend).
    pub dynamo: bool,
    /// The oracle's per-minute good-rate target.
    pub oracle_target: f64,
    /// keda-llm-scaler's `ttftTargetMs` is the scoring TTFT SLO (not set explicitly), so a
    /// load scored at another SLO configures it with that one, as a user would.
    pub scaler_follows_slo: bool,
}

/// One scenario: the load and what goes wrong.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A name for tables.
    pub name: String,
    /// Arrivals, sorted.
    pub requests: Vec<Request>,
    /// Arrivals stop here, seconds; the run goes on until every request has its fate.
    pub duration_s: f64,
    /// Intervals (start, length) in seconds during which every metrics scrape fails.
    pub outages: Vec<(f64, f64)>,
    /// Burst onsets, seconds (for recovery time).
    pub onsets: Vec<f64>,
}

/// The clairvoyant, SLO-feasible plan: for each minute, the fewest replicas whose minute
/// reaches the good-rate target given the queue carried in from the minute before.
#[derive(Debug, Clone, Serialize)]
pub struct OraclePlan {
    /// Replicas for each minute.
    pub per_minute: Vec<u32>,
    /// The per-minute good-rate target it was sized for.
    pub target: f64,
    /// Minutes that not even `max_replicas` could bring to the target.
    pub infeasible_minutes: u32,
}

impl OraclePlan {
    /// Replica-hours of the plan over `[from_s, to_s)`.
    pub fn gpu_hours(&self, from_s: f64, to_s: f64) -> f64 {
        self.per_minute
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (a, b) = (i as f64 * 60.0, (i + 1) as f64 * 60.0);
                f64::from(*n) * (b.min(to_s) - a.max(from_s)).max(0.0)
            })
            .sum::<f64>()
            / 3600.0
    }

    /// The busiest minute's replicas: what a static fleet sized for the peak needs.
    pub fn peak(&self) -> u32 {
        self.per_minute.iter().copied().max().unwrap_or(1)
    }

    /// The mean of the plan, rounded up: a static fleet sized for the mean load.
    pub fn mean(&self) -> u32 {
        let n = self.per_minute.len().max(1) as f64;
        (self.per_minute.iter().map(|&x| f64::from(x)).sum::<f64>() / n).ceil() as u32
    }

    /// The steady fleet every dynamic policy starts from: what the first three minutes need.
    pub fn steady_start(&self) -> u32 {
        self.per_minute.iter().take(3).copied().max().unwrap_or(1)
    }

    /// Replicas the plan wants at `t_s`.
    pub fn at(&self, t_s: f64) -> u32 {
        let m = (t_s.max(0.0) / 60.0) as usize;
        self.per_minute
            .get(m)
            .or(self.per_minute.last())
            .copied()
            .unwrap_or(1)
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
    /// What the control plane's metric said.
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

/// What one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Scores.
    pub scores: Scores,
    /// Timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Rolling 1-minute true p95 TTFT by arrival minute, seconds.
    pub ttft_p95_by_minute: Vec<Option<f64>>,
    /// keda-llm-scaler's decisions (empty for the others).
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
    StepEnd { pod: usize, step: u64 },
    EngineArrive { pod: usize, epoch: u64 },
    PodReady { pod: usize },
    NodeReady { node: usize },
    PromScrape,
    Clock { k: usize },
    Sweep,
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    WaitingNode,
    Starting,
    Ready,
    Gone,
}

#[derive(Debug, Clone)]
struct Pod {
    phase: Phase,
    worker: Worker,
    epoch: u64,
    gpu_since_us: Option<u64>,
    node: Option<usize>,
    created_us: u64,
    /// The API server processes: when each is next free, and the requests they hold (FIFO:
    /// equal work per request, so they finish in the order they came).
    api_free_us: Vec<u64>,
    api: VecDeque<usize>,
    next_sweep_us: u64,
    /// When the engine's current plan began, and its generation (a cut-short run's old end
    /// event is stale).
    step_start_us: u64,
    step_gen: u64,
}

#[derive(Debug, Clone)]
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

/// How often a pod's engine drops the requests whose clients gave up.
const SWEEP_US: u64 = 1_000_000;

/// Extra simulated time after the last arrival for the last fates to settle, beyond the
/// client timeout.
const DRAIN_EXTRA_US: u64 = 5_000_000;

/// Request fates while running (0 = not yet).
const PENDING: u8 = 0;

fn fate_code(f: Fate) -> u8 {
    match f {
        Fate::Completed => 1,
        Fate::TimedOut => 2,
        Fate::Killed => 3,
        Fate::Rejected => 4,
        Fate::Unfinished => 5,
    }
}

fn fate_of(code: u8) -> Fate {
    match code {
        1 => Fate::Completed,
        2 => Fate::TimedOut,
        3 => Fate::Killed,
        4 => Fate::Rejected,
        _ => Fate::Unfinished,
    }
}

/// What happened to one request so far (times in µs; `u64::MAX` not yet).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    first_token: u64,
    finished: u64,
    fate: u8,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            first_token: u64::MAX,
            finished: u64::MAX,
            fate: PENDING,
        }
    }
}

/// Every request's outcome from `base` on: the oracle's search forgets settled requests so
/// that each candidate's copy of the simulation copies minutes, not the whole load.
#[derive(Debug, Clone)]
struct Outcomes {
    base: usize,
    of: Vec<Outcome>,
}

impl Outcomes {
    fn get(&self, i: usize) -> Outcome {
        i.checked_sub(self.base)
            .and_then(|j| self.of.get(j))
            .copied()
            .unwrap_or_default()
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Outcome> {
        self.of.get_mut(i.checked_sub(self.base)?)
    }

    /// Forgets the outcomes of requests before `i`.
    fn forget_before(&mut self, i: usize) {
        let k = i.saturating_sub(self.base).min(self.of.len());
        self.of.drain(..k);
        self.base += k;
    }
}

#[derive(Clone)]
struct Sim<'a> {
    p: &'a SimParams,
    sc: &'a Scenario,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    pods: Vec<Pod>,
    /// Indices of the serving pods, ascending (the router's candidates).
    serving: Vec<usize>,
    nodes: Vec<Node>,
    spec: u32,
    gateway: VecDeque<usize>,
    next_req: usize,
    outcomes: Outcomes,
    arrivals: u64,
    gpu_us: u128,
    scored_gpu_us: u128,
    last_gpu_change: u64,
    holding_gpu: u32,
    peak: u32,
    actions: Vec<Action>,
    timeline: Vec<TimelinePoint>,
    frontend: Frontend,
    rng: Rng,
    events: Vec<EngineEvent>,
    lost: Vec<(u64, bool)>,
    prom: Prometheus,
    clocks: Vec<u64>,
    prom_scrape_us: u64,
    last_metric: Option<f64>,
    own_ttft: Option<f64>,
}

impl<'a> Sim<'a> {
    fn new(p: &'a SimParams, sc: &'a Scenario, seed: u64) -> Sim<'a> {
        let n = sc.requests.len();
        Sim {
            p,
            sc,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            pods: Vec::new(),
            serving: Vec::new(),
            nodes: Vec::new(),
            spec: 0,
            gateway: VecDeque::new(),
            next_req: 0,
            outcomes: Outcomes {
                base: 0,
                of: vec![Outcome::default(); n],
            },
            arrivals: 0,
            gpu_us: 0,
            scored_gpu_us: 0,
            last_gpu_change: 0,
            holding_gpu: 0,
            peak: 0,
            actions: Vec::new(),
            timeline: Vec::new(),
            frontend: Frontend::default(),
            rng: Rng::new(seed).fork(0x5eed),
            events: Vec::new(),
            lost: Vec::new(),
            prom: Prometheus::new(600_000),
            clocks: Vec::new(),
            prom_scrape_us: us(p.prom_scrape_s),
            last_metric: None,
            own_ttft: None,
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn in_outage(&self) -> bool {
        let t = self.now as f64 / 1e6;
        self.sc.outages.iter().any(|(s, d)| t >= *s && t < s + d)
    }

    fn end_us(&self) -> u64 {
        us(self.sc.duration_s)
    }

    fn account_gpu(&mut self) {
        let (from, to) = (self.last_gpu_change, self.now);
        let held = u128::from(self.holding_gpu);
        self.gpu_us += u128::from(to - from) * held;
        let (a, b) = (from.max(us(self.p.warmup_s)), to.min(self.end_us()));
        if b > a {
            self.scored_gpu_us += u128::from(b - a) * held;
        }
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
        self.serving.len() as u32
    }

    fn settle(&mut self, req: usize, fate: Fate) {
        let Some(o) = self.outcomes.get_mut(req) else {
            return;
        };
        if o.fate == PENDING {
            o.fate = fate_code(fate);
            if o.first_token == u64::MAX {
                self.frontend.queued = self.frontend.queued.saturating_sub(1);
            }
            self.frontend.inflight = self.frontend.inflight.saturating_sub(1);
        }
    }

    fn arrive(&mut self, req: usize) {
        self.arrivals += 1;
        self.frontend.queued += 1;
        self.frontend.inflight += 1;
        self.route(req);
    }

    /// The ready pod with the fewest requests (API server, waiting and running), the lowest
    /// index on a tie; the request waits at the gateway while none is ready.
    fn route(&mut self, req: usize) {
        let pods = &self.pods;
        let best = self.serving.iter().copied().min_by_key(|&i| {
            let p = &pods[i];
            (p.worker.running() + p.worker.waiting() + p.api.len(), i)
        });
        match best {
            None => self.gateway.push_back(req),
            Some(i) => {
                let service = us(self.p.engine.frontend_service_s);
                let pod = &mut self.pods[i];
                let Some(server) = pod.api_free_us.iter_mut().min() else {
                    return;
                };
                let start = (*server).max(self.now);
                *server = start + service;
                let at = *server;
                pod.api.push_back(req);
                let epoch = pod.epoch;
                self.at(at, Ev::EngineArrive { pod: i, epoch });
            }
        }
    }

    fn kick(&mut self, i: usize) {
        loop {
            if let Some(d) = self.pods[i].worker.begin_step(&self.p.engine) {
                let pod = &mut self.pods[i];
                pod.step_gen += 1;
                pod.step_start_us = self.now;
                let step = pod.step_gen;
                self.at(self.now + d, Ev::StepEnd { pod: i, step });
                return;
            }
            // A refused prompt leaves the engine idle with the rest still waiting.
            let rejected = self.pods[i].worker.take_rejected();
            if rejected.is_empty() {
                return;
            }
            for id in rejected {
                self.settle(id as usize, Fate::Rejected);
            }
        }
    }

    fn start_pod(&mut self, id: usize) {
        let start = self.p.pod_start.draw(&mut self.rng);
        self.pods[id].gpu_since_us = Some(self.now);
        self.pods[id].phase = Phase::Starting;
        self.at(self.now + us(start), Ev::PodReady { pod: id });
    }

    fn add_pod(&mut self) -> usize {
        let id = self.pods.len();
        self.pods.push(Pod {
            phase: Phase::WaitingNode,
            worker: Worker::new(),
            epoch: 0,
            gpu_since_us: None,
            node: None,
            created_us: self.now,
            api_free_us: vec![0; self.p.engine.api_servers.max(1) as usize],
            api: VecDeque::new(),
            next_sweep_us: 0,
            step_start_us: 0,
            step_gen: 0,
        });
        let Some(np) = self.p.nodes.clone() else {
            self.start_pod(id);
            return id;
        };
        if let Some(n) = self
            .nodes
            .iter()
            .position(|n| !n.gone && n.ready && n.pod.is_none())
        {
            self.nodes[n].pod = Some(id);
            self.nodes[n].empty_since_us = None;
            self.pods[id].node = Some(n);
            self.start_pod(id);
            return id;
        }
        // A node being provisioned and not yet promised to a pod, or a new one.
        let n = match self
            .nodes
            .iter()
            .position(|n| !n.gone && !n.ready && n.pod.is_none())
        {
            Some(n) => n,
            None => {
                let t = np.provision.draw(&mut self.rng);
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
        self.pods[id].node = Some(n);
        id
    }

    fn remove_pod(&mut self, i: usize) {
        let mut lost = std::mem::take(&mut self.lost);
        lost.clear();
        self.pods[i].worker.drain_into(&mut lost);
        for (id, _) in lost.drain(..) {
            self.settle(id as usize, Fate::Killed);
        }
        self.lost = lost;
        while let Some(req) = self.pods[i].api.pop_front() {
            self.settle(req, Fate::Killed);
        }
        self.pods[i].phase = Phase::Gone;
        self.serving.retain(|&x| x != i);
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
        self.resize(target);
        self.spec = target;
        self.account_gpu();
    }

    fn resize(&mut self, target: u32) {
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
    }

    /// Sets the fleet to `n` serving pods at once (the steady start, and the oracle's search).
    fn force_ready(&mut self, n: u32) {
        self.resize(n);
        for i in 0..self.pods.len() {
            if matches!(self.pods[i].phase, Phase::Starting | Phase::WaitingNode) {
                self.set_serving(i);
                self.pods[i].gpu_since_us.get_or_insert(self.now);
                self.pods[i].epoch += 1;
            }
        }
        self.spec = n;
        self.account_gpu();
        self.drain_gateway();
    }

    fn set_serving(&mut self, i: usize) {
        self.pods[i].phase = Phase::Ready;
        if let Err(at) = self.serving.binary_search(&i) {
            self.serving.insert(at, i);
        }
    }

    fn drain_gateway(&mut self) {
        if self.ready_count() == 0 {
            return;
        }
        while let Some(req) = self.gateway.pop_front() {
            self.route(req);
        }
    }

    fn sample_of(&self, i: usize) -> Option<Sample> {
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
        let mut itl = [0u64; 20];
        let mut acc = 0;
        for (b, n) in itl.iter_mut().zip(c.itl_buckets) {
            acc += n;
            *b = acc;
        }
        Some(Sample {
            t_ms: self.now / 1000,
            ttft,
            itl,
            waiting: p.worker.waiting() as f64,
            running: p.worker.running() as f64,
            kv: p.worker.kv_usage(&self.p.engine),
            prompt_tokens: c.prompt_tokens,
            generation_tokens: c.generation_tokens,
            success: c.success,
        })
    }

    fn prom_scrape(&mut self) {
        if self.in_outage() {
            return;
        }
        let ids: Vec<usize> = self.alive().map(|(i, _)| i).collect();
        for i in ids {
            if let Some(s) = self.sample_of(i) {
                self.prom.ingest(i as u64, s);
            }
        }
        self.prom.ingest_arrivals(self.now / 1000, self.arrivals);
        self.prom.compact(self.now / 1000);
    }

    /// Every pod's and frontend's `/metrics` as a scrape finds it now.
    fn pages(&self) -> Vec<RecordedScrape> {
        let outage = self.in_outage();
        let refused = |detail: &str| {
            Err(StaleReason {
                kind: StaleKind::Connect,
                detail: detail.to_string(),
            })
        };
        let mut out = Vec::new();
        for (i, pod) in self.alive() {
            if pod.phase == Phase::WaitingNode {
                continue;
            }
            let page = if outage {
                refused("metrics outage (simulated)")
            } else if pod.phase != Phase::Ready {
                refused("connection refused: pod starting")
            } else {
                let mut page = String::with_capacity(8 << 10);
                if self.p.dynamo {
                    pod.worker.render_dynamo(&self.p.engine, &mut page);
                } else {
                    pod.worker.render(&self.p.engine, &mut page);
                }
                Ok(page)
            };
            out.push(RecordedScrape {
                id: format!("http://pod-{i}:8000/metrics"),
                role: TargetRole::Worker,
                page,
            });
        }
        for id in &self.p.scaler.frontends {
            let page = if outage {
                refused("metrics outage (simulated)")
            } else {
                let mut page = String::with_capacity(4 << 10);
                self.frontend.render(&self.p.engine.model, &mut page);
                Ok(page)
            };
            out.push(RecordedScrape {
                id: id.clone(),
                role: TargetRole::Frontend,
                page,
            });
        }
        out
    }

    fn in_flight(&self) -> Option<f64> {
        if self.in_outage() {
            return None;
        }
        let held: usize = self
            .alive()
            .filter(|(_, p)| p.phase == Phase::Ready)
            .map(|(_, p)| p.worker.running() + p.worker.waiting() + p.api.len())
            .sum();
        Some((held + self.gateway.len()) as f64)
    }

    fn tick(&mut self, auto: &mut dyn Autoscaler, k: usize) {
        let want = {
            let pages = || self.pages();
            let view = View {
                now_ms: self.now / 1000,
                spec: self.spec,
                ready: self.ready_count(),
                provisioned: self.alive().count() as u32,
                prom: &self.prom,
                engine: &self.p.engine,
                in_flight: self.in_flight(),
                pages: &pages,
            };
            auto.tick(k, &view)
        };
        self.last_metric = auto.metric();
        self.own_ttft = auto.own_ttft_s();
        if let Some(n) = want {
            self.set_spec(n);
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
            scaler_ttft_s: self.own_ttft,
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

    /// Drops what the clients gave up on at the gateway.
    fn sweep_gateway(&mut self) {
        let cutoff = self.now.saturating_sub(us(self.p.client_timeout_s));
        while let Some(&req) = self.gateway.front() {
            if self.sc.requests[req].arrival_us >= cutoff {
                break;
            }
            self.gateway.pop_front();
            self.settle(req, Fate::TimedOut);
        }
    }

    fn step_end(&mut self, pod: usize, t: u64) {
        let mut events = std::mem::take(&mut self.events);
        self.pods[pod].worker.end_step(t, &mut events);
        let latency = self.p.engine.frontend_latency_s;
        let timeout = us(self.p.client_timeout_s);
        for e in events.drain(..) {
            match e {
                EngineEvent::FirstToken { id } => {
                    let id = id as usize;
                    if let Some(o) = self.outcomes.get_mut(id)
                        && o.fate == PENDING
                    {
                        o.first_token = t;
                        let arrived = self.sc.requests[id].arrival_us;
                        self.frontend
                            .first_token((t - arrived) as f64 / 1e6 + latency);
                    }
                }
                EngineEvent::Finished { id } => {
                    let id = id as usize;
                    if let Some(o) = self.outcomes.get_mut(id) {
                        o.finished = t;
                    }
                    self.frontend.completed += 1;
                    let late = t.saturating_sub(self.sc.requests[id].arrival_us) > timeout;
                    self.settle(
                        id,
                        if late {
                            Fate::TimedOut
                        } else {
                            Fate::Completed
                        },
                    );
                }
            }
        }
        self.events = events;
        if t >= self.pods[pod].next_sweep_us {
            self.pods[pod].next_sweep_us = t + SWEEP_US;
            let mut lost = std::mem::take(&mut self.lost);
            lost.clear();
            self.pods[pod]
                .worker
                .cancel_arrived_before(t.saturating_sub(timeout), &mut lost);
            for (id, _) in lost.drain(..) {
                self.settle(id as usize, Fate::TimedOut);
            }
            self.lost = lost;
        }
    }

    /// Processes arrivals and events strictly before `until`.
    fn advance(&mut self, until: u64, mut auto: Option<&mut dyn Autoscaler>) {
        let arrivals_end = self.end_us();
        loop {
            let next_ev = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_arrival = self
                .sc
                .requests
                .get(self.next_req)
                .map(|r| r.arrival_us)
                .filter(|&a| a < arrivals_end);
            let take_arrival = match (next_arrival, next_ev) {
                (Some(a), Some(e)) => a <= e,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if take_arrival {
                let a = next_arrival.unwrap_or(until);
                if a >= until {
                    break;
                }
                self.now = a;
                let r = self.next_req;
                self.next_req += 1;
                self.arrive(r);
                continue;
            }
            let Some(&Reverse((t, _, _))) = self.queue.peek() else {
                break;
            };
            if t >= until {
                break;
            }
            let Some(Reverse((t, _, ev))) = self.queue.pop() else {
                break;
            };
            self.now = t;
            match ev {
                Ev::StepEnd { pod, step } => {
                    if self.pods[pod].phase != Phase::Ready || self.pods[pod].step_gen != step {
                        continue;
                    }
                    self.step_end(pod, t);
                    self.kick(pod);
                }
                Ev::EngineArrive { pod, epoch } => {
                    if self.pods[pod].epoch != epoch {
                        continue;
                    }
                    let Some(req) = self.pods[pod].api.pop_front() else {
                        continue;
                    };
                    if self.outcomes.get(req).fate != PENDING {
                        continue;
                    }
                    let r = self.sc.requests[req];
                    self.pods[pod]
                        .worker
                        .enqueue(req as u64, r.arrival_us, r.prompt, r.generate);
                    if !self.pods[pod].worker.is_stepping() {
                        self.kick(pod);
                    } else {
                        // A run of decode steps ends with its step in progress, so the new
                        // request is admitted at the next step boundary.
                        let p = &mut self.pods[pod];
                        if let Some(d) = p.worker.interrupt(t - p.step_start_us) {
                            p.step_gen += 1;
                            let (step, end) = (p.step_gen, p.step_start_us + d);
                            self.at(end, Ev::StepEnd { pod, step });
                        }
                    }
                }
                Ev::PodReady { pod } => {
                    if self.pods[pod].phase == Phase::Starting {
                        self.set_serving(pod);
                        self.drain_gateway();
                    }
                }
                Ev::NodeReady { node } => {
                    self.nodes[node].ready = true;
                    match self.nodes[node].pod {
                        Some(pod) if self.pods[pod].phase == Phase::WaitingNode => {
                            self.start_pod(pod);
                            self.account_gpu();
                        }
                        _ => {
                            self.nodes[node].pod = None;
                            self.nodes[node].empty_since_us = Some(t);
                        }
                    }
                }
                Ev::PromScrape => {
                    self.prom_scrape();
                    self.at(t + self.prom_scrape_us, Ev::PromScrape);
                }
                Ev::Clock { k } => {
                    if let Some(a) = auto.as_deref_mut() {
                        self.tick(a, k);
                    }
                    let period = self.clocks[k];
                    self.at(t + period, Ev::Clock { k });
                }
                Ev::Sweep => {
                    self.sweep_gateway();
                    self.at(t + SWEEP_US, Ev::Sweep);
                }
                Ev::Sample => {
                    self.sample();
                    self.release_idle_nodes();
                    self.at(t + us(self.p.sample_s), Ev::Sample);
                }
            }
        }
        self.now = self.now.max(until.min(self.drain_end()));
    }

    fn drain_end(&self) -> u64 {
        self.end_us() + us(self.p.client_timeout_s) + DRAIN_EXTRA_US
    }

    /// Starts the fleet at `initial` serving pods on warm nodes, and the recurring events.
    fn boot(&mut self, initial: u32, clocks: Vec<u64>, prom_scrape_us: Option<u64>) {
        if let Some(np) = &self.p.nodes {
            for _ in 0..np.warm_nodes.max(initial) {
                self.nodes.push(Node {
                    ready: true,
                    pod: None,
                    empty_since_us: Some(0),
                    gone: false,
                    warm: true,
                });
            }
        }
        self.force_ready(initial);
        self.queue.clear();
        self.clocks = clocks;
        if let Some(s) = prom_scrape_us {
            self.prom_scrape_us = s.max(1000);
        }
        for k in 0..self.clocks.len() {
            let period = self.clocks[k].max(1);
            self.clocks[k] = period;
            self.at(period, Ev::Clock { k });
        }
        self.at(self.prom_scrape_us, Ev::PromScrape);
        self.at(SWEEP_US, Ev::Sweep);
        self.at(0, Ev::Sample);
    }

    /// Share of the requests that arrived in `[from, to)` that are good, or provisionally
    /// good (a first token within the SLO and not yet failed).
    fn good_rate_between(&self, from: u64, to: u64) -> f64 {
        let reqs = &self.sc.requests;
        let start = reqs.partition_point(|r| r.arrival_us < from);
        let end = reqs.partition_point(|r| r.arrival_us < to);
        if end <= start {
            return 1.0;
        }
        let slo = &self.p.slo;
        let good = (start..end)
            .filter(|&i| {
                let r = reqs[i];
                let ttft_ok = |t: u64| {
                    (t - r.arrival_us) as f64 / 1e6 + self.p.engine.frontend_latency_s <= slo.ttft_s
                };
                let o = self.outcomes.get(i);
                match o.fate {
                    PENDING => {
                        if o.first_token == u64::MAX {
                            (self.now.saturating_sub(r.arrival_us)) as f64 / 1e6 <= slo.ttft_s
                        } else {
                            ttft_ok(o.first_token)
                        }
                    }
                    code => self.served(i, fate_of(code)).good(slo),
                }
            })
            .count();
        good as f64 / (end - start) as f64
    }

    fn served(&self, i: usize, fate: Fate) -> Served {
        let r = self.sc.requests[i];
        let latency = us(self.p.engine.frontend_latency_s);
        let Outcome {
            first_token: ft,
            finished: fin,
            ..
        } = self.outcomes.get(i);
        Served {
            arrival_us: r.arrival_us,
            ttft_us: (ft != u64::MAX).then(|| ft - r.arrival_us + latency),
            decode_us: (fate == Fate::Completed && fin != u64::MAX && ft != u64::MAX)
                .then(|| fin - ft),
            generated: r.generate,
            fate,
        }
    }
}

/// Runs `auto` on one scenario from the steady fleet `plan` gives, and scores it.
pub fn run(
    mut auto: Box<dyn Autoscaler + '_>,
    name: &str,
    sc: &Scenario,
    p: &SimParams,
    plan: &OraclePlan,
    seed: u64,
) -> RunResult {
    let mut sim = Sim::new(p, sc, seed);
    let initial = auto
        .initial_replicas(plan.steady_start())
        .clamp(p.min_replicas.max(1), p.max_replicas);
    let clocks = auto.clocks_ms().into_iter().map(|ms| ms * 1000).collect();
    sim.boot(
        initial,
        clocks,
        auto.prometheus_scrape_ms().map(|ms| ms * 1000),
    );
    let end = sim.drain_end();
    sim.advance(end, Some(auto.as_mut()));
    sim.now = end;
    sim.account_gpu();
    let extras = auto.finish();

    let served: Vec<Served> = (0..sc.requests.len())
        .filter(|&i| sc.requests[i].arrival_us < sim.end_us())
        .map(|i| sim.served(i, fate_of(sim.outcomes.get(i).fate)))
        .collect();
    let scores = score(
        name,
        RunFacts {
            served: &served,
            actions: &sim.actions,
            outages: &sc.outages,
            onsets: &sc.onsets,
            from_s: p.warmup_s.min(sc.duration_s),
            duration_s: sc.duration_s,
            slo: p.slo,
            gpu_seconds: sim.scored_gpu_us as f64 / 1e6,
            oracle_gpu_hours: plan.gpu_hours(p.warmup_s, sc.duration_s),
            peak_replicas: sim.peak,
        },
    );
    let ttft_p95_by_minute = super::score::window_p95(&served, 60.0, sc.duration_s);
    RunResult {
        scores,
        timeline: sim.timeline,
        ttft_p95_by_minute,
        decisions: extras.decisions,
        actions: sim.actions,
        served,
        frames: extras.frames,
    }
}

/// After the client timeout, how long a cancellation may wait for its engine's step to end.
const SETTLED_MARGIN_US: u64 = 30_000_000;

/// Seconds of the next minute the oracle's search lets run with a candidate size, so that the
/// minute's last arrivals have their first token (or have missed it) before they are judged.
const ORACLE_TAIL_US: u64 = 10_000_000;

/// Sizes the clairvoyant, SLO-feasible plan for `sc` and `seed`: minute by minute, the fewest
/// replicas (within the bounds) whose minute reaches `p.oracle_target` good requests, starting
/// from the fleet and queues the chosen plan left at the end of the minute before. Each
/// candidate is tried on a copy of the whole simulation, pods serving from the minute's start
/// (the plan is executed by asking for them one pod start ahead).
pub fn plan_oracle(sc: &Scenario, p: &SimParams, seed: u64) -> OraclePlan {
    let minutes = (sc.duration_s / 60.0).ceil().max(1.0) as usize;
    let (lo, hi) = (p.min_replicas.max(1), p.max_replicas.max(1));
    let mut base = Sim::new(p, sc, seed);
    base.boot(lo, Vec::new(), None);
    let mut per_minute = Vec::with_capacity(minutes);
    let mut infeasible = 0u32;
    let mut prev = lo;
    for m in 0..minutes {
        let start = m as u64 * 60_000_000;
        let end = ((m + 1) as u64 * 60_000_000).min(base.end_us().max(start + 1));
        // A candidate is judged on its own minute and on the minute before, whose requests
        // still in flight a removal would kill.
        let before = start.saturating_sub(60_000_000);
        let meets = |n: u32| {
            let mut trial = base.clone();
            trial.force_ready(n);
            trial.advance(end + ORACLE_TAIL_US, None);
            trial.good_rate_between(start, end) >= p.oracle_target
                && (m == 0 || trial.good_rate_between(before, start) >= p.oracle_target)
        };
        // Gallop from the previous minute's size: most minutes move by one replica or none.
        let n = if meets(prev) {
            let mut n = prev;
            while n > lo && meets(n - 1) {
                n -= 1;
            }
            n
        } else {
            let mut n = prev + 1;
            while n <= hi && !meets(n) {
                n += 1;
            }
            if n > hi {
                infeasible += 1;
                hi
            } else {
                n
            }
        };
        base.force_ready(n);
        base.advance(end, None);
        // Requests this old are settled (timed out at the latest): the later minutes' copies
        // need not carry them.
        let settled = end.saturating_sub(us(p.client_timeout_s) + SETTLED_MARGIN_US);
        let before = sc.requests.partition_point(|r| r.arrival_us < settled);
        base.outcomes.forget_before(before);
        per_minute.push(n);
        prev = n;
    }
    OraclePlan {
        per_minute,
        target: p.oracle_target,
        infeasible_minutes: infeasible,
    }
}
