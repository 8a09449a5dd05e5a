//! Which addresses a webhook may reach: the server-side request forgery (SSRF) rules.
//!
//! A webhook URL is chosen by a user and fetched by the server, so without these rules any
//! user could make Echo post to its own network: a cloud metadata service (`169.254.169.254`),
//! a database on `10.0.0.5`, an admin port on loopback. In production only public unicast
//! addresses are reachable: checked on the URL's text at registration
//! ([`WebhookUrl::parse`](crate::model::WebhookUrl::parse)) and on every address the host name
//! resolves to at delivery (the transport's duty, see
//! [`WebhookTransport`](super::WebhookTransport)), so a name that later resolves somewhere
//! private (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a deployment lets webhook URLs point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookUrlPolicy {
    /// `http://` is accepted for loopback hosts (`localhost`, `127.0.0.1`, `[::1]`), so a
    /// developer can receive on their machine. `https://` is always required otherwise.
    pub allow_http_localhost: bool,
    /// Private, loopback, link-local and other non-public addresses may be reached.
    pub allow_private_addresses: bool,
}

impl WebhookUrlPolicy {
    /// Production: `https` only, public addresses only.
    pub const PRODUCTION: Self = Self {
        allow_http_localhost: false,
        allow_private_addresses: false,
    };

    /// Development: also `http://localhost`, and any address.
    pub const DEVELOPMENT: Self = Self {
        allow_http_localhost: true,
        allow_private_addresses: true,
    };

    /// Whether a delivery may connect to `ip` (an address the URL's host resolved to).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private_addresses || is_public_ip(ip)
    }
}

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, IPv6 unique
/// local), link-local (cloud metadata lives there), shared (carrier-grade NAT), unspecified,
/// broadcast, multicast, documentation, benchmarking or reserved. IPv6 forms that embed an
/// IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that IPv4 address; Teredo is
/// refused outright.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network"
        || a == 10 // private
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(&ip) {
        return is_public_v4(v4);
    }
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to an address we cannot see
        || (s[0] == 0x2001 && s[1] < 0x0200 && s[1] >= 0x0010 && s[1] < 0x0020) // ORCHID
        || s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 // discard-only
        || s[0] < 0x2000 // outside global unicast 2000::/3
        || s[0] >= 0x4000;
    !blocked
}

/// The IPv4 address an IPv6 address stands for, when it embeds one: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail());
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::WebhookUrl;

    #[test]
    fn non_public_addresses_are_refused() {
        for blocked in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.5",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            let ip: IpAddr = blocked.parse().unwrap();
            assert!(!is_public_ip(ip), "{blocked} must be refused");
            assert!(!WebhookUrlPolicy::PRODUCTION.allows(ip));
            assert!(WebhookUrlPolicy::DEVELOPMENT.allows(ip));
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public_ip(ip), "{public} must be allowed");
            assert!(WebhookUrlPolicy::PRODUCTION.allows(ip));
        }
    }

    #[test]
    fn production_urls_are_https_to_public_hosts() {
        let p = WebhookUrlPolicy::PRODUCTION;
        for ok in [
            "https://hooks.example.com/echo",
            "https://hooks.example.com:8443/echo?team=1",
            "https://8.8.8.8/hook",
            " https://example.org/ ",
        ] {
            assert!(WebhookUrl::parse(ok, p).is_ok(), "{ok}");
        }
        for (bad, reason) in [
            ("", "must not be empty"),
            ("hooks.example.com/echo", "must be an absolute URL"),
            ("http://hooks.example.com/echo", "must use https"),
            ("ftp://example.com/", "must use https"),
            ("http://localhost:9000/hook", "must use https"),
            ("https://localhost/hook", "must not point to a private"),
            ("https://api.localhost./hook", "must not point to a private"),
            ("https://127.0.0.1/hook", "must not point to a private"),
            (
                "https://169.254.169.254/latest",
                "must not point to a private",
            ),
            ("https://[::1]/hook", "must not point to a private"),
            ("https://[::ffff:10.0.0.1]/", "must not point to a private"),
            ("https://0x7f000001/hook", "must not point to a private"),
            ("https://user:pw@example.com/", "must not carry credentials"),
            ("https://example.com/#frag", "must not have a fragment"),
            ("mailto:someone@example.com", "must have a host"),
        ] {
            let e = WebhookUrl::parse(bad, p).unwrap_err();
            assert_eq!(e.field, "url");
            assert!(e.reason.starts_with(reason), "{bad}: {}", e.reason);
        }
        let long = format!("https://example.com/{}", "a".repeat(WebhookUrl::MAX_LEN));
        assert!(WebhookUrl::parse(&long, p).is_err());
    }

    #[test]
    fn development_also_takes_http_to_loopback_only() {
        let d = WebhookUrlPolicy::DEVELOPMENT;
        for ok in [
            "http://localhost:9000/hook",
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/hook",
            "https://10.0.0.5/hook",
        ] {
            assert!(WebhookUrl::parse(ok, d).is_ok(), "{ok}");
        }
        let e = WebhookUrl::parse("http://example.com/hook", d).unwrap_err();
        assert_eq!(e.reason, "must use https (http only for localhost)");
    }

    #[test]
    fn stored_urls_read_back_as_given() {
        let url =
            WebhookUrl::parse("https://example.com/a?b=1", WebhookUrlPolicy::PRODUCTION).unwrap();
        assert_eq!(WebhookUrl::from_stored(url.as_str()), Some(url.clone()));
        assert_eq!(url.to_string(), "https://example.com/a?b=1");
        assert!(WebhookUrl::from_stored("not a url").is_none());
    }
}
