//! The door contact and the shock switch, read through embedded-hal `InputPin`s.
//!
//! Wiring (see the crate README): the door uses a normally-closed reed switch to ground with the
//! magnet on the door leaf, so a closed door holds the switch open and draws no current; the pin
//! reads low when the door opens. The shock switch is normally open to the supply with a
//! pull-down, so the pin reads high while a shock closes it.
//!
//! A shock closure lasts milliseconds. The portable [`ShockCounter`] counts rising edges seen by
//! polling; on hardware, call [`ShockCounter::poll`] from the pin's edge interrupt (or put a
//! latch or a timer's external-clock counter in front) so no closure is missed between samples.

use embedded_hal::digital::{self, InputPin};

/// Most pin reads one [`ShockCounter::poll`] makes.
pub const SHOCK_READS_PER_POLL_MAX: u16 = 256;

/// Which pin level means "active" (door open, shock switch closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActiveLevel {
    /// Active when the pin reads high.
    High,
    /// Active when the pin reads low.
    Low,
}

/// Why an input pin could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum InputError {
    /// The GPIO read failed.
    #[error("GPIO read failed: {0}")]
    Pin(digital::ErrorKind),
}

fn read_active<P: InputPin>(pin: &mut P, level: ActiveLevel) -> Result<bool, InputError> {
    let result = match level {
        ActiveLevel::High => pin.is_high(),
        ActiveLevel::Low => pin.is_low(),
    };
    result.map_err(|error| InputError::Pin(digital::Error::kind(&error)))
}

/// The container door contact.
#[derive(Debug)]
pub struct DoorSensor<P> {
    pin: P,
    open_level: ActiveLevel,
}

impl<P: InputPin> DoorSensor<P> {
    /// A door contact whose pin reads `open_level` while the door is open.
    pub fn new(pin: P, open_level: ActiveLevel) -> Self {
        Self { pin, open_level }
    }

    /// Whether the door is open now (one pin read).
    pub fn is_open(&mut self) -> Result<bool, InputError> {
        read_active(&mut self.pin, self.open_level)
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}

/// Counts shock-switch closures (inactive-to-active edges) between samples.
#[derive(Debug)]
pub struct ShockCounter<P> {
    pin: P,
    active_level: ActiveLevel,
    was_active: bool,
    count: u16,
}

impl<P: InputPin> ShockCounter<P> {
    /// A counter on `pin`, which reads `active_level` while the switch is closed.
    pub fn new(pin: P, active_level: ActiveLevel) -> Self {
        Self {
            pin,
            active_level,
            was_active: false,
            count: 0,
        }
    }

    /// Reads the pin until it has read inactive twice in a row (or
    /// [`SHOCK_READS_PER_POLL_MAX`] times), counting every inactive-to-active edge; returns the
    /// edges counted by this call.
    ///
    /// On an idle line this is two reads. A switch stuck closed counts once, not per read.
    pub fn poll(&mut self) -> Result<u16, InputError> {
        let mut edges: u16 = 0;
        let mut inactive_run: u8 = 0;
        for _ in 0..SHOCK_READS_PER_POLL_MAX {
            let active = read_active(&mut self.pin, self.active_level)?;
            if active && !self.was_active {
                edges = edges.saturating_add(1);
            }
            self.was_active = active;
            if active {
                inactive_run = 0;
            } else {
                inactive_run += 1;
                if inactive_run >= 2 {
                    break;
                }
            }
        }
        self.count = self.count.saturating_add(edges);
        Ok(edges)
    }

    /// Closures counted since the previous call (saturating at `u16::MAX`); restarts the count.
    pub fn take(&mut self) -> u16 {
        core::mem::take(&mut self.count)
    }

    /// Closures counted so far, without restarting the count.
    pub fn pending(&self) -> u16 {
        self.count
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}
