//! Sensor drivers of the agritrace cold-chain logger, over embedded-hal 1.0.
//!
//! The logger travels inside a reefer container with the goods. Every sampling period the
//! firmware calls [`ColdChainLogger::sample`], which reads
//!
//! - temperature and relative humidity from a Sensirion SHT4x on I2C ([`climate`], driven by the
//!   `sht4x` crate),
//! - the latest position a GNSS receiver reported as NMEA 0183 over a UART ([`gnss`], sentences
//!   parsed by the `nmea` crate),
//! - the door contact and the shock switch ([`inputs`]),
//! - the battery voltage through the small [`BatteryMonitor`] trait (embedded-hal 1.0 has no ADC),
//!
//! and returns one [`Sample`]. Bad input from a bus (NACKs, CRC mismatches, garbled NMEA, UART
//! errors) is an error value, never a panic.
//!
//! With the `sim` feature, [`sim`] provides a simulated logger board: an SHT4x that answers the
//! real command bytes, a GNSS receiver that walks a route from a packhouse in Yunnan to a
//! European port, a door and a shock switch, a draining battery, all driven by reefer physics that
//! is deterministic from a seed and advanced by an explicit simulated clock. `sim` is `no_std`
//! without `alloc`, so a Cortex-M image can run it; `std` adds an `Arc<Mutex<_>>` shared world.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod battery;
pub mod board;
pub mod climate;
pub mod gnss;
pub mod inputs;
pub mod sample;
pub mod sensirion_crc;
#[cfg(feature = "sim")]
pub mod sim;

pub use battery::{BatteryError, BatteryMonitor};
pub use board::{
    BoardError, ColdChainLogger, LoggerConfig, LoggerDiagnostics, LoggerPeripherals, PollReport,
};
pub use climate::{ClimateReading, ClimateSensor, SensorError};
pub use gnss::{GnssError, GnssPoll, GnssReceiver, NmeaError, NmeaLineReader, SentenceOutcome};
pub use inputs::{ActiveLevel, DoorSensor, InputError, ShockCounter};
pub use sample::{Position, Sample};
/// The SHT4x driver's I2C address and repeatability choices, re-exported for [`LoggerConfig`].
pub use sht4x::{Address as Sht4xAddress, Precision as Sht4xPrecision};
