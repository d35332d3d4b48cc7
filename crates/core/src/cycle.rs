//! One scrape-and-decide cycle of a ScaledObject, and the answers KEDA gets from its result.
//!
//! The live controller, `replay` and the simulator all drive a [`Cycle`] with the same
//! observations-in, snapshot-out step, and answer RPCs with [`metric_answer`] and
//! [`active_answer`]; only where the observations come from differs.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::fleet::{Fleet, Observation, SignalConfig, Signals, StaleReason, TargetRole};
use crate::policy::{self, Decision, PolicyConfig, PolicyState};

/// How many past decisions a snapshot carries.
pub const HISTORY: usize = 20;

/// One target as shown in the debug API.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// Metrics URL.
    pub url: String,
    /// Worker or frontend.
    pub role: TargetRole,
    /// Data from the latest cycle.
    pub fresh: bool,
    /// Why not fresh.
    pub stale_reason: Option<StaleReason>,
    /// Malformed lines on the last page.
    pub parse_errors: usize,
    /// Detected metric dialect.
    pub dialect: Option<&'static str>,
}

/// What a cycle publishes. Immutable once published.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The decision of this cycle.
    pub decision: Decision,
    /// The signals it was made from.
    pub signals: Signals,
    /// Per-target freshness.
    pub targets: Vec<TargetView>,
    /// Recent decisions where the answer or its reason changed, newest last.
    pub history: Vec<HistoryEntry>,
    /// Cycle number, from 1.
    pub cycle: u64,
    /// Timestamp of the cycle, ms (monotonic live, virtual in replay and simulation).
    pub at_ms: u64,
}

/// One past decision, for the debug API (and read back from it by the demo).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Cycle time, ms.
    pub at_ms: u64,
    /// Answer.
    pub desired: u32,
    /// Reason code (serialised as its label, e.g. `scale_up`).
    pub reason: policy::Reason,
    /// Binding signal (serialised as its label).
    pub binding: policy::Binding,
    /// Explanation.
    pub detail: String,
}

/// The state a ScaledObject carries from one cycle to the next.
#[derive(Debug, Default)]
pub struct Cycle {
    fleet: Fleet,
    state: PolicyState,
    history: VecDeque<HistoryEntry>,
    cycle: u64,
    previous: Option<(u32, policy::Reason)>,
}

/// The result of one step.
#[derive(Debug, Clone)]
pub struct Step {
    /// What to publish.
    pub snapshot: Snapshot,
    /// Whether the answer or its reason changed (worth a log line).
    pub changed: bool,
}

impl Cycle {
    /// Worker ids seen so far (so a failed discovery can report them stale).
    pub fn known_workers(&self) -> Vec<String> {
        self.fleet
            .targets()
            .iter()
            .filter(|(_, t)| t.role == TargetRole::Worker)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// What the policy has learned of this fleet so far (the simulator's decision log).
    pub fn learned(&self) -> &policy::learn::Learned {
        &self.state.learned
    }

    /// Folds one cycle's observations in and decides.
    pub fn step(
        &mut self,
        signal: &SignalConfig,
        policy_cfg: &PolicyConfig,
        now_ms: u64,
        observations: Vec<Observation>,
    ) -> Step {
        self.fleet.apply_cycle(signal, now_ms, observations);
        let signals = self.fleet.signals(signal);
        let (decision, next) = policy::decide(policy_cfg, &self.state, &signals, now_ms);
        self.state = next;
        self.cycle += 1;
        let changed = self
            .previous
            .is_none_or(|(d, r)| d != decision.desired || r != decision.reason);
        if changed {
            self.history.push_back(HistoryEntry {
                at_ms: now_ms,
                desired: decision.desired,
                reason: decision.reason,
                binding: decision.binding,
                detail: decision.detail.clone(),
            });
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
        }
        self.previous = Some((decision.desired, decision.reason));
        let targets = self
            .fleet
            .targets()
            .iter()
            .map(|(url, t)| TargetView {
                url: url.clone(),
                role: t.role,
                fresh: t.stale.is_none() && t.metrics.is_some(),
                stale_reason: t.stale.clone(),
                parse_errors: t.parse_errors,
                dialect: t.metrics.as_ref().and_then(|m| m.dialect),
            })
            .collect();
        Step {
            snapshot: Snapshot {
                decision,
                signals,
                targets,
                history: self.history.iter().cloned().collect(),
                cycle: self.cycle,
                at_ms: now_ms,
            },
            changed,
        }
    }
}

/// Why GetMetrics has no value to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoAnswer {
    /// No cycle has completed yet.
    #[error("no decision yet: first scrape cycle still running")]
    NotYet,
    /// Data has been stale for longer than `staleHoldSeconds`; KEDA's fallback should act.
    #[error("holding on stale data for longer than staleHoldSeconds: {0}")]
    Stale(String),
}

/// The value GetMetrics reports (the desired replica count), or why there is none.
pub fn metric_answer(snapshot: Option<&Snapshot>) -> Result<u32, NoAnswer> {
    let snap = snapshot.ok_or(NoAnswer::NotYet)?;
    if snap.decision.unavailable {
        return Err(NoAnswer::Stale(snap.decision.detail.clone()));
    }
    Ok(snap.decision.desired)
}

/// The value IsActive reports, or why there is none.
pub fn active_answer(snapshot: Option<&Snapshot>) -> Result<bool, NoAnswer> {
    snapshot.map(|s| s.decision.active).ok_or(NoAnswer::NotYet)
}

/// KEDA 2.5-2.6 passed the HPA name `sN-<name>`; later versions strip it. Accept both.
pub fn strip_index_prefix(name: &str) -> &str {
    if let Some(rest) = name.strip_prefix('s')
        && let Some((digits, tail)) = rest.split_once('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return tail;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::strip_index_prefix;

    #[test]
    fn index_prefix() {
        assert_eq!(
            strip_index_prefix("s0-llm-desired-replicas"),
            "llm-desired-replicas"
        );
        assert_eq!(strip_index_prefix("s12-x"), "x");
        assert_eq!(
            strip_index_prefix("llm-desired-replicas"),
            "llm-desired-replicas"
        );
        assert_eq!(strip_index_prefix("sx-y"), "sx-y");
        assert_eq!(strip_index_prefix("s-y"), "s-y");
    }
}
