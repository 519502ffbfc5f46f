//! Egress destinations: the `HOST:PORT` patterns a label or a launch asks
//! for and the operator grants (`--allow-egress`), what a grant covers, and
//! which addresses are special (loopback, private, link-local, metadata):
//! refused unless a grant names them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The name a session uses for the host's own loopback (podman's name for
/// the host); a grant must name it, as `host.containers.internal:PORT`.
pub const HOST_ALIAS: &str = "host.containers.internal";

/// The name that is loopback by definition (RFC 6761): a grant of
/// `localhost:PORT` is the host's `127.0.0.1:PORT`, never resolved.
pub const LOCALHOST: &str = "localhost";

/// A destination pattern: `api.github.com:443`, `*.pypi.org:443` (any
/// subdomain, not the apex), `10.0.0.5:5432`, `[fd00::1]:80` or
/// `host.containers.internal:8080`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    host: Host,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Host {
    /// A DNS name, lowercase.
    Name(String),
    /// `*.SUFFIX`: any name ending in `.SUFFIX`.
    Wildcard(String),
    Ip(IpAddr),
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Pattern::parse(&s)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.to_string()
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Name(n) => write!(f, "{n}:{}", self.port),
            Host::Wildcard(s) => write!(f, "*.{s}:{}", self.port),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}

impl std::str::FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Pattern::parse(s)
    }
}

/// Longest DNS name.
const MAX_NAME: usize = 253;

impl Pattern {
    pub fn parse(s: &str) -> std::result::Result<Pattern, String> {
        let bad = |why: &str| {
            format!(
                "`{s}` is not an egress destination ({why}); write HOST:PORT, e.g. api.github.com:443, *.pypi.org:443 or {HOST_ALIAS}:8080"
            )
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port must be 1 to 65535"))?;
        let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Host::Ip(IpAddr::V6(
                v6.parse().map_err(|_| bad("not an IPv6 address"))?,
            ))
        } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if let Some(suffix) = host.strip_prefix("*.") {
            Host::Wildcard(dns_name(suffix).ok_or_else(|| bad("not a DNS name after `*.`"))?)
        } else {
            Host::Name(dns_name(host).ok_or_else(|| bad("not a DNS name or an IP address"))?)
        };
        if let Some(why) = not_a_destination(&host, port) {
            return Err(bad(&why));
        }
        Ok(Pattern { host, port })
    }

    /// Whether every destination this pattern names is one `grant` names too
    /// (the same address by another spelling, `localhost:8765` within
    /// `127.0.0.1:8765`, included).
    pub fn within(&self, grant: &Pattern) -> bool {
        if self.port != grant.port {
            return false;
        }
        match (&self.host, &grant.host) {
            (a, b) if a == b => true,
            _ if self.pinned().is_some() && self.pinned() == grant.pinned() => true,
            (Host::Name(n), Host::Wildcard(s)) => subdomain(n, s),
            (Host::Wildcard(t), Host::Wildcard(s)) => subdomain(t, s),
            _ => false,
        }
    }

    /// Whether `host:port` (as a client asked for it) is this pattern's.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        match &self.host {
            Host::Name(n) => *n == host,
            Host::Wildcard(s) => subdomain(host, s),
            Host::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    /// Whether this pattern names `address` itself (an IP grant, or the host
    /// alias or `localhost` for loopback), which lets a special address through.
    pub fn names_address(&self, address: IpAddr) -> bool {
        match &self.host {
            Host::Ip(ip) => *ip == address,
            Host::Name(n) => (n == HOST_ALIAS || n == LOCALHOST) && address.is_loopback(),
            Host::Wildcard(_) => false,
        }
    }

