//! The cold-chain logger board: every sensor behind one [`ColdChainLogger::sample`] call.
//!
//! The board is generic over the embedded-hal 1.0 traits, so the same code runs on a
//! microcontroller's HAL, against embedded-hal-mock in tests, and on the simulated board of
//! [`crate::sim`].
//!
//! Bus order inside [`ColdChainLogger::sample`] (tests script it):
//! 1. drain the GNSS UART (until `WouldBlock`, at most [`crate::gnss::POLL_BYTES_MAX`] bytes;
//!    after a UART error, one more drain),
//! 2. read the shock pin (see [`ShockCounter::poll`]),
//! 3. SHT4x: write the measure command, delay, read 6 bytes,
//! 4. read the door pin,
//! 5. read the battery monitor.
//!
//! A failure in steps 2–5 fails the sample and loses nothing: shock counts and the GNSS fix are
//! handed out only by a sample that succeeds. A UART error in step 1 does not fail the sample
//! (the sample then carries whatever fix was decoded before the error); it is counted in
//! [`LoggerDiagnostics`] and reported by [`ColdChainLogger::poll`].

use embedded_hal::{delay::DelayNs, digital::InputPin, i2c::I2c};
use embedded_hal_nb::serial;
use sht4x::{Address, Precision};

use crate::{
    battery::{BatteryError, BatteryMonitor},
    climate::{ClimateSensor, SensorError},
    gnss::{GnssError, GnssPoll, GnssReceiver, GnssStats},
    inputs::{ActiveLevel, DoorSensor, InputError, ShockCounter},
    sample::Sample,
};

/// Why a board operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BoardError {
    /// The temperature/humidity sensor could not be read.
    #[error("temperature/humidity sensor: {0}")]
    Sensor(#[from] SensorError),
    /// The GNSS UART reported an error.
    #[error("GNSS receiver: {0}")]
    Gnss(#[from] GnssError),
    /// The door pin could not be read.
    #[error("door contact: {0}")]
    Door(InputError),
    /// The shock pin could not be read.
    #[error("shock switch: {0}")]
    Shock(InputError),
    /// The battery voltage could not be read.
    #[error("battery monitor: {0}")]
    Battery(#[from] BatteryError),
}

/// How the board is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoggerConfig {
    /// I2C address of the SHT4x (0x44 for SHT40-AD1B/SHT45-AD1B).
    pub sht4x_address: Address,
    /// Measurement repeatability (high: command 0xFD, 8.3 ms max).
    pub sht4x_precision: Precision,
    /// Pin level while the door is open (low with the normally-closed reed switch to ground).
    pub door_open_level: ActiveLevel,
    /// Pin level while the shock switch is closed (high with the switch to the supply).
    pub shock_active_level: ActiveLevel,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        Self {
            sht4x_address: Address::Address0x44,
            sht4x_precision: Precision::High,
            door_open_level: ActiveLevel::Low,
            shock_active_level: ActiveLevel::High,
        }
    }
}

/// The peripherals the board is built from.
#[derive(Debug)]
pub struct LoggerPeripherals<I2C, D, U, DOOR, SHOCK, BAT> {
    /// I2C bus with the SHT4x.
    pub i2c: I2C,
    /// Delay for the SHT4x conversion time.
    pub delay: D,
    /// UART receiving the GNSS receiver's NMEA output.
    pub gnss_uart: U,
    /// Door contact pin.
    pub door: DOOR,
    /// Shock switch pin.
    pub shock: SHOCK,
    /// Battery voltage monitor.
    pub battery: BAT,
}

/// Counters a person on call would ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LoggerDiagnostics {
    /// NMEA and UART totals.
    pub gnss: GnssStats,
    /// Samples taken successfully.
    pub samples: u32,
    /// Samples that failed.
    pub sample_failures: u32,
}

/// What one [`ColdChainLogger::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PollReport {
    /// The GNSS drain.
    pub gnss: GnssPoll,
    /// Shock closures counted by this poll.
    pub shock_edges: u16,
}

