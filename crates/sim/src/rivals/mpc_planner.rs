//! A predictive, model-based planner: the Autoscaling Arena's strongest, "cloudai-mpc" v3
//! (NVIDIA Dynamo Planner Gym; arena.md), a direct planner writing replicas every 5 s:
//! - forecaster: 15 s bins of the frontend's request counter, an EWMA with time constant =
//!   the cold start, reset to the bin on a 2.5-sigma Poisson surprise;
//! - plant: `mu = 1 / (T_prefill + OSL x T_decode(c_sat) / c_sat)` per replica with
//!   `c_sat = min(0.9 x KV / (ISL + OSL), max_num_seqs)` (see `plant.rs`), times an online
//!   multiplicative bias learnt while the fleet is saturated;
//! - order book: capacity ordered now lands a cold start later; replicas asked for count;
//! - sizing: the fewest replicas whose utilisation under the p80 forecast stays within the
//!   target utilisation (the goodput-per-GPU optimum of its Dinkelbach objective sits where
//!   queueing starts to cost good requests);
//! - scale-down only with no order pending, utilisation <= 0.75 and predicted TTFT < 0.5 x SLO
//!   after the removal, the condition held for one cold start.
//!
//! Knob: the target utilisation.

use crate::autoscaler::{Autoscaler, View};
use crate::score::Slo;

use super::plant::{Mix, prefill_s, service_rate};
use super::{Knob, Rival, Setup};

/// The registry entry.
pub const RIVAL: Rival = Rival {
    name: "mpc-planner",
    source: "NVIDIA Autoscaling Arena cloudai-mpc v3 (Dynamo Planner Gym)",
    knobs: &[Knob {
        name: "utilisation",
        default: 0.8,
        grid: &[0.5, 0.6, 0.7, 0.8, 0.9],
        tuned: 0.6,
    }],
    build,
};

/// Planner period.
const PERIOD_MS: u64 = 5000;
/// Forecast bin.
const BIN_S: f64 = 15.0;
/// Surprise threshold, Poisson standard deviations.
const SURPRISE_SIGMA: f64 = 2.5;
/// The p80 of a normal: the upper band the plan is sized for.
const P80_Z: f64 = 0.8416;
/// Scale-down: utilisation ceiling after the removal.
const DOWN_UTILISATION: f64 = 0.75;
/// Scale-down: predicted TTFT ceiling, share of the SLO.
const DOWN_TTFT_SHARE: f64 = 0.5;

fn build(s: &Setup, v: &[f64]) -> Box<dyn Autoscaler> {
    Box::new(Mpc {
        cold_start_s: s.cold_start_s.max(1.0),
        slo: s.slo,
        utilisation: v[0].clamp(0.05, 0.99),
        last_bin: None,
        lambda: None,
        bias: 1.0,
        mix: None,
        down_since_ms: None,
    })
}

struct Mpc {
    cold_start_s: f64,
    slo: Slo,
    utilisation: f64,
    last_bin: Option<(u64, u64)>,
    lambda: Option<f64>,
    bias: f64,
    mix: Option<Mix>,
    down_since_ms: Option<u64>,
}

impl Mpc {
    /// Folds a new bin of `count` arrivals over `dt_s` into the forecast.
    fn observe_bin(&mut self, count: f64, dt_s: f64) {
        let x = count / dt_s;
        self.lambda = Some(match self.lambda {
            None => x,
            Some(l) => {
                let expected = l * dt_s;
                if (count - expected).abs() > SURPRISE_SIGMA * expected.max(1.0).sqrt() {
                    x
                } else {
                    l + (1.0 - (-dt_s / self.cold_start_s).exp()) * (x - l)
                }
            }
        });
    }

    /// Utilisation and predicted TTFT with `n` replicas at rate `lambda`.
    fn predict(&self, n: u32, lambda: f64, mu: f64, t_prefill: f64) -> (f64, f64) {
        let rho = lambda / (f64::from(n.max(1)) * mu);
        let ttft = if rho < 1.0 {
            t_prefill / (1.0 - rho)
        } else {
            f64::INFINITY
        };
        (rho, ttft)
    }
}

