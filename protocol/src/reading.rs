//! One sensor reading as the device measured it. This is the signed body: every field here is
//! covered by the device's signature.

use serde::{Deserialize, Serialize};

use crate::DeviceId;

/// Which generation of the device's key signed a reading. Incremented on every rotation, so
/// the backend can find the key that was valid for the reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyEpoch(pub u32);

/// A device's monotonic reading counter. Never reused, also across reboots (the firmware
/// reserves ranges ahead in non-volatile storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SequenceNumber(pub u64);

/// A WGS84 position in units of 1e-7 degrees (about 1 cm at the equator), as GNSS receivers
/// report it; integers keep the encoding exact and deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeoPosition {
    pub lat_e7: i32,
    pub lon_e7: i32,
}

impl GeoPosition {
    /// Whether the coordinates are on the globe.
    pub fn is_valid(&self) -> bool {
        (-900_000_000..=900_000_000).contains(&self.lat_e7)
            && (-1_800_000_000..=1_800_000_000).contains(&self.lon_e7)
    }
}

/// State of the container or cold-room door at sampling time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DoorState {
    Closed,
    Open,
}

/// One signed measurement of a cold-chain logger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reading {
    pub device: DeviceId,
    pub key_epoch: KeyEpoch,
    pub sequence: SequenceNumber,
    /// The device's clock, Unix time in milliseconds. The backend records its own time beside
    /// it and flags readings whose device clock is far off.
    pub device_time_ms: u64,
    /// Temperature in hundredths of a degree Celsius.
    pub temperature_centi_c: i16,
    /// Relative humidity in hundredths of a percent, 0..=10000.
    pub humidity_centi_pct: u16,
    /// Last GNSS fix, if the receiver has one.
    pub position: Option<GeoPosition>,
    pub door: DoorState,
    /// Shock-switch triggers since the previous reading (saturating).
    pub shock_events: u16,
    pub battery_mv: u16,
    /// Readings evicted from the device's outbox before they were acknowledged since the
    /// previous reading was recorded, including counts carried by evicted readings (an
    /// evicted reading's own `dropped_samples` moves on to the next reading), so that a gap
    /// in sequence numbers is signed and visible and the counts of the readings delivered
    /// add up to the readings lost.
    pub dropped_samples: u32,
}

impl Reading {
    /// The first field that is out of its physical range, if any.
    pub fn out_of_range_field(&self) -> Option<&'static str> {
        if self.humidity_centi_pct > 10_000 {
            return Some("humidity_centi_pct");
        }
        if let Some(position) = self.position
            && !position.is_valid()
        {
            return Some("position");
        }
        None
    }
}
