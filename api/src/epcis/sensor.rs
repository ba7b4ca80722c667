//! Sensor data in events (EPCIS 2.0 §7.3.8, `sensorElementList`): the committed readings of
//! devices over a time window summarised as one `sensorElement` per device — temperature as
//! `gs1:Temperature` in `CEL` and relative humidity as `gs1:RelativeHumidity` in `A93` (the
//! unit the EPCIS 2.0 examples give relative humidity; the value is in percent), each with
//! `minValue`, `maxValue`, `meanValue` and the number of readings — ready to travel in an
//! `ObjectEvent` (`bizStep` `sensor_reporting`) through the ordinary capture path.
//!
//! The readings come from ingest's committed readings table (device ‖ sequence, see
//! `ingest::records`), each decoded from the exact signed bytes the device sent, so the
//! summary is of readings that are themselves anchored in the log. A window is bounded
//! ([`WINDOW_MS_MAX`]) and so is the work per device ([`READINGS_SCANNED_MAX`]).

use ingest::IngestStorage;
use ingest::query::{QueryError, reading};
use protocol::{DeviceId, SequenceNumber, SignedReading};
use serde_json::{Value, json};

/// Ingest's committed readings table (`ingest::records`: key device(8) ‖ sequence(8)).
const READINGS_TABLE: &str = "ingest_readings";
/// The namespace of this node's EPCIS extension fields (`agritrace:readingCount`).
pub const EXTENSION_NAMESPACE: &str = "urn:agritrace:epcis:";
/// How the values were computed (`sensorMetadata.dataProcessingMethod`).
pub const PROCESSING_METHOD: &str = "urn:agritrace:epcis:summary:min-max-mean:v1";
/// Most devices in one summary.
pub const DEVICES_MAX: usize = 64;
/// Longest window summarised: 400 days.
pub const WINDOW_MS_MAX: u64 = 400 * 86_400_000;
/// Most readings of one device read for one summary.
pub const READINGS_SCANNED_MAX: usize = 500_000;
const SCAN_CHUNK: usize = 1_024;

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The request is out of bounds (message says which).
    #[error("{0}")]
    Invalid(String),
    /// A device has more readings than one summary reads.
    #[error(
        "device {0} has more than {READINGS_SCANNED_MAX} committed readings; a summary reads at most that many"
    )]
    TooManyReadings(DeviceId),
    /// Storage failed or a record is corrupt.
    #[error("reading the committed readings failed")]
    Query(#[from] QueryError),
}

/// The URI naming a device in `sensorMetadata.deviceID`.
#[must_use]
pub fn device_uri(device: DeviceId) -> String {
    format!("urn:agritrace:device:{device}")
}

#[derive(Debug, Default)]
struct Stats {
    count: u64,
    min: i64,
    max: i64,
    sum: i64,
}

impl Stats {
    fn add(&mut self, value: i64) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        self.sum += value;
    }

    /// Values in hundredths; the report in units (two decimals).
    fn report(&self, measurement: &str, uom: &str) -> Value {
        // Hundredths of a unit from i16/u16 readings: exact in f64.
        #[allow(clippy::cast_precision_loss)]
        let unit = |centi: i64| (centi as f64) / 100.0;
        #[allow(clippy::cast_precision_loss)]
        let mean = (self.sum as f64 / self.count as f64).round() / 100.0;
        json!({
            "type": measurement,
            "uom": uom,
            "minValue": unit(self.min),
            "maxValue": unit(self.max),
            "meanValue": mean,
            "agritrace:readingCount": self.count,
        })
    }
}

fn rfc3339(ms: u64) -> Option<String> {
    let unix_ms = i64::try_from(ms).ok()?;
    gs1::epcis::canon::Timestamp { unix_ms }.to_utc_millis_string()
}

