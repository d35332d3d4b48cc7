//! Which addresses the scaler may fetch. A ScaledObject author chooses the scrape targets, so
//! without a limit the scaler would fetch any URL they name from inside the cluster (SSRF).
//!
//! The check runs on resolved addresses, inside the HTTP client's resolver, so the address
//! checked is the address connected to (a name that re-resolves elsewhere between a check and
//! the connection cannot slip through). Link-local addresses (169.254.0.0/16, which holds the
//! cloud instance-metadata endpoint, and fe80::/10) are refused unless a CIDR names them.

use std::net::IpAddr;
use std::sync::Arc;

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside. An IPv6 form that carries an IPv4 address is judged as that
    /// IPv4 address (see [`canonical`]).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(x)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(x) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(x)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(x) & mask
            }
            _ => false,
        }
    }
}

/// The address a connection to `ip` really reaches, for every IPv6 form that embeds an IPv4
/// address: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d` (RFC 2765), the NAT64 prefixes `64:ff9b::/96` (RFC 6052) and
/// `64:ff9b:1::/48` (RFC 8215, last 32 bits), 6to4 `2002:AABB:CCDD::/48` (RFC 3056) and
/// Teredo `2001:0::/32` (RFC 4380, client address inverted in the last 32 bits). Without
/// this, `[::169.254.169.254]` would pass a check that `169.254.169.254` fails.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let seg = v6.segments();
    let low = (u32::from(seg[6]) << 16) | u32::from(seg[7]);
    let v4 = |bits: u32| IpAddr::V4(std::net::Ipv4Addr::from(bits));
    match seg {
        // :: and ::1 are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => ip,
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => v4(low),
        [0, 0, 0, 0, 0xffff, 0, _, _] => v4(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, _, _, _, _, _] => v4(low),
        [0x2002, hi, lo, _, _, _, _, _] => v4((u32::from(hi) << 16) | u32::from(lo)),
        [0x2001, 0, _, _, _, _, _, _] => v4(!low),
        _ => ip,
    }
}

/// `--allow-targets` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--allow-targets entry {0:?} is neither a CIDR (10.0.0.0/8) nor a DNS suffix (.svc.cluster.local)"
)]
pub struct AllowError(pub String);

/// Allowed networks and DNS suffixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    cidrs: Vec<Cidr>,
    suffixes: Vec<String>,
}

/// Networks refused even without an allow-list, unless a CIDR names them.
fn always_denied() -> [Cidr; 2] {
    [
        Cidr {
            addr: IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 0, 0)),
            prefix: 16,
        },
        Cidr {
            addr: IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
            prefix: 10,
        },
    ]
}

impl AllowList {
    /// Parses a comma-separated list; empty means unrestricted (but link-local is refused).
    pub fn parse(list: &str) -> Result<AllowList, AllowError> {
        let mut out = AllowList::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(c) = Cidr::parse(item) {
                out.cidrs.push(c);
            } else if item.starts_with('.')
                && item.len() > 1
                && item[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                out.suffixes.push(item.to_ascii_lowercase());
            } else {
                return Err(AllowError(item.to_string()));
            }
        }
        Ok(out)
    }

    /// No allow-list given.
    pub fn is_unrestricted(&self) -> bool {
        self.cidrs.is_empty() && self.suffixes.is_empty()
    }

    fn in_cidrs(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip))
    }

    fn denied_by_default(&self, ip: IpAddr) -> bool {
        always_denied().iter().any(|c| c.contains(ip)) && !self.in_cidrs(ip)
    }

    /// Whether a host name matches an allowed DNS suffix (case-insensitive, trailing dot
    /// ignored).
    pub fn name_allowed(&self, host: &str) -> bool {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        self.suffixes.iter().any(|s| h.ends_with(s.as_str()))
    }

    /// Whether an address written as an IP literal in a target may be fetched.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_none()
    }

    /// Why an IP literal may not be fetched, in words that name the rule that refused it.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        let reached = canonical(ip);
        let shown = if reached == ip {
            ip.to_string()
        } else {
            format!("{ip} (which reaches {reached})")
        };
        if self.is_unrestricted() {
            self.denied_by_default(ip).then(|| {
                format!(
                    "{shown} is link-local, where the cloud instance-metadata endpoint lives; refused unless a --allow-targets CIDR names it"
                )
            })
        } else if self.in_cidrs(ip) {
            None
        } else if self.denied_by_default(ip) {
            Some(format!("{shown} is link-local and outside --allow-targets"))
        } else {
            Some(format!("{shown} is outside --allow-targets"))
        }
    }

    /// The addresses `host` resolved to that may be connected to: all of them (minus
    /// link-local) when the name matches an allowed suffix or no list is set, otherwise those
    /// inside the allowed networks.
    pub fn filter_resolved(
        &self,
        host: &str,
        addrs: Vec<std::net::SocketAddr>,
    ) -> Vec<std::net::SocketAddr> {
        let by_name = self.is_unrestricted() || self.name_allowed(host);
        addrs
            .into_iter()
            .filter(|a| {
                if by_name {
                    !self.denied_by_default(a.ip())
                } else {
                    self.in_cidrs(a.ip())
                }
            })
            .collect()
    }
}

