//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so they are never
//! forwarded to the next hop.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that are hop-by-hop whether or not `Connection` names them.
const ALWAYS: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes `Connection`, every header it names, and the fixed hop-by-hop list. Returns the
/// `Upgrade` value when the message asked for a protocol upgrade, so the caller can ask the
/// next hop for the same.
pub(crate) fn strip(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let mut upgrade_requested = false;
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| {
            let upgrade = token.eq_ignore_ascii_case("upgrade");
            upgrade_requested |= upgrade;
            !upgrade
        })
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    let upgrade = if upgrade_requested {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    // Most messages carry none of the fixed list: one pass over the names present costs less
    // than looking up all nine.
    let fixed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| ALWAYS.contains(name))
        .cloned()
        .collect();
    for name in named.iter().chain(&fixed) {
        headers.remove(name);
    }
    upgrade
}

/// Puts back the two headers that ask the next hop to switch to `protocol`.
pub(crate) fn ask_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn connection_and_the_headers_it_names_are_dropped() {
        let mut map = headers(&[
            ("connection", "close, X-Secret-Hop"),
            ("connection", "x-other"),
            ("x-secret-hop", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("x-kept", "3"),
        ]);
        assert_eq!(strip(&mut map), None);
        let left: Vec<_> = map.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, vec!["x-kept"]);
    }

    #[test]
    fn an_upgrade_request_is_reported_and_can_be_renewed() {
        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let protocol = strip(&mut map).unwrap();
        assert!(map.is_empty());
        ask_upgrade(&mut map, protocol);
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["connection"], "upgrade");
    }

    #[test]
    fn an_upgrade_header_without_connection_upgrade_is_just_dropped() {
        let mut map = headers(&[("upgrade", "websocket")]);
        assert_eq!(strip(&mut map), None);
        assert!(map.is_empty());
    }
}
