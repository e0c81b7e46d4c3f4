//! The schema's value rules, as serde adapters used by the model's `#[serde(with = ...)]` attributes.
//!
//! A value is checked while it is deserialized, so a refusal is a deserialization error that carries the
//! value's place in the file; [`super::source`] turns that into "file: key = value: reason (line, column)".
//! Each adapter states its range once, in the message it gives.

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserializer, Error as _, Visitor};
use serde::{Deserialize, Serializer};

/// The longest duration accepted anywhere: one day. Longer values are surely mistakes, and the cap keeps
/// `Instant + Duration` arithmetic downstream far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The most extra attempts `retries.attempts` allows.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// The largest `limits.max_body_bytes`: 1 GiB (bodies are buffered in memory for retries).
pub const MAX_BODY_BYTES: u64 = 1 << 30;

/// Parses a duration with a unit (`"250ms"`, `"2s"`, `"1m 30s"`); `--timeout` and the file share it.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("invalid duration: {e}"))
}

/// A duration given as a value (e.g. `--timeout`) is greater than 0 and at most [`MAX_DURATION`].
pub(crate) fn check_positive(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be greater than 0".to_owned())
    } else if d > MAX_DURATION {
        Err("at most 1 day".to_owned())
    } else {
        Ok(d)
    }
}

/// Reads a duration string: greater than 0 (or also `"0s"`, "off", when `ZERO`) and at most [`MAX_DURATION`].
struct DurationText<const ZERO: bool>;

impl<const ZERO: bool> Visitor<'_> for DurationText<ZERO> {
    type Value = Duration;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let such_as = [r#""250ms", "2s" or "5m""#, r#""0s", "30s" or "2m""#][usize::from(ZERO)];
        write!(f, "a duration string with a unit, such as {such_as}")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        let d = parse_duration(v).map_err(E::custom)?;
        match d {
            Duration::ZERO if ZERO => Ok(d),
            _ => check_positive(d).map_err(E::custom),
        }
    }
}

/// Durations: written and printed as strings with a unit, greater than 0 and at most [`MAX_DURATION`].
pub(crate) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(DurationText::<false>)
    }
}

/// Durations where `"0s"` means off (`slow_start.window`).
pub(crate) mod duration_or_zero {
    use super::*;

    pub(crate) use super::duration::serialize;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(DurationText::<true>)
    }
}

/// Values written as their names (`algorithm`), through `FromStr` and `Display`.
pub(crate) mod named {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// A whole number in `min..=max`; `note` ends the refusal.
fn in_range<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
    d: D,
    (min, max): (i64, i64),
    note: &str,
) -> Result<T, D::Error> {
    let n = i64::deserialize(d)?;
    match T::try_from(n) {
        Ok(v) if (min..=max).contains(&n) => Ok(v),
        _ => Err(D::Error::custom(format!(
            "out of range {min}..={max}{note}"
        ))),
    }
}

/// A backend's weight.
pub(crate) fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use rrlb_core::backend::{MAX_WEIGHT, MIN_WEIGHT};
    let range = (i64::from(MIN_WEIGHT), i64::from(MAX_WEIGHT));
    in_range(d, range, " (0 is refused: drain the backend instead)")
}

/// A whole number in `MIN..=MAX`, as `#[serde(deserialize_with = "value::int::<_, _, 1, 1000>")]`.
pub(crate) fn int<'de, D, T, const MIN: i64, const MAX: i64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    in_range(d, (MIN, MAX), "")
}

/// `limits.rate_per_client`, where 0 turns the limit off.
pub(crate) fn rate_limit<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, (0, 1_000_000), " (0 = off)")
}

/// A percentage: `0..=100`.
pub(crate) fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    in_range(d, (0, 100), " (percent)")
}

/// `limits.max_body_bytes`.
pub(crate) fn body_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let max = i64::try_from(MAX_BODY_BYTES).unwrap_or(i64::MAX);
    in_range(d, (1, max), " (1 GiB)")
}

/// A share in `[0, 1]`.
pub(crate) fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(D::Error::custom("out of range 0..=1"))
    }
}

/// Optional text, printed back with `Display`, none as `""`.
pub(crate) fn display_or_empty<S: Serializer, T: Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

/// Optional text: `""` (and, when `blank_is_none`, blanks only) means none; anything else is what `parse` makes
/// of it.
pub(crate) fn or_none<'de, D: Deserializer<'de>, T>(
    d: D,
    blank_is_none: bool,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    let text = String::deserialize(d)?;
    match text.is_empty() || (blank_is_none && text.trim().is_empty()) {
        true => Ok(None),
        false => parse(&text).map(Some).map_err(D::Error::custom),
    }
}

/// An `http` or `https` URL with a host.
pub(crate) fn http_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("the scheme must be http or https".to_owned());
    }
    match uri.host().is_none_or(str::is_empty) {
        true => Err("the URL has no host".to_owned()),
        false => Ok(uri),
    }
}

/// An OTLP/HTTP base URL: `http` or `https`, a host, no query or fragment; `""` means none.
pub(crate) fn otlp_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    or_none(d, false, |text| {
        match http_url(text)?.query().is_some() || text.contains('#') {
            true => Err("a base URL has no query or fragment".to_owned()),
            false => Ok(text.trim_end_matches('/').to_owned()),
        }
    })
}

/// Text that is not empty.
pub(crate) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(text)
}

/// A breaker's trip rate: a share in `(0, 1]`.
pub(crate) fn trip_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if x > 0.0 && x <= 1.0 {
        Ok(x)
    } else {
        Err(D::Error::custom(
            "out of range (0, 1]: 0 would open the breaker on every window",
        ))
    }
}

/// A listener address: `IP:PORT`, never a host name.
pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_socket_addr(&text).map_err(D::Error::custom)
}

/// Parses `IP:PORT`, with a hint when a host name or a bare IP was given.
pub(crate) fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    text.parse().map_err(|_| {
        let hint = if text.parse::<std::net::IpAddr>().is_ok() {
            "add a port"
        } else {
            "host names are not resolved: write e.g. 0.0.0.0:8080, 127.0.0.1:9901 or [::1]:9901"
        };
        format!("not an IP:PORT socket address ({hint})")
    })
}
