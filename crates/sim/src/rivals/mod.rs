//! The arena's contestants: keda-llm-scaler, the rivals ported from their sources
//! (`../shared/docs/arena.md`; each file cites its own), the static fleets and the oracle. Each
//! is one file behind [`Autoscaler`]; adding one is a file and a line in [`REGISTRY`].
//!
//! Every rival has at most two knobs, each with its documented default, the small grid it is
//! tuned over on the development loads only (`simulate --tune`), and the point that tuning
//! chose. `NAME` runs the defaults, `NAME@tuned` the chosen point, `NAME@knob=value,...` any
//! other.

use crate::autoscaler::Autoscaler;
use crate::keda::Cluster;
use crate::run::{OraclePlan, ScalerUnderTest};
use crate::score::Slo;

mod arena_keda_queue;
mod dynamo_hpa_ttft;
mod dynamo_planner_load;
mod hpa_driven;
mod hpa_kv;
mod keda_prometheus_queue;
mod keda_prometheus_ttft;
mod knative_kpa;
mod kserve_concurrency;
mod llmd_queue_guard;
mod llmd_slo_aware;
mod mpc_planner;
mod oracle;
mod ours;
mod plant;
mod static_mean;
mod static_peak;

#[cfg(test)]
mod testing;

/// What every contestant is configured from: the deployment a user would write for it.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Replica bounds.
    pub min: u32,
    /// Replica bounds.
    pub max: u32,
    /// The HPA the cluster runs.
    pub cluster: Cluster,
    /// The user's SLOs (each SLO-aware contestant is configured with them).
    pub slo: Slo,
    /// KEDA `pollingInterval`, ms.
    pub polling_ms: u64,
    /// HPA sync period, ms.
    pub hpa_sync_ms: u64,
    /// Mean pod start, seconds (what a planner is told its cold start is).
    pub cold_start_s: f64,
    /// Longest time from asking for a replica to its serving, seconds (pod start, plus node
    /// provisioning where pods may wait for nodes): how far ahead the oracle asks.
    pub lead_s: f64,
    /// The SLO-feasible plan (the oracle executes it; the static fleets are sized from it).
    pub plan: OraclePlan,
    /// keda-llm-scaler's configuration.
    pub scaler: ScalerUnderTest,
    /// Keep keda-llm-scaler's scrapes (for `simulate --record`).
    pub record: bool,
}

/// One tunable parameter of a rival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knob {
    /// Its name (as in the rival's source).
    pub name: &'static str,
    /// The documented default.
    pub default: f64,
    /// The grid `simulate --tune` searches.
    pub grid: &'static [f64],
    /// The point tuning chose on the development loads (see BENCHMARKS.md).
    pub tuned: f64,
}

/// A contestant: its name, where its control law comes from, its knobs and how to build it.
pub struct Rival {
    /// The name in tables, JSON and on the command line.
    pub name: &'static str,
    /// Where its law is documented (the file's header has the detail).
    pub source: &'static str,
    /// Its knobs (empty for ours, the static fleets and the oracle).
    pub knobs: &'static [Knob],
    /// Builds it with one value per knob.
    pub build: fn(&Setup, &[f64]) -> Box<dyn Autoscaler>,
}

/// Every contestant, ours first and the oracle last.
pub const REGISTRY: &[&Rival] = &[
    &ours::RIVAL,
    &static_peak::RIVAL,
    &static_mean::RIVAL,
    &keda_prometheus_ttft::RIVAL,
    &keda_prometheus_queue::RIVAL,
    &hpa_kv::RIVAL,
    &arena_keda_queue::RIVAL,
    &dynamo_hpa_ttft::RIVAL,
    &llmd_slo_aware::RIVAL,
    &llmd_queue_guard::RIVAL,
    &kserve_concurrency::RIVAL,
    &knative_kpa::RIVAL,
    &mpc_planner::RIVAL,
    &dynamo_planner_load::RIVAL,
    &oracle::RIVAL,
];

/// The name of keda-llm-scaler in the registry.
pub const OURS: &str = "keda-llm-scaler";

/// The name of the oracle in the registry.
pub const ORACLE: &str = "oracle";

/// A contestant with the knob values to run it at.
#[derive(Clone)]
pub struct Entry {
    /// The contestant.
    pub rival: &'static Rival,
    /// One value per knob.
    pub values: Vec<f64>,
    /// The name it is reported under (`NAME`, `NAME@tuned`, `NAME@k=v`).
    pub label: String,
}

impl Entry {
    /// Builds it for `setup`.
    pub fn build(&self, setup: &Setup) -> Box<dyn Autoscaler> {
        (self.rival.build)(setup, &self.values)
    }

