//! Device identity: the 8-byte id a device is provisioned with, written as 16 lowercase hex
//! digits in topics, manifests and the API.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// The identity of a device, assigned at provisioning. It does not change when the device's
/// key rotates (the key epoch does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(pub [u8; 8]);

/// Why a text device id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    #[error("a device id is 16 hex digits, got {0} characters")]
    WrongLength(usize),
    #[error("a device id is lowercase hex digits (0-9, a-f) only")]
    NotLowercaseHex,
}

impl DeviceId {
    /// Length of the text form.
    pub const TEXT_LEN: usize = 16;

    /// Writes the text form into `out` and returns it as a `&str`.
    pub fn write_hex<'b>(&self, out: &'b mut [u8; Self::TEXT_LEN]) -> &'b str {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(byte >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
        }
        // Only ASCII hex digits were written.
        core::str::from_utf8(out).unwrap_or_default()
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; Self::TEXT_LEN];
        f.write_str(self.write_hex(&mut buf))
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;

    /// Parses exactly 16 lowercase hex digits. Uppercase is refused so that one device has
    /// exactly one topic name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        if bytes.len() != Self::TEXT_LEN {
            return Err(DeviceIdError::WrongLength(bytes.len()));
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(DeviceIdError::NotLowercaseHex),
        };
        let mut id = [0u8; 8];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            id[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Self(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<DeviceId, DeviceIdError>) {
        assert_eq!(text.parse::<DeviceId>(), expected, "{text:?}");
    }

    #[test]
    fn text_form_round_trips_and_refuses_other_spellings() {
        let id = DeviceId([0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xef]);
        check("000123456789abef", Ok(id));
        let mut buf = [0; 16];
        assert_eq!(id.write_hex(&mut buf), "000123456789abef");
        check("000123456789ABEF", Err(DeviceIdError::NotLowercaseHex));
        check("0001234567894bef0", Err(DeviceIdError::WrongLength(17)));
        check("", Err(DeviceIdError::WrongLength(0)));
        check("000123456789abeg", Err(DeviceIdError::NotLowercaseHex));
        check("+/#0123456789abc", Err(DeviceIdError::NotLowercaseHex));
    }
}
