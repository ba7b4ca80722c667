//! The simulated board's peripherals: thin handles on a shared [`SimWorld`] that implement the
//! embedded-hal 1.0 traits the real board's HAL would.
//!
//! - [`SimI2c`]: an SHT4x at 0x44 answering the real command bytes (SHT4x datasheet v6.6, §4.5
//!   table 7): 0xFD/0xF6/0xE0 measure at high/medium/low repeatability, 0x39/0x32/0x2F/0x24/
//!   0x1E/0x15 heat then measure, 0x89 serial number, 0x94 soft reset. Answers are two 16-bit
//!   words, each followed by its Sensirion CRC-8. A read before the conversion time has passed
//!   (as counted by [`SimDelay`]) or without a command is NACKed, as the part does.
//! - [`SimDelay`]: counts the nanoseconds waited (bus time, not simulated world time).
//! - [`SimUart`]: the GNSS receiver's NMEA output; `WouldBlock` when empty, `Overrun` once when
//!   unread bytes were pushed out of its FIFO.
//! - [`SimDoorPin`]: low while the door is open (normally-closed reed switch to ground).
//! - [`SimShockPin`]: high while the shock switch is closed; each closure shows as one high read
//!   followed by low reads, so a polling counter sees every closure exactly once.
//! - [`SimBattery`]: the battery voltage with ADC noise.

use embedded_hal::{
    delay::DelayNs,
    digital::{self, InputPin},
    i2c::{self, I2c, NoAcknowledgeSource, Operation, SevenBitAddress},
};
use embedded_hal_nb::{nb, serial};

use super::{
    WorldAccess,
    world::{Sht4xState, SimWorld},
};
use crate::{
    battery::{BatteryError, BatteryMonitor},
    sensirion_crc::word_with_crc,
};

/// The simulated SHT4x's I2C address (SHT40-AD1B).
pub const SIM_SHT4X_ADDRESS: u8 = 0x44;

/// The simulated I2C bus with one SHT4x on it.
#[derive(Debug, Clone)]
pub struct SimI2c<W> {
    world: W,
}

/// The simulated delay.
#[derive(Debug, Clone)]
pub struct SimDelay<W> {
    world: W,
}

/// The simulated GNSS UART.
#[derive(Debug, Clone)]
pub struct SimUart<W> {
    world: W,
}

/// The simulated door contact pin.
#[derive(Debug, Clone)]
pub struct SimDoorPin<W> {
    world: W,
}

/// The simulated shock switch pin.
#[derive(Debug, Clone)]
pub struct SimShockPin<W> {
    world: W,
}

/// The simulated battery monitor.
#[derive(Debug, Clone)]
pub struct SimBattery<W> {
    world: W,
}

macro_rules! handle_new {
    ($($name:ident),*) => {$(
        impl<W: WorldAccess> $name<W> {
            /// A handle on `world`.
            pub fn new(world: W) -> Self {
                Self { world }
            }
        }
    )*};
}
handle_new!(
    SimI2c,
    SimDelay,
    SimUart,
    SimDoorPin,
    SimShockPin,
    SimBattery
);

/// What an SHT4x command does: conversion time (ns), noise scale, heater rise (°C).
fn measurement_command(command: u8) -> Option<(u64, f64, f64)> {
    // Conversion times: datasheet table 4 maxima (8.3 / 4.5 / 1.6 ms; heater 1 s or 0.1 s plus
    // a high-repeatability measurement). Heater rises are a rough model, not datasheet values.
    Some(match command {
        0xFD => (8_300_000, 1.0, 0.0),
        0xF6 => (4_500_000, 1.75, 0.0),
        0xE0 => (1_600_000, 2.5, 0.0),
        0x39 => (1_008_300_000, 1.0, 30.0),
        0x32 => (108_300_000, 1.0, 6.0),
        0x2F => (1_008_300_000, 1.0, 17.0),
        0x24 => (108_300_000, 1.0, 3.5),
        0x1E => (1_008_300_000, 1.0, 3.0),
        0x15 => (108_300_000, 1.0, 0.6),
        _ => return None,
    })
}

fn two_words(first: u16, second: u16) -> [u8; 6] {
    let [a, b, c] = word_with_crc(first);
    let [d, e, f] = word_with_crc(second);
    [a, b, c, d, e, f]
}

