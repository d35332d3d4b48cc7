//! The commands around the service: the loopback [`demo`], [`simulate`] (the simulator's file and
//! terminal side), `record` and `replay` ([`replay`]) and the recording format ([`recording`]).

pub mod demo;
pub mod recording;
pub mod replay;
pub mod simulate;