    /// The address this pattern dials without resolving a name: an IP
    /// address, or the host's `127.0.0.1` for the host alias and `localhost`.
    pub fn pinned(&self) -> Option<IpAddr> {
        match &self.host {
            Host::Ip(ip) => Some(*ip),
            Host::Name(n) if n == HOST_ALIAS || n == LOCALHOST => {
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            _ => None,
        }
    }

    /// Whether a client in the session would dial this destination on the
    /// container's own loopback (`127.0.0.1`, `[::1]`, `localhost`: what
    /// `NO_PROXY` keeps off the proxy), where only a port forward reaches it.
    pub fn on_container_loopback(&self) -> bool {
        match &self.host {
            Host::Ip(IpAddr::V4(ip)) => *ip == Ipv4Addr::LOCALHOST,
            Host::Ip(IpAddr::V6(ip)) => *ip == Ipv6Addr::LOCALHOST,
            Host::Name(n) => n == LOCALHOST,
            Host::Wildcard(_) => false,
        }
    }

    /// The host as a client names it.
    pub fn host(&self) -> String {
        match &self.host {
            Host::Name(n) => n.clone(),
            Host::Wildcard(s) => format!("*.{s}"),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// A literal destination (no wildcard), as a port forward needs.
    pub fn is_literal(&self) -> bool {
        !matches!(self.host, Host::Wildcard(_))
    }
}

/// Why `host` (parsed) is no destination to grant: an address a client
/// cannot mean as one place (the unspecified address reaches whatever
/// listens locally), an IPv4 address in an IPv6 or abbreviated spelling
/// (which would slip past what the IPv4 one is granted or refused as).
fn not_a_destination(host: &Host, port: u16) -> Option<String> {
    match host {
        Host::Ip(ip) if ip.is_unspecified() => Some(format!(
            "{ip} is the unspecified address: a connection to it reaches whatever listens locally; for this host's loopback write 127.0.0.1:{port}"
        )),
        Host::Ip(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| {
            format!("an IPv4-mapped IPv6 address; write the IPv4 address, {v4}:{port}")
        }),
        // No top-level domain starts with a digit: `127.1`, `0x7f.1` or
        // `2130706433` is an IPv4 address in a shorthand resolvers accept.
        Host::Name(n) | Host::Wildcard(n)
            if n.rsplit('.').next().is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_digit())) =>
        {
            Some(
                "an IPv4 address in a shorthand spelling (its last label starts with a digit); write all four parts, e.g. 127.0.0.1"
                    .to_string(),
            )
        }
        _ => None,
    }
}

fn subdomain(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// `name` lowercased, when it is a DNS name.
fn dns_name(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(name)
}

/// Why `address` may not be dialled unless a grant names it: loopback,
/// private, link-local (cloud metadata lives there), shared, reserved for
/// documentation, benchmarking or the future, unspecified, broadcast or
/// multicast; `None` for a public address. An IPv6 address that embeds an
/// IPv4 one by a translation that reaches it (mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the IPv4 address it
/// embeds; the forms nothing public uses (IPv4-compatible `::/96`, local
/// NAT64 `64:ff9b:1::/48`, Teredo, documentation, discard, site-local) are
/// refused outright.
pub fn special(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = v4.octets();
    if v4.is_loopback() {
        Some("a loopback address")
    } else if v4.is_private() {
        Some("a private address")
    } else if v4.is_link_local() {
        Some("a link-local address (cloud metadata lives there)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if (a, b, c) == (192, 0, 0) {
        Some("an IETF protocol address (192.0.0.0/24)")
    } else if matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113)) {
        Some("a documentation address (podman's host alias 192.0.2.2 is one)")
    } else if a == 198 && (18..20).contains(&b) {
        Some("a benchmarking address (198.18.0.0/15)")
    } else if a >= 240 {
        Some("a reserved address (240.0.0.0/4)")
    } else if v4.is_unspecified() || v4.is_multicast() || a == 0 {
        Some("not a unicast address")
    } else {
        None
    }
}

/// The IPv4 address `v6` embeds by a translation that reaches it: mapped,
/// NAT64 (well-known prefix) or 6to4.
pub fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        None
    }
}