impl Autoscaler for Mpc {
    fn clocks_ms(&self) -> Vec<u64> {
        vec![PERIOD_MS]
    }

    fn tick(&mut self, _: usize, view: &View<'_>) -> Option<u32> {
        let now = view.now_ms;
        if let Some((t, total)) = view.prom.arrivals_latest() {
            match self.last_bin {
                Some((t0, total0)) if t > t0 && (t - t0) as f64 / 1e3 >= BIN_S * 0.99 => {
                    self.observe_bin(total.saturating_sub(total0) as f64, (t - t0) as f64 / 1e3);
                    self.last_bin = Some((t, total));
                }
                None => self.last_bin = Some((t, total)),
                _ => {}
            }
        }
        let lambda = self.lambda?;
        let mix = Mix::observe(view.prom, now, self.mix);
        self.mix = Some(mix);
        let mu_model = service_rate(view.engine, mix);
        // Bias: while a backlog shows the fleet saturated, what it completes is its capacity.
        if let (Some(waiting), Some(done)) = (
            view.prom.sum_waiting(now),
            view.prom
                .rate(crate::prom::CounterFamily::Success, now, 60_000),
        ) && waiting > f64::from(view.ready)
            && view.ready > 0
        {
            let seen = done / f64::from(view.ready) / mu_model;
            self.bias = 0.8 * self.bias + 0.2 * seen.clamp(0.3, 3.0);
        }
        let mu = mu_model * self.bias;
        let t_prefill = prefill_s(view.engine, mix.isl);
        let upper = lambda + P80_Z * (lambda / BIN_S).sqrt();
        let need = ((upper / (mu * self.utilisation)).ceil() as u32).max(1);
        if need > view.spec {
            self.down_since_ms = None;
            return Some(need);
        }
        let pending = view.spec > view.ready || view.provisioned > view.ready;
        let fits = |n: u32| {
            let (rho, ttft) = self.predict(n, upper, mu, t_prefill);
            rho <= DOWN_UTILISATION && ttft < DOWN_TTFT_SHARE * self.slo.ttft_s
        };
        let candidate = (need..view.spec).find(|&n| fits(n));
        match candidate {
            Some(n) if !pending => {
                let since = *self.down_since_ms.get_or_insert(now);
                if (now - since) as f64 / 1e3 >= self.cold_start_s {
                    self.down_since_ms = None;
                    return Some(n);
                }
                None
            }
            _ => {
                self.down_since_ms = None;
                None
            }
        }
    }

    fn metric(&self) -> Option<f64> {
        self.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forecast_smooths_noise_and_resets_on_a_surprise() {
        let mut m = Mpc {
            cold_start_s: 60.0,
            slo: Slo {
                ttft_s: 0.5,
                itl_s: 0.05,
            },
            utilisation: 0.8,
            last_bin: None,
            lambda: None,
            bias: 1.0,
            mix: None,
            down_since_ms: None,
        };
        m.observe_bin(150.0, 15.0); // 10 req/s
        // 165 in a bin expecting 150 (1.2 sigma): smoothed, alpha = 1 - e^(-1/4) = 0.221.
        m.observe_bin(165.0, 15.0);
        let l = m.lambda.unwrap_or(0.0);
        assert!((l - (10.0 + 0.2212 * 1.0)).abs() < 1e-3, "{l}");
        // 300 in a bin (12 sigma): reset to 20 req/s.
        m.observe_bin(300.0, 15.0);
        assert_eq!(m.lambda, Some(20.0));
        // Sizing: at mu = 50 req/s, 20 req/s with its p80 band (+0.97) at 80 % needs 1 replica
        // (20.97 / 40 = 0.52); TTFT at rho 0.52 on 3.7 ms prefill ~ 7.8 ms.
        let (rho, ttft) = m.predict(1, 20.97, 50.0, 0.0037);
        assert!((rho - 0.4194).abs() < 1e-3 && (ttft - 0.0037 / (1.0 - rho)).abs() < 1e-12);
    }
}
