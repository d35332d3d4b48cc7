//! A fleet advanced in wall-clock time, for the demo: pods that start after a delay, the
//! simulator's router and engine model, and the true TTFT of what was served. Pure like the
//! rest of the crate: the demo passes the time in and turns the [`Change`]s it gets back into
//! HTTP servers (a pod's `/metrics`) and service-discovery entries.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::worker::{EngineParams, Event, Worker, least_loaded};

/// How long served TTFTs are kept for the true p95, µs.
const TRUE_TTFT_WINDOW_US: u64 = 10_000_000;
/// Fewer TTFTs than this in the window: no true p95.
const TRUE_TTFT_MIN_SAMPLES: usize = 5;
/// Prompt and output tokens of every demo request.
const DEMO_REQUEST_TOKENS: (u32, u32) = (512, 128);

/// What changed in the fleet that the outside world must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The pod finished starting: its `/metrics` should now be served and discovered.
    Started(u64),
    /// The pod was removed (scale-down): stop serving it; its requests are lost.
    Removed(u64),
}

/// One pod of the live fleet.
#[derive(Debug)]
pub struct LivePod {
    /// Its engine.
    pub worker: Worker,
    /// Serving (its start time has passed).
    pub ready: bool,
    ready_at_us: u64,
    step_end_us: Option<u64>,
    /// When the engine's current plan began.
    step_start_us: u64,
}

/// The demo's fleet. See the module docs.
#[derive(Debug)]
pub struct LiveFleet {
    params: EngineParams,
    pods: BTreeMap<u64, LivePod>,
    next_pod: u64,
    spec: u32,
    arrivals: HashMap<u64, u64>,
    next_req: u64,
    ttfts: VecDeque<(u64, f64)>,
    events: Vec<Event>,
    pod_start_us: u64,
}

impl LiveFleet {
    /// An empty fleet whose new pods take `pod_start_us` to start.
    pub fn new(params: EngineParams, pod_start_us: u64) -> LiveFleet {
        LiveFleet {
            params,
            pods: BTreeMap::new(),
            next_pod: 0,
            spec: 0,
            arrivals: HashMap::new(),
            next_req: 0,
            ttfts: VecDeque::new(),
            events: Vec::new(),
            pod_start_us,
        }
    }

    /// The engine parameters every pod runs.
    pub fn params(&self) -> &EngineParams {
        &self.params
    }

    /// Adds a pod; `ready` skips its start time (a fleet that was running before).
    pub fn add_pod(&mut self, now_us: u64, ready: bool) -> u64 {
        let id = self.next_pod;
        self.next_pod += 1;
        let ready_at_us = if ready {
            now_us
        } else {
            now_us + self.pod_start_us
        };
        self.pods.insert(
            id,
            LivePod {
                worker: Worker::new(),
                ready: false,
                ready_at_us,
                step_end_us: None,
                step_start_us: 0,
            },
        );
        self.spec = self.spec.max(self.pods.len() as u32);
        id
    }

    /// Resizes the fleet as the HPA asked: new pods start, removals take not-ready pods first,
    /// then the newest (as a ReplicaSet does), losing their requests.
    pub fn set_spec(&mut self, target: u32, now_us: u64) -> Vec<Change> {
        let have = self.pods.len() as u32;
        for _ in have..target {
            self.add_pod(now_us, false);
        }
        let mut changes = Vec::new();
        if target < have {
            let mut order: Vec<(bool, u64)> =
                self.pods.iter().map(|(id, p)| (p.ready, *id)).collect();
            order.sort_by_key(|(ready, id)| (*ready, std::cmp::Reverse(*id)));
            for (_, id) in order.into_iter().take((have - target) as usize) {
                if let Some(mut p) = self.pods.remove(&id) {
                    for (req, _) in p.worker.drain() {
                        self.arrivals.remove(&req);
                    }
                    changes.push(Change::Removed(id));
                }
            }
        }
        self.spec = target;
        changes
    }

