//! This host's own addresses: every address of its interfaces (read with
//! `getifaddrs`, at most every [`REFRESH`]), refused as an egress destination
//! unless a grant names it, whatever range it is in, so a name that resolves
//! to the host (or a public address of its own) cannot reach services that
//! listen on all of its addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::pattern::{embedded_v4, special};

/// How long a reading of the interfaces' addresses is used.
const REFRESH: Duration = Duration::from_secs(5);

static CACHE: Mutex<Option<(Instant, Vec<IpAddr>)>> = Mutex::new(None);

/// Why `address` may not be dialled unless a grant names it: one of this
/// host's own addresses, or [`special`].
pub fn refused(address: IpAddr) -> Option<&'static str> {
    if address.is_loopback() {
        return special(address);
    }
    let v4 = match address {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    let own = own_addresses();
    if own.contains(&address) || v4.is_some_and(|v4| own.contains(&v4)) {
        return Some("one of this host's own addresses");
    }
    special(address)
}

/// Every address of this host's interfaces (recent within [`REFRESH`]).
pub fn own_addresses() -> Vec<IpAddr> {
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    match &*cache {
        Some((read, addresses)) if read.elapsed() < REFRESH => addresses.clone(),
        _ => {
            let addresses = read_interfaces();
            *cache = Some((Instant::now(), addresses.clone()));
            addresses
        }
    }
}

/// The interfaces' addresses now; none when they cannot be read (each
/// special range is still refused).
fn read_interfaces() -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        tracing::warn!(
            "cannot read this host's interface addresses: {}",
            std::io::Error::last_os_error()
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut at = list;
    while !at.is_null() {
        // SAFETY: a node of the list getifaddrs returned, not yet freed; its
        // address is a sockaddr of the family it names.
        unsafe {
            let addr = (*at).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            at = (*at).ifa_next;
        }
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_own_addresses_are_refused_in_every_form() {
        let own = own_addresses();
        assert!(own.iter().any(|a| a.is_loopback()), "{own:?}");
        for address in own.iter().filter(|a| !a.is_loopback()) {
            assert_eq!(
                refused(*address),
                Some("one of this host's own addresses"),
                "{address}"
            );
            if let IpAddr::V4(v4) = address {
                let mapped = IpAddr::V6(v4.to_ipv6_mapped());
                assert_eq!(
                    refused(mapped),
                    Some("one of this host's own addresses"),
                    "{mapped}"
                );
            }
        }
        assert_eq!(
            refused("127.0.0.1".parse().expect("lo")),
            Some("a loopback address")
        );
        assert_eq!(refused("1.1.1.1".parse().expect("public")), None);
    }
}
