//! Recordings: what the scaler scraped, cycle by cycle, replayable through the same code.
//!
//! # Format (version 1)
//!
//! A zstd stream of JSON lines (`.jsonl.zst`). The first line is the header:
//!
//! ```json
//! {"format":"keda-llm-scaler-recording","version":1,"source":"record","created_unix":1764000000.0,
//!  "interval_s":5.0,"metadata":{"targets":"10.0.0.7:8000", "...": "..."},"note":"..."}
//! ```
//!
//! `source` is `record` (scraped from real servers) or `simulated` (rendered by the simulator).
//! Every further line is one scrape cycle:
//!
//! ```json
//! {"t_ms":5000,"arrived":["http://10.0.0.7:8000/metrics"],"departed":[],
//!  "scrapes":[{"target":"http://10.0.0.7:8000/metrics","role":"worker","body":"# HELP ..."},
//!             {"target":"http://10.0.0.8:8000/metrics","role":"worker","error_kind":"timeout","error":"..."}]}
//! ```
//!
//! `t_ms` counts from the start of the recording. Bodies are the raw `/metrics` text as served.
//! The writer flushes a complete zstd block after every cycle, so a recording cut short (the
//! process killed, the disk full) still reads back up to its last whole cycle.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::fleet::{StaleKind, StaleReason, TargetRole};

/// The `format` value of a header.
pub const FORMAT: &str = "keda-llm-scaler-recording";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// Format version.
    pub version: u32,
    /// `record` or `simulated`.
    pub source: String,
    /// Unix time the recording started.
    pub created_unix: f64,
    /// Scrape interval, seconds.
    pub interval_s: f64,
    /// The ScaledObject metadata the targets came from (replay's default configuration).
    pub metadata: BTreeMap<String, String>,
    /// Free text (what was recorded, or what the simulation ran).
    #[serde(default)]
    pub note: String,
}

/// One scrape in a cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scrape {
    /// Metrics URL.
    pub target: String,
    /// `worker` or `frontend`.
    pub role: String,
    /// The body, when the scrape succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The failure kind (a `keda_llm_scaler_scrapes_total` kind), when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// The failure detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<crate::sim::run::RecordedScrape> for Scrape {
    fn from(s: crate::sim::run::RecordedScrape) -> Scrape {
        Scrape::new(s.id, s.role, s.page)
    }
}

impl Scrape {
    /// A scrape from a fetch result.
    pub fn new(target: String, role: TargetRole, page: Result<String, StaleReason>) -> Scrape {
        let role = match role {
            TargetRole::Worker => "worker",
            TargetRole::Frontend => "frontend",
        }
        .to_string();
        match page {
            Ok(body) => Scrape {
                target,
                role,
                body: Some(body),
                error_kind: None,
                error: None,
            },
            Err(r) => Scrape {
                target,
                role,
                body: None,
                error_kind: Some(r.kind.as_str().to_string()),
                error: Some(r.detail),
            },
        }
    }

    /// The role as the core knows it.
    pub fn target_role(&self) -> TargetRole {
        if self.role == "frontend" {
            TargetRole::Frontend
        } else {
            TargetRole::Worker
        }
    }

    /// The page, or the failure, as the scraper reported it.
    pub fn page(&self) -> Result<String, StaleReason> {
        match &self.body {
            Some(b) => Ok(b.clone()),
            None => Err(StaleReason {
                kind: self
                    .error_kind
                    .as_deref()
                    .and_then(|k| StaleKind::ALL.into_iter().find(|x| x.as_str() == k))
                    .unwrap_or(StaleKind::Connect),
                detail: self.error.clone().unwrap_or_default(),
            }),
        }
    }
}

/// One cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Milliseconds since the start of the recording.
    pub t_ms: u64,
    /// Targets seen for the first time in this cycle.
    #[serde(default)]
    pub arrived: Vec<String>,
    /// Targets no longer discovered.
    #[serde(default)]
    pub departed: Vec<String>,
    /// Every target's scrape.
    pub scrapes: Vec<Scrape>,
}

/// Reading or writing failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not JSON, or not the expected shape.
    #[error("line {line}: {source}")]
    Json {
        /// 1-based line.
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
    /// Not a recording of this format or version.
    #[error(
        "not a keda-llm-scaler recording (format {format:?}, version {version}; this build reads version {VERSION})"
    )]
    Format {
        /// What the header said.
        format: String,
        /// Version found.
        version: u32,
    },
    /// Empty file.
    #[error("empty recording (no header)")]
    Empty,
}

/// Writes a recording, one flushed zstd block per cycle.
pub struct Writer<W: Write> {
    enc: zstd::stream::write::Encoder<'static, W>,
    tracked: std::collections::BTreeSet<String>,
    /// Uncompressed bytes written.
    pub raw_bytes: u64,
    /// Cycles written.
    pub cycles: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a recording with `header`.
    pub fn new(out: W, header: &Header) -> Result<Writer<W>, RecordingError> {
        let mut w = Writer {
            enc: zstd::stream::write::Encoder::new(out, 6)?,
            tracked: Default::default(),
            raw_bytes: 0,
            cycles: 0,
        };
        w.line(
            &serde_json::to_vec(header).map_err(|e| RecordingError::Json { line: 1, source: e })?,
        )?;
        Ok(w)
    }

    fn line(&mut self, json: &[u8]) -> Result<(), RecordingError> {
        self.enc.write_all(json)?;
        self.enc.write_all(b"\n")?;
        self.enc.flush()?;
        self.raw_bytes += json.len() as u64 + 1;
        Ok(())
    }