/// Runs one SHT4x command byte against the world.
fn sht4x_command(world: &mut SimWorld, command: u8) -> Result<(), i2c::ErrorKind> {
    if let Some((conversion_ns, noise_scale, heat_c)) = measurement_command(command) {
        let (t_ticks, rh_ticks) = world.measure_ticks(noise_scale, heat_c);
        world.sht4x = Sht4xState {
            response: Some(two_words(t_ticks, rh_ticks)),
            ready_at_ns: world.bus_ns.saturating_add(conversion_ns),
        };
        return Ok(());
    }
    match command {
        0x89 => {
            let serial = world.sensor_serial;
            let [b0, b1, b2, b3] = serial.to_be_bytes();
            world.sht4x = Sht4xState {
                response: Some(two_words(
                    u16::from_be_bytes([b0, b1]),
                    u16::from_be_bytes([b2, b3]),
                )),
                ready_at_ns: world.bus_ns,
            };
            Ok(())
        }
        0x94 => {
            world.sht4x = Sht4xState {
                response: None,
                ready_at_ns: world.bus_ns,
            };
            Ok(())
        }
        _ => Err(i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data)),
    }
}

/// Answers a read: the pending response, if ready, then 0xFF (an idle, pulled-up bus).
fn sht4x_read(world: &mut SimWorld, buffer: &mut [u8]) -> Result<(), i2c::ErrorKind> {
    let state = world.sht4x;
    match state.response {
        Some(response) if world.bus_ns >= state.ready_at_ns => {
            for (index, byte) in buffer.iter_mut().enumerate() {
                *byte = response.get(index).copied().unwrap_or(0xFF);
            }
            world.sht4x.response = None;
            Ok(())
        }
        // Still measuring, or nothing asked: the SHT4x does not acknowledge its read header.
        _ => Err(i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)),
    }
}

impl<W: WorldAccess> i2c::ErrorType for SimI2c<W> {
    type Error = i2c::ErrorKind;
}

impl<W: WorldAccess> I2c<SevenBitAddress> for SimI2c<W> {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        if address != SIM_SHT4X_ADDRESS {
            return Err(i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        self.world
            .with_world(|world| {
                for operation in operations.iter_mut() {
                    match operation {
                        Operation::Write(bytes) => match bytes {
                            [] => {}
                            [command] => sht4x_command(world, *command)?,
                            // Every SHT4x command is a single byte.
                            _ => {
                                return Err(i2c::ErrorKind::NoAcknowledge(
                                    NoAcknowledgeSource::Data,
                                ));
                            }
                        },
                        Operation::Read(buffer) => sht4x_read(world, buffer)?,
                    }
                }
                Ok(())
            })
            .unwrap_or(Err(i2c::ErrorKind::Other))
    }
}

impl<W: WorldAccess> DelayNs for SimDelay<W> {
    fn delay_ns(&mut self, ns: u32) {
        // A busy world only happens if a caller re-enters it from inside; nothing to wait for.
        let _ = self
            .world
            .with_world(|world| world.bus_ns = world.bus_ns.saturating_add(u64::from(ns)));
    }
}

impl<W: WorldAccess> serial::ErrorType for SimUart<W> {
    type Error = serial::ErrorKind;
}

impl<W: WorldAccess> serial::Read<u8> for SimUart<W> {
    fn read(&mut self) -> nb::Result<u8, Self::Error> {
        self.world
            .with_world(|world| {
                if world.uart_overrun {
                    world.uart_overrun = false;
                    return Err(nb::Error::Other(serial::ErrorKind::Overrun));
                }
                world.uart.pop_front().ok_or(nb::Error::WouldBlock)
            })
            .unwrap_or(Err(nb::Error::Other(serial::ErrorKind::Other)))
    }
}

impl<W: WorldAccess> digital::ErrorType for SimDoorPin<W> {
    type Error = digital::ErrorKind;
}

impl<W: WorldAccess> InputPin for SimDoorPin<W> {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        // Door open -> the normally-closed reed switch closes to ground -> low.
        self.world
            .with_world(|world| !world.truth_door_open())
            .ok_or(digital::ErrorKind::Other)
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.is_high().map(|high| !high)
    }
}

impl<W: WorldAccess> digital::ErrorType for SimShockPin<W> {
    type Error = digital::ErrorKind;
}

impl<W: WorldAccess> SimShockPin<W> {
    fn read_level(&mut self) -> Result<bool, digital::ErrorKind> {
        self.world
            .with_world(|world| {
                if world.shock_pin_high {
                    world.shock_pin_high = false;
                } else if world.shock_pending > 0 {
                    world.shock_pending -= 1;
                    world.shock_pin_high = true;
                }
                world.shock_pin_high
            })
            .ok_or(digital::ErrorKind::Other)
    }
}

impl<W: WorldAccess> InputPin for SimShockPin<W> {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        self.read_level()
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.read_level().map(|high| !high)
    }
}

impl<W: WorldAccess> BatteryMonitor for SimBattery<W> {
    fn battery_mv(&mut self) -> Result<u16, BatteryError> {
        self.world
            .with_world(SimWorld::measure_battery_mv)
            .ok_or(BatteryError::Conversion)
    }
}