    /// `knob=value` pairs, for printing.
    pub fn knobs_text(&self) -> String {
        self.rival
            .knobs
            .iter()
            .zip(&self.values)
            .map(|(k, v)| format!("{}={v}", k.name))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Why a contestant name was not understood.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NameError {
    /// No such contestant.
    #[error("unknown policy {0:?}; one of {1}")]
    Unknown(String, String),
    /// A knob assignment that does not parse or names no knob.
    #[error("policy {0:?}: {1}")]
    Knob(String, String),
}

/// Resolves `NAME`, `NAME@tuned` or `NAME@knob=value,...`.
pub fn resolve(name: &str) -> Result<Entry, NameError> {
    let (base, variant) = match name.split_once('@') {
        Some((b, v)) => (b, Some(v)),
        None => (name, None),
    };
    let rival = REGISTRY
        .iter()
        .copied()
        .find(|r| r.name == base)
        .ok_or_else(|| {
            NameError::Unknown(
                name.to_string(),
                REGISTRY
                    .iter()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
    let mut values: Vec<f64> = rival.knobs.iter().map(|k| k.default).collect();
    match variant {
        None => {}
        Some("tuned") => {
            if rival.knobs.is_empty() {
                return Err(NameError::Knob(name.into(), "has nothing to tune".into()));
            }
            values = rival.knobs.iter().map(|k| k.tuned).collect();
        }
        Some(pairs) => {
            for pair in pairs.split(',') {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    NameError::Knob(name.into(), format!("{pair:?}: expected knob=value"))
                })?;
                let i = rival
                    .knobs
                    .iter()
                    .position(|x| x.name == k)
                    .ok_or_else(|| NameError::Knob(name.into(), format!("no knob {k:?}")))?;
                values[i] = v
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| NameError::Knob(name.into(), format!("{k}: not a number")))?;
            }
        }
    }
    Ok(Entry {
        rival,
        values,
        label: name.to_string(),
    })
}

/// The contestants `--compare` runs: every default, then every tuned rival whose tuned point
/// differs from its defaults (one that tuning left at its defaults runs once).
pub fn every_entry(tuned: bool) -> Vec<Entry> {
    let mut out: Vec<Entry> = REGISTRY
        .iter()
        .filter_map(|r| resolve(r.name).ok())
        .collect();
    if tuned {
        out.extend(
            REGISTRY
                .iter()
                .filter(|r| r.knobs.iter().any(|k| k.tuned != k.default))
                .filter_map(|r| resolve(&format!("{}@tuned", r.name)).ok()),
        );
    }
    out
}

/// Every grid point of `rival` (the product of its knobs' grids).
pub fn grid(rival: &'static Rival) -> Vec<Entry> {
    let mut points: Vec<Vec<f64>> = vec![Vec::new()];
    for k in rival.knobs {
        points = points
            .into_iter()
            .flat_map(|p| {
                k.grid.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push(*v);
                    q
                })
            })
            .collect();
    }
    points
        .into_iter()
        .map(|values| {
            let mut e = Entry {
                rival,
                values,
                label: String::new(),
            };
            e.label = format!("{}@{}", rival.name, e.knobs_text());
            e
        })
        .collect()
}

/// HPA `behavior` rules: a stabilisation window and rate-limit policies `(kind, value,
/// periodSeconds)`, the most permissive selected (`selectPolicy: Max`, the default).
pub(crate) fn rules(
    window_s: u64,
    policies: &[(crate::keda::PolicyKind, u32, u64)],
) -> crate::keda::Rules {
    crate::keda::Rules {
        stabilization_s: Some(window_s),
        select: crate::keda::Select::Max,
        policies: policies
            .iter()
            .map(|&(kind, value, period_s)| crate::keda::ScalingPolicy {
                kind,
                value,
                period_s,
            })
            .collect(),
        tolerance: None,
    }
}

/// A fixed fleet of `n` replicas (the single-replica calibration runs use it).
pub fn fixed(n: u32) -> Box<dyn Autoscaler> {
    Box::new(static_peak::Static(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_with_defaults_tuned_points_and_assignments() {
        let e = resolve("arena-keda-queue").expect("known");
        assert_eq!(e.values, vec![5.0]);
        let t = resolve("arena-keda-queue@tuned").expect("tuned");
        assert_eq!(t.values, vec![arena_keda_queue::RIVAL.knobs[0].tuned]);
        let a = resolve("arena-keda-queue@target=7").expect("assigned");
        assert_eq!(a.values, vec![7.0]);
        assert!(matches!(resolve("nope"), Err(NameError::Unknown(..))));
        assert!(matches!(resolve("oracle@tuned"), Err(NameError::Knob(..))));
        assert!(matches!(
            resolve("arena-keda-queue@x=1"),
            Err(NameError::Knob(..))
        ));
        // Every tuned point lies on its grid, and every name is unique.
        for r in REGISTRY {
            for k in r.knobs {
                assert!(k.grid.contains(&k.tuned), "{}: {}", r.name, k.name);
                assert!(k.grid.contains(&k.default), "{}: {}", r.name, k.name);
            }
            assert_eq!(REGISTRY.iter().filter(|x| x.name == r.name).count(), 1);
        }
    }
}
