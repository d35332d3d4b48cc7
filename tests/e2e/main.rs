//! End-to-end tests: the real server on loopback, a real tonic client, real HTTP workers
//! serving the real captures in `../shared/fixtures/real-metrics/`.

mod attacks;
mod common;
mod faults;
mod fuzz;
mod golden;
mod grpc_contract;
mod hardening;
mod manifests;
mod prometheus;
mod signals;
mod sim;
mod tls;
