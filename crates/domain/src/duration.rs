//! Durations as operators write them in configuration: `90s`, `30m`, `12h`, `7d`.

use std::time::Duration;

/// Why a duration setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a whole number followed by s, m, h or d (e.g. 90s, 30m, 12h, 7d)")]
    Malformed,
    #[error("a duration must be greater than zero")]
    Zero,
    #[error("duration is too large")]
    TooLarge,
}

/// Parses `<digits><unit>` where unit is `s`, `m`, `h` or `d`.
///
/// Deliberately strict: no spaces, no fractions, no combined forms, so that a typo in a
/// security setting is an error rather than a surprising value.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    // The unit is one ASCII letter; anything else (including a multi-byte last
    // character) is malformed, so splitting one byte off is safe.
    if !text.as_bytes().last().is_some_and(u8::is_ascii_alphabetic) {
        return Err(DurationError::Malformed);
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::Malformed);
    }
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(DurationError::Malformed),
    };
    let count: u64 = digits.parse().map_err(|_| DurationError::TooLarge)?;
    if count == 0 {
        return Err(DurationError::Zero);
    }
    // Ten years is far past any sensible lifetime and keeps every later addition to a
    // timestamp far from overflow.
    let seconds = count
        .checked_mul(seconds_per_unit)
        .filter(|s| *s <= 10 * 366 * 86_400)
        .ok_or(DurationError::TooLarge)?;
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn refuses_everything_else() {
        // "5é" and "5𖩥" once panicked on a char boundary (found by proptest).
        for bad in [
            "", "s", "10", "1.5h", "-5m", " 5m", "5 m", "5M", "5w", "1h30m", "٣m", "5é", "5𖩥",
        ] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(parse_duration("99999999999999999999d"), Err(DurationError::TooLarge));
        assert_eq!(parse_duration("4000d"), Err(DurationError::TooLarge));
    }
}
