//! A lenient, zero-copy scanner for the Prometheus text exposition format (0.0.4, and the
//! OpenMetrics text that real workers emit).
//!
//! Why not `prometheus-parse`: its name pattern is `\w+`, so every `vllm:*` and `sglang:*`
//! sample is silently dropped, and it mangles quoted label values (see `BENCHMARKS.md`, measured
//! by `benches/expo.rs`). This scanner:
//!
//! - reads names `[a-zA-Z_:][a-zA-Z0-9_:]*`, so `vllm:kv_cache_usage_perc` survives;
//! - asks the caller whether it wants a family *after reading only the name*, so the few
//!   families the scaler needs cost a byte scan, not a full parse, of a 57 KB page;
//! - never fails a page: a bad line increments [`ScanStats::errors`] (the first error text is
//!   kept for logs and the debug API) and scanning continues;
//! - handles `\r\n`, a missing final newline, `m{}`, spaces around `,` and `=`, trailing
//!   commas, escaped label values (`\\`, `\"`, `\n`), `NaN`/`+Inf`/`-Inf`, exponents and an
//!   optional timestamp token (kept raw).
//!
//! Output order is source order; nothing is hashed.

use std::borrow::Cow;

use super::limits::MAX_LABELS_PER_SAMPLE;

/// One label pair; the value is owned only when it contained an escape sequence.
pub type Label<'a> = (&'a str, Cow<'a, str>);

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name exactly as exposed (`vllm:num_requests_waiting`, `x_bucket`, ...).
    pub name: &'a str,
    /// Labels in source order.
    pub labels: Vec<Label<'a>>,
    /// Parsed value; may be NaN or infinite (callers decide what to keep).
    pub value: f64,
    /// Optional timestamp token, unparsed.
    pub timestamp: Option<&'a str>,
}

impl Sample<'_> {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }
}

/// Counts from one scan. `errors > 0` does not mean the page is unusable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Non-empty, non-comment lines seen.
    pub lines: usize,
    /// Samples handed to the caller.
    pub samples: usize,
    /// Lines skipped because the caller did not want the family.
    pub skipped: usize,
    /// Malformed lines (skipped and counted).
    pub errors: usize,
    /// Description of the first malformed line, for logs and the debug API.
    pub first_error: Option<String>,
}

/// Scans `body`, calling `want(name)` for each sample line and `on_sample` for the lines
/// wanted and well-formed.
///
/// ```
/// use keda_llm_scaler_core::expo::scan;
/// let page = "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine=\"0\"} 3.0\ngarbage{\n";
/// let mut got = Vec::new();
/// let stats = scan(page, |_| true, |s| got.push((s.name, s.value)));
/// assert_eq!(got, vec![("vllm:num_requests_waiting", 3.0)]);
/// assert_eq!(stats.errors, 1);
/// ```
pub fn scan<'a>(
    body: &'a str,
    mut want: impl FnMut(&str) -> bool,
    mut on_sample: impl FnMut(Sample<'a>),
) -> ScanStats {
    let mut stats = ScanStats::default();
    for (index, raw) in body.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        stats.lines += 1;
        let name_len = name_length(trimmed);
        if name_len == 0 {
            record_error(&mut stats, index, "line does not start with a metric name");
            continue;
        }
        let name = &trimmed[..name_len];
        if !want(name) {
            stats.skipped += 1;
            continue;
        }
        match parse_rest(name, &trimmed[name_len..]) {
            Ok(sample) => {
                stats.samples += 1;
                on_sample(sample);
            }
            Err(why) => record_error(&mut stats, index, why),
        }
    }
    stats
}

fn record_error(stats: &mut ScanStats, index: usize, why: &str) {
    stats.errors += 1;
    if stats.first_error.is_none() {
        stats.first_error = Some(format!("line {}: {why}", index + 1));
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn name_length(s: &str) -> usize {
    let bytes = s.as_bytes();
    if bytes.first().is_none_or(|b| !is_name_start(*b)) {
        return 0;
    }
    bytes.iter().take_while(|b| is_name_char(**b)).count()
}

fn parse_rest<'a>(name: &'a str, rest: &'a str) -> Result<Sample<'a>, &'static str> {
    let mut rest = rest.trim_start();
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut tokens = rest.split_ascii_whitespace();
    let value_token = tokens.next().ok_or("missing value")?;
    let value = value_token
        .parse::<f64>()
        .map_err(|_| "value is not a number")?;
    let timestamp = tokens.next();
    Ok(Sample {
        name,
        labels,
        value,
        timestamp,
    })
}

/// Parses `k="v", ...}` and returns what follows the closing brace.
fn parse_labels<'a>(mut s: &'a str, out: &mut Vec<Label<'a>>) -> Result<&'a str, &'static str> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let key_len = s
            .as_bytes()
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if key_len == 0 {
            return Err("bad label name");
        }
        let key = &s[..key_len];
        s = s[key_len..].trim_start();
        s = s.strip_prefix('=').ok_or("expected '=' after label name")?;
        s = s.trim_start();
        s = s.strip_prefix('"').ok_or("label value must be quoted")?;
        if out.len() >= MAX_LABELS_PER_SAMPLE {
            return Err("too many labels on one sample");
        }
        let (value, after) = parse_quoted(s)?;
        out.push((key, value));
        s = after.trim_start();
        if let Some(after_comma) = s.strip_prefix(',') {
            s = after_comma;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after label value");
        }
    }
}

