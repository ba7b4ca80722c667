//! Temperature and relative humidity from a Sensirion SHT4x (SHT40/SHT41/SHT45) on I2C.
//!
//! The bus protocol (one command byte, wait the conversion time, read two CRC-protected words)
//! is done by the `sht4x` crate (0.2, embedded-hal 1.0, no_std), which checks the Sensirion
//! CRC-8 through `sensirion-i2c`. This module converts its raw ticks into the fixed-point units of
//! [`crate::Sample`] with integer arithmetic, using the datasheet formulas (SHT4x datasheet v6.6,
//! §4.6 "Conversion of Signal Output"):
//!
//! - T = -45 °C + 175 °C * S_T / 65535
//! - RH = -6 %RH + 125 %RH * S_RH / 65535, cropped to 0..=100 %RH as the datasheet recommends.

use embedded_hal::{delay::DelayNs, i2c::I2c};
use sht4x::{Address, Precision, SensorData, Sht4x};

/// Why the SHT4x could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SensorError {
    /// The I2C transfer failed (NACK, arbitration loss, bus error, ...).
    #[error("I2C transfer with the SHT4x failed: {0}")]
    Bus(embedded_hal::i2c::ErrorKind),
    /// A word the sensor sent did not match its CRC-8.
    #[error("the SHT4x answer failed its CRC-8 check")]
    Crc,
    /// The driver reported an error this version does not know.
    #[error("the SHT4x driver reported an unknown error")]
    Driver,
}

impl<E: embedded_hal::i2c::Error> From<sht4x::Error<E>> for SensorError {
    fn from(error: sht4x::Error<E>) -> Self {
        match error {
            sht4x::Error::I2c(bus) => Self::Bus(bus.kind()),
            sht4x::Error::Crc => Self::Crc,
            // `sht4x::Error` is non-exhaustive.
            _ => Self::Driver,
        }
    }
}

/// One temperature and humidity measurement in [`crate::Sample`] units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClimateReading {
    /// Temperature in hundredths of a degree Celsius.
    pub temperature_centi_c: i16,
    /// Relative humidity in hundredths of a percent, `0..=10000`.
    pub humidity_centi_pct: u16,
}

impl From<SensorData> for ClimateReading {
    fn from(raw: SensorData) -> Self {
        Self {
            temperature_centi_c: temperature_centi_c(raw.temperature),
            humidity_centi_pct: humidity_centi_pct(raw.humidity),
        }
    }
}

/// The SHT4x, its delay source and the repeatability to measure with.
#[derive(Debug)]
pub struct ClimateSensor<I, D> {
    sht: Sht4x<I, D>,
    delay: D,
    precision: Precision,
}

impl<I: I2c, D: DelayNs> ClimateSensor<I, D> {
    /// A sensor at `address` measuring with `precision` (high repeatability is command 0xFD,
    /// medium 0xF6, low 0xE0).
    pub fn new(i2c: I, delay: D, address: Address, precision: Precision) -> Self {
        Self {
            sht: Sht4x::new_with_address(i2c, address),
            delay,
            precision,
        }
    }

    /// Measures once: writes the command, waits the conversion time, reads and checks 6 bytes.
    pub fn measure(&mut self) -> Result<ClimateReading, SensorError> {
        let raw = self.sht.measure_raw(self.precision, &mut self.delay)?;
        Ok(ClimateReading::from(raw))
    }

    /// The sensor's 32-bit serial number (command 0x89).
    pub fn serial_number(&mut self) -> Result<u32, SensorError> {
        Ok(self.sht.serial_number(&mut self.delay)?)
    }

    /// Soft reset (command 0x94).
    pub fn soft_reset(&mut self) -> Result<(), SensorError> {
        Ok(self.sht.soft_reset(&mut self.delay)?)
    }

    /// Gives the bus and the delay back.
    pub fn release(self) -> (I, D) {
        (self.sht.destroy(), self.delay)
    }
}

/// Raw temperature ticks to hundredths of a degree Celsius, rounded to nearest.
pub fn temperature_centi_c(ticks: u16) -> i16 {
    // -4500 + round(17500 * ticks / 65535); the quotient is 0..=17500, the sum -4500..=13000.
    let scaled = (17_500 * u64::from(ticks) * 2 + 65_535) / (2 * 65_535);
    let centi = i64::try_from(scaled).unwrap_or(17_500) - 4_500;
    i16::try_from(centi).unwrap_or(i16::MAX)
}

/// Raw humidity ticks to hundredths of a percent, rounded to nearest, cropped to 0..=10000.
pub fn humidity_centi_pct(ticks: u16) -> u16 {
    // -600 + round(12500 * ticks / 65535); the datasheet range is -6..=119 %RH before cropping.
    let scaled = (12_500 * u64::from(ticks) * 2 + 65_535) / (2 * 65_535);
    let centi = scaled.saturating_sub(600).min(10_000);
    u16::try_from(centi).unwrap_or(10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_t(ticks: u16, centi: i16) {
        assert_eq!(temperature_centi_c(ticks), centi, "ticks {ticks:#06x}");
    }

    fn check_rh(ticks: u16, centi: u16) {
        assert_eq!(humidity_centi_pct(ticks), centi, "ticks {ticks:#06x}");
    }

    #[test]
    fn temperature_conversion_follows_the_datasheet_formula() {
        check_t(0x0000, -4500);
        check_t(0xFFFF, 13000);
        // 0x6666 = 26214: -45 + 175 * 0.4000015 = 25.0003 °C.
        check_t(0x6666, 2500);
        // 45 °C below... 0 °C is 65535 * 45 / 175 = 16851.9 ticks.
        check_t(16_852, 0);
        check_t(16_851, 0);
        check_t(16_840, -3);
    }

    #[test]
    fn humidity_conversion_is_cropped_to_0_to_100_percent() {
        check_rh(0x0000, 0);
        check_rh(0xFFFF, 10000);
        // 6 %RH offset: below 3146 ticks the formula is negative.
        check_rh(3_000, 0);
        // 50 %RH = (56 / 125) * 65535 = 29359.7 ticks.
        check_rh(29_360, 5000);
        // 100 %RH = (106 / 125) * 65535 = 55573.7 ticks; above is cropped.
        check_rh(60_000, 10000);
    }
}
