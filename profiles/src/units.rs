//! Sizes and durations as people write them in profiles and annotations.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written as an integer or with a binary suffix:
/// `512`, `64k`, `512m`, `2g`, `1t` (also `Ki`, `Mi`, `Gi`, `Ti`, `KiB`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Why a size or duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} `{input}`: {why}")]
pub struct UnitError {
    kind: &'static str,
    input: String,
    why: &'static str,
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| UnitError { kind: "size", input: s.to_string(), why };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, suffix) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| err("expected a number with an optional suffix k, m, g or t"))?;
        let shift = match suffix.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "ki" | "kib" | "kb" => 10,
            "m" | "mi" | "mib" | "mb" => 20,
            "g" | "gi" | "gib" | "gb" => 30,
            "t" | "ti" | "tib" | "tb" => 40,
            _ => return Err(err("unknown suffix (use k, m, g or t; all binary)")),
        };
        n.checked_mul(1u64 << shift).map(ByteSize).ok_or_else(|| err("too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, suffix) in [(40, "t"), (30, "g"), (20, "m"), (10, "k")] {
            if n != 0 && n % (1u64 << shift) == 0 {
                return write!(f, "{}{suffix}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

/// A wall-clock duration, written as `90s`, `15m`, `2h`, `1h30m`, `500ms`, or
/// an integer number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| UnitError { kind: "duration", input: s.to_string(), why };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("empty"));
        }
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(Duration(std::time::Duration::from_secs(secs)));
        }
        let mut total_ms: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| err("missing unit (ms, s, m, h)"))?;
            if split == 0 {
                return Err(err("expected a number"));
            }
            let n: u64 = rest[..split].parse().map_err(|_| err("number too large"))?;
            rest = &rest[split..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit_ms: u64 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(err("unknown unit (use ms, s, m, h or d)")),
            };
            rest = &rest[unit_len..];
            total_ms = n.checked_mul(unit_ms).and_then(|v| total_ms.checked_add(v)).ok_or_else(|| err("too large"))?;
        }
        Ok(Duration(std::time::Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        let s = ms / 1000;
        if s != 0 && s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s != 0 && s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

macro_rules! serde_via_str {
    ($t:ty, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$t, E> {
                        u64::try_from(v)
                            .map_err(|_| E::custom("must not be negative"))
                            .and_then(|v| v.to_string().parse().map_err(E::custom))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$t, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

serde_via_str!(ByteSize, "a size such as 512m");
serde_via_str!(Duration, "a duration such as 90s or 15m");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("512m".parse::<ByteSize>().unwrap().0, 512 << 20);
        assert_eq!("64Ki".parse::<ByteSize>().unwrap().0, 64 << 10);
        assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
        assert!("12x".parse::<ByteSize>().is_err());
        assert!("-1".parse::<ByteSize>().is_err());
        assert!("99999999999t".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(512 << 20).to_string(), "512m");
    }

    #[test]
    fn durations() {
        assert_eq!("90s".parse::<Duration>().unwrap().0.as_secs(), 90);
        assert_eq!("1h30m".parse::<Duration>().unwrap().0.as_secs(), 5400);
        assert_eq!("250ms".parse::<Duration>().unwrap().0.as_millis(), 250);
        assert_eq!("15".parse::<Duration>().unwrap().0.as_secs(), 15);
        for bad in ["", "s", "10x", "1.5s", "-3s", "10 s"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
        assert_eq!(Duration(std::time::Duration::from_secs(900)).to_string(), "15m");
    }
}
