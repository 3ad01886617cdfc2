//! The proxy's own answers: JSON error bodies and its health endpoint.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::body::ProxyBody;

/// An error answer with body `{"error": "<message>"}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = format!("{{\"error\":{}}}\n", json_string(message));
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 503 for a known funko that has no ready instance; a client may try again soon.
pub(crate) fn no_ready_instance(funko: &str) -> Response<ProxyBody> {
    retry_soon(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("funko '{funko}' has no ready instance"),
    )
}

/// An error answer that tells the client to try again in a second (`Retry-After: 1`).
pub(crate) fn retry_soon(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut response = error(status, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// 204 with no body.
pub(crate) fn no_content() -> Response<ProxyBody> {
    let mut response = Response::new(full(String::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A plain answer with the given content type.
pub(crate) fn text(content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn full(body: String) -> ProxyBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_escaped_into_valid_json() {
        assert_eq!(json_string("a \"b\"\\\n\u{1}"), r#""a \"b\"\\\n\u0001""#);
    }
}
