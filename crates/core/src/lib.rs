//! The pure core of keda-llm-scaler: parsing, signals and the decision policy.
//!
//! Nothing in here performs I/O, reads a clock or draws random numbers: time is an argument
//! (`now_ms`) and every state transition returns a new value. That is what lets the same code
//! run in the live controller, in `replay` and in the simulator, and be property-tested. The
//! crate depends on `serde` and `thiserror` only, so the compiler enforces it.
//!
//! # Layout
//!
//! The data flow of one cycle, in module order:
//!
//! - [`expo`]: the lenient exposition scanner (a page's lines to samples).
//! - [`extract`]: samples to the few numbers the scaler reads, per engine dialect.
//! - [`histogram`]: PromQL-compatible cumulative histograms (deltas, merge, quantile).
//! - [`fleet`]: the fleet's memory between cycles and the [`fleet::Signals`] computed from it.
//! - [`policy`]: signals to a desired replica count, with its explanation.
//! - [`cycle`]: one observations-in, snapshot-out step, and the answers KEDA gets from it.
//! - [`limits`]: the bounds that keep memory proportional to what is kept.

pub mod cycle;
pub mod expo;
pub mod extract;
pub mod fleet;
pub mod histogram;
pub mod limits;
pub mod policy;
