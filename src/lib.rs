//! # keda-llm-scaler
//!
//! A KEDA external scaler for LLM inference fleets. Data flows in one direction:
//!
//! ```text
//! discover ──> scrape ──> core::extract ──> core::fleet (signals) ──> core::policy ──> snapshot ──> grpc / admin
//! (DNS/list)   (reqwest)  (lenient scanner)  (TTFT window, KV, queue)  (pure decide)   (watch)      (KEDA, humans)
//! ```
//!
//! - [`core`] is pure: no I/O, no clock, no randomness. Time is an argument.
//! - [`controller`] runs one loop per ScaledObject and is the only reader of the clock
//!   (through [`clock`]) besides RPC latency measurement.
//! - [`grpc`] and [`admin`] only read the latest snapshot.

pub mod admin;
pub mod allow;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controller;
/// The pure core, its own crate (`crates/core`): re-exported so the shell reads `crate::core`.
pub use keda_llm_scaler_core as core;
pub mod demo;
pub mod discover;
pub mod grpc;
pub mod listen;
pub mod recording;
pub mod redact;
pub mod replay;
pub mod scrape;
pub mod serve;
/// The simulated fleet, its own crate (`crates/sim`).
pub use keda_llm_scaler_sim as sim;
pub mod simulate;
pub mod telemetry;
pub mod tls;
