//! The edges that reach workers: where targets are ([`discover`]), whether they may be fetched
//! ([`allow`]), and fetching one page within its time, size and slot bounds ([`scrape`]).

pub mod allow;
pub mod discover;
pub mod scrape;
