//! Any bytes as a `/metrics` page under an allocation cap: reading a page may allocate in
//! proportion to the page (what it keeps), never more. The harness counts live heap bytes
//! and fails the run when one extraction's peak passes `8 x page + 1 MiB` (issue: one 350 KB
//! line of escaped label values once took 700 MB).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use keda_llm_scaler::core::extract::{Engine, extract};
use libfuzzer_sys::fuzz_target;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data).into_owned();
    let cap = 8 * body.len() + (1 << 20);
    for engine in [Engine::Auto, Engine::Dynamo] {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let extracted = extract(&body, engine, None);
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        drop(extracted);
        assert!(used <= cap, "{used} bytes for a {} byte page", body.len());
    }
});
