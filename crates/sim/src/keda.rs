//! A KEDA + HPA emulator: the HPA's replica calculation, tolerance (cluster-wide and
//! per-direction), legacy normalisation, behavior stabilisation windows and rate-limit
//! policies, and KEDA's fallback counter, as described in `../shared/docs/keda-protocol.md`
//! §2.7 and §3 (ported from `replica_calculator.go`, `horizontal.go` and KEDA's
//! `fallback.go`). Pure: time and metric values are arguments.

/// Rate-limit policy kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Absolute pods per period.
    Pods,
    /// Percent of the replicas at the start of the period.
    Percent,
}

/// One `policies` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingPolicy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// Amount.
    pub value: u32,
    /// Period, seconds.
    pub period_s: u64,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One direction of `behavior`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `stabilizationWindowSeconds` (None: the controller's default for the direction).
    pub stabilization_s: Option<u64>,
    /// `selectPolicy`.
    pub select: Select,
    /// `policies`.
    pub policies: Vec<ScalingPolicy>,
    /// Per-direction `tolerance` (Kubernetes >= 1.33); None: the cluster-wide tolerance.
    pub tolerance: Option<f64>,
}

/// `behavior`.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// Scale-up rules.
    pub up: Rules,
    /// Scale-down rules.
    pub down: Rules,
}

impl Behavior {
    /// What the API server fills in for an empty `behavior` (double or +4 per 15 s up; 300 s
    /// window and 100 % per 15 s down).
    pub fn kubernetes_defaults() -> Behavior {
        Behavior {
            up: Rules {
                stabilization_s: Some(0),
                select: Select::Max,
                policies: vec![
                    ScalingPolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_s: 15,
                    },
                    ScalingPolicy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_s: 15,
                    },
                ],
                tolerance: None,
            },
            down: Rules {
                stabilization_s: None,
                select: Select::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_s: 15,
                }],
                tolerance: None,
            },
        }
    }

    /// The block the README and manifests ship with keda-llm-scaler: the HPA passes the
    /// scaler's answer through (no window, no extra rate limit, tolerance 0).
    pub fn keda_llm_scaler() -> Behavior {
        Behavior {
            up: Rules {
                stabilization_s: Some(0),
                select: Select::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 1000,
                    period_s: 15,
                }],
                tolerance: Some(0.0),
            },
            down: Rules {
                stabilization_s: Some(0),
                select: Select::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_s: 15,
                }],
                tolerance: Some(0.0),
            },
        }
    }
}

/// What the HPA's single metric is and how its proposal is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    /// External metric, `AverageValue` target (KEDA's default): `ceil(value / target)`.
    ExternalAverageValue {
        /// Target per replica.
        target: f64,
    },
    /// External or Object metric, `Value` target: `ceil(value / target x ready pods)`
    /// (`GetExternalMetricReplicas` with a value target uses the ready pod count).
    ExternalValue {
        /// Target for the whole metric.
        target: f64,
    },
    /// Pods metric averaged over ready pods (an HPA on a per-pod gauge).
    PodsAverage {
        /// Target average.
        target: f64,
    },
}

/// The HPA's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `minReplicas` (KEDA: max(minReplicaCount, 1)).
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// `behavior`; None takes the legacy path (KEDA without `advanced...behavior`).
    pub behavior: Option<Behavior>,
    /// The metric.
    pub metric: MetricKind,
    /// Cluster-wide tolerance (0.1).
    pub tolerance: f64,
    /// Whether the cluster honours `behavior.*.tolerance` (Kubernetes >= 1.35 with a KEDA
    /// >= 2.18 CRD); without it the cluster-wide tolerance applies both ways.
    pub per_direction: bool,
}

/// The HPA a cluster really runs: its cluster-wide tolerance and whether per-direction
/// tolerance exists (`simulate --k8s-tolerance`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Cluster {
    /// `--horizontal-pod-autoscaler-tolerance` (0.1 unless changed).
    pub tolerance: f64,
    /// Whether `behavior.scaleUp/scaleDown.tolerance` is honoured.
    pub per_direction: bool,
}

impl Cluster {
    /// Kubernetes >= 1.35 with KEDA >= 2.18: per-direction tolerance available.
    pub const PER_DIRECTION: Cluster = Cluster {
        tolerance: 0.1,
        per_direction: true,
    };

