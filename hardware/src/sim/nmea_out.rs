//! NMEA 0183 sentences as a u-blox M10-class receiver emits them (GGA and RMC, talker `GN`).
//!
//! Formats (NMEA 0183 v4.11 as documented in u-blox's M10 interface description):
//!
//! ```text
//! $GNGGA,hhmmss.ss,ddmm.mmmmm,N,dddmm.mmmmm,E,q,ss,h.hh,a.a,M,,M,,*CS
//! $GNRMC,hhmmss.ss,A,ddmm.mmmmm,N,dddmm.mmmmm,E,s.sss,c.cc,ddmmyy,,,A,V*CS
//! ```
//!
//! Without a fix the position fields stay empty, GGA quality is 0 and RMC status is `V`. The
//! checksum is the XOR of every byte between `$` and `*`, as two upper-case hex digits. Numbers are
//! formatted from integers (no float formatting), so output is byte-identical on every target.

use core::fmt::Write as _;

use heapless::String;

/// Longest sentence written (NMEA 0183 allows 82 characters; GGA/RMC here stay below 80).
pub const SENTENCE_CAPACITY: usize = 96;

/// One formatted sentence including `\r\n`.
pub type Sentence = String<SENTENCE_CAPACITY>;

/// The fields of one receiver epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epoch {
    /// Seconds since 1970-01-01T00:00:00Z (UTC; leap seconds ignored as in Unix time).
    pub unix_s: u64,
    /// The position, or `None` without a fix.
    pub fix: Option<EpochFix>,
}

/// The navigation solution of an epoch with a fix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochFix {
    /// Latitude, degrees.
    pub lat_deg: f64,
    /// Longitude, degrees.
    pub lon_deg: f64,
    /// Altitude above mean sea level, metres.
    pub alt_m: f64,
    /// Speed over ground, km/h.
    pub speed_kmh: f64,
    /// Course over ground, degrees; `None` when stationary.
    pub course_deg: Option<f64>,
    /// Satellites used.
    pub satellites: u8,
    /// Horizontal dilution of precision, hundredths.
    pub hdop_centi: u16,
}

/// XOR checksum over the bytes between `$` and `*`.
pub fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |acc, byte| acc ^ byte)
}

/// Civil date (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
/// Howard Hinnant's `civil_from_days` (public-domain algorithm, "chrono-Compatible Low-Level Date
/// Algorithms").
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Rounds a non-negative finite value to an integer, saturating.
fn round_u64(value: f64) -> u64 {
    if !value.is_finite() || value <= 0.0 {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "non-negative and finite; `as` saturates at u64::MAX"
    )]
    let rounded = libm::round(value) as u64;
    rounded
}

/// `ddmm.mmmmm` (or `dddmm.mmmmm` with `degree_digits` = 3) and the hemisphere letter.
fn write_coordinate(
    out: &mut Sentence,
    degrees: f64,
    degree_digits: usize,
    hemispheres: [char; 2],
) -> core::fmt::Result {
    let hemisphere = if degrees < 0.0 {
        hemispheres[1]
    } else {
        hemispheres[0]
    };
    let magnitude = if degrees < 0.0 { -degrees } else { degrees };
    // Hundred-thousandths of a minute.
    let total = round_u64(magnitude * 60.0 * 100_000.0);
    let whole_degrees = total / 6_000_000;
    let minutes = (total % 6_000_000) / 100_000;
    let fraction = total % 100_000;
    write!(
        out,
        "{whole_degrees:0degree_digits$}{minutes:02}.{fraction:05},{hemisphere}"
    )
}

fn write_time(out: &mut Sentence, unix_s: u64) -> core::fmt::Result {
    let of_day = unix_s % 86_400;
    write!(
        out,
        "{:02}{:02}{:02}.00",
        of_day / 3600,
        (of_day / 60) % 60,
        of_day % 60
    )
}

fn write_date(out: &mut Sentence, unix_s: u64) -> core::fmt::Result {
    let days = i64::try_from(unix_s / 86_400).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days);
    write!(out, "{day:02}{month:02}{:02}", year.rem_euclid(100))
}

