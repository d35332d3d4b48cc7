//! Where to scrape: the `targets`, `service`, `httpSd` and `frontendTargets` keys (with
//! `scheme`, `metricsPath` and `port`) to a [`Discovery`] and the frontend URLs.

use super::keys::{Lookup, MetadataError, err};

/// Where the workers come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Discovery {
    /// A fixed list of metrics URLs.
    Static(Vec<String>),
    /// A Prometheus HTTP service-discovery endpoint fetched every cycle.
    HttpSd {
        /// The endpoint.
        url: String,
        /// Path of each target's metrics, starting with `/`.
        path: String,
        /// `http` or `https` for the targets.
        scheme: String,
    },
    /// A headless Service resolved by DNS every cycle.
    Service {
        /// DNS name.
        host: String,
        /// Metrics port.
        port: u16,
        /// Path, starting with `/`.
        path: String,
        /// `http` or `https`.
        scheme: String,
    },
}

/// Normalises one target to a metrics URL: `host:port` gets `scheme://` and `metricsPath`.
pub fn target_url(key: &str, raw: &str, scheme: &str, path: &str) -> Result<String, MetadataError> {
    let raw = raw.trim();
    let url = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("{scheme}://{raw}{path}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        err(
            key,
            format!("{raw:?} is not a `host:port` or http(s) URL ({e})"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(err(
            key,
            format!("{raw:?} is not a `host:port` or http(s) URL"),
        ));
    }
    Ok(parsed.to_string())
}

pub(crate) fn target_list(
    l: &Lookup<'_>,
    key: &str,
    scheme: &str,
    path: &str,
) -> Result<Vec<String>, MetadataError> {
    let Some(raw) = l.raw(key) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = target_url(key, item, scheme, path)?;
        if !out.contains(&url) {
            out.push(url);
        }
    }
    if out.is_empty() {
        return Err(err(key, "expected at least one `host:port` or URL"));
    }
    Ok(out)
}

/// The discovery and the frontends of one trigger, validated.
pub(crate) fn where_to_scrape(l: &Lookup<'_>) -> Result<(Discovery, Vec<String>), MetadataError> {
    let scheme = l.get("scheme").to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(err(
            "scheme",
            format!("expected http or https, got {scheme:?}"),
        ));
    }
    let path = l.get("metricsPath");
    if !path.starts_with('/') {
        return Err(err(
            "metricsPath",
            format!("expected a path starting with '/', got {path:?}"),
        ));
    }
    let targets = target_list(l, "targets", &scheme, &path)?;
    let sources = usize::from(!targets.is_empty())
        + usize::from(l.raw("service").is_some())
        + usize::from(l.raw("httpSd").is_some());
    if sources > 1 {
        let key = if l.raw("httpSd").is_some() {
            "httpSd"
        } else {
            "service"
        };
        return Err(err(
            key,
            "set exactly one of `targets`, `service` and `httpSd`",
        ));
    }
    let discovery = if !targets.is_empty() {
        Discovery::Static(targets)
    } else if let Some(raw) = l.raw("httpSd") {
        if !(raw.starts_with("http://") || raw.starts_with("https://")) {
            return Err(err(
                "httpSd",
                format!("expected an http:// or https:// URL, got {raw:?}"),
            ));
        }
        // Parsed now, so `http://` (no host) fails here and not on every cycle.
        let url = target_url("httpSd", &raw, &scheme, &path)?;
        Discovery::HttpSd {
            url,
            path: path.clone(),
            scheme: scheme.clone(),
        }
    } else if let Some(host) = l.raw("service") {
        if host.contains('/') || host.contains(':') || host.contains(char::is_whitespace) {
            return Err(err(
                "service",
                format!("expected a DNS name such as `vllm-workers.llm.svc`, got {host:?}"),
            ));
        }
        if l.raw("port").is_none() {
            return Err(err(
                "port",
                "required with `service`: the pods' metrics port",
            ));
        }
        let port = u16::try_from(l.integer("port")?).map_err(|_| err("port", "out of range"))?;
        Discovery::Service {
            host,
            port,
            path: path.clone(),
            scheme: scheme.clone(),
        }
    } else {
        return Err(err(
            "targets",
            "one of `targets` (comma-separated host:port or URLs), `service` (headless Service name) or `httpSd` (discovery URL) is required",
        ));
    };
    let frontends = target_list(l, "frontendTargets", &scheme, &path)?;
    Ok((discovery, frontends))
}
