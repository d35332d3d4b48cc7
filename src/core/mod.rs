//! The pure core: parsing, signals and the decision policy.
//!
//! Nothing in here performs I/O, reads a clock or draws random numbers: time is an argument
//! (`now_ms`) and every state transition returns a new value. That is what lets the same code
//! run in the live controller, in `replay` and in the simulator, and be property-tested.

pub mod cycle;
pub mod expo;
pub mod extract;
pub mod fleet;
pub mod histogram;
pub mod limits;
pub mod policy;
