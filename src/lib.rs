//! # keda-llm-scaler
//!
//! A KEDA external scaler for LLM inference fleets. Data flows in one direction:
//!
//! ```text
//! fetch::discover ─> fetch::scrape ─> core::extract ─> core::fleet ─> core::policy ─> snapshot ─> service::grpc / admin
//! (DNS, list, SD)    (bounded HTTP)   (lenient scan)   (signals)      (pure decide)   (watch)      (KEDA, humans)
//! ```
//!
//! # Layout
//!
//! - [`core`] (the `crates/core` crate): parsing, signals, the policy and one cycle. Pure: no
//!   I/O, no clock, no randomness; time is an argument. Depends on serde and thiserror only.
//! - [`sim`] (the `crates/sim` crate): the simulated fleet, engine model, KEDA + HPA emulator,
//!   baselines and scores, as pure as the core.
//! - [`fetch`]: the edges that reach workers (discovery, the allow-list, the bounded scrape).
//! - [`service`]: the long-running server (gRPC for KEDA, the admin HTTP server, one controller
//!   per ScaledObject trigger, own metrics, connection admission and TLS).
//! - [`config`]: ScaledObject metadata to a validated, typed configuration.
//! - [`tools`]: `demo`, `simulate`, `record` and `replay`, and the recording format.
//! - [`cli`] (flags to the above), [`clock`] (the one reader of the clock), [`redact`] (secrets
//!   out of URLs before they are shown).
//!
//! Arrows point one way: the shell (`service`, `tools`, `cli`) uses the edges (`fetch`,
//! `config`), and everything uses the core; the core uses nothing of the shell.

pub mod cli;
pub mod clock;
pub mod config;
/// The pure core, its own crate (`crates/core`): re-exported so the shell reads `crate::core`.
pub use keda_llm_scaler_core as core;
pub mod fetch;
pub mod redact;
pub mod service;
/// The simulated fleet, its own crate (`crates/sim`).
pub use keda_llm_scaler_sim as sim;
pub mod tools;
