//! Header hygiene between client and upstream: hop-by-hop headers removed, X-Forwarded-* and
//! X-Request-Id set, cookies read.
//!
//! This runs twice per proxied request (request and response), so the common case, no hop-by-hop
//! header at all, costs one pass over the header names and no allocation.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Longest client-supplied request id kept; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Which hop-by-hop headers a header map holds, found in one pass over its names.
#[derive(Default)]
struct HopByHop {
    connection: bool,
    upgrade: bool,
    /// keep-alive, proxy-connection, proxy-authenticate, proxy-authorization, te, trailer or
    /// transfer-encoding.
    other: bool,
}

impl HopByHop {
    fn scan(headers: &HeaderMap) -> Self {
        let mut found = Self::default();
        for name in headers.keys() {
            match name.as_str() {
                "connection" => found.connection = true,
                "upgrade" => found.upgrade = true,
                "keep-alive"
                | "proxy-connection"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding" => found.other = true,
                _ => {}
            }
        }
        found
    }
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the Connection header names.
/// `TE: trailers` survives: gRPC needs it. With `keep_upgrade` the Upgrade handshake headers
/// stay (WebSocket).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let found = HopByHop::scan(headers);
    if found.connection {
        // The values are cheap to clone (shared bytes); the names they list are removed without
        // building a `HeaderName` for each.
        let listed: Vec<HeaderValue> = headers.get_all(header::CONNECTION).iter().cloned().collect();
        for value in &listed {
            let Ok(value) = value.to_str() else { continue };
            for name in value.split(',').map(str::trim) {
                if name.is_empty() || (keep_upgrade && name.eq_ignore_ascii_case("upgrade")) {
                    continue;
                }
                headers.remove(name);
            }
        }
    }
    if found.other {
        let te_trailers = headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers")));
        for name in [
            &KEEP_ALIVE,
            &PROXY_CONNECTION,
            &header::PROXY_AUTHENTICATE,
            &header::PROXY_AUTHORIZATION,
            &header::TE,
            &header::TRAILER,
            &header::TRANSFER_ENCODING,
        ] {
            headers.remove(name);
        }
        if te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        if found.connection {
            headers.remove(header::CONNECTION);
        }
        if found.upgrade {
            headers.remove(header::UPGRADE);
        }
    }
}

/// Whether the request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// The client's request id if it is sane, else a new one. The value is shared with the
/// request's own header (no copy).
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(value) if !value.is_empty() && value.len() <= MAX_REQUEST_ID_LEN && value.to_str().is_ok() => {
            value.clone()
        }
        _ => new_request_id(),
    }
}

/// A random UUID (version 4) in its usual text form.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // One u128 (two words from the thread's generator), not 16 separately drawn bytes.
    let mut bytes = rand::random::<u128>().to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1; // a dash, already there
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The client's address as an X-Forwarded-For element (made once per connection).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Sets the X-Forwarded-* headers and X-Request-Id on a request going upstream: `client_ip` is
/// the client's address ([`ip_value`]), `host` the authority the client asked for.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    tls: bool,
    host: Option<HeaderValue>,
    request_id: &HeaderValue,
) {
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + client_ip.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        _ => Some(client_ip.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(&X_FORWARDED_FOR, value);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(if tls { "https" } else { "http" }));
    if let Some(value) = host {
        headers.insert(&X_FORWARDED_HOST, value);
    }
    headers.insert(&X_REQUEST_ID, request_id.clone());
}

/// Value of cookie `name` in the Cookie headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_removed_te_trailers_kept() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(h.get(header::TE).map(|v| v.as_bytes()), Some(&b"trailers"[..]));
        assert!(h.get("x-kept").is_some());
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        let ip = ip_value("10.0.0.1".parse().expect("ip"));
        let id = HeaderValue::from_static("id");
        set_forwarded(&mut h, &ip, true, Some(HeaderValue::from_static("a.com")), &id);
        assert_eq!(h.get(&X_FORWARDED_FOR).map(|v| v.as_bytes()), Some(&b"1.2.3.4, 10.0.0.1"[..]));
        assert_eq!(h.get(&X_FORWARDED_PROTO).map(|v| v.as_bytes()), Some(&b"https"[..]));
        assert_eq!(h.get(&X_FORWARDED_HOST).map(|v| v.as_bytes()), Some(&b"a.com"[..]));
        assert_eq!(h.get(&X_REQUEST_ID).map(|v| v.as_bytes()), Some(&b"id"[..]));
        let mut fresh = HeaderMap::new();
        set_forwarded(&mut fresh, &ip_value("::1".parse().expect("ip")), false, None, &id);
        assert_eq!(fresh.get(&X_FORWARDED_FOR).map(|v| v.as_bytes()), Some(&b"::1"[..]));
        assert_eq!(fresh.get(&X_FORWARDED_PROTO).map(|v| v.as_bytes()), Some(&b"http"[..]));
        assert!(fresh.get(&X_FORWARDED_HOST).is_none());
    }

    #[test]
    fn hop_by_hop_connection_names_and_upgrade() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("Upgrade, X-One"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-two ,te"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let mut upgrade = h.clone();
        remove_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        remove_hop_by_hop(&mut upgrade, true);
        assert_eq!(upgrade.get(header::UPGRADE).map(|v| v.as_bytes()), Some(&b"websocket"[..]));
        assert_eq!(upgrade.get(header::CONNECTION).map(|v| v.as_bytes()), Some(&b"upgrade"[..]));
        assert!(upgrade.get("x-one").is_none() && upgrade.get("x-two").is_none() && upgrade.get(header::TE).is_none());
        // Nothing hop-by-hop: nothing changes.
        let mut plain = HeaderMap::new();
        plain.insert(header::HOST, HeaderValue::from_static("a"));
        plain.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        let before = plain.clone();
        remove_hop_by_hop(&mut plain, false);
        assert_eq!(plain, before);
    }

    #[test]
    fn request_ids() {
        let id = new_request_id();
        let text = id.to_str().expect("ascii");
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
        let groups: Vec<usize> = text.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(text.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(new_request_id(), id);
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(request_id(&h), "abc");
        h.insert(&X_REQUEST_ID, HeaderValue::from_static(""));
        assert_eq!(request_id(&h).len(), 36);
        h.insert(&X_REQUEST_ID, HeaderValue::from_str(&"x".repeat(129)).expect("value"));
        assert_eq!(request_id(&h).len(), 36);
        h.insert(&X_REQUEST_ID, HeaderValue::from_bytes(b"caf\xc3\xa9").expect("value"));
        assert_eq!(request_id(&h).len(), 36);
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; gantry_sticky=beef; b=2"));
        assert_eq!(cookie(&h, "gantry_sticky"), Some("beef"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