/// The cold-chain logger board.
#[derive(Debug)]
pub struct ColdChainLogger<I2C, D, U, DOOR, SHOCK, BAT> {
    climate: ClimateSensor<I2C, D>,
    gnss: GnssReceiver<U>,
    door: DoorSensor<DOOR>,
    shock: ShockCounter<SHOCK>,
    battery: BAT,
    samples: u32,
    sample_failures: u32,
}

impl<I2C, D, U, DOOR, SHOCK, BAT> ColdChainLogger<I2C, D, U, DOOR, SHOCK, BAT>
where
    I2C: I2c,
    D: DelayNs,
    U: serial::Read<u8>,
    DOOR: InputPin,
    SHOCK: InputPin,
    BAT: BatteryMonitor,
{
    /// A board from its peripherals and wiring.
    pub fn new(
        peripherals: LoggerPeripherals<I2C, D, U, DOOR, SHOCK, BAT>,
        config: LoggerConfig,
    ) -> Self {
        let LoggerPeripherals {
            i2c,
            delay,
            gnss_uart,
            door,
            shock,
            battery,
        } = peripherals;
        Self {
            climate: ClimateSensor::new(i2c, delay, config.sht4x_address, config.sht4x_precision),
            gnss: GnssReceiver::new(gnss_uart),
            door: DoorSensor::new(door, config.door_open_level),
            shock: ShockCounter::new(shock, config.shock_active_level),
            battery,
            samples: 0,
            sample_failures: 0,
        }
    }

    /// Non-blocking housekeeping between samples: drains the GNSS UART and counts shock edges.
    /// Call it as often as the firmware's main loop allows (and from the shock pin's interrupt).
    pub fn poll(&mut self) -> Result<PollReport, BoardError> {
        let gnss = self.gnss.poll()?;
        let shock_edges = self.shock.poll().map_err(BoardError::Shock)?;
        Ok(PollReport { gnss, shock_edges })
    }

    /// Reads every sensor once (see the module documentation for the bus order).
    pub fn sample(&mut self) -> Result<Sample, BoardError> {
        let result = self.sample_inner();
        match result {
            Ok(_) => self.samples = self.samples.wrapping_add(1),
            Err(_) => self.sample_failures = self.sample_failures.wrapping_add(1),
        }
        result
    }

    fn sample_inner(&mut self) -> Result<Sample, BoardError> {
        // A UART error only costs the sentence in flight (it is counted in the GNSS stats); the
        // bytes behind it are still worth draining, once.
        if self.gnss.poll().is_err() {
            let _ = self.gnss.poll();
        }
        self.shock.poll().map_err(BoardError::Shock)?;
        let climate = self.climate.measure()?;
        let door_open = self.door.is_open().map_err(BoardError::Door)?;
        let battery_mv = self.battery.battery_mv()?;
        // Everything was read: only now hand out (and forget) the fix and the shock count.
        Ok(Sample {
            temperature_centi_c: climate.temperature_centi_c,
            humidity_centi_pct: climate.humidity_centi_pct,
            position: self.gnss.take_fix(),
            door_open,
            shock_events: self.shock.take(),
            battery_mv,
        })
    }

    /// The SHT4x serial number, to put in the device's registration.
    pub fn sensor_serial_number(&mut self) -> Result<u32, BoardError> {
        Ok(self.climate.serial_number()?)
    }

    /// Counters for diagnostics.
    pub fn diagnostics(&self) -> LoggerDiagnostics {
        LoggerDiagnostics {
            gnss: self.gnss.stats(),
            samples: self.samples,
            sample_failures: self.sample_failures,
        }
    }

    /// Takes the board apart again.
    pub fn release(self) -> LoggerPeripherals<I2C, D, U, DOOR, SHOCK, BAT> {
        let (i2c, delay) = self.climate.release();
        LoggerPeripherals {
            i2c,
            delay,
            gnss_uart: self.gnss.release(),
            door: self.door.release(),
            shock: self.shock.release(),
            battery: self.battery,
        }
    }
}
