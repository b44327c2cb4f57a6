//! This machine's LAN addresses, as announced over mDNS: interfaces that are up and can
//! multicast, never loopback, routable unicast IPv4/IPv6 only (so never 127.0.1.1, the original's
//! address from resolving the hostname on Debian).

use std::net::IpAddr;

/// One usable interface address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    pub interface: String,
    pub ip: IpAddr,
}

/// Whether `ip` is a unicast address another machine could reach.
pub fn lan_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_link_local())
        }
        // Link-local IPv6 (fe80::/10) means nothing without its interface's scope, which
        // a URL cannot carry; global and unique-local addresses are listed.
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The addresses of every interface that is up, multicast-capable and not loopback
/// (getifaddrs(3)). Empty when there is none: then mDNS cannot work here.
pub fn lan_addresses() -> Vec<IfAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags;
        let wanted = flags & libc::IFF_UP as u32 != 0
            && flags & libc::IFF_MULTICAST as u32 != 0
            && flags & libc::IFF_LOOPBACK as u32 == 0;
        if !wanted || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of the family it says.
        let ip = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(sin6.sin6_addr.s6_addr)
                }
                _ => continue,
            }
        };
        if !lan_unicast(&ip) {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        out.push(IfAddr {
            interface: name,
            ip,
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    // IPv4 first: the address a peer's `url` uses.
    out.sort_by_key(|a| a.ip.is_ipv6());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_other_unroutable_addresses_are_never_announced() {
        for bad in [
            "127.0.0.1",
            "127.0.1.1",
            "0.0.0.0",
            "224.0.0.251",
            "::1",
            "ff02::fb",
            "fe80::1",
        ] {
            assert!(!lan_unicast(&bad.parse().unwrap()), "{bad}");
        }
        for good in ["10.77.0.1", "192.168.1.20", "2001:db8::1", "fd00::7"] {
            assert!(lan_unicast(&good.parse().unwrap()), "{good}");
        }
        // Whatever this machine has, loopback is not among it.
        assert!(
            lan_addresses()
                .iter()
                .all(|a| lan_unicast(&a.ip) && a.interface != "lo")
        );
    }
}
