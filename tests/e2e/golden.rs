//! Golden replays: both example recordings replayed with their own metadata must give exactly
//! the decisions in `tests/golden/*.csv`, byte for byte. A change to parsing, signals or the
//! policy that moves a decision shows here, and its commit explains the diff (regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test e2e golden`).

use std::path::PathBuf;

use keda_llm_scaler::tools::recording;
use keda_llm_scaler::tools::replay::{replay, to_csv};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_recordings_replay_to_their_golden_decisions() {
    for name in ["simulated-flash-crowd", "simulated-outage-90s"] {
        let rec =
            recording::read_file(&repo().join(format!("examples/recordings/{name}.jsonl.zst")))
                .expect("recording");
        let metadata = rec.header.metadata.clone();
        let csv = to_csv(&replay(&rec, &metadata, "base").expect("replay"));
        let golden = repo().join(format!("tests/golden/{name}.csv"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &csv).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", golden.display()));
        if csv != want {
            let first = csv
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(csv.lines().count().min(want.lines().count()));
            panic!(
                "{name}: replay differs from {} at line {}:\n  got  {}\n  want {}",
                golden.display(),
                first + 1,
                csv.lines().nth(first).unwrap_or("<end>"),
                want.lines().nth(first).unwrap_or("<end>")
            );
        }
    }
}