    /// An older cluster: the 10 % dead band both ways for every HPA.
    pub const LEGACY: Cluster = Cluster {
        tolerance: 0.1,
        per_direction: false,
    };

    /// An HPA on this cluster.
    pub fn hpa(self, min: u32, max: u32, behavior: Option<Behavior>, metric: MetricKind) -> Hpa {
        Hpa::new(HpaSpec {
            min: min.max(1),
            max,
            behavior,
            metric,
            tolerance: self.tolerance,
            per_direction: self.per_direction,
        })
    }
}

/// The HPA's state: recommendation history and scale events.
#[derive(Debug, Clone)]
pub struct Hpa {
    /// Its spec.
    pub spec: HpaSpec,
    recommendations: Vec<(u64, u32)>,
    events: Vec<(u64, i64)>,
}

/// The default downscale stabilisation window, ms.
const DOWNSCALE_WINDOW_MS: u64 = 300_000;

impl Hpa {
    /// A new HPA.
    pub fn new(spec: HpaSpec) -> Hpa {
        Hpa {
            spec,
            recommendations: Vec::new(),
            events: Vec::new(),
        }
    }

    fn within(&self, ratio: f64) -> bool {
        let (up, down) = match &self.spec.behavior {
            Some(b) if self.spec.per_direction => (
                b.up.tolerance.unwrap_or(self.spec.tolerance),
                b.down.tolerance.unwrap_or(self.spec.tolerance),
            ),
            _ => (self.spec.tolerance, self.spec.tolerance),
        };
        1.0 - down <= ratio && ratio <= 1.0 + up
    }