fn special_v6(v6: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(v6) {
        return special_v4(v4);
    }
    let s = v6.segments();
    if v6.is_loopback() {
        Some("a loopback address")
    } else if v6.is_unspecified() || v6.is_multicast() {
        Some("not a unicast address")
    } else if s[..6] == [0; 6] {
        Some("an IPv4-compatible address (::/96, deprecated)")
    } else if s[..3] == [0x64, 0xff9b, 1] {
        Some("a local NAT64 address (64:ff9b:1::/48)")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("a site-local address (fec0::/10, deprecated)")
    } else if s[..2] == [0x2001, 0] {
        Some("a Teredo address (2001::/32)")
    } else if s[..2] == [0x2001, 0xdb8] {
        Some("a documentation address (2001:db8::/32)")
    } else if s[..4] == [0x100, 0, 0, 0] {
        Some("a discard address (100::/64)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect(s)
    }

    #[test]
    fn patterns_parse_and_print_back() {
        for s in [
            "api.github.com:443",
            "*.pypi.org:443",
            "10.0.0.5:5432",
            "[fd00::1]:80",
            "host.containers.internal:8080",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(p("API.GitHub.com.:443").to_string(), "api.github.com:443");
        for bad in [
            "github.com",
            "github.com:0",
            "github.com:65536",
            "*:443",
            "*.:443",
            "a b:1",
            "-x.com:1",
            "[zz]:1",
            "http://x.com:80",
            ":80",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_request_is_granted_only_within_an_operator_pattern() {
        assert!(p("api.github.com:443").within(&p("*.github.com:443")));
        assert!(p("*.files.pypi.org:443").within(&p("*.pypi.org:443")));
        assert!(p("*.pypi.org:443").within(&p("*.pypi.org:443")));
        assert!(
            !p("github.com:443").within(&p("*.github.com:443")),
            "the apex"
        );
        assert!(!p("*.org:443").within(&p("*.pypi.org:443")), "wider");
        assert!(
            !p("api.github.com:80").within(&p("*.github.com:443")),
            "port"
        );
        assert!(!p("evilgithub.com:443").within(&p("*.github.com:443")));
        assert!(!p("10.0.0.5:5432").within(&p("*.internal:5432")));
    }

    #[test]
    fn loopback_spellings_are_one_address_and_shorthands_are_refused() {
        for (asked, grant) in [
            ("localhost:8765", "127.0.0.1:8765"),
            ("127.0.0.1:8765", "localhost:8765"),
            ("host.containers.internal:8765", "127.0.0.1:8765"),
        ] {
            assert!(p(asked).within(&p(grant)), "{asked} within {grant}");
        }
        assert!(!p("localhost:8765").within(&p("127.0.0.1:8766")));
        assert!(!p("[::1]:8765").within(&p("127.0.0.1:8765")));
        assert!(!p("127.0.0.2:8765").within(&p("localhost:8765")));
        for on in ["127.0.0.1:1", "localhost:1", "[::1]:1"] {
            assert!(p(on).on_container_loopback(), "{on}");
        }
        for off in ["host.containers.internal:1", "127.0.0.2:1", "a.com:1"] {
            assert!(!p(off).on_container_loopback(), "{off}");
        }
        for (bad, says) in [
            ("0.0.0.0:8765", "write 127.0.0.1:8765"),
            ("[::]:8765", "unspecified"),
            (
                "[::ffff:127.0.0.1]:8765",
                "write the IPv4 address, 127.0.0.1:8765",
            ),
            ("127.1:8765", "shorthand"),
            ("0x7f.1:8765", "shorthand"),
            ("2130706433:8765", "shorthand"),
            ("*.0:80", "shorthand"),
        ] {
            let err = Pattern::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_destination_matches_by_name_suffix_or_address() {
        assert!(p("*.github.com:443").matches("API.github.com.", 443));
        assert!(!p("*.github.com:443").matches("github.com", 443));
        assert!(!p("*.github.com:443").matches("x.github.com.evil.net", 443));
        assert!(p("[::1]:80").matches("[::1]", 80));
        assert!(p("10.0.0.5:5432").matches("10.0.0.5", 5432));
        assert!(!p("10.0.0.5:5432").matches("10.0.0.5", 5433));
    }

    #[test]
    fn special_addresses_are_named_and_only_a_grant_of_them_lets_them_through() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "192.0.2.2",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:192.0.2.2",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b::c000:202",
            "64:ff9b:1::808:808",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(special(a.parse().expect(a)).is_some(), "{a}");
        }
        for a in [
            "93.184.216.34",
            "2606:4700::1111",
            "1.1.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "192.0.3.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
            "2001:4860::8888",
        ] {
            assert_eq!(special(a.parse().expect(a)), None, "{a}");
        }
        assert_eq!(
            embedded_v4("64:ff9b::c000:202".parse().expect("nat64")),
            Some(Ipv4Addr::new(192, 0, 2, 2))
        );
        assert_eq!(
            embedded_v4("2002:c000:202::1".parse().expect("6to4")),
            Some(Ipv4Addr::new(192, 0, 2, 2))
        );
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(p("host.containers.internal:8080").names_address(lo));
        assert!(p("127.0.0.1:8080").names_address(lo));
        assert!(
            !p("db.internal:8080").names_address(lo),
            "a name is not the address"
        );
        assert!(
            p("localhost:8080").names_address(lo),
            "loopback by definition"
        );
        assert!(!p("*.internal:8080").names_address(lo));
    }
}