    /// Writes one cycle; arrivals and departures are derived from the targets' ids.
    pub fn cycle(&mut self, t_ms: u64, scrapes: Vec<Scrape>) -> Result<(), RecordingError> {
        let now: std::collections::BTreeSet<String> =
            scrapes.iter().map(|s| s.target.clone()).collect();
        let frame = Frame {
            t_ms,
            arrived: now.difference(&self.tracked).cloned().collect(),
            departed: self.tracked.difference(&now).cloned().collect(),
            scrapes,
        };
        self.tracked = now;
        self.cycles += 1;
        let line = self.cycles as usize + 1;
        self.line(
            &serde_json::to_vec(&frame).map_err(|e| RecordingError::Json { line, source: e })?,
        )
    }

    /// Ends the zstd stream and returns the sink.
    pub fn finish(self) -> Result<W, RecordingError> {
        Ok(self.enc.finish()?)
    }
}

/// A recording read back.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Its header.
    pub header: Header,
    /// Its cycles.
    pub frames: Vec<Frame>,
    /// Set when the file ended inside a cycle (cut short); the frames before it are intact.
    pub truncated: Option<String>,
}

/// Reads a recording; a stream cut short yields the whole cycles before the cut.
pub fn read(input: impl Read) -> Result<Recording, RecordingError> {
    let dec = zstd::stream::read::Decoder::new(input)?;
    let mut lines = BufReader::new(dec).lines();
    let first = match lines.next() {
        Some(Ok(l)) => l,
        Some(Err(e)) => return Err(e.into()),
        None => return Err(RecordingError::Empty),
    };
    let header: Header =
        serde_json::from_str(&first).map_err(|e| RecordingError::Json { line: 1, source: e })?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(RecordingError::Format {
            format: header.format,
            version: header.version,
        });
    }
    let mut frames = Vec::new();
    let mut truncated = None;
    for (i, line) in lines.enumerate() {
        match line {
            Ok(l) if l.trim().is_empty() => {}
            Ok(l) => match serde_json::from_str::<Frame>(&l) {
                Ok(f) => frames.push(f),
                // A last line without its end is what a cut leaves.
                Err(e) if e.is_eof() => {
                    truncated = Some(format!("line {} ends early", i + 2));
                    break;
                }
                Err(e) => {
                    return Err(RecordingError::Json {
                        line: i + 2,
                        source: e,
                    });
                }
            },
            Err(e) => {
                truncated = Some(e.to_string());
                break;
            }
        }
    }
    Ok(Recording {
        header,
        frames,
        truncated,
    })
}

/// Reads a recording file.
pub fn read_file(path: &Path) -> Result<Recording, RecordingError> {
    read(std::fs::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            source: "simulated".into(),
            created_unix: 0.0,
            interval_s: 5.0,
            metadata: BTreeMap::from([("targets".to_string(), "a:1".to_string())]),
            note: String::new(),
        }
    }

    fn cycle(t: u64, targets: &[&str]) -> Vec<Scrape> {
        targets
            .iter()
            .map(|t| {
                Scrape::new(
                    t.to_string(),
                    TargetRole::Worker,
                    Ok("vllm:num_requests_running 1\n".into()),
                )
            })
            .chain(std::iter::once(Scrape::new(
                format!("dead-{t}"),
                TargetRole::Worker,
                Err(StaleReason {
                    kind: StaleKind::Timeout,
                    detail: "slow".into(),
                }),
            )))
            .collect()
    }

    #[test]
    fn round_trip_with_arrivals_and_departures() {
        let mut w = Writer::new(Vec::new(), &header()).expect("writer");
        w.cycle(0, cycle(0, &["a", "b"])).expect("cycle");
        w.cycle(5000, cycle(0, &["b", "c"])).expect("cycle");
        let bytes = w.finish().expect("finish");
        let r = read(&bytes[..]).expect("read");
        assert_eq!(r.header, header());
        assert_eq!(r.frames.len(), 2);
        assert!(r.truncated.is_none());
        assert_eq!(r.frames[1].arrived, ["c"]);
        assert_eq!(r.frames[1].departed, ["a"]);
        let failed = r.frames[0]
            .scrapes
            .iter()
            .find(|s| s.body.is_none())
            .expect("failure kept");
        assert_eq!(failed.page().expect_err("stale").kind, StaleKind::Timeout);
    }

    #[test]
    fn a_recording_cut_short_keeps_its_whole_cycles() {
        let mut w = Writer::new(Vec::new(), &header()).expect("writer");
        for i in 0..20 {
            w.cycle(i * 5000, cycle(i, &["a", "b", "c"]))
                .expect("cycle");
        }
        // No finish(): the process died. Cut the bytes anywhere after the tenth cycle too.
        let bytes = w.enc.get_ref().clone();
        let r = read(&bytes[..]).expect("unfinished stream reads");
        assert_eq!(r.frames.len(), 20);
        let cut = &bytes[..bytes.len() * 2 / 3];
        let r = read(cut).expect("cut stream reads");
        assert!(
            r.frames.len() >= 10 && r.frames.len() < 20,
            "{}",
            r.frames.len()
        );
        assert!(r.truncated.is_some());
    }

    #[test]
    fn other_files_are_refused_clearly() {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("enc");
        enc.write_all(b"{\"format\":\"something-else\",\"version\":1,\"source\":\"x\",\"created_unix\":0,\"interval_s\":1,\"metadata\":{}}\n")
            .expect("write");
        let bytes = enc.finish().expect("finish");
        assert!(matches!(
            read(&bytes[..]),
            Err(RecordingError::Format { .. })
        ));
        assert!(read(&b"not zstd at all"[..]).is_err());
    }
}