fn write_signed_tenths(out: &mut Sentence, value: f64) -> core::fmt::Result {
    let sign = if value < 0.0 { "-" } else { "" };
    let tenths = round_u64(if value < 0.0 {
        -value * 10.0
    } else {
        value * 10.0
    });
    write!(out, "{sign}{}.{}", tenths / 10, tenths % 10)
}

fn finish(mut out: Sentence) -> Result<Sentence, core::fmt::Error> {
    let body = out.as_bytes().get(1..).unwrap_or_default();
    let sum = checksum(body);
    write!(out, "*{sum:02X}\r\n")?;
    Ok(out)
}

/// The GGA sentence of an epoch.
pub fn gga(epoch: &Epoch) -> Result<Sentence, core::fmt::Error> {
    let mut out = Sentence::new();
    out.push_str("$GNGGA,").map_err(|()| core::fmt::Error)?;
    write_time(&mut out, epoch.unix_s)?;
    match &epoch.fix {
        Some(fix) => {
            out.push(',').map_err(|()| core::fmt::Error)?;
            write_coordinate(&mut out, fix.lat_deg, 2, ['N', 'S'])?;
            out.push(',').map_err(|()| core::fmt::Error)?;
            write_coordinate(&mut out, fix.lon_deg, 3, ['E', 'W'])?;
            let hdop = fix.hdop_centi;
            write!(
                out,
                ",1,{:02},{}.{:02},",
                fix.satellites,
                hdop / 100,
                hdop % 100
            )?;
            write_signed_tenths(&mut out, fix.alt_m)?;
            out.push_str(",M,,M,,").map_err(|()| core::fmt::Error)?;
        }
        None => out
            .push_str(",,,,,0,00,99.99,,,,,,")
            .map_err(|()| core::fmt::Error)?,
    }
    finish(out)
}

/// The RMC sentence of an epoch.
pub fn rmc(epoch: &Epoch) -> Result<Sentence, core::fmt::Error> {
    let mut out = Sentence::new();
    out.push_str("$GNRMC,").map_err(|()| core::fmt::Error)?;
    write_time(&mut out, epoch.unix_s)?;
    match &epoch.fix {
        Some(fix) => {
            out.push_str(",A,").map_err(|()| core::fmt::Error)?;
            write_coordinate(&mut out, fix.lat_deg, 2, ['N', 'S'])?;
            out.push(',').map_err(|()| core::fmt::Error)?;
            write_coordinate(&mut out, fix.lon_deg, 3, ['E', 'W'])?;
            let knots_milli = round_u64(fix.speed_kmh / 1.852 * 1000.0);
            write!(out, ",{}.{:03},", knots_milli / 1000, knots_milli % 1000)?;
            if let Some(course) = fix.course_deg {
                let centi = round_u64(course * 100.0) % 36_000;
                write!(out, "{}.{:02}", centi / 100, centi % 100)?;
            }
            out.push(',').map_err(|()| core::fmt::Error)?;
            write_date(&mut out, epoch.unix_s)?;
            out.push_str(",,,A,V").map_err(|()| core::fmt::Error)?;
        }
        None => {
            out.push_str(",V,,,,,,,").map_err(|()| core::fmt::Error)?;
            write_date(&mut out, epoch.unix_s)?;
            out.push_str(",,,N,V").map_err(|()| core::fmt::Error)?;
        }
    }
    finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2025-07-01 is day 20270 since the epoch.
        assert_eq!(civil_from_days(20_270), (2025, 7, 1));
        // 2024-02-29 (leap day) is day 19782.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn coordinates_are_written_in_degrees_and_minutes() {
        let mut out = Sentence::new();
        write_coordinate(&mut out, 23.5960, 2, ['N', 'S']).unwrap();
        assert_eq!(out.as_str(), "2335.76000,N");
        let mut out = Sentence::new();
        write_coordinate(&mut out, -5.6, 3, ['E', 'W']).unwrap();
        assert_eq!(out.as_str(), "00536.00000,W");
    }
}
