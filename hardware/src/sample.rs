//! The logger's output: one [`Sample`] per sampling period, and the [`Position`] inside it.
//!
//! Units are fixed-point integers so that the firmware can encode a sample without floating
//! point and the backend sees exactly what the device signed.

/// One reading of every sensor of the logger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sample {
    /// Air temperature in hundredths of a degree Celsius (SHT4x range: -45.00..=130.00 °C).
    pub temperature_centi_c: i16,
    /// Relative humidity in hundredths of a percent, `0..=10000`.
    pub humidity_centi_pct: u16,
    /// The last position the GNSS receiver reported since the previous sample; `None` when it
    /// reported no fix last, or nothing at all.
    pub position: Option<Position>,
    /// Whether the container door was open when the sample was taken.
    pub door_open: bool,
    /// Shock-switch closures counted since the previous sample, saturating at `u16::MAX`.
    pub shock_events: u16,
    /// Battery voltage in millivolts.
    pub battery_mv: u16,
}

/// A WGS84 position in degrees times 10^7 (about 1.1 cm of latitude per unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Latitude, degrees * 1e7, `-900_000_000..=900_000_000`, north positive.
    pub lat_e7: i32,
    /// Longitude, degrees * 1e7, `-1_800_000_000..=1_800_000_000`, east positive.
    pub lon_e7: i32,
}

/// Largest latitude in degrees * 1e7.
pub const LAT_E7_MAX: i32 = 900_000_000;
/// Largest longitude in degrees * 1e7.
pub const LON_E7_MAX: i32 = 1_800_000_000;

impl Position {
    /// A position from degrees * 1e7, or `None` when it lies outside the WGS84 ranges.
    pub fn from_e7(lat_e7: i32, lon_e7: i32) -> Option<Self> {
        let lat_ok = (-LAT_E7_MAX..=LAT_E7_MAX).contains(&lat_e7);
        let lon_ok = (-LON_E7_MAX..=LON_E7_MAX).contains(&lon_e7);
        (lat_ok && lon_ok).then_some(Self { lat_e7, lon_e7 })
    }

    /// A position from degrees, rounded to 1e-7 degree, or `None` when a coordinate is not
    /// finite or out of range.
    pub fn from_degrees(lat_deg: f64, lon_deg: f64) -> Option<Self> {
        Some(Self {
            lat_e7: degrees_to_e7(lat_deg, 90.0)?,
            lon_e7: degrees_to_e7(lon_deg, 180.0)?,
        })
    }

    /// Latitude in degrees.
    pub fn lat_deg(&self) -> f64 {
        f64::from(self.lat_e7) / 1e7
    }

    /// Longitude in degrees.
    pub fn lon_deg(&self) -> f64 {
        f64::from(self.lon_e7) / 1e7
    }
}

/// Degrees to degrees * 1e7, rounded half away from zero, or `None` outside `-limit..=limit`.
fn degrees_to_e7(deg: f64, limit: f64) -> Option<i32> {
    if !deg.is_finite() || deg > limit || deg < -limit {
        return None;
    }
    let scaled = deg * 1e7;
    let rounded = if scaled >= 0.0 {
        scaled + 0.5
    } else {
        scaled - 0.5
    };
    #[allow(
        clippy::cast_possible_truncation,
        reason = "|deg| <= 180, so |rounded| <= 1.8e9 + 0.5 < i32::MAX; the cast drops the fraction"
    )]
    Some(rounded as i32)
}
