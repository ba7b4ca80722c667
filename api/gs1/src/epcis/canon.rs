//! Value canonicalisation shared by validation and the event hash: `xsd:dateTimeStamp`
//! parsing and its UTC millisecond form, and the numeric normalisation of the GS1 event-hash
//! algorithm (CBV 2.0 §8.9, rules 6-9: no trailing zeros, UTC with `Z`, millisecond precision).
//!
//! Numbers follow the decimal arithmetic of the published reference implementation (a value
//! that reads as a decimal number is rewritten to its shortest decimal form; an integral value
//! written with a positive exponent keeps the scientific form `1E+5`), so that our pre-hash
//! strings agree with GS1's test vectors byte for byte.

/// A parsed `xsd:dateTimeStamp` (EPCIS 2.0 §7.3.1: a date-time with a mandatory offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z, the fraction rounded half-up to milliseconds.
    pub unix_ms: i64,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
///
/// Returns `None` for anything else (a missing offset included: EPCIS requires one).
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0_i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let fraction = &b[start..i];
        if fraction.is_empty() {
            return None;
        }
        for k in 0..3 {
            millis = millis * 10 + fraction.get(k).map_or(0, |d| i64::from(d - b'0'));
        }
        // Round half-up on the fourth fractional digit (CBV 2.0 §8.9 rule 9, as clarified
        // in the CBV 2.1 draft and applied by the reference implementation to both).
        if fraction.get(3).is_some_and(|d| *d >= b'5') {
            millis += 1;
        }
    }
    let offset_minutes = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = two_digits(*h1, *h2)?;
            let minutes = two_digits(*m1, *m2)?;
            if hours > 14 || minutes > 59 {
                return None;
            }
            let total = i64::from(hours * 60 + minutes);
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let unix_ms = (seconds - offset_minutes * 60) * 1000 + millis;
    Some(Timestamp { unix_ms })
}

impl Timestamp {
    /// The UTC form of the event hash: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    ///
    /// `None` when the UTC date falls outside years 0000-9999 (an offset can push
    /// `0000-01-01T00:00:00+01:00` into year -1).
    pub fn to_utc_millis_string(self) -> Option<String> {
        let ms = self.unix_ms.rem_euclid(1000);
        let secs = self.unix_ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        Some(format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        ))
    }
}

/// The time-stamp rule of the event hash: UTC, milliseconds, `Z`; a value that is not a
/// time stamp is kept as it is (as the reference implementation does).
pub fn hash_timestamp(text: &str) -> String {
    parse_timestamp(text)
        .and_then(Timestamp::to_utc_millis_string)
        .unwrap_or_else(|| text.to_owned())
}

/// Checks an `eventTimeZoneOffset` (EPCIS 2.0 §7.4.1: `+HH:MM` or `-HH:MM`, at most 14 hours).
pub fn is_time_zone_offset(text: &str) -> bool {
    match text.as_bytes() {
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            matches!((two_digits(*h1, *h2), two_digits(*m1, *m2)), (Some(h), Some(m)) if h <= 14 && m <= 59)
        }
        _ => false,
    }
}

fn digits(b: &[u8], at: usize, len: usize) -> Option<u32> {
    let slice = b.get(at..at + len)?;
    let mut value = 0_u32;
    for d in slice {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(d - b'0');
    }
    Some(value)
}

fn two_digits(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
#[must_use]
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A JSON number as the text the reference implementation sees: integers exactly, other
/// numbers in the shortest round-trip form (the exponent thresholds of Rust's `{:?}` and
/// Python's `repr` agree: scientific from 1e16 up and below 1e-4).
pub fn json_number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        n.as_f64()
            .map_or_else(|| n.to_string(), |f| format!("{f:?}"))
    }
}

