//! Cross-origin answers for browsers, per funko: the proxy answers a preflight itself (no
//! instance needed) and adds `Access-Control-Allow-Origin` to what an allowed origin gets back.

use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderValue, InvalidHeaderValue};
use hyper::{Method, Response};

use crate::body::ProxyBody;

/// One funko's CORS policy, its header values made once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<HeaderValue>,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    max_age: HeaderValue,
    credentials: bool,
}

impl Cors {
    /// A policy allowing `origins` (`*` for any) to use `methods` with `headers`; browsers may
    /// cache a preflight for `max_age`.
    pub fn new(
        origins: &[String],
        methods: &[String],
        headers: &[String],
        max_age: Duration,
        credentials: bool,
    ) -> Result<Self, InvalidHeaderValue> {
        let any_origin = origins.iter().any(|o| o == "*");
        Ok(Self {
            // With credentials a wildcard is never sent (browsers refuse it): origins are echoed.
            any_origin: any_origin && !credentials,
            origins: origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| HeaderValue::from_str(o))
                .collect::<Result<_, _>>()?,
            methods: HeaderValue::from_str(&methods.join(", "))?,
            headers: (!headers.is_empty())
                .then(|| HeaderValue::from_str(&headers.join(", ")))
                .transpose()?,
            max_age: HeaderValue::from(max_age.as_secs()),
            credentials,
        })
    }

    /// The `Access-Control-Allow-Origin` value the request's `Origin` earns, if any.
    pub(crate) fn allowed(&self, request: &HeaderMap) -> Option<HeaderValue> {
        let origin = request.get(header::ORIGIN)?;
        if self.any_origin {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins
            .iter()
            .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
            .then(|| origin.clone())
    }

    /// The proxy's own answer to a preflight: 204, with the allowances only for an allowed
    /// origin (a browser then refuses the real request itself).
    pub(crate) fn preflight(&self, request: &HeaderMap) -> Response<ProxyBody> {
        let mut response = crate::answer::no_content();
        let headers = response.headers_mut();
        if let Some(origin) = self.allowed(request) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
            if let Some(allowed) = &self.headers {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
            }
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
            self.decorate(origin, headers);
        } else {
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        response
    }

    /// Adds the allowance for `origin` to a response.
    pub(crate) fn decorate(&self, origin: HeaderValue, headers: &mut HeaderMap) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if !self.any_origin {
            // The answer depends on the Origin: caches must keep one per origin.
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// Whether a request is a CORS preflight (not any `OPTIONS`: one a browser sends first).
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    fn policy(origins: &[&str], credentials: bool) -> Cors {
        let owned: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
        Cors::new(
            &owned,
            &["GET".into(), "PUT".into()],
            &["Content-Type".into()],
            Duration::from_secs(600),
            credentials,
        )
        .unwrap()
    }

    fn request(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("PUT"),
        );
        headers
    }

    #[test]
    fn a_listed_origin_is_echoed_and_another_gets_nothing() {
        let cors = policy(&["https://app.example"], false);
        assert_eq!(
            cors.allowed(&request("https://app.example")).unwrap(),
            "https://app.example"
        );
        assert_eq!(cors.allowed(&request("https://evil.example")), None);
        assert_eq!(cors.allowed(&HeaderMap::new()), None, "no Origin, no CORS");
    }

    #[test]
    fn a_preflight_lists_the_allowances_only_for_an_allowed_origin() {
        let cors = policy(&["https://app.example"], true);
        let ok = cors.preflight(&request("https://app.example"));
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        let h = ok.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_HEADERS], "Content-Type");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::VARY], "Origin");
        let refused = cors.preflight(&request("https://evil.example"));
        assert_eq!(refused.status(), StatusCode::NO_CONTENT);
        assert!(
            !refused
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }

    #[test]
    fn any_origin_is_a_wildcard_unless_credentials_are_allowed() {
        let any = policy(&["*"], false);
        assert_eq!(any.allowed(&request("https://x.example")).unwrap(), "*");
        let mut headers = HeaderMap::new();
        any.decorate(HeaderValue::from_static("*"), &mut headers);
        assert!(!headers.contains_key(header::VARY));
    }

    #[test]
    fn only_an_options_with_origin_and_requested_method_is_a_preflight() {
        assert!(is_preflight(
            &Method::OPTIONS,
            &request("https://a.example")
        ));
        assert!(!is_preflight(&Method::GET, &request("https://a.example")));
        let mut plain = request("https://a.example");
        plain.remove(header::ACCESS_CONTROL_REQUEST_METHOD);
        assert!(!is_preflight(&Method::OPTIONS, &plain));
    }
}
