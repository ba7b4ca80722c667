//! Sensor data in events (EPCIS 2.0 §7.3.8, `sensorElementList`): the committed readings of
//! devices over a time window summarised as one `sensorElement` per device — temperature as
//! `gs1:Temperature` in `CEL` and relative humidity as `gs1:RelativeHumidity` in `A93` (the
//! unit the EPCIS 2.0 examples give relative humidity; the value is in percent), each with
//! `minValue`, `maxValue`, `meanValue` and the number of readings — ready to travel in an
//! `ObjectEvent` (`bizStep` `sensor_reporting`) through the ordinary capture path.
//!
//! The readings are ingest's committed readings ([`ingest::query::readings_between`]: a
//! binary search to the window's first reading, then the window in sequence order), each
//! decoded from the exact signed bytes the device sent, so the summary is of readings that are
//! themselves anchored in the log. A window is bounded ([`WINDOW_MS_MAX`]) and so is the work
//! per device ([`READINGS_SCANNED_MAX`]); readings are read [`WINDOW_CHUNK`] at a time, so a
//! summary holds one chunk in memory however many readings its window has.

use ingest::IngestStorage;
use ingest::query::{QueryError, WINDOW_READINGS_MAX, readings_between};
use protocol::{DeviceId, Reading};
use serde_json::{Value, json};
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
/// Readings of one device asked of the store at a time.
pub const WINDOW_CHUNK: usize = 10_000;

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The request is out of bounds (message says which).
    #[error("{0}")]
    Invalid(String),
    /// A device has more readings in the window than one summary reads.
    #[error(
        "device {0} has more than {READINGS_SCANNED_MAX} committed readings in the window; a summary reads at most that many"
    )]
    TooManyReadings(DeviceId),
    /// More of a device's readings carry one device time than one read takes, so the window
    /// cannot be walked past them (a device clock that stood still).
    #[error(
        "device {0} stamped {WINDOW_READINGS_MAX} or more readings with the same time; its clock stood still"
    )]
    ClockStuck(DeviceId),
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
    let limits = Limits {
        chunk: WINDOW_CHUNK,
        chunk_max: WINDOW_READINGS_MAX,
        readings_max: READINGS_SCANNED_MAX,
    };
    walk_window(device, from_ms, limits, |start_ms, limit| {
        let (rows, more) = readings_between(storage, device, start_ms, to_ms, limit)?;
        Ok((
            rows.into_iter()
                .map(|(stored, reading)| (stored.sequence.0, reading))
                .collect(),
            more,
        ))
    })
}

/// A chunk of a device's window: `(sequence, reading)` in sequence order from the first
/// reading stamped at or after the start asked for, and whether more remained.
type Chunk = (Vec<(u64, Reading)>, bool);

/// How a window is walked.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Readings asked for at a time.
    chunk: usize,
    /// The most asked for at once when one millisecond holds a whole chunk.
    chunk_max: usize,
    /// The most readings taken in all.
    readings_max: usize,
}

