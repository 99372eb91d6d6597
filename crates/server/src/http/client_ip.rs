//! The client's address: the socket peer, or, when the peer is a proxy Basalt was told to trust,
//! the address that proxy (and any trusted ones before it) put in `X-Forwarded-For`. Auth rate
//! limits, auth events and the audit log all key on it; behind a load balancer the peer alone
//! would make every client one.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::app::AppState;

/// The client's address as a handler argument: the peer, or what trusted proxies forwarded.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        // The server always serves with connect info; unspecified only outside it.
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(client_ip(peer, &parts.headers, &app.config.trusted_proxies)))
    }
}

/// Walks `X-Forwarded-For` from the nearest hop back, through trusted proxies only: the first
/// untrusted address is the client. A forged entry further left than that is never reached, and
/// an untrusted peer's header is ignored altogether.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return canonical(peer);
    }
    let hops: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    canonical(client)
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok()))
}

/// IPv4 clients of a dual-stack listener arrive as `::ffff:a.b.c.d`; they are matched and
/// recorded as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Parses `10.0.0.0/8, 127.0.0.1, ::1` (a plain address is a network of one).
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("trusted_proxies: {s:?} is not an address or a network such as 10.0.0.0/8"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_trusted_hops_are_believed() {
        let trusted = parse_trusted("10.0.0.0/8, 127.0.0.1").unwrap();
        let h = with(&["203.0.113.7"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.7"));
        // An untrusted peer's header is its own word: ignored.
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &trusted), ip("198.51.100.1"));
        // Nothing trusted: the peer, whatever the header says.
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
        // The client forged an entry; the load balancer appended the real address after it.
        let h = with(&["1.1.1.1, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(client_ip(ip("10.9.9.9"), &h, &trusted), ip("203.0.113.7"));
        // Every hop trusted: the farthest one.
        assert_eq!(client_ip(ip("127.0.0.1"), &with(&["10.0.0.5, 10.0.0.6"]), &trusted), ip("10.0.0.5"));
        // Garbage stops the walk at the last good hop; no header keeps the peer.
        assert_eq!(client_ip(ip("127.0.0.1"), &with(&["nonsense, 10.0.0.6"]), &trusted), ip("10.0.0.6"));
        assert_eq!(client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn forms_of_addresses() {
        let trusted = parse_trusted("::1, 127.0.0.0/8").unwrap();
        assert_eq!(client_ip(ip("::1"), &with(&["[2001:db8::1]:443"]), &trusted), ip("2001:db8::1"));
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &with(&["192.0.2.1:5000"]), &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(ip("::ffff:192.0.2.9"), &HeaderMap::new(), &[]), ip("192.0.2.9"));
        assert!(parse_trusted("10.0.0.0/33").is_err() && parse_trusted("proxy.local").is_err());
        assert_eq!(parse_trusted("").unwrap(), vec![]);
    }
}
