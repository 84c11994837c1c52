//! Which addresses a task's request may be dialled to: public ones, and
//! private ones only where both the server and the step say so (the SSRF
//! defence of docs/architecture.md, "Outbound HTTP").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::pattern::{AllowList, canonical};

/// Why an address is not public, for the refusal's message; `None` for a
/// public address.
pub fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_link_local() => "a link-local address (the cloud metadata service lives there)",
        _ if ip.is_private() => "a private address",
        _ if ip.is_unspecified() || a == 0 => "an unspecified address",
        _ if ip.is_broadcast() => "the broadcast address",
        _ if ip.is_multicast() => "a multicast address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // Addresses that carry an IPv4 address (NAT64, 6to4, IPv4-compatible)
    // are as public as it is.
    let embedded = |high: usize| {
        let [a, b] = segments[high].to_be_bytes();
        let [c, d] = segments[high + 1].to_be_bytes();
        v4_kind(Ipv4Addr::new(a, b, c, d))
    };
    Some(match segments {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        _ if ip.is_multicast() => "a multicast address",
        [s, ..] if s & 0xfe00 == 0xfc00 => "a unique-local address",
        [s, ..] if s & 0xffc0 == 0xfe80 => "a link-local address",
        [s, ..] if s & 0xffc0 == 0xfec0 => "a site-local address",
        [0x2001, 0x0db8, ..] => "a documentation address",
        [0x2001, 0, ..] => "a Teredo address",
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => return embedded(6),
        [0x2002, ..] => return embedded(1),
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address",
        _ => return None,
    })
}

/// Whether `ip` may be dialled for a request the step's `allow` list let
/// through; otherwise why not.
pub fn check(ip: IpAddr, allow: &AllowList, private_permitted: bool) -> Result<(), String> {
    let Some(kind) = private_kind(ip) else {
        return Ok(());
    };
    if !private_permitted {
        return Err(format!(
            "{ip} is {kind}, and this server does not permit private destinations (--allow-private-http)"
        ));
    }
    if !allow.names(ip) {
        return Err(format!(
            "{ip} is {kind}; the step's http.allow must name it (the address, or a range holding it)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> Option<&'static str> {
        private_kind(ip.parse().unwrap())
    }

    #[test]
    fn private_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(kind(ip).is_some(), "{ip} should not be public");
        }
        assert!(kind("169.254.169.254").unwrap().contains("metadata"));
    }

    #[test]
    fn public_addresses_are() {
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "64:ff9b::101:101"] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn private_needs_the_server_and_the_step() {
        let named = AllowList::parse(&["http://127.0.0.1:8080"]).unwrap();
        let unnamed = AllowList::parse(&["http://localhost:8080"]).unwrap();
        let loopback = "127.0.0.1".parse().unwrap();
        assert!(check(loopback, &named, true).is_ok());
        assert!(
            check(loopback, &named, false)
                .unwrap_err()
                .contains("--allow-private-http")
        );
        assert!(check(loopback, &unnamed, true).unwrap_err().contains("must name it"));
        assert!(check("8.8.8.8".parse().unwrap(), &unnamed, false).is_ok());
    }
}