/// Rule 6 of the event hash: a value that reads as a decimal number is written without
/// trailing zeros (and without leading zeros or a `+`); other values are returned unchanged.
///
/// Integral values print as integers unless they carry a positive exponent, which is kept in
/// scientific notation (`1e5` -> `1E+5`), as decimal arithmetic's `to_integral_value` does.
pub fn normalise_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_part = &text[int_start..i];
    let mut frac_part = "";
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_part = &text[start..i];
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let exp_digits = &text[start..i];
        if exp_digits.is_empty() || exp_digits.len() > 9 {
            return None;
        }
        exponent = exp_digits.parse::<i64>().ok()?;
        if exp_negative {
            exponent = -exponent;
        }
    }
    if i != b.len() {
        return None;
    }
    let frac_len = i64::try_from(frac_part.len()).ok()?;
    let mut coefficient: String = format!("{int_part}{frac_part}")
        .trim_start_matches('0')
        .to_owned();
    let mut exp = exponent - frac_len;
    let sign = if negative { "-" } else { "" };
    if coefficient.is_empty() {
        // Zero keeps its sign, and its exponent when that is positive.
        return Some(if exp > 0 {
            format!("{sign}0E+{exp}")
        } else {
            format!("{sign}0")
        });
    }
    if exp >= 0 {
        if exp == 0 {
            return Some(format!("{sign}{coefficient}"));
        }
        let len = i64::try_from(coefficient.len()).ok()?;
        let adjusted = exp + len - 1;
        let (head, tail) = coefficient.split_at(1);
        let dot = if tail.is_empty() { "" } else { "." };
        return Some(format!("{sign}{head}{dot}{tail}E+{adjusted}"));
    }
    // Negative exponent: drop trailing zeros of the coefficient.
    while exp < 0 && coefficient.ends_with('0') {
        coefficient.pop();
        exp += 1;
    }
    if exp == 0 {
        return Some(format!("{sign}{coefficient}"));
    }
    let shift = usize::try_from(-exp).ok()?;
    if shift > 4096 {
        // An absurd exponent: keep the text as it is rather than printing thousands of zeros.
        return None;
    }
    if coefficient.len() > shift {
        let (whole, fraction) = coefficient.split_at(coefficient.len() - shift);
        Some(format!("{sign}{whole}.{fraction}"))
    } else {
        let zeros = "0".repeat(shift - coefficient.len());
        Some(format!("{sign}0.{zeros}{coefficient}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_time(input: &str, expected: Option<&str>) {
        let got = parse_timestamp(input).and_then(Timestamp::to_utc_millis_string);
        assert_eq!(got.as_deref(), expected, "{input}");
    }

    #[test]
    fn timestamps_become_utc_with_milliseconds() {
        check_time(
            "2020-03-04T11:00:30.000+01:00",
            Some("2020-03-04T10:00:30.000Z"),
        );
        check_time(
            "2020-04-01T15:00:00+01:00",
            Some("2020-04-01T14:00:00.000Z"),
        );
        check_time(
            "2019-10-21T00:05:00-06:00",
            Some("2019-10-21T06:05:00.000Z"),
        );
        check_time(
            "2023-02-02T11:04:03.1415Z",
            Some("2023-02-02T11:04:03.142Z"),
        );
        check_time(
            "2023-02-02T11:04:03.1414Z",
            Some("2023-02-02T11:04:03.141Z"),
        );
        check_time(
            "2023-02-12T11:04:03.1007Z",
            Some("2023-02-12T11:04:03.101Z"),
        );
        check_time("2022-02-17T11:30:47.0Z", Some("2022-02-17T11:30:47.000Z"));
        check_time(
            "2023-12-31T23:59:59.9996Z",
            Some("2024-01-01T00:00:00.000Z"),
        );
        check_time("2024-02-29T00:00:00Z", Some("2024-02-29T00:00:00.000Z"));
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        check_time("2020-03-04T11:00:30", None);
        check_time("2020-03-04 11:00:30Z", None);
        check_time("2023-02-29T00:00:00Z", None);
        check_time("2020-13-04T11:00:30Z", None);
        check_time("2020-03-04T11:00:30.Z", None);
        check_time("2020-03-04T11:00:30+15:00", None);
        check_time("2020-03-04T11:00:30+0100", None);
        check_time("２020-03-04T11:00:30Z", None);
    }

    #[test]
    fn time_zone_offsets() {
        assert!(is_time_zone_offset("+01:00"));
        assert!(is_time_zone_offset("-14:00"));
        assert!(!is_time_zone_offset("+15:00"));
        assert!(!is_time_zone_offset("01:00"));
        assert!(!is_time_zone_offset("+1:00"));
    }

    fn check_number(input: &str, expected: Option<&str>) {
        assert_eq!(normalise_number(input).as_deref(), expected, "{input}");
    }

    #[test]
    fn numbers_lose_trailing_zeros() {
        check_number("1.0", Some("1"));
        check_number("0.3434", Some("0.3434"));
        check_number("0.34340", Some("0.3434"));
        check_number("23.0", Some("23"));
        check_number("200", Some("200"));
        check_number("+5", Some("5"));
        check_number("007", Some("7"));
        check_number("-0.0", Some("-0"));
        check_number("1e5", Some("1E+5"));
        check_number("1.5e+22", Some("1.5E+22"));
        check_number("1e-05", Some("0.00001"));
        check_number(".5", Some("0.5"));
        check_number("12345678901234567890", Some("12345678901234567890"));
        check_number("1000000000000000.0", Some("1000000000000000"));
    }

    #[test]
    fn non_numbers_are_left_alone() {
        check_number("", None);
        check_number("abc", None);
        check_number("1.2.3", None);
        check_number("+01:00", None);
        check_number("2019-10-21", None);
        check_number("e5", None);
        check_number("1e", None);
        check_number("NaN", None);
    }

    #[test]
    fn json_numbers_print_like_the_reference() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(json_number_text(&n("26")), "26");
        assert_eq!(json_number_text(&n("0.1")), "0.1");
        assert_eq!(
            normalise_number(&json_number_text(&n("26.0"))).unwrap(),
            "26"
        );
        assert_eq!(
            normalise_number(&json_number_text(&n("1e22"))).unwrap(),
            "1E+22"
        );
    }
}
