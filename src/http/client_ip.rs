//! The client's address: the TCP peer, or — only when the peer is one of `trusted_proxies` —
//! the right-most address in `Forwarded` (RFC 7239) or `X-Forwarded-For` that is not itself a
//! trusted proxy. Everything that keys on the client (sign-in throttling, audit entries,
//! admin and registration audit) reads it here, so all of them see the same address.
//!
//! Why right-most: each proxy appends the address it received the request from, so entries
//! left of the last trusted hop were written by the client and prove nothing. A hop that is
//! not an address (`unknown`, an obfuscated `_name`, garbage) ends the walk: the trusted proxy
//! that wrote it is then the best that is known.

use std::net::{IpAddr, SocketAddr};

use actix_web::{HttpRequest, web};
use ipnet::IpNet;

use super::AppState;

/// Hops looked at, at most: a proxy chain longer than this is not a real one.
const MAX_HOPS: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| format!("{e:?} is not a CIDR block or an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a request from `peer` with these header values (in the order
    /// they arrived). `Forwarded` is used when present, else `X-Forwarded-For`.
    pub fn client(&self, peer: IpAddr, forwarded: &[&str], x_forwarded_for: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = if forwarded.is_empty() {
            x_forwarded_for
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect()
        } else {
            forwarded
                .iter()
                .flat_map(|v| v.split(','))
                .filter_map(forwarded_for)
                .collect()
        };
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` value of one RFC 7239 element (`for=192.0.2.60;proto=http;by=203.0.113.43`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// `192.0.2.60`, `192.0.2.60:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .ok_or(())
                .and_then(|h| h.parse::<IpAddr>().map_err(|_| ()))
        })
        .ok()
        .map(canonical)
}

/// The request's `User-Agent`, if it is visible ASCII.
pub fn user_agent(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// Where this request came from, as devices and sessions record it.
pub fn seen(req: &HttpRequest) -> crate::model::Seen {
    crate::model::Seen::new(client_ip(req), user_agent(req))
}

/// The client address of this request (see the module documentation).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Some(canonical(peer));
    };
    let proxies = &state.trusted_proxies;
    if proxies.is_empty() || !proxies.contains(peer) {
        return Some(canonical(peer));
    }
    let values = |name: &str| -> Vec<&str> {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    Some(proxies.client(peer, &values("forwarded"), &values("x-forwarded-for")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client(ip("203.0.113.5"), &[], &["198.51.100.1"]),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("127.0.0.1"), &["for=1.2.3.4"], &["1.2.3.4"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        // The client forged the first entry; the edge proxy appended the real address.
        assert_eq!(
            p.client(
                ip("10.0.0.2"),
                &[],
                &["6.6.6.6, 198.51.100.7", "192.168.1.1"]
            ),
            ip("198.51.100.7")
        );
        // Only trusted hops: the left-most one.
        assert_eq!(
            p.client(ip("10.0.0.2"), &[], &["10.1.1.1, 10.2.2.2"]),
            ip("10.1.1.1")
        );
        // No header at all: the proxy itself.
        assert_eq!(p.client(ip("10.0.0.2"), &[], &[]), ip("10.0.0.2"));
        // Garbage next to the proxy: the proxy is the best that is known.
        assert_eq!(
            p.client(ip("10.0.0.2"), &[], &["198.51.100.7, not-an-ip"]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn forwarded_is_parsed_per_rfc_7239_and_preferred() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client(
                ip("10.0.0.2"),
                &["for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https"],
                &["6.6.6.6"]
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            p.client(ip("10.0.0.2"), &["For=198.51.100.9:80;by=10.0.0.2"], &[]),
            ip("198.51.100.9")
        );
        assert_eq!(
            p.client(ip("10.0.0.2"), &["for=unknown"], &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn mapped_addresses_and_bad_entries() {
        let p = proxies(&["127.0.0.1"]);
        assert!(p.contains(ip("::ffff:127.0.0.1")));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.example".into()]).is_err());
        assert!(proxies(&["10.1.2.3/8"]).contains(ip("10.200.0.1")));
    }
}
