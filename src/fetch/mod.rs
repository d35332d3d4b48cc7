//! The edges that reach workers: where targets are ([`discover`]), whether they may be fetched
//! ([`allow`]), fetching one page within its time, size and slot bounds ([`scrape`]), and one
//! whole cycle of a trigger's targets ([`cycle`]), which the controller and `record` share.

pub mod allow;
pub(crate) mod cycle;
pub mod discover;
pub mod scrape;