/// Reads a label value up to its closing quote, unescaping only when needed.
fn parse_quoted(s: &str) -> Result<(Cow<'_, str>, &str), &'static str> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok((Cow::Borrowed(&s[..i]), &s[i + 1..])),
            b'\\' => return parse_quoted_escaped(s, i),
            _ => i += 1,
        }
    }
    Err("unterminated label value")
}

fn parse_quoted_escaped(
    s: &str,
    first_escape: usize,
) -> Result<(Cow<'_, str>, &str), &'static str> {
    // Grown as the value is read: reserving the rest of the line here made every escaped value
    // of a long line cost the whole line (50,000 `a="\n"` pairs on one 350 KB line: 700 MB).
    let mut owned = String::with_capacity(first_escape + 16);
    owned.push_str(&s[..first_escape]);
    let mut chars = s[first_escape..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok((Cow::Owned(owned), &s[first_escape + offset + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => owned.push('\n'),
                Some((_, '\\')) => owned.push('\\'),
                Some((_, '"')) => owned.push('"'),
                // Unknown escapes are kept verbatim, as Prometheus does.
                Some((_, other)) => {
                    owned.push('\\');
                    owned.push(other);
                }
                None => return Err("unterminated label value"),
            },
            other => owned.push(other),
        }
    }
    Err("unterminated label value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(page: &str) -> (Vec<Sample<'_>>, ScanStats) {
        let mut out = Vec::new();
        let stats = scan(page, |_| true, |s| out.push(s));
        (out, stats)
    }

    #[test]
    fn colon_names_and_labels() {
        let (s, st) = all("vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 2.0\n");
        assert_eq!(st.errors, 0);
        assert_eq!(s[0].name, "vllm:num_requests_running");
        assert_eq!(s[0].label("model_name"), Some("m"));
        assert_eq!(s[0].value, 2.0);
    }

    #[test]
    fn quirks_of_real_pages() {
        let page = "a{le=\"+Inf\"} 3\r\nb{} 1e+06 1700000000000\nc NaN\nd{x=\"1\", y = \"2\",} -Inf\ne 7.400757e+06";
        let (s, st) = all(page);
        assert_eq!(st.errors, 0, "{:?}", st.first_error);
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].label("le"), Some("+Inf"));
        assert_eq!(s[1].value, 1e6);
        assert_eq!(s[1].timestamp, Some("1700000000000"));
        assert!(s[2].value.is_nan());
        assert_eq!(s[3].label("y"), Some("2"));
        assert_eq!(s[3].value, f64::NEG_INFINITY);
        assert_eq!(s[4].value, 7_400_757.0);
    }

    #[test]
    fn escaped_and_special_label_values() {
        let page = r#"m{a="say \"hi\"",b="x,y=z}",c="back\\slash",d="line\nbreak"} 1"#;
        let (s, st) = all(page);
        assert_eq!(st.errors, 0);
        assert_eq!(s[0].label("a"), Some("say \"hi\""));
        assert_eq!(s[0].label("b"), Some("x,y=z}"));
        assert_eq!(s[0].label("c"), Some("back\\slash"));
        assert_eq!(s[0].label("d"), Some("line\nbreak"));
    }

    #[test]
    fn bad_lines_are_counted_not_fatal() {
        let page = "ok 1\n{bad} 2\nm{a=1} 3\nn{a=\"x\" 4\np notanumber\nq\nok2 5\n";
        let (s, st) = all(page);
        assert_eq!(s.iter().map(|s| s.name).collect::<Vec<_>>(), ["ok", "ok2"]);
        assert_eq!(st.errors, 5);
        assert!(
            st.first_error
                .as_deref()
                .unwrap_or("")
                .starts_with("line 2")
        );
    }

    #[test]
    fn filter_skips_before_parsing() {
        let mut seen = Vec::new();
        let st = scan("a{broken 1\nb 2\n", |n| n == "b", |s| seen.push(s.name));
        assert_eq!(seen, ["b"]);
        assert_eq!(st.skipped, 1);
        assert_eq!(st.errors, 0);
    }

    #[test]
    fn escaped_values_cost_their_own_length_not_the_rest_of_the_line() {
        let mut line = String::from("m{");
        for i in 0..MAX_LABELS_PER_SAMPLE {
            line.push_str(&format!("a{i}=\"\\n{}\",", "x".repeat(i)));
        }
        line.push_str("} 1\n");
        let (s, st) = all(&line);
        assert_eq!((st.errors, s[0].labels.len()), (0, MAX_LABELS_PER_SAMPLE));
        let reserved: usize = s[0]
            .labels
            .iter()
            .map(|(_, v)| match v {
                Cow::Owned(o) => o.capacity(),
                Cow::Borrowed(_) => 0,
            })
            .sum();
        // Each value costs about its own length, not the rest of the line.
        let own: usize = (0..MAX_LABELS_PER_SAMPLE).map(|i| i + 1 + 16).sum();
        assert!(reserved <= own, "{reserved} bytes reserved, {own} needed");
        let mut too_many = String::from("m{");
        for i in 0..=MAX_LABELS_PER_SAMPLE {
            too_many.push_str(&format!("a{i}=\"\","));
        }
        too_many.push_str("} 1\n");
        let (s, st) = all(&too_many);
        assert_eq!((s.len(), st.errors), (0, 1));
    }

    #[test]
    fn non_utf8_like_garbage_does_not_panic() {
        let junk = "\u{0}\u{1}{{{}}}\"\"\\\\ \n\t\t\n# only comment\n é 1\nm{é=\"1\"} 1\n";
        let (_, st) = all(junk);
        assert!(st.errors >= 2);
    }
}
