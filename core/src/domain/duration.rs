//! Durations as Cloudflare's API writes them: Go's `time.ParseDuration` format (`300ms`, `2h45m`,
//! `1.5h`), with the units `ns`, `us` (or `µs`), `ms`, `s`, `m` and `h`.
//!
//! A [`GoDuration`] keeps the text a client sent (the API answers it back unchanged) together
//! with its value. It is always non-negative: a sign is refused. Bounds are the business of the
//! field that holds it ([`GoDuration::check_between`]).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::truncate_for_message;

/// The longest duration text accepted, in bytes.
pub const MAX_DURATION_TEXT_LEN: usize = 64;

/// A duration in Go's format, with the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GoDuration {
    text: String,
    value: Duration,
}

impl GoDuration {
    /// Parses `text` as a Go duration; the error names `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, DomainError> {
        let value = parse_go_duration(text).map_err(|why| {
            DomainError::invalid(
                field,
                format!(
                    "`{}` {why}; expected a duration such as `300ms`, `15m` or `2h45m` \
                     (units `ns`, `us`, `ms`, `s`, `m`, `h`)",
                    truncate_for_message(text)
                ),
            )
        })?;
        Ok(GoDuration { text: text.to_owned(), value })
    }

    /// A duration known to be well-formed (the defaults of the code).
    pub(crate) fn known(text: &'static str, value: Duration) -> Self {
        GoDuration { text: text.to_owned(), value }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value.
    pub fn value(&self) -> Duration {
        self.value
    }

    /// Checks that the value lies in `min ..= max`; the error names `field` and the bounds as
    /// `min_text` and `max_text`.
    pub fn check_between(
        &self,
        field: &str,
        (min, min_text): (Duration, &str),
        (max, max_text): (Duration, &str),
    ) -> Result<(), DomainError> {
        let quoted = truncate_for_message(&self.text);
        if self.value < min {
            return Err(DomainError::invalid(
                field,
                format!("`{quoted}` is shorter than the minimum, `{min_text}`"),
            ));
        }
        if self.value > max {
            return Err(DomainError::invalid(
                field,
                format!("`{quoted}` is longer than the maximum, `{max_text}`"),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for GoDuration {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        GoDuration::parse("duration", &text)
    }
}

impl From<GoDuration> for String {
    fn from(duration: GoDuration) -> String {
        duration.text
    }
}

/// Nanoseconds per unit. A unit is the whole run of non-digits after a number, so `ms` is
/// never read as `m` followed by `s`.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3600 * 1_000_000_000),
];

/// Go's grammar, unsigned: `0`, or one or more `<decimal><unit>` with the decimal written as
/// digits with an optional fraction (`1`, `1.5`, `.5`, `1.`).
fn parse_go_duration(text: &str) -> Result<Duration, &'static str> {
    if text.is_empty() {
        return Err("is empty");
    }
    if text.len() > MAX_DURATION_TEXT_LEN {
        return Err("is too long");
    }
    if text.starts_with(['-', '+']) {
        return Err("must not have a sign");
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (whole, after) = rest.split_at(digits_end);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => {
                let end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
                after.split_at(end)
            }
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err("has a unit without a number");
        }
        let unit_end = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err("has a number without a unit");
        }
        let Some((_, per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err("has an unknown unit");
        };
        let whole: u128 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| "is too long")? };
        let mut nanos = whole.checked_mul(*per_unit).ok_or("is too long")?;
        // The fraction counts to the nanosecond; digits beyond that are dropped, as Go does.
        let mut scale = *per_unit;
        for digit in fraction.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or("is too long")?;
        rest = after;
    }
    let seconds = u64::try_from(total / 1_000_000_000).map_err(|_| "is too long")?;
    // INVARIANT: the remainder of a division by 10^9 fits in u32.
    let subsec = u32::try_from(total % 1_000_000_000).map_err(|_| "is too long")?;
    Ok(Duration::new(seconds, subsec))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn value(text: &str) -> Duration {
        GoDuration::parse("f", text).unwrap().value()
    }

    fn refused(text: &str) -> String {
        match GoDuration::parse("f", text).unwrap_err() {
            DomainError::InvalidField { field, message } => {
                assert_eq!(field, "f");
                message
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn go_durations_parse_as_go_does() {
        assert_eq!(value("300ms"), Duration::from_millis(300));
        assert_eq!(value("2h45m"), Duration::from_secs(2 * 3600 + 45 * 60));
        assert_eq!(value("24h"), Duration::from_secs(86_400));
        assert_eq!(value("15m"), Duration::from_secs(900));
        assert_eq!(value("1.5h"), Duration::from_secs(5400));
        assert_eq!(value(".5s"), Duration::from_millis(500));
        assert_eq!(value("1.s"), Duration::from_secs(1));
        assert_eq!(value("1h1m1s1ms1us1ns"), Duration::new(3661, 1_001_001));
        assert_eq!(value("10µs"), Duration::from_micros(10));
        assert_eq!(value("10μs"), Duration::from_micros(10));
        assert_eq!(value("10us"), Duration::from_micros(10));
        assert_eq!(value("0"), Duration::ZERO);
        assert_eq!(value("0s"), Duration::ZERO);
        assert_eq!(value("1.0000000001s"), Duration::from_secs(1), "below a nanosecond is dropped");
    }

    #[test]
    fn the_text_is_kept_as_written() {
        let d = GoDuration::parse("f", "90m").unwrap();
        assert_eq!(d.as_str(), "90m");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"90m\"");
        let back: GoDuration = serde_json::from_str("\"90m\"").unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<GoDuration>("\"90x\"").is_err());
    }

    #[test]
    fn malformed_durations_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "is empty"),
            ("-1h", "must not have a sign"),
            ("+1h", "must not have a sign"),
            ("1", "has a number without a unit"),
            ("1h30", "has a number without a unit"),
            ("h", "has a unit without a number"),
            ("1d", "has an unknown unit"),
            ("1 h", "has an unknown unit"),
            ("1H", "has an unknown unit"),
            ("1.5.5h", "has a number without a unit"),
            ("99999999999999999999999999999999999999999h", "is too long"),
        ] {
            let message = refused(text);
            assert!(message.contains(why), "{text}: {message}");
            assert!(message.contains("2h45m"), "the message shows the format: {message}");
        }
        assert!(refused(&"1h".repeat(40)).contains("is too long"));
    }

    #[test]
    fn bounds_name_the_field_and_the_limits() {
        let min = (Duration::from_secs(60), "1m");
        let max = (Duration::from_secs(3600), "1h");
        let d = |t: &str| GoDuration::parse("f", t).unwrap();
        assert!(d("1m").check_between("f", min, max).is_ok());
        assert!(d("1h").check_between("f", min, max).is_ok());
        let short = d("59s").check_between("g", min, max).unwrap_err();
        assert_eq!(short.to_string(), "invalid `g`: `59s` is shorter than the minimum, `1m`");
        let long = d("61m").check_between("g", min, max).unwrap_err();
        assert_eq!(long.to_string(), "invalid `g`: `61m` is longer than the maximum, `1h`");
    }
}
