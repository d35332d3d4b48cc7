//! The engine model beside every measured and derived point of
//! `../shared/docs/engine-model.md` (`simulate --calibration` prints the table that
//! docs/simulator.md keeps): what the model gives for the same conditions, and whether that is
//! within 10 % of the anchor.

use serde::Serialize;

use crate::load::{Lengths, Request};
use crate::run::SimParams;
use crate::score::Fate;
use crate::worker::{EngineParams, Gpu};

/// One anchor and what the model gives.
#[derive(Debug, Clone, Serialize)]
pub struct Anchor {
    /// What is compared.
    pub quantity: String,
    /// `measured` or `derived`, and where from.
    pub source: &'static str,
    /// The anchor's value (a point or a range), in `unit`.
    pub anchor: (f64, f64),
    /// The model's value.
    pub model: f64,
    /// Unit.
    pub unit: &'static str,
}

impl Anchor {
    /// Whether the model is within 10 % of the anchor (of the nearest end of a range).
    pub fn within_10pct(&self) -> bool {
        let (lo, hi) = self.anchor;
        (self.model >= lo * 0.9) && (self.model <= hi * 1.1)
    }
}

/// Engine-side TTFT of one prompt of `len` tokens on an idle engine: its prefill chunks, one
/// step each.
pub fn idle_ttft_s(e: &EngineParams, len: u32) -> f64 {
    let mut done = 0u32;
    let mut t = 0.0;
    while done < len {
        let n = (len - done).min(e.max_batched_tokens);
        t += e.step_s(e.prefill_s(done, n), 1, u64::from(done + n));
        done += n;
    }
    t
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Every anchor of engine-model.md that the model covers, for `params` on an H100 SXM (the
/// GPU of the measured points) unless a point names another.
pub fn anchors(params: &SimParams) -> Vec<Anchor> {
    let sxm = SimParams {
        // The measured runs had one API server process.
        engine: EngineParams {
            model: params.engine.model.clone(),
            api_servers: 1,
            ..EngineParams::for_gpu(Gpu::H100Sxm)
        },
        ..params.clone()
    };
    let e = &sxm.engine;
    let mut out = Vec::new();
    // Poisson 16 req/s, 512 in / 128 out (kvcached benchmarks, H100 80 GB).
    let mut rng = crate::rng::Rng::new(7);
    let fixed = Lengths::Fixed {
        prompt: 512,
        generate: 128,
    };
    let requests = crate::load::synthetic(
        &crate::load::Shape::Poisson { rate: 16.0 },
        300.0,
        &fixed,
        &mut rng,
    );
    let served = crate::one_replica_serves(&sxm, requests, 300.0, 1);
    let ttft: Vec<f64> = served
        .iter()
        .filter_map(|s| s.ttft_us.map(|t| t as f64 / 1e3))
        .collect();
    let itl: Vec<f64> = served
        .iter()
        .filter_map(|s| s.mean_itl_s())
        .map(|s| s * 1e3)
        .collect();
    let src = "measured: kvcached H100_results.md (H100 80 GB, 512/128, Poisson 16 req/s)";
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    out.push(Anchor {
        quantity: "TTFT mean at 16 req/s".into(),
        source: src,
        anchor: (39.1, 39.1),
        model: mean(&ttft),
        unit: "ms",
    });
    out.push(Anchor {
        quantity: "TTFT median at 16 req/s".into(),
        source: src,
        anchor: (36.0, 36.0),
        model: quantile(ttft.clone(), 0.5),
        unit: "ms",
    });
    out.push(Anchor {
        quantity: "TTFT p99 at 16 req/s".into(),
        source: src,
        anchor: (64.7, 64.7),
        model: quantile(ttft, 0.99),
        unit: "ms",
    });
    out.push(Anchor {
        quantity: "TPOT at 16 req/s".into(),
        source: src,
        anchor: (2.39, 2.39),
        model: mean(&itl),
        unit: "ms",
    });
    // One burst of 500 requests.
    let burst: Vec<Request> = (0..500)
        .map(|i| Request {
            arrival_us: i,
            prompt: 512,
            generate: 128,
        })
        .collect();
    let served = crate::one_replica_serves(&sxm, burst, 1.0, 1);
    let done: Vec<&crate::score::Served> = served
        .iter()
        .filter(|s| s.fate == Fate::Completed)
        .collect();
    let last_us = done
        .iter()
        .filter_map(|s| Some(s.arrival_us + s.ttft_us? + s.decode_us?))
        .max()
        .unwrap_or(1);
    let src = "measured: kvcached H100_results.md (one burst of 500, 512/128)";
    out.push(Anchor {
        quantity: "burst throughput".into(),
        source: src,
        anchor: (92.6, 95.0),
        model: done.len() as f64 / (last_us as f64 / 1e6),
        unit: "req/s",
    });
    out.push(Anchor {
        quantity: "burst TTFT median".into(),
        source: src,
        anchor: (2900.0, 2900.0),
        model: quantile(
            done.iter()
                .filter_map(|s| s.ttft_us.map(|t| t as f64 / 1e3))
                .collect(),
            0.5,
        ),
        unit: "ms",
    });
    out.push(Anchor {
        quantity: "burst TPOT".into(),
        source: src,
        anchor: (5.6, 5.6),
        model: mean(
            &done
                .iter()
                .filter_map(|s| s.mean_itl_s())
                .map(|s| s * 1e3)
                .collect::<Vec<_>>(),
        ),
        unit: "ms",
    });
    // Derived prefill throughput and idle TTFT by prompt length (H100 SXM).
    for (len, rate, lo, hi) in [
        (1024u32, 440e3, 10.0, 15.0),
        (4096, 325e3, 21.0, 30.0),
        (8192, 240e3, 42.0, 60.0),
        (16_384, 160e3, 110.0, 160.0),
        (32_768, 95e3, 350.0, 500.0),
    ] {
        let src = "derived: engine-model.md, prefill by prompt length (H100)";
        out.push(Anchor {
            quantity: format!("prefill rate, {len}-token prompt"),
            source: src,
            anchor: (rate / 1e3, rate / 1e3),
            model: f64::from(len) / e.prefill_s(0, len) / 1e3,
            unit: "k tok/s",
        });
        out.push(Anchor {
            quantity: format!("idle engine TTFT, {len}-token prompt"),
            source: src,
            anchor: (lo, hi),
            model: idle_ttft_s(e, len) * 1e3,
            unit: "ms",
        });
    }
    let src = "derived: engine-model.md, decode step from the KV read (H100 SXM)";
    out.push(Anchor {
        quantity: "decode step, 256 sequences at 1 k context".into(),
        source: src,
        anchor: (12.8, 12.8),
        model: e.step_s(0.0, 256, 256 * 1024) * 1e3,
        unit: "ms",
    });
    out.push(Anchor {
        quantity: "decode step, full KV pool".into(),
        source: src,
        anchor: (28.0, 28.0),
        model: e.step_s(0.0, 512, e.kv_capacity_tokens) * 1e3,
        unit: "ms",
    });
    for (ctx, rate) in [(1024u64, 20e3), (4096, 5.5e3)] {
        // Saturated decode: the largest batch the KV holds at this context (or max_num_seqs).
        let b = (e.kv_capacity_tokens / ctx).min(e.max_num_seqs as u64) as usize;
        let step = e.step_s(0.0, b, b as u64 * ctx);
        out.push(Anchor {
            quantity: format!("decode throughput at {ctx} context"),
            source: src,
            anchor: (rate / 1e3, rate / 1e3),
            model: b as f64 / step / 1e3,
            unit: "k tok/s",
        });
    }
    for gpu in Gpu::ALL {
        let (lo, hi) = match gpu {
            Gpu::H100Sxm => (630.0, 650.0),
            Gpu::H100Nvl => (750.0, 770.0),
            Gpu::H200 => (1150.0, 1150.0),
        };
        out.push(Anchor {
            quantity: format!("KV capacity, {}", gpu.name()),
            source: "derived: engine-model.md, vLLM memory logs",
            anchor: (lo, hi),
            model: gpu.kv_capacity_tokens() as f64 / 1e3,
            unit: "k tokens",
        });
    }
    out
}

/// The anchors as a Markdown table.
pub fn markdown(rows: &[Anchor]) -> String {
    let mut out = String::from(
        "| quantity | anchor | model | within 10 % | source |\n|---|---|---|---|---|\n",
    );
    for a in rows {
        let anchor = if a.anchor.0 == a.anchor.1 {
            format!("{:.1} {}", a.anchor.0, a.unit)
        } else {
            format!("{:.1}-{:.1} {}", a.anchor.0, a.anchor.1, a.unit)
        };
        out.push_str(&format!(
            "| {} | {anchor} | {:.1} {} | {} | {} |\n",
            a.quantity,
            a.model,
            a.unit,
            if a.within_10pct() { "yes" } else { "no" },
            a.source
        ));
    }
    out
}
