//! Secrets out of URLs before they are shown: a target URL may carry a password
//! (`http://user:pass@host`) or a token (`?token=...`), and the debug API and the logs are
//! read by more people than the ScaledObject's author.
//!
//! Pure string work, no URL parser: it must also handle text that is not a valid URL (an
//! error message quoting one, a `host:port` target).

/// What replaces a secret.
pub const MASK: &str = "***";

/// Most bytes of a caller's value quoted back in an error.
const MAX_ECHO: usize = 64;

/// `text`, cut to [`MAX_ECHO`] bytes on a character boundary.
pub fn cut(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return text.to_string();
    }
    let mut end = MAX_ECHO;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// `text` quoted and cut (see [`cut`]), for error messages that quote a caller's value.
pub fn echo(text: &str) -> String {
    format!("{:?}", cut(text))
}

/// `raw` with its userinfo, query values and fragment replaced by [`MASK`]; scheme, host,
/// port and path are kept so the target stays recognisable.
///
/// ```
/// use keda_llm_scaler::redact::url;
/// assert_eq!(url("http://u:pw@10.0.0.1:8000/metrics?token=abc&x=1"), "http://***@10.0.0.1:8000/metrics?token=***&x=***");
/// assert_eq!(url("10.0.0.1:8000"), "10.0.0.1:8000");
/// ```
pub fn url(raw: &str) -> String {
    let (scheme, rest) = match raw.find("://") {
        Some(i) => raw.split_at(i + 3),
        None => ("", raw),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(raw.len());
    out.push_str(scheme);
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => (&tail[..i], Some(&tail[i + 1..])),
        None => (tail, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((key, _)) => {
                        out.push_str(key);
                        out.push('=');
                        out.push_str(MASK);
                    }
                    None if pair.is_empty() => {}
                    None => out.push_str(MASK),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    if fragment.is_some_and(|f| !f.is_empty()) {
        out.push('#');
        out.push_str(MASK);
    }
    out
}

/// `text` with every `http://` or `https://` URL in it passed through [`url`] (error messages
/// from the HTTP client quote the URL they failed on).
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | '<'))
            .unwrap_or(tail.len());
        out.push_str(&url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn find_url(s: &str) -> Option<usize> {
    match (s.find("http://"), s.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_go_recognisable_parts_stay() {
        assert_eq!(
            url("https://admin:s3cret@w.llm.svc:8443/metrics"),
            "https://***@w.llm.svc:8443/metrics"
        );
        assert_eq!(
            url("http://h/metrics?token=t0k"),
            "http://h/metrics?token=***"
        );
        assert_eq!(url("http://h/m?bare#frag"), "http://h/m?***#***");
        assert_eq!(url("http://h:1/metrics"), "http://h:1/metrics");
        assert_eq!(url("user:pw@h:1"), "***@h:1");
        assert_eq!(
            url("http://h/a@b"),
            "http://h/a@b",
            "an @ in the path is no userinfo"
        );
    }

    #[test]
    fn urls_inside_messages() {
        let m = "error sending request for url (http://u:p@10.0.0.1:8000/metrics?k=v): refused";
        assert_eq!(
            text(m),
            "error sending request for url (http://***@10.0.0.1:8000/metrics?k=***): refused"
        );
        assert_eq!(text("no url here"), "no url here");
        assert_eq!(
            text("a https://x/?t=1 and http://y:2@z"),
            "a https://x/?t=*** and http://***@z"
        );
    }
}
