//! Battery voltage, behind a small trait because embedded-hal 1.0 has no ADC abstraction.
//!
//! A board implements [`BatteryMonitor`] over its own ADC HAL: switch on the divider, convert,
//! scale to millivolts, switch the divider off again (a permanent divider would drain more than
//! the sleeping MCU, see the power budget in the crate README).

/// Why a battery voltage could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BatteryError {
    /// The ADC conversion failed or timed out.
    #[error("the battery ADC conversion failed")]
    Conversion,
    /// The converted value is outside what the divider and battery can produce.
    #[error("the battery reading {mv} mV is outside the plausible range")]
    Implausible {
        /// The rejected value in millivolts.
        mv: u16,
    },
}

/// Something that can measure the battery voltage.
pub trait BatteryMonitor {
    /// The battery voltage in millivolts.
    fn battery_mv(&mut self) -> Result<u16, BatteryError>;
}

impl<T: BatteryMonitor + ?Sized> BatteryMonitor for &mut T {
    fn battery_mv(&mut self) -> Result<u16, BatteryError> {
        (**self).battery_mv()
    }
}
