//! The device's provisioned identity and timing: what a [`crate::Logger`] needs besides its key.

use protocol::{DeviceId, KeyEpoch};

/// Identity and timing of one logger, fixed at provisioning (identity) or in its configuration
/// (timing). Times are milliseconds of the device's monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The id the device was provisioned with; it names the device's topics and every reading.
    pub device: DeviceId,
    /// The generation of the signing key handed to [`crate::Logger::boot`]; the backend uses it
    /// to find the public key that verifies the readings.
    pub key_epoch: KeyEpoch,
    /// Time between two samples. At least 1.
    pub sample_period_ms: u32,
    /// How long a published reading waits for its acknowledgement before it is published
    /// again. At least 1. A resend is harmless: the backend acknowledges an exact repeat and
    /// drops it.
    pub resend_after_ms: u32,
}

/// Why a [`DeviceConfig`] is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A zero period would make every instant a sampling instant.
    #[error("sample_period_ms must be at least 1")]
    ZeroSamplePeriod,
    /// A zero timeout would resend every reading on every uplink call, in a loop.
    #[error("resend_after_ms must be at least 1")]
    ZeroResendTimeout,
}

impl DeviceConfig {
    /// Checks the timing values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sample_period_ms == 0 {
            return Err(ConfigError::ZeroSamplePeriod);
        }
        if self.resend_after_ms == 0 {
            return Err(ConfigError::ZeroResendTimeout);
        }
        Ok(())
    }
}