    /// One request arrives at `now_us` and goes to the least-loaded ready pod (dropped when
    /// none is ready).
    pub fn route(&mut self, now_us: u64) {
        let id = self.next_req;
        self.next_req += 1;
        let best = least_loaded(
            self.pods
                .iter()
                .filter(|(_, p)| p.ready)
                .map(|(id, p)| (*id, &p.worker)),
        );
        if let Some(pod) = best.and_then(|pid| self.pods.get_mut(&pid)) {
            let (prompt, output) = DEMO_REQUEST_TOKENS;
            pod.worker.enqueue(id, now_us, prompt, output);
            // A run of decode steps in progress ends with its current step.
            if let Some(d) = pod
                .worker
                .interrupt(now_us.saturating_sub(pod.step_start_us))
            {
                pod.step_end_us = Some(pod.step_start_us + d);
            }
            self.arrivals.insert(id, now_us);
        }
    }

    /// Advances every engine to `now_us`; pods whose start time passed come into service.
    pub fn advance(&mut self, now_us: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        for (id, p) in self.pods.iter_mut() {
            if !p.ready && p.ready_at_us <= now_us {
                p.ready = true;
                changes.push(Change::Started(*id));
            }
            loop {
                match p.step_end_us {
                    Some(end) if end <= now_us => {
                        p.worker.end_step(end, &mut self.events);
                        p.step_start_us = end;
                        p.step_end_us = p.worker.begin_step(&self.params).map(|d| end + d);
                    }
                    Some(_) => break,
                    None => {
                        p.step_start_us = now_us;
                        p.step_end_us = p.worker.begin_step(&self.params).map(|d| now_us + d);
                        break;
                    }
                }
            }
        }
        let overhead = self.params.frontend_latency_s;
        for e in self.events.drain(..) {
            if let Event::FirstToken { id } = e
                && let Some(arrived) = self.arrivals.get(&id)
            {
                self.ttfts
                    .push_back((now_us, (now_us - arrived) as f64 / 1e6 + overhead));
            }
            if let Event::Finished { id } = e {
                self.arrivals.remove(&id);
            }
        }
        while self
            .ttfts
            .front()
            .is_some_and(|(t, _)| now_us.saturating_sub(*t) > TRUE_TTFT_WINDOW_US)
        {
            self.ttfts.pop_front();
        }
        changes
    }

    /// p95 of the TTFTs served in the last 10 s, as users saw them.
    pub fn true_p95(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.ttfts.iter().map(|(_, x)| *x).collect();
        if v.len() < TRUE_TTFT_MIN_SAMPLES {
            return None;
        }
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * 0.95).round() as usize)
            .copied()
    }

    /// Replicas asked for.
    pub fn spec(&self) -> u32 {
        self.spec
    }

    /// Pods (starting or serving).
    pub fn pods(&self) -> u32 {
        self.pods.len() as u32
    }

    /// Pods serving.
    pub fn ready(&self) -> u32 {
        self.pods.values().filter(|p| p.ready).count() as u32
    }

    /// Requests waiting across the fleet.
    pub fn waiting(&self) -> u32 {
        self.pods.values().map(|p| p.worker.waiting() as u32).sum()
    }

    /// Renders pod `id`'s `/metrics` page into `page`; false when there is no such pod.
    pub fn render(&self, id: u64, page: &mut String) -> bool {
        match self.pods.get(&id) {
            Some(p) => {
                p.worker.render(&self.params, page);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_start_after_their_delay_and_removals_take_the_newest_first() {
        let mut f = LiveFleet::new(EngineParams::default(), 1_000_000);
        f.add_pod(0, true);
        assert_eq!(f.advance(0), vec![Change::Started(0)]);
        assert!(f.set_spec(3, 0).is_empty());
        assert_eq!((f.pods(), f.ready()), (3, 1));
        assert!(f.advance(999_999).is_empty());
        assert_eq!(
            f.advance(1_000_000),
            vec![Change::Started(1), Change::Started(2)]
        );
        assert_eq!(f.set_spec(2, 2_000_000), vec![Change::Removed(2)]);
        // 20 requests a second on two replicas: far below saturation, TTFT in milliseconds.
        for t in 0..400u64 {
            f.route(2_000_000 + t * 50_000);
            f.advance(2_000_000 + t * 50_000);
        }
        assert!(f.true_p95().is_some_and(|p| p > 0.0 && p < 1.0));
    }
}
