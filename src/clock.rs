//! The one place that reads a clock. Everything else receives time as `now_ms`.
//!
//! It reads tokio's clock, so a test runtime with paused time (`start_paused`, `advance`)
//! drives the controllers' ticks, idle reaping, deadlines and first-decision waits alike;
//! outside a paused runtime it is the monotonic system clock.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    // Reading the monotonic clock is this module's job.
    #[allow(clippy::disallowed_methods)]
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds on the process-wide monotonic clock (0 at first use).
pub fn monotonic_ms() -> u64 {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    u64::try_from(now.duration_since(origin()).as_millis()).unwrap_or(u64::MAX)
}

/// Measures an elapsed duration (RPC latency, scrape latency).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        #[allow(clippy::disallowed_methods)]
        Stopwatch(Instant::now())
    }

    /// Time since start.
    pub fn elapsed(&self) -> Duration {
        #[allow(clippy::disallowed_methods)]
        self.0.elapsed()
    }
}

/// Seconds since the Unix epoch, for timestamps shown to people and Prometheus (never for
/// decisions, which use the monotonic clock).
pub fn unix_seconds() -> f64 {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A deadline `after` from now on tokio's clock (which tokio's paused time drives), for
/// budgets shared by several awaits (a scrape's slot wait plus its request).
pub fn deadline(after: Duration) -> tokio::time::Instant {
    #[allow(clippy::disallowed_methods)]
    let now = tokio::time::Instant::now();
    now + after
}