/// Folds a device's window into statistics, chunk by chunk: `fetch(start_ms, limit)` answers
/// at most `limit` readings from `start_ms` to the window's end. The next chunk starts at the
/// device time of the last reading taken (readings stamped in that same millisecond may
/// straddle two chunks) and skips the readings at or below the last sequence taken, so each
/// reading counts once. A chunk that brings nothing new (one millisecond holds all of it) is
/// asked again twice as large, up to `chunk_max`.
fn walk_window(
    device: DeviceId,
    from_ms: u64,
    limits: Limits,
    mut fetch: impl FnMut(u64, usize) -> Result<Chunk, QueryError>,
) -> Result<(Stats, Stats), SensorError> {
    let mut temperature = Stats::default();
    let mut humidity = Stats::default();
    let mut start_ms = from_ms;
    let mut last: Option<u64> = None;
    let mut taken = 0_usize;
    let mut limit = limits.chunk;
    loop {
        let (rows, more) = fetch(start_ms, limit)?;
        let mut progressed = false;
        for (sequence, reading) in rows {
            if last.is_some_and(|last| sequence <= last) {
                continue;
            }
            taken += 1;
            if taken > limits.readings_max {
                return Err(SensorError::TooManyReadings(device));
            }
            temperature.add(i64::from(reading.temperature_centi_c));
            humidity.add(i64::from(reading.humidity_centi_pct));
            last = Some(sequence);
            start_ms = reading.device_time_ms;
            progressed = true;
        }
        if !more {
            return Ok((temperature, humidity));
        }
        if progressed {
            limit = limits.chunk;
        } else if limit < limits.chunk_max {
            limit = (limit * 2).min(limits.chunk_max);
        } else {
            return Err(SensorError::ClockStuck(device));
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::{DoorState, KeyEpoch, SequenceNumber};

    use super::*;

    fn reading(sequence: u64, time_ms: u64, centi_c: i16) -> Reading {
        Reading {
            device: DeviceId([7; 8]),
            key_epoch: KeyEpoch(1),
            sequence: SequenceNumber(sequence),
            device_time_ms: time_ms,
            temperature_centi_c: centi_c,
            humidity_centi_pct: 8_000,
            position: None,
            door: DoorState::Closed,
            shock_events: 0,
            battery_mv: 3_600,
            dropped_samples: 0,
        }
    }

    /// A model of `readings_between` over `readings` (sorted by sequence, device times not
    /// decreasing): the readings from `start_ms` on, at most `chunk`.
    fn model(readings: &[Reading]) -> impl FnMut(u64, usize) -> Result<Chunk, QueryError> {
        let readings = readings.to_vec();
        move |start_ms, chunk| {
            let inside: Vec<(u64, Reading)> = readings
                .iter()
                .filter(|r| r.device_time_ms >= start_ms)
                .map(|r| (r.sequence.0, *r))
                .collect();
            let more = inside.len() > chunk;
            Ok((inside.into_iter().take(chunk).collect(), more))
        }
    }

    fn check_walk(readings: &[Reading], chunk: usize, expected: Result<(u64, i64, i64), &str>) {
        let limits = Limits {
            chunk,
            chunk_max: 8,
            readings_max: 1_000,
        };
        let got = walk_window(DeviceId([7; 8]), 0, limits, model(readings));
        match (got, expected) {
            (Ok((t, h)), Ok((count, min, max))) => {
                assert_eq!((t.count, t.min, t.max), (count, min, max), "chunk {chunk}");
                assert_eq!(h.count, count);
            }
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{e}"),
            (got, want) => panic!("chunk {chunk}: {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn a_window_walked_in_chunks_counts_each_reading_once() {
        // Ten readings, two of them stamped in the same millisecond as a neighbour.
        let times = [0, 10, 10, 20, 30, 40, 40, 50, 60, 70];
        let readings: Vec<Reading> = times
            .iter()
            .zip(0_u64..)
            .map(|(&t, s)| reading(s, t, i16::try_from(300 + s).expect("small")))
            .collect();
        for chunk in [1, 2, 3, 4, 10, 100] {
            check_walk(&readings, chunk, Ok((10, 300, 309)));
        }
        check_walk(&[], 3, Ok((0, 0, 0)));
        // More readings than the bound: refused, never truncated silently.
        let many: Vec<Reading> = (0..1_001).map(|s| reading(s, s * 10, 400)).collect();
        check_walk(&many, 100, Err("more than"));
        // A millisecond holding a whole chunk is read with larger chunks, up to a bound.
        let same_ms = |count: u64| -> Vec<Reading> {
            (0..count)
                .map(|s| reading(s, 100, 400))
                .chain([reading(count, 200, 500)])
                .collect()
        };
        check_walk(&same_ms(5), 2, Ok((6, 400, 500)));
        check_walk(&same_ms(7), 2, Ok((8, 400, 500)));
        check_walk(&same_ms(8), 2, Err("clock stood still"));
    }

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
