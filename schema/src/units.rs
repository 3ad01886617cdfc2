//! Units written the way people write them in funko.yml: `5s`, `128M`, `0.5`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written like `500ms`, `5s` or `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }
}

/// The longest duration funko.yml may hold (a day): no healthcheck, timeout or window needs
/// more, and a day keeps every sum and product faaso makes of them far from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Reads a duration and checks it lies in `min..=max`; the message names the bounds, and the
/// loader places it at the field's line.
pub(crate) fn duration_within<'de, D: Deserializer<'de>>(
    deserializer: D,
    min: Duration,
    max: Duration,
) -> Result<Duration, D::Error> {
    let duration = Duration::deserialize(deserializer)?;
    check_duration(duration, min, max).map_err(serde::de::Error::custom)
}

/// Reads a whole number and checks it lies in `min..=max`.
pub(crate) fn count_within<'de, D: Deserializer<'de>>(
    deserializer: D,
    min: u32,
    max: u32,
) -> Result<u32, D::Error> {
    let count = u64::deserialize(deserializer)?;
    match u32::try_from(count) {
        Ok(count) if (min..=max).contains(&count) => Ok(count),
        _ => Err(serde::de::Error::custom(format!(
            "`{count}` is outside {min} to {max}; write a whole number from {min} to {max}"
        ))),
    }
}

/// Whether `duration` lies in `min..=max`, with a message that says the bounds if not.
pub(crate) fn check_duration(
    duration: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, String> {
    if duration < min {
        return Err(format!(
            "`{duration}` is shorter than {}, the least this field takes",
            bound(min)
        ));
    }
    if duration > max {
        return Err(format!(
            "`{duration}` is longer than {}, the most this field takes",
            bound(max)
        ));
    }
    Ok(duration)
}

/// A bound as funko.yml users write it: `24h` rather than humantime's `1day`.
fn bound(duration: Duration) -> String {
    let secs = duration.0.as_secs();
    if duration.0.subsec_nanos() == 0 && secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        duration.to_string()
    }
}

/// Parses a duration written like `5s` (as in funko.yml and in the labels faaso writes); `None`
/// for one longer than [`MAX_DURATION`], since a label on a container faaso did not make may
/// say anything.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| *d <= MAX_DURATION.0)
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let duration = humantime::parse_duration(raw.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{raw}` is not a duration ({e}); write it like `500ms`, `5s` or `1m30s`"
            ))
        })?;
        if duration > MAX_DURATION.0 {
            return Err(serde::de::Error::custom(format!(
                "`{}` is longer than a day (24h), the most any duration in funko.yml may be",
                raw.trim()
            )));
        }
        Ok(Self(duration))
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `500ms`, `5s` or `1m30s`; at most a day (`24h`).",
            "pattern": "^\\s*([0-9]+\\s*[a-zA-Z]+\\s*)+$",
        })
    }
}

/// The least memory Docker accepts for a container.
pub const MIN_MEMORY: u64 = 6 << 20;

/// The most memory a funko may ask for (1 TiB): more than any host faaso runs on, and far
/// inside the `i64` bytes Docker takes.
pub const MAX_MEMORY: u64 = 1 << 40;

/// The fewest CPU cores a funko may ask for (Docker's quota granularity makes less meaningless).
pub const MIN_CPUS: f64 = 0.01;

/// The most CPU cores a funko may ask for.
pub const MAX_CPUS: f64 = 1024.0;

/// An amount of memory in bytes, written like `128M`, `1G`, `512k` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory(pub u64);

impl Memory {
    /// Parses `128M`-style text; units are binary (k = 1024), as in `docker run --memory`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits.parse().map_err(|_| {
            format!("`{text}` is not an amount of memory; write it like `128M` or `1G`")
        })?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "ki" | "kib" => 10,
            "m" | "mb" | "mi" | "mib" => 20,
            "g" | "gb" | "gi" | "gib" => 30,
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}`; use b, k, m or g (for example `128M`)"
                ));
            }
        };
        number
            .checked_mul(1 << shift)
            .map(Self)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
            if self.0 != 0 && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = StringOrNumber::deserialize(deserializer)?.0;
        let memory = Self::parse(&raw).map_err(serde::de::Error::custom)?;
        if memory.0 < MIN_MEMORY {
            return Err(serde::de::Error::custom(format!(
                "`{raw}` is below Docker's minimum of {}",
                Memory(MIN_MEMORY)
            )));
        }
        if memory.0 > MAX_MEMORY {
            return Err(serde::de::Error::custom(format!(
                "`{raw}` is more than {}, the most a funko may ask for",
                Memory(MAX_MEMORY)
            )));
        }
        Ok(memory)
    }
}

impl JsonSchema for Memory {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Memory".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "integer"],
            "description": "Memory such as `128M` or `1G` (binary units), or a number of bytes; from 6M to 1024G.",
            "minimum": MIN_MEMORY,
            "maximum": MAX_MEMORY,
            "pattern": "^\\s*[0-9]+\\s*([bBkKmMgG]([iI]?[bB])?)?\\s*$",
        })
    }
}

/// A CPU quota in cores, like `0.5` or `2`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cpus(pub f64);

impl Cpus {
    /// The quota in billionths of a CPU, the unit Docker's `NanoCpus` takes.
    pub fn nano_cpus(self) -> i64 {
        (self.0 * 1e9).round() as i64
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = StringOrNumber::deserialize(deserializer)?.0;
        match raw.trim().parse::<f64>() {
            Ok(cpus) if (MIN_CPUS..=MAX_CPUS).contains(&cpus) => Ok(Self(cpus)),
            _ => Err(serde::de::Error::custom(format!(
                "`{raw}` is not a CPU quota from {MIN_CPUS} to {MAX_CPUS}; write a number of cores such as `0.5` or `2`"
            ))),
        }
    }
}

impl JsonSchema for Cpus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cpus".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "number",
            "description": "CPU cores, such as `0.5` or `2`; from 0.01 to 1024.",
            "minimum": MIN_CPUS,
            "maximum": MAX_CPUS,
        })
    }
}

/// YAML users write `memory: 134217728` as often as `memory: 128M`; accept both as text.
struct StringOrNumber(String);

impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StringOrNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_owned()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_are_binary() {
        assert_eq!(Memory::parse("128M"), Ok(Memory(128 << 20)));
        assert_eq!(Memory::parse("1g"), Ok(Memory(1 << 30)));
        assert_eq!(Memory::parse("512k"), Ok(Memory(512 << 10)));
        assert_eq!(Memory::parse("1000"), Ok(Memory(1000)));
        assert!(Memory::parse("12X").is_err());
        assert!(Memory::parse("lots").is_err());
        assert!(Memory::parse("99999999999G").is_err());
        assert_eq!(Memory(128 << 20).to_string(), "128M");
    }

    #[test]
    fn cpus_convert_to_nano_cpus() {
        assert_eq!(Cpus(0.5).nano_cpus(), 500_000_000);
    }
}