    /// One sync at `now_ms`: `c` = spec replicas, `s` = status replicas (non-terminated pods),
    /// `ready` = ready pods, `value` = the metric (None: the metric query failed, so no
    /// rescale). Returns the new spec replicas.
    pub fn sync(&mut self, now_ms: u64, c: u32, s: u32, ready: u32, value: Option<f64>) -> u32 {
        if self.recommendations.is_empty() {
            self.recommendations.push((now_ms, c));
        }
        let (min, max) = (self.spec.min, self.spec.max);
        if c == 0 && min != 0 {
            return c;
        }
        let desired = if c > max {
            max
        } else if c < min {
            min
        } else {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                return c;
            };
            let proposal = match self.spec.metric {
                MetricKind::ExternalAverageValue { target } => {
                    let ratio = v / (target * f64::from(s.max(1)));
                    if self.within(ratio) {
                        s
                    } else {
                        (v / target).ceil().clamp(0.0, f64::from(i32::MAX)) as u32
                    }
                }
                MetricKind::ExternalValue { target } | MetricKind::PodsAverage { target } => {
                    let ratio = v / target;
                    if self.within(ratio) {
                        c
                    } else {
                        (ratio * f64::from(ready))
                            .ceil()
                            .clamp(0.0, f64::from(i32::MAX)) as u32
                    }
                }
            };
            match self.spec.behavior.clone() {
                None => self.normalize_legacy(now_ms, proposal, c),
                Some(b) => self.normalize_with_behavior(now_ms, proposal, c, &b),
            }
        };
        if desired != c && self.spec.behavior.is_some() {
            self.events
                .push((now_ms, i64::from(desired) - i64::from(c)));
        }
        desired
    }

    fn normalize_legacy(&mut self, now_ms: u64, desired: u32, c: u32) -> u32 {
        let cutoff = now_ms.saturating_sub(DOWNSCALE_WINDOW_MS);
        self.recommendations.retain(|(t, _)| *t > cutoff);
        let stabilized = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .fold(desired, u32::max);
        self.recommendations.push((now_ms, desired));
        let ceiling = self.spec.max.min((2 * c).max(4));
        stabilized.clamp(self.spec.min, ceiling.max(self.spec.min))
    }

    fn normalize_with_behavior(&mut self, now_ms: u64, desired: u32, c: u32, b: &Behavior) -> u32 {
        let up_window = b.up.stabilization_s.unwrap_or(0) * 1000;
        let down_window = b
            .down
            .stabilization_s
            .map_or(DOWNSCALE_WINDOW_MS, |s| s * 1000);
        let (mut up, mut down) = (desired, desired);
        for (t, r) in &self.recommendations {
            if *t + up_window > now_ms {
                up = up.min(*r);
            }
            if *t + down_window > now_ms {
                down = down.max(*r);
            }
        }
        let keep = up_window.max(down_window);
        self.recommendations.retain(|(t, _)| *t + keep > now_ms);
        self.recommendations.push((now_ms, desired));
        let mut rec = c;
        if rec < up {
            rec = up;
        }
        if rec > down {
            rec = down;
        }
        let longest =
            b.up.policies
                .iter()
                .chain(&b.down.policies)
                .map(|p| p.period_s * 1000)
                .max()
                .unwrap_or(0);
        self.events.retain(|(t, _)| *t + longest > now_ms);
        if rec > c {
            let limit = self.up_limit(now_ms, c, &b.up);
            rec = rec.min(limit).min(self.spec.max);
        } else if rec < c {
            let limit = self.down_limit(now_ms, c, &b.down);
            rec = rec.max(limit).max(self.spec.min);
        }
        rec.clamp(self.spec.min, self.spec.max)
    }

    fn period_start(&self, now_ms: u64, c: u32, period_s: u64) -> f64 {
        let (mut added, mut removed) = (0i64, 0i64);
        for (t, d) in &self.events {
            if *t + period_s * 1000 > now_ms {
                if *d > 0 {
                    added += d;
                } else {
                    removed -= d;
                }
            }
        }
        (i64::from(c) - added + removed) as f64
    }

    fn up_limit(&self, now_ms: u64, c: u32, rules: &Rules) -> u32 {
        let limits = rules.policies.iter().map(|p| {
            let start = self.period_start(now_ms, c, p.period_s);
            match p.kind {
                PolicyKind::Pods => start + f64::from(p.value),
                PolicyKind::Percent => (start * (1.0 + f64::from(p.value) / 100.0)).ceil(),
            }
        });
        let limit = match rules.select {
            Select::Max => limits.fold(f64::MIN, f64::max),
            Select::Min => limits.fold(f64::MAX, f64::min),
            Select::Disabled => f64::from(c),
        };
        (limit.max(f64::from(c))).clamp(0.0, f64::from(u32::MAX)) as u32
    }

    fn down_limit(&self, now_ms: u64, c: u32, rules: &Rules) -> u32 {
        let limits = rules.policies.iter().map(|p| {
            let start = self.period_start(now_ms, c, p.period_s);
            match p.kind {
                PolicyKind::Pods => start - f64::from(p.value),
                PolicyKind::Percent => (start * (1.0 - f64::from(p.value) / 100.0)).floor(),
            }
        });
        let limit = match rules.select {
            Select::Max => limits.fold(f64::MAX, f64::min),
            Select::Min => limits.fold(f64::MIN, f64::max),
            Select::Disabled => f64::from(c),
        };
        (limit.min(f64::from(c))).clamp(0.0, f64::from(u32::MAX)) as u32
    }
}

/// `fallback.behavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackBehavior {
    /// `fallback.replicas`.
    Static,
    /// The current spec replicas.
    CurrentReplicas,
    /// max(current, fallback.replicas).
    CurrentReplicasIfHigher,
}

/// A ScaledObject's `fallback` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    /// `failureThreshold`.
    pub failure_threshold: u32,
    /// `replicas`.
    pub replicas: u32,
    /// `behavior`.
    pub behavior: FallbackBehavior,
}

/// KEDA's per-trigger health counter and the value its metrics adapter hands the HPA.
#[derive(Debug, Clone)]
pub struct Keda {
    /// The trigger's target (AverageValue).
    pub target: f64,
    /// The fallback block, if any.
    pub fallback: Option<Fallback>,
    failures: u32,
}

