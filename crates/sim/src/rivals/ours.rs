//! keda-llm-scaler itself, as a cluster runs it: the scaler's own parsing, signal and policy
//! code (the core crate) scrapes every pod's `/metrics` at `scrapeIntervalSeconds`, KEDA polls
//! `IsActive`/`GetMetrics` at `pollingInterval`, and the HPA syncs every 15 s with exactly the
//! `behavior` and `fallback` blocks the README tells users to ship for that cluster
//! (`manifests/overlays/*`; per-direction tolerance only where the cluster has it).

use crate::autoscaler::{Autoscaler, Extras, HpaLoop, View};
use crate::core::cycle::{Cycle, Snapshot, active_answer, metric_answer};
use crate::core::fleet::Observation;
use crate::keda::{Executor, Keda, hpa_for_keda_llm_scaler, keda_for_keda_llm_scaler};
use crate::run::{DecisionPoint, RecordedScrape, ScalerUnderTest};

use super::{Rival, Setup};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: super::OURS,
    source: "this repository (crates/core/src/policy/; README, manifests/)",
    knobs: &[],
    build,
};

fn build(s: &Setup, _: &[f64]) -> Box<dyn Autoscaler> {
    Box::new(Ours {
        scaler: s.scaler.clone(),
        polling_ms: s.polling_ms,
        hpa_sync_ms: s.hpa_sync_ms,
        cycle: Cycle::default(),
        snapshot: None,
        keda: keda_for_keda_llm_scaler(s.cluster),
        hpa: HpaLoop::new(hpa_for_keda_llm_scaler(s.cluster, s.min, s.max)),
        executor: Executor::new(s.min, 300_000, 0),
        record: s.record,
        decisions: Vec::new(),
        frames: Vec::new(),
        last_answer: None,
    })
}

struct Ours {
    scaler: ScalerUnderTest,
    polling_ms: u64,
    hpa_sync_ms: u64,
    cycle: Cycle,
    snapshot: Option<Snapshot>,
    keda: Keda,
    hpa: HpaLoop,
    executor: Executor,
    record: bool,
    decisions: Vec<DecisionPoint>,
    frames: Vec<(u64, Vec<RecordedScrape>)>,
    last_answer: Option<f64>,
}

/// The clocks, in the order `tick` reads them.
const SCRAPE: usize = 0;
const KEDA_POLL: usize = 1;

impl Ours {
    fn scrape(&mut self, view: &View<'_>) {
        let scrapes = (view.pages)();
        let observations = scrapes
            .iter()
            .map(|s| {
                Observation::from_page(
                    s.id.clone(),
                    s.role,
                    s.page.clone(),
                    self.scaler.engine,
                    self.scaler.model.as_deref(),
                )
            })
            .collect();
        if self.record {
            self.frames.push((view.now_ms, scrapes));
        }
        let step = self.cycle.step(
            &self.scaler.signal,
            &self.scaler.policy,
            view.now_ms,
            observations,
        );
        if step.changed {
            let d = &step.snapshot.decision;
            self.decisions.push(DecisionPoint {
                t_s: view.now_ms as f64 / 1e3,
                desired: d.desired,
                reason: d.reason,
                binding: d.binding,
                ttft_s: step.snapshot.signals.ttft_seconds,
                detail: d.detail.clone(),
                learned: self.cycle.learned().clone(),
            });
        }
        self.snapshot = Some(step.snapshot);
    }
}

impl Autoscaler for Ours {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![
            self.scaler.scrape_interval_ms,
            self.polling_ms,
            self.hpa_sync_ms,
        ]
    }

    fn tick(&mut self, clock: usize, view: &View<'_>) -> Option<u32> {
        match clock {
            SCRAPE => {
                self.scrape(view);
                None
            }
            KEDA_POLL => {
                let active = active_answer(self.snapshot.as_ref());
                let ok = metric_answer(self.snapshot.as_ref()).is_ok() && active.is_ok();
                self.keda.poll(ok);
                // A fallback-active trigger counts as active (keda-protocol.md §2.7).
                let fallback_active = self.keda.failures() > 3;
                let is_active = active.unwrap_or(false) || fallback_active;
                self.executor.request_scale(
                    view.now_ms,
                    view.spec,
                    is_active,
                    !ok && !fallback_active,
                )
            }
            _ => {
                let answer = metric_answer(self.snapshot.as_ref())
                    .map(f64::from)
                    .map_err(|_| ());
                self.last_answer = answer.ok();
                let value = self.keda.metric_for_hpa(answer, view.spec);
                self.hpa.sync(view, value)
            }
        }
    }

    fn metric(&self) -> Option<f64> {
        self.last_answer
    }

    fn own_ttft_s(&self) -> Option<f64> {
        self.snapshot.as_ref().and_then(|s| s.signals.ttft_seconds)
    }

    fn finish(&mut self) -> Extras {
        Extras {
            decisions: std::mem::take(&mut self.decisions),
            frames: std::mem::take(&mut self.frames),
        }
    }
}
