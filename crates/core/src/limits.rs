//! Bounds that keep the core's memory proportional to what it keeps, whatever a page says.
//!
//! Each is a property of the data structure, not a tuning knob: a page or a configuration
//! that would exceed one is refused (the target goes stale with its reason) or folded into a
//! coarser representation, never allowed to grow the process.

/// Most buckets one TTFT histogram series may have. Real engines expose 10-30 (the vLLM 0.19
/// capture: 23, the Dynamo frontend capture: 19); a page with more is refused as `too_many_series` rather than kept
/// once per window slot.
pub const MAX_TTFT_BUCKETS: usize = 128;

/// Most distinct bucket bounds the fleet-wide TTFT histogram of one window slot may hold
/// (workers whose bucket sets differ are merged over the union of bounds). A worker whose
/// contribution would push a slot past this is marked stale instead.
pub const MAX_MERGED_TTFT_BUCKETS: usize = 512;

/// Most slots the sliding TTFT window is cut into. Cycles closer together than
/// `window / WINDOW_SLOTS` share a slot (their deltas add), so a short interval with a long
/// window costs at most `WINDOW_SLOTS x MAX_MERGED_TTFT_BUCKETS` buckets, not one histogram
/// per cycle.
pub const WINDOW_SLOTS: u64 = 256;

/// Most labels one sample line may carry. Real engines use fewer than ten; a line with more
/// is counted as malformed, so a hostile line cannot make the scanner hold a label list many
/// times the size of the line.
pub const MAX_LABELS_PER_SAMPLE: usize = 64;
