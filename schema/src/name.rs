//! `FunkoName`: the validated name of a funko.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// The longest name a funko may have (container names and labels stay short).
pub const MAX_NAME_LEN: usize = 40;

/// A funko name: lowercase letters, digits and `-`, starting and ending with a letter or digit,
/// 1–40 characters. It becomes part of container, image and route names, so it is checked once here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FunkoName(String);

/// Why a string is not a valid funko name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("a funko name cannot be empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("funko name `{0}` is {1} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong(String, usize),
    /// The name contains a character outside `a-z`, `0-9` and `-`.
    #[error(
        "funko name `{0}` contains `{1}`; use only lowercase letters, digits and `-` (for example `{2}`)"
    )]
    BadChar(String, char, String),
    /// The name starts or ends with `-`.
    #[error("funko name `{0}` must start and end with a letter or digit")]
    BadEdge(String),
}

impl FunkoName {
    /// Checks `name` against the naming rule.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let len = name.chars().count();
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong(name.to_owned(), len));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(NameError::BadChar(name.to_owned(), bad, suggest(name)));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(NameError::BadEdge(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid name close to `name`, shown in the error so the fix is obvious.
fn suggest(name: &str) -> String {
    let cleaned: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let trimmed: String = cleaned
        .trim_matches('-')
        .chars()
        .take(MAX_NAME_LEN)
        .collect();
    if trimmed.is_empty() {
        "my-funko".to_owned()
    } else {
        trimmed.trim_end_matches('-').to_owned()
    }
}

impl fmt::Display for FunkoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for FunkoName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for FunkoName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::new(&raw).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for FunkoName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FunkoName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Lowercase letters, digits and `-`; starts and ends with a letter or digit.",
            "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
            "minLength": 1,
            "maxLength": MAX_NAME_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_shapes() {
        for ok in ["a", "hello", "hello-world", "f00", "9", &"x".repeat(40)] {
            assert!(FunkoName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_the_rule_forbids() {
        assert_eq!(FunkoName::new(""), Err(NameError::Empty));
        assert!(matches!(
            FunkoName::new(&"x".repeat(41)),
            Err(NameError::TooLong(_, 41))
        ));
        assert!(
            matches!(FunkoName::new("Hello"), Err(NameError::BadChar(_, 'H', s)) if s == "hello")
        );
        assert!(matches!(
            FunkoName::new("../x"),
            Err(NameError::BadChar(_, '.', _))
        ));
        assert!(matches!(FunkoName::new("-x"), Err(NameError::BadEdge(_))));
        assert!(matches!(FunkoName::new("x-"), Err(NameError::BadEdge(_))));
        assert!(matches!(FunkoName::new("a_b"), Err(NameError::BadChar(_, '_', s)) if s == "a-b"));
    }
}