/// Resolves `host` and keeps the addresses that may be connected to. The error says why none
/// may (a `--allow-targets` refusal) or that the lookup itself failed; the scrape client's
/// resolver and the proxy path's pre-check both read names through here.
pub async fn resolve_allowed(
    allow: &AllowList,
    host: &str,
    port: u16,
) -> Result<Vec<std::net::SocketAddr>, std::io::Error> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let found = addrs.len();
    let ok = allow.filter_resolved(host, addrs);
    if ok.is_empty() {
        let why = if allow.is_unrestricted() {
            format!(
                "{host} resolves to {found} address(es), all link-local (refused unless a --allow-targets CIDR names them)"
            )
        } else {
            format!("{host} resolves to {found} address(es), none allowed by --allow-targets")
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            why,
        ));
    }
    Ok(ok)
}

/// A DNS resolver for the scrape client that only hands out allowed addresses.
#[derive(Debug, Clone)]
pub struct AllowingResolver(pub Arc<AllowList>);

impl reqwest::dns::Resolve for AllowingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ok = resolve_allowed(&allow, &host, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let iter: reqwest::dns::Addrs = Box::new(ok.into_iter());
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> std::net::SocketAddr {
        format!("{s}:80").parse().expect("addr")
    }

    #[test]
    fn cidrs_and_suffixes() {
        let a = AllowList::parse("10.0.0.0/8, fd00::/8, .svc.cluster.local").expect("parse");
        assert!(a.ip_allowed("10.244.3.7".parse().expect("ip")));
        assert!(!a.ip_allowed("192.168.1.1".parse().expect("ip")));
        assert!(a.ip_allowed("fd12::1".parse().expect("ip")));
        assert!(
            a.ip_allowed("::ffff:10.1.2.3".parse().expect("ip")),
            "v4-mapped v6"
        );
        assert!(a.name_allowed("vllm.llm.svc.cluster.local."));
        assert!(!a.name_allowed("evil.example.com"));
        // A name outside the suffixes is allowed only where it resolves inside the networks.
        assert_eq!(
            a.filter_resolved(
                "evil.example.com",
                vec![sa("10.0.0.5"), sa("93.184.216.34")]
            ),
            vec![sa("10.0.0.5")]
        );
        // An allowed name still cannot reach the metadata endpoint.
        assert!(
            a.filter_resolved("x.svc.cluster.local", vec![sa("169.254.169.254")])
                .is_empty()
        );
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        assert!(
            AllowList::parse("svc.cluster.local").is_err(),
            "suffixes start with a dot"
        );
    }

    #[test]
    fn unrestricted_still_refuses_link_local_unless_named() {
        let open = AllowList::parse("").expect("empty");
        assert!(open.is_unrestricted());
        assert!(open.ip_allowed("127.0.0.1".parse().expect("ip")));
        assert!(!open.ip_allowed("169.254.169.254".parse().expect("ip")));
        assert!(!open.ip_allowed("fe80::1".parse().expect("ip")));
        let named = AllowList::parse("169.254.0.0/16").expect("parse");
        assert!(named.ip_allowed("169.254.169.254".parse().expect("ip")));
    }

    #[test]
    fn ipv6_forms_of_the_metadata_address_are_refused() {
        let open = AllowList::parse("").expect("empty");
        for form in [
            "::169.254.169.254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "::ffff:0:a9fe:a9fe",
            "2002:a9fe:a9fe::",
            "2001:0:4136:e378:8000:63bf:5601:5601",
        ] {
            let ip: IpAddr = form.parse().expect("ip");
            let why = open.refusal(ip).unwrap_or_else(|| panic!("{form} allowed"));
            assert!(
                why.contains("169.254.169.254") && !why.contains("outside --allow-targets"),
                "{form}: {why}"
            );
        }
        assert!(open.ip_allowed("::1".parse().expect("ip")));
        assert!(open.ip_allowed("2001:db8::1".parse().expect("ip")));
        let listed = AllowList::parse("10.0.0.0/8").expect("parse");
        assert!(listed.ip_allowed("64:ff9b::a00:1".parse().expect("ip")));
        assert!(
            listed
                .refusal("192.168.0.1".parse().expect("ip"))
                .is_some_and(|w| w.contains("outside --allow-targets"))
        );
    }

    #[test]
    fn prefix_edges() {
        let c = Cidr::parse("192.168.4.0/22").expect("cidr");
        assert!(c.contains("192.168.7.255".parse().expect("ip")));
        assert!(!c.contains("192.168.8.0".parse().expect("ip")));
        let all = Cidr::parse("0.0.0.0/0").expect("cidr");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        assert!(!all.contains("::1".parse().expect("ip")));
    }
}
