//! The long-running service: KEDA's gRPC scaler and the admin HTTP server, one controller per
//! ScaledObject trigger, the scaler's own metrics, and the admission of connections.
//!
//! - [`serve`] wires everything together and stops it on SIGTERM.
//! - [`grpc`] answers KEDA from the latest snapshots; [`admin`] serves probes, `/metrics`, `/debug`.
//! - [`controller`] runs each trigger's discover -> scrape -> decide loop and publishes snapshots.
//! - [`telemetry`] is the scaler's own Prometheus metrics and logging.
//! - [`listen`] and [`tls`] admit connections (limits, deadlines, TLS and mTLS).

pub mod admin;
pub mod controller;
pub mod grpc;
pub mod listen;
pub mod serve;
pub mod telemetry;
pub mod tls;