impl Keda {
    /// A trigger with this target and fallback.
    pub fn new(target: f64, fallback: Option<Fallback>) -> Keda {
        Keda {
            target,
            fallback,
            failures: 0,
        }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The polling path's outcome (counts toward the same failure counter).
    pub fn poll(&mut self, ok: bool) {
        if ok {
            self.failures = 0;
        } else {
            self.failures += 1;
        }
    }

    /// The HPA path: the scaler's answer (or error) becomes the value the HPA sees, or `None`
    /// (the HPA keeps its replicas).
    pub fn metric_for_hpa(&mut self, answer: Result<f64, ()>, current: u32) -> Option<f64> {
        match answer {
            Ok(v) => {
                self.failures = 0;
                Some(v)
            }
            Err(()) => {
                self.failures += 1;
                let f = self.fallback?;
                if self.failures <= f.failure_threshold {
                    return None;
                }
                let r = match f.behavior {
                    FallbackBehavior::Static => f.replicas,
                    FallbackBehavior::CurrentReplicas => current,
                    FallbackBehavior::CurrentReplicasIfHigher => current.max(f.replicas),
                };
                Some(self.target * f64::from(r))
            }
        }
    }
}

/// KEDA's scale executor for one ScaledObject (`RequestScale`, keda-protocol.md §4.1): the
/// path that activates a fleet at zero and cools it down to zero. From one replica up the HPA
/// decides; this only acts at the zero boundary (and below `minReplicaCount`).
#[derive(Debug, Clone)]
pub struct Executor {
    /// `minReplicaCount`.
    pub min_replica_count: u32,
    /// `cooldownPeriod`, ms.
    pub cooldown_ms: u64,
    /// `initialCooldownPeriod`, ms.
    pub initial_cooldown_ms: u64,
    /// When the ScaledObject was created, ms.
    pub created_ms: u64,
    last_active_ms: Option<u64>,
}

impl Executor {
    /// An executor for a ScaledObject created at `created_ms`.
    pub fn new(min_replica_count: u32, cooldown_ms: u64, created_ms: u64) -> Executor {
        Executor {
            min_replica_count,
            cooldown_ms,
            initial_cooldown_ms: 0,
            created_ms,
            last_active_ms: None,
        }
    }