/// The `sensorElementList` of the committed readings of `devices` whose device time is in
/// `from_ms..to_ms`: one element per device that has readings there (devices without are
/// left out; an empty list means none had any).
///
/// # Errors
/// [`SensorError`] for a window or device list out of bounds, a device with too many
/// readings, or a storage failure.
pub fn sensor_summary<S: IngestStorage>(
    storage: &S,
    devices: &[DeviceId],
    from_ms: u64,
    to_ms: u64,
) -> Result<Value, SensorError> {
    if devices.is_empty() || devices.len() > DEVICES_MAX {
        return Err(SensorError::Invalid(format!(
            "devices: 1 to {DEVICES_MAX} devices"
        )));
    }
    if from_ms >= to_ms || to_ms - from_ms > WINDOW_MS_MAX {
        return Err(SensorError::Invalid(format!(
            "the window must start before it ends and span at most {} days",
            WINDOW_MS_MAX / 86_400_000
        )));
    }
    let (Some(start), Some(end)) = (rfc3339(from_ms), rfc3339(to_ms)) else {
        return Err(SensorError::Invalid(
            "the window is outside the years 0000-9999".to_owned(),
        ));
    };
    let mut elements = Vec::new();
    let mut seen = Vec::new();
    for &device in devices {
        if seen.contains(&device) {
            continue;
        }
        seen.push(device);
        let (temperature, humidity) = device_stats(storage, device, from_ms, to_ms)?;
        if temperature.count == 0 {
            continue;
        }
        elements.push(json!({
            "sensorMetadata": {
                "deviceID": device_uri(device),
                "startTime": start,
                "endTime": end,
                "dataProcessingMethod": PROCESSING_METHOD,
            },
            "sensorReport": [
                temperature.report("gs1:Temperature", "CEL"),
                humidity.report("gs1:RelativeHumidity", "A93"),
            ],
        }));
    }
    Ok(Value::Array(elements))
}

fn device_stats<S: IngestStorage>(
    storage: &S,
    device: DeviceId,
    from_ms: u64,
    to_ms: u64,
) -> Result<(Stats, Stats), SensorError> {
    let mut temperature = Stats::default();
    let mut humidity = Stats::default();
    let mut from = device.0.to_vec();
    from.extend_from_slice(&[0; 8]);
    let mut to = device.0.to_vec();
    to.extend_from_slice(&[0xff; 9]);
    let mut scanned = 0;
    loop {
        let rows = storage
            .scan(READINGS_TABLE, &from, &to, SCAN_CHUNK)
            .map_err(QueryError::from)?;
        scanned += rows.len();
        if scanned > READINGS_SCANNED_MAX {
            return Err(SensorError::TooManyReadings(device));
        }
        for (key, _) in &rows {
            let Some(sequence) = key
                .get(8..16)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            let Some(stored) = reading(storage, device, SequenceNumber(sequence))? else {
                continue;
            };
            // Committed readings were verified before they were stored; one that no longer
            // decodes is skipped rather than failing the whole summary.
            let Ok(signed) = SignedReading::decode(&stored.signed) else {
                tracing::warn!(%device, sequence, "a committed reading does not decode");
                continue;
            };
            let r = signed.reading();
            if (from_ms..to_ms).contains(&r.device_time_ms) {
                temperature.add(i64::from(r.temperature_centi_c));
                humidity.add(i64::from(r.humidity_centi_pct));
            }
        }
        match rows.last() {
            Some((last, _)) if rows.len() == SCAN_CHUNK => {
                from = last.clone();
                from.push(0);
            }
            _ => return Ok((temperature, humidity)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_min_max_and_a_rounded_mean() {
        let mut s = Stats::default();
        for v in [350, 351, 352] {
            s.add(v);
        }
        let report = s.report("gs1:Temperature", "CEL");
        assert_eq!(report["minValue"], 3.5);
        assert_eq!(report["maxValue"], 3.52);
        assert_eq!(report["meanValue"], 3.51);
        assert_eq!(report["agritrace:readingCount"], 3);
        let mut negative = Stats::default();
        negative.add(-1_850);
        negative.add(-1_700);
        let report = negative.report("gs1:Temperature", "CEL");
        assert_eq!(report["minValue"], -18.5);
        assert_eq!(report["meanValue"], -17.75);
    }
}
