//! `cors:` in funko.yml: which browser origins may call the funko, answered by the proxy
//! itself (preflight `OPTIONS` included). Off unless the block is there.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::units::Duration;

/// Cross-origin access for browsers, applied by the proxy in front of the funko.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Origins allowed to call the funko (`https://app.example.com`), or `"*"` for any.
    #[serde(deserialize_with = "origins")]
    #[schemars(length(min = 1))]
    pub origins: Vec<String>,
    /// Methods a preflight allows.
    #[serde(default = "default_methods", deserialize_with = "methods")]
    pub methods: Vec<String>,
    /// Request headers a preflight allows (beyond the ones browsers always send).
    #[serde(default, deserialize_with = "headers")]
    pub headers: Vec<String>,
    /// How long a browser may cache a preflight's answer; at most 24h (Firefox's own cap;
    /// Chromium caps it at 2h).
    #[serde(default = "default_max_age")]
    pub max_age: Duration,
    /// Whether cookies and HTTP auth may be sent (not with origin `"*"`).
    #[serde(default)]
    pub credentials: bool,
}

impl Cors {
    /// The rule that spans fields: browsers refuse credentials with a wildcard origin.
    pub(crate) fn check(self) -> Result<Self, String> {
        if self.credentials && self.origins.iter().any(|o| o == "*") {
            return Err(
                "`credentials: true` cannot go with origin `\"*\"` (browsers refuse it); list the origins"
                    .to_owned(),
            );
        }
        Ok(self)
    }
}

/// Deserializes a `cors:` block and checks the rule that spans its fields.
pub(crate) fn cors_block<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cors>, D::Error> {
    Option::<Cors>::deserialize(deserializer)?
        .map(Cors::check)
        .transpose()
        .map_err(serde::de::Error::custom)
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(str::to_owned).to_vec()
}

fn default_max_age() -> Duration {
    Duration::from_secs(300)
}

fn origins<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let origins = Vec::<String>::deserialize(deserializer)?;
    if origins.is_empty() {
        return Err(serde::de::Error::custom(
            "list at least one origin (`https://app.example.com`), or `\"*\"` for any",
        ));
    }
    for origin in &origins {
        if origin != "*" && !is_origin(origin) {
            return Err(serde::de::Error::custom(format!(
                "`{origin}` is not an origin; write scheme, host and optional port, like `https://app.example.com` (no path), or `\"*\"`"
            )));
        }
    }
    Ok(origins)
}

/// `http(s)://host[:port]` with nothing after it, as a browser sends in `Origin`.
fn is_origin(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    host_ok && port_ok
}

fn methods<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let methods = Vec::<String>::deserialize(deserializer)?;
    for method in &methods {
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom(format!(
                "`{method}` is not an HTTP method; write it in capitals, like `GET` or `PUT`"
            )));
        }
    }
    Ok(methods)
}

fn headers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let headers = Vec::<String>::deserialize(deserializer)?;
    for name in &headers {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(serde::de::Error::custom(format!(
                "`{name}` is not a header name; use letters, digits and `-`, like `Content-Type`"
            )));
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use crate::parse_spec;

    #[test]
    fn a_cors_block_takes_defaults_for_what_it_leaves_out() {
        let spec =
            parse_spec("name: x\ncors:\n  origins: [\"https://app.example.com\"]\n").unwrap();
        let cors = spec.cors.unwrap();
        assert_eq!(cors.origins, ["https://app.example.com"]);
        assert_eq!(cors.methods, ["GET", "HEAD", "POST"]);
        assert!(cors.headers.is_empty() && !cors.credentials);
        assert_eq!(cors.max_age.0.as_secs(), 300);
        assert_eq!(
            parse_spec("name: x\n").unwrap().cors,
            None,
            "off by default"
        );
    }

    #[test]
    fn origins_ports_and_the_wildcard_are_accepted() {
        for origin in [
            "*",
            "http://localhost:8080",
            "https://a.example",
            "http://[::1]:3000",
        ] {
            let yaml = format!("name: x\ncors:\n  origins: [\"{origin}\"]\n");
            assert!(parse_spec(&yaml).is_ok(), "{origin}");
        }
    }

    #[test]
    fn each_bad_field_is_named_with_its_line() {
        let cases = [
            ("  origins: []\n", "cors.origins", "at least one origin"),
            (
                "  origins: [\"app.example.com\"]\n",
                "cors.origins",
                "not an origin",
            ),
            (
                "  origins: [\"https://a.example/path\"]\n",
                "cors.origins",
                "not an origin",
            ),
            (
                "  origins: [\"https://a.example:99999\"]\n",
                "cors.origins",
                "not an origin",
            ),
            (
                "  origins: [\"*\"]\n  methods: [get]\n",
                "cors.methods",
                "HTTP method",
            ),
            (
                "  origins: [\"*\"]\n  headers: [\"X Bad\"]\n",
                "cors.headers",
                "header name",
            ),
            (
                "  origins: [\"*\"]\n  max_age: soon\n",
                "cors.max_age",
                "not a duration",
            ),
            ("  origins: [\"*\"]\n  expose: [a]\n", "cors", "expose"),
        ];
        for (body, field, message) in cases {
            let yaml = format!("name: x\ncors:\n{body}");
            let problem = parse_spec(&yaml).expect_err(body);
            assert!(
                problem
                    .field
                    .as_deref()
                    .is_some_and(|f| f.starts_with(field)),
                "{body}: {problem:?}"
            );
            assert!(problem.line.is_some_and(|l| l >= 2), "{body}: {problem:?}");
            assert!(problem.message.contains(message), "{body}: {problem}");
        }
    }

    #[test]
    fn credentials_with_any_origin_are_refused() {
        let yaml = "name: x\ncors:\n  origins: [\"*\"]\n  credentials: true\n";
        let problem = parse_spec(yaml).unwrap_err();
        assert!(problem.message.contains("credentials"), "{problem}");
        assert!(
            problem
                .field
                .as_deref()
                .is_some_and(|f| f.starts_with("cors")),
            "{problem:?}"
        );
        assert!(problem.line.is_some(), "{problem:?}");
    }
}