    /// One poll: `active` is IsActive (or an active fallback), `is_error` whether the poll
    /// failed. Returns the replica count KEDA sets, when it sets one.
    pub fn request_scale(
        &mut self,
        now_ms: u64,
        c: u32,
        active: bool,
        is_error: bool,
    ) -> Option<u32> {
        let min = self.min_replica_count;
        if active {
            if c == 0 {
                self.last_active_ms = Some(now_ms);
                return Some(min.max(1));
            }
            if !is_error {
                self.last_active_ms = Some(now_ms);
            }
            return None;
        }
        if is_error {
            // Never scales to zero on an error (with or without a fallback).
            return None;
        }
        if c > 0 && min == 0 {
            let expired = match self.last_active_ms {
                None => self.created_ms + self.initial_cooldown_ms < now_ms,
                Some(t) => t + self.cooldown_ms < now_ms,
            };
            return expired.then_some(0);
        }
        (c < min).then_some(min)
    }
}

/// KEDA's side of keda-llm-scaler's ScaledObject as the README ships it for `cluster`:
/// `fallback` after 3 failures, 4 replicas static on an older cluster, `currentReplicasIfHigher`
/// where the per-direction-tolerance component applies (KEDA >= 2.18).
pub fn keda_for_keda_llm_scaler(cluster: Cluster) -> Keda {
    Keda::new(
        1.0,
        Some(Fallback {
            failure_threshold: 3,
            replicas: 4,
            behavior: if cluster.per_direction {
                FallbackBehavior::CurrentReplicasIfHigher
            } else {
                FallbackBehavior::Static
            },
        }),
    )
}

/// The HPA KEDA builds for keda-llm-scaler's ScaledObject: the answer as an AverageValue
/// external metric with target 1 and the README's behavior block (tolerance 0 both ways,
/// honoured only where the cluster has per-direction tolerance).
pub fn hpa_for_keda_llm_scaler(cluster: Cluster, min: u32, max: u32) -> Hpa {
    cluster.hpa(
        min,
        max,
        Some(Behavior::keda_llm_scaler()),
        MetricKind::ExternalAverageValue { target: 1.0 },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_activates_from_zero_and_cools_down_to_zero() {
        let mut e = Executor::new(0, 300_000, 0);
        // Active at zero: one replica at once.
        assert_eq!(e.request_scale(10_000, 0, true, false), Some(1));
        assert_eq!(e.request_scale(40_000, 3, true, false), None);
        // Inactive: nothing until the cooldown since the last active poll has passed.
        assert_eq!(e.request_scale(70_000, 3, false, false), None);
        assert_eq!(e.request_scale(340_000, 3, false, false), None);
        assert_eq!(
            e.request_scale(340_001, 3, false, true),
            None,
            "never to zero on an error"
        );
        assert_eq!(
            e.request_scale(340_001, 3, false, false),
            Some(0),
            "N -> 0 in one step"
        );
        // With minReplicaCount 2 it only restores the floor.
        let mut e = Executor::new(2, 300_000, 0);
        assert_eq!(e.request_scale(1_000_000, 1, false, false), Some(2));
        assert_eq!(e.request_scale(1_000_000, 5, false, false), None);
    }

    fn spec(behavior: Option<Behavior>) -> HpaSpec {
        HpaSpec {
            min: 1,
            max: 100,
            behavior,
            metric: MetricKind::ExternalAverageValue { target: 1.0 },
            tolerance: 0.1,
            per_direction: true,
        }
    }

    #[test]
    fn average_value_math_and_tolerance_band() {
        // The doc's example: t = 5, value 23, S = 3 -> ceil(4.6) = 5.
        let mut h = Hpa::new(HpaSpec {
            metric: MetricKind::ExternalAverageValue { target: 5.0 },
            ..spec(Some(Behavior::kubernetes_defaults()))
        });
        assert_eq!(h.sync(0, 3, 3, 3, Some(23.0)), 5);
        // Inside the 10 % band: stays at S.
        let mut h = Hpa::new(spec(Some(Behavior::kubernetes_defaults())));
        assert_eq!(h.sync(0, 10, 10, 10, Some(11.0)), 10);
        // Tolerance 0 passes 11 through.
        let mut h = Hpa::new(spec(Some(Behavior::keda_llm_scaler())));
        assert_eq!(h.sync(0, 10, 10, 10, Some(11.0)), 11);
    }

    #[test]
    fn legacy_ramp_is_max_2c_4_and_down_waits_300s() {
        let mut h = Hpa::new(spec(None));
        let mut c = 1;
        let mut ramp = vec![];
        for i in 0..4 {
            c = h.sync(i * 15_000, c, c, c, Some(40.0));
            ramp.push(c);
        }
        assert_eq!(ramp, [4, 8, 16, 32]);
        // Demand drops: held for 300 s of recommendations, then released.
        let mut t = 60_000;
        let mut first_drop = None;
        while t < 700_000 {
            let next = h.sync(t, c, c, c, Some(5.0));
            if next < c && first_drop.is_none() {
                first_drop = Some(t);
            }
            c = next;
            t += 15_000;
        }
        assert_eq!(c, 5);
        assert!(
            first_drop.expect("dropped") >= 45_000 + 300_000,
            "{first_drop:?}"
        );
    }

    #[test]
    fn defaulted_behavior_ramp_is_max_c_plus_4_and_2c() {
        let mut h = Hpa::new(spec(Some(Behavior::kubernetes_defaults())));
        let mut c = 1;
        let mut ramp = vec![];
        for i in 0..3 {
            c = h.sync(i * 15_000, c, c, c, Some(40.0));
            ramp.push(c);
        }
        assert_eq!(ramp, [5, 10, 20]);
    }

    #[test]
    fn errors_hold_and_fallback_engages_after_the_threshold() {
        let mut h = Hpa::new(spec(Some(Behavior::keda_llm_scaler())));
        let mut k = Keda::new(
            1.0,
            Some(Fallback {
                failure_threshold: 3,
                replicas: 4,
                behavior: FallbackBehavior::CurrentReplicasIfHigher,
            }),
        );
        let mut c = 6;
        for i in 0..3 {
            let v = k.metric_for_hpa(Err(()), c);
            assert_eq!(v, None);
            c = h.sync(i * 15_000, c, c, c, v);
            assert_eq!(c, 6, "errors hold");
        }
        let v = k.metric_for_hpa(Err(()), c);
        assert_eq!(
            v,
            Some(6.0),
            "currentReplicasIfHigher keeps 6 over fallback 4"
        );
        assert_eq!(k.metric_for_hpa(Ok(3.0), c), Some(3.0));
        assert_eq!(k.failures(), 0);
    }

    #[test]
    fn pods_average_uses_ready_pods() {
        let mut h = Hpa::new(HpaSpec {
            metric: MetricKind::PodsAverage { target: 0.5 },
            ..spec(Some(Behavior::kubernetes_defaults()))
        });
        // Mean KV 0.8 over 4 ready pods: ceil(1.6 * 4) = 7.
        assert_eq!(h.sync(0, 4, 4, 4, Some(0.8)), 7);
    }
}
