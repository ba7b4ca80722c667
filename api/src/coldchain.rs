//! The cold chain of a custody window (issue "Traceability API", item 5): what the devices that
//! travelled with the goods measured between two instants, against the product's storage band —
//! minimum, maximum, mean, the time spent outside the band, and each excursion with when it
//! began and ended, how far it went, which device saw it and where (when the device had a
//! position fix).
//!
//! Time is integrated sample-and-hold: a reading stands for the device's state until its next
//! reading, but for at most [`HOLD_MAX_MS`]; a longer silence is a gap, reported as such and
//! never counted as inside or outside the band. With several devices in one container, the
//! time outside is the union of their out-of-band stretches (two loggers seeing the same warm
//! hour count one hour), while excursions are listed per device.
//!
//! [`ColdChainCache`] remembers the cold chains of closed windows (shipments that arrived): a
//! trace of a lot asks for the same window again and again, and its answer changes only when
//! a reading of one of its devices is committed, which rewrites that device's
//! [`DeviceSeen`] record in the same durable transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use ingest::query::{QueryError, device_seen, readings_between};
use ingest::{DeviceSeen, IngestStorage};
use protocol::{DeviceId, Reading};
use serde::Serialize;

/// Longest stretch one reading stands for (15 minutes); devices report every few minutes.
pub const HOLD_MAX_MS: u64 = 15 * 60 * 1_000;
/// Most readings of one device taken into one window.
pub const DEVICE_READINGS_MAX: usize = 100_000;
/// Most cold chains a [`ColdChainCache`] keeps; it starts over when full.
pub const CACHED_CHAINS_MAX: usize = 1_024;

/// A storage temperature band, hundredths of a degree Celsius, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Band {
    /// Lowest allowed temperature.
    pub min_centi_c: i32,
    /// Highest allowed temperature.
    pub max_centi_c: i32,
}

impl Band {
    fn side(self, centi_c: i32) -> Option<Side> {
        if centi_c > self.max_centi_c {
            Some(Side::Above)
        } else if centi_c < self.min_centi_c {
            Some(Side::Below)
        } else {
            None
        }
    }
}

/// Which side of the band an excursion went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Warmer than the band.
    Above,
    /// Colder than the band.
    Below,
}

/// One measurement as the cold chain needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The device's sequence number of the reading.
    pub sequence: u64,
    /// Device time (Unix ms).
    pub time_ms: u64,
    /// Temperature, hundredths of °C.
    pub temperature_centi_c: i16,
    /// Relative humidity, hundredths of a percent.
    pub humidity_centi_pct: u16,
    /// Latitude and longitude in 1e-7 degrees, if the device had a fix.
    pub position: Option<(i32, i32)>,
}

impl From<&Reading> for Sample {
    fn from(reading: &Reading) -> Self {
        Self {
            sequence: reading.sequence.0,
            time_ms: reading.device_time_ms,
            temperature_centi_c: reading.temperature_centi_c,
            humidity_centi_pct: reading.humidity_centi_pct,
            position: reading.position.map(|p| (p.lat_e7, p.lon_e7)),
        }
    }
}

/// A stretch outside the band seen by one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excursion {
    /// The device that saw it.
    pub device: String,
    /// Warmer or colder.
    pub side: Side,
    /// Device time of the first reading outside the band (Unix ms).
    pub start_ms: u64,
    /// When it ended: the first reading back inside, or the last reading outside held for at
    /// most [`HOLD_MAX_MS`] (Unix ms).
    pub end_ms: u64,
    /// The most extreme temperature reached, hundredths of °C.
    pub peak_centi_c: i32,
    /// Sequence numbers of the first and last readings outside.
    pub sequences: [u64; 2],
    /// Where the device was when it began (degrees, WGS84), if it had a fix.
    pub position: Option<[f64; 2]>,
    /// Whether it was still going on at the end of the window.
    pub open: bool,
}

/// A silence longer than [`HOLD_MAX_MS`] of one device: between two readings, or between an
/// edge of the window and its first or last reading (the whole window when it sent none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Last reading before it (Unix ms).
    pub from_ms: u64,
    /// First reading after it (Unix ms).
    pub to_ms: u64,
}

/// One device's part of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceChain {
    /// The device.
    pub device: String,
    /// Readings in the window.
    pub readings: u64,
    /// Device time of its first and last reading in the window.
    pub first_ms: Option<u64>,
    /// See `first_ms`.
    pub last_ms: Option<u64>,
    /// Lowest temperature, hundredths of °C.
    pub min_centi_c: Option<i32>,
    /// Highest temperature, hundredths of °C.
    pub max_centi_c: Option<i32>,
    /// Mean of its readings, hundredths of °C.
    pub mean_centi_c: Option<f64>,
    /// Mean relative humidity, hundredths of a percent.
    pub mean_humidity_centi_pct: Option<f64>,
    /// Time it held a reading outside the band (ms).
    pub outside_ms: u64,
    /// Silences longer than [`HOLD_MAX_MS`].
    pub gaps: Vec<Gap>,
    /// Whether the window held more readings than were taken in.
    pub truncated: bool,
}

/// The cold chain of a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdChain {
    /// The window (Unix ms, from inclusive, to exclusive).
    pub from_ms: u64,
    /// See `from_ms`.
    pub to_ms: u64,
    /// The product's band, if it has one.
    pub band: Option<Band>,
    /// Readings in the window, all devices.
    pub readings: u64,
    /// Lowest temperature, hundredths of °C.
    pub min_centi_c: Option<i32>,
    /// Highest temperature, hundredths of °C.
    pub max_centi_c: Option<i32>,
    /// Mean of all readings, hundredths of °C.
    pub mean_centi_c: Option<f64>,
    /// Time outside the band: the union over devices (ms).
    pub outside_ms: u64,
    /// Every excursion, by start time.
    pub excursions: Vec<Excursion>,
    /// Each device's part.
    pub devices: Vec<DeviceChain>,
}

/// Accumulates one device's readings in device-time order.
struct DeviceRun {
    band: Option<Band>,
    device: String,
    window_start_ms: u64,
    window_end_ms: u64,
    chain: DeviceChain,
    sum_centi_c: i64,
    sum_humidity: u64,
    previous: Option<Sample>,
    open: Option<Excursion>,
    outside: Vec<(u64, u64)>,
    excursions: Vec<Excursion>,
}

impl DeviceRun {
    fn new(device: String, band: Option<Band>, window_start_ms: u64, window_end_ms: u64) -> Self {
        Self {
            band,
            chain: DeviceChain {
                device: device.clone(),
                readings: 0,
                first_ms: None,
                last_ms: None,
                min_centi_c: None,
                max_centi_c: None,
                mean_centi_c: None,
                mean_humidity_centi_pct: None,
                outside_ms: 0,
                gaps: Vec::new(),
                truncated: false,
            },
            device,
            window_start_ms,
            window_end_ms,
            sum_centi_c: 0,
            sum_humidity: 0,
            previous: None,
            open: None,
            outside: Vec::new(),
            excursions: Vec::new(),
        }
    }

    /// The end of what `sample` stands for, given the next reading's time (if any).
    fn held_until(&self, sample: &Sample, next_ms: Option<u64>) -> u64 {
        let held = sample.time_ms.saturating_add(HOLD_MAX_MS);
        next_ms
            .unwrap_or(self.window_end_ms)
            .min(held)
            .min(self.window_end_ms)
            .max(sample.time_ms)
    }

    fn push(&mut self, sample: Sample) {
        if let Some(previous) = self.previous {
            self.close_interval(&previous, Some(sample.time_ms));
            if sample.time_ms.saturating_sub(previous.time_ms) > HOLD_MAX_MS {
                self.chain.gaps.push(Gap {
                    from_ms: previous.time_ms,
                    to_ms: sample.time_ms,
                });
            }
        }
        let centi_c = i32::from(sample.temperature_centi_c);
        let chain = &mut self.chain;
        chain.readings += 1;
        chain.first_ms.get_or_insert(sample.time_ms);
        chain.last_ms = Some(sample.time_ms);
        chain.min_centi_c = Some(chain.min_centi_c.map_or(centi_c, |m| m.min(centi_c)));
        chain.max_centi_c = Some(chain.max_centi_c.map_or(centi_c, |m| m.max(centi_c)));
        self.sum_centi_c += i64::from(centi_c);
        self.sum_humidity += u64::from(sample.humidity_centi_pct);
        let side = self.band.and_then(|band| band.side(centi_c));
        match (&mut self.open, side) {
            (Some(open), Some(side)) if open.side == side => {
                open.sequences[1] = sample.sequence;
                open.peak_centi_c = match side {
                    Side::Above => open.peak_centi_c.max(centi_c),
                    Side::Below => open.peak_centi_c.min(centi_c),
                };
            }
            (_, side) => {
                if let Some(mut ended) = self.open.take() {
                    // Back inside (or over to the other side): it ended when this reading came.
                    ended.end_ms = ended.end_ms.max(
                        sample.time_ms.min(
                            self.previous
                                .map_or(sample.time_ms, |p| p.time_ms.saturating_add(HOLD_MAX_MS)),
                        ),
                    );
                    self.excursions.push(ended);
                }
                if let Some(side) = side {
                    self.open = Some(Excursion {
                        device: self.device.clone(),
                        side,
                        start_ms: sample.time_ms,
                        end_ms: sample.time_ms,
                        peak_centi_c: centi_c,
                        sequences: [sample.sequence, sample.sequence],
                        position: sample
                            .position
                            .map(|(lat, lon)| [f64::from(lat) / 1e7, f64::from(lon) / 1e7]),
                        open: false,
                    });
                }
            }
        }
        self.previous = Some(sample);
    }

    /// Accounts for what `sample` stands for, up to `next_ms` (the next reading) or the
    /// window's end.
    fn close_interval(&mut self, sample: &Sample, next_ms: Option<u64>) {
        let until = self.held_until(sample, next_ms);
        let outside = self
            .band
            .and_then(|band| band.side(i32::from(sample.temperature_centi_c)))
            .is_some();
        if outside && until > sample.time_ms {
            self.chain.outside_ms += until - sample.time_ms;
            match self.outside.last_mut() {
                Some(last) if last.1 >= sample.time_ms => last.1 = last.1.max(until),
                _ => self.outside.push((sample.time_ms, until)),
            }
            if let Some(open) = &mut self.open {
                open.end_ms = open.end_ms.max(until);
            }
        }
    }

    fn finish(mut self) -> (DeviceChain, Vec<Excursion>, Vec<(u64, u64)>) {
        if let Some(last) = self.previous {
            self.close_interval(&last, None);
        }
        // Silences at the edges of the window count too: a logger started late, stopped
        // early or never heard from has not shown the goods were kept in their band.
        let (start, end) = (self.window_start_ms, self.window_end_ms);
        match (self.chain.first_ms, self.chain.last_ms) {
            (Some(first), Some(last)) => {
                if first.saturating_sub(start) > HOLD_MAX_MS {
                    self.chain.gaps.insert(
                        0,
                        Gap {
                            from_ms: start,
                            to_ms: first,
                        },
                    );
                }
                if end.saturating_sub(last) > HOLD_MAX_MS {
                    self.chain.gaps.push(Gap {
                        from_ms: last,
                        to_ms: end,
                    });
                }
            }
            _ if end > start => self.chain.gaps.push(Gap {
                from_ms: start,
                to_ms: end,
            }),
            _ => {}
        }
        if let Some(mut open) = self.open.take() {
            open.open = self
                .previous
                .is_some_and(|p| p.time_ms.saturating_add(HOLD_MAX_MS) >= self.window_end_ms);
            self.excursions.push(open);
        }
        if self.chain.readings > 0 {
            // Sums of at most DEVICE_READINGS_MAX values fit f64's 53-bit mantissa exactly.
            #[allow(clippy::cast_precision_loss)]
            let n = self.chain.readings as f64;
            #[allow(clippy::cast_precision_loss)]
            let (sum_c, sum_h) = (self.sum_centi_c as f64, self.sum_humidity as f64);
            self.chain.mean_centi_c = Some(sum_c / n);
            self.chain.mean_humidity_centi_pct = Some(sum_h / n);
        }
        (self.chain, self.excursions, self.outside)
    }
}

/// The cold chain of `samples` (per device, each in device-time order) in `from_ms..to_ms`
/// against `band`.
#[must_use]
pub fn summarise(
    from_ms: u64,
    to_ms: u64,
    band: Option<Band>,
    samples: &BTreeMap<String, (Vec<Sample>, bool)>,
) -> ColdChain {
    let mut chain = ColdChain {
        from_ms,
        to_ms,
        band,
        readings: 0,
        min_centi_c: None,
        max_centi_c: None,
        mean_centi_c: None,
        outside_ms: 0,
        excursions: Vec::new(),
        devices: Vec::new(),
    };
    let mut intervals = Vec::new();
    let mut weighted_sum = 0.0;
    for (device, (device_samples, truncated)) in samples {
        let mut run = DeviceRun::new(device.clone(), band, from_ms, to_ms);
        for sample in device_samples
            .iter()
            .filter(|s| (from_ms..to_ms).contains(&s.time_ms))
        {
            run.push(*sample);
        }
        let (mut device_chain, excursions, outside) = run.finish();
        device_chain.truncated = *truncated;
        chain.readings += device_chain.readings;
        chain.min_centi_c = option_min(chain.min_centi_c, device_chain.min_centi_c);
        chain.max_centi_c = option_max(chain.max_centi_c, device_chain.max_centi_c);
        if let Some(mean) = device_chain.mean_centi_c {
            // Reading counts are at most DEVICE_READINGS_MAX per device.
            #[allow(clippy::cast_precision_loss)]
            let n = device_chain.readings as f64;
            weighted_sum += mean * n;
        }
        chain.excursions.extend(excursions);
        intervals.extend(outside);
        chain.devices.push(device_chain);
    }
    if chain.readings > 0 {
        #[allow(clippy::cast_precision_loss)]
        let n = chain.readings as f64;
        chain.mean_centi_c = Some(weighted_sum / n);
    }
    chain.outside_ms = union_length(&mut intervals);
    chain
        .excursions
        .sort_by(|a, b| (a.start_ms, &a.device).cmp(&(b.start_ms, &b.device)));
    chain
}

fn option_min(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn option_max(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Total length of the union of half-open intervals.
fn union_length(intervals: &mut [(u64, u64)]) -> u64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(u64, u64)> = None;
    for &(start, end) in intervals.iter() {
        match &mut current {
            Some((_, current_end)) if start <= *current_end => {
                *current_end = (*current_end).max(end);
            }
            _ => {
                if let Some((s, e)) = current {
                    total += e - s;
                }
                current = Some((start, end));
            }
        }
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total
}

/// The cold chain of `devices` in `from_ms..to_ms` from the committed readings in `storage`.
///
/// # Errors
/// [`QueryError`] if storage fails or a record is corrupt.
pub fn cold_chain<S: IngestStorage>(
    storage: &S,
    devices: &[DeviceId],
    from_ms: u64,
    to_ms: u64,
    band: Option<Band>,
) -> Result<ColdChain, QueryError> {
    let mut samples = BTreeMap::new();
    for device in devices {
        let (readings, truncated) =
            readings_between(storage, *device, from_ms, to_ms, DEVICE_READINGS_MAX)?;
        let mut device_samples: Vec<Sample> = readings.iter().map(|(_, r)| r.into()).collect();
        device_samples.sort_by_key(|s| (s.time_ms, s.sequence));
        samples.insert(device.to_string(), (device_samples, truncated));
    }
    Ok(summarise(from_ms, to_ms, band, &samples))
}

/// What a remembered cold chain answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Window {
    devices: Vec<DeviceId>,
    from_ms: u64,
    to_ms: u64,
    band: Option<Band>,
}

/// A remembered cold chain and what ingest had committed of its devices when it was read.
#[derive(Debug)]
struct Remembered {
    seen: Vec<Option<DeviceSeen>>,
    chain: Arc<ColdChain>,
}

/// Cold chains of closed windows, each valid while no reading of its devices is committed
/// (see the module documentation). Cheap to clone: clones share the map.
#[derive(Debug, Clone, Default)]
pub struct ColdChainCache {
    chains: Arc<Mutex<HashMap<Window, Remembered>>>,
}

impl ColdChainCache {
    /// [`cold_chain`], remembered when the window is `closed` (its end is a recorded arrival,
    /// not "now"), and answered from memory while each device's last commit is the one it was
    /// computed after.
    ///
    /// # Errors
    /// [`QueryError`] if storage fails or a record is corrupt.
    pub fn cold_chain<S: IngestStorage>(
        &self,
        storage: &S,
        devices: &[DeviceId],
        from_ms: u64,
        to_ms: u64,
        band: Option<Band>,
        closed: bool,
    ) -> Result<ColdChain, QueryError> {
        if !closed {
            return cold_chain(storage, devices, from_ms, to_ms, band);
        }
        // Read before the readings: a reading committed after this line rewrites its device's
        // record, so a chain remembered under these records never hides it (at worst the
        // chain below already holds it and is recomputed once more).
        let seen = devices
            .iter()
            .map(|device| device_seen(storage, *device))
            .collect::<Result<Vec<_>, _>>()?;
        let window = Window {
            devices: devices.to_vec(),
            from_ms,
            to_ms,
            band,
        };
        {
            let chains = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(remembered) = chains.get(&window)
                && remembered.seen == seen
            {
                return Ok(ColdChain::clone(&remembered.chain));
            }
        }
        let chain = cold_chain(storage, devices, from_ms, to_ms, band)?;
        let mut chains = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
        if chains.len() >= CACHED_CHAINS_MAX {
            chains.clear();
        }
        chains.insert(
            window,
            Remembered {
                seen,
                chain: Arc::new(chain.clone()),
            },
        );
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn sample(sequence: u64, minute: u64, centi_c: i16) -> Sample {
        Sample {
            sequence,
            time_ms: minute * MIN,
            temperature_centi_c: centi_c,
            humidity_centi_pct: 9_000,
            position: Some((-230_000_000, 1_131_000_000)),
        }
    }

    fn band() -> Option<Band> {
        Some(Band {
            min_centi_c: 1_000,
            max_centi_c: 1_300,
        })
    }

    fn one(device: &str, samples: Vec<Sample>) -> BTreeMap<String, (Vec<Sample>, bool)> {
        BTreeMap::from([(device.to_owned(), (samples, false))])
    }

    #[test]
    fn an_excursion_is_measured_from_its_first_reading_outside_to_the_first_back_inside() {
        // Every 5 minutes: 12 °C, then 15 °C for three readings, then back to 12 °C.
        let temps = [1_200, 1_200, 1_500, 1_600, 1_500, 1_200, 1_200];
        let samples = temps
            .iter()
            .zip(0..)
            .map(|(t, i)| sample(i, i * 5, *t))
            .collect();
        let chain = summarise(0, 35 * MIN, band(), &one("d1", samples));
        assert_eq!(chain.readings, 7);
        assert_eq!(chain.min_centi_c, Some(1_200));
        assert_eq!(chain.max_centi_c, Some(1_600));
        assert_eq!(chain.outside_ms, 15 * MIN);
        assert_eq!(chain.excursions.len(), 1);
        let excursion = &chain.excursions[0];
        assert_eq!(excursion.side, Side::Above);
        assert_eq!((excursion.start_ms, excursion.end_ms), (10 * MIN, 25 * MIN));
        assert_eq!(excursion.peak_centi_c, 1_600);
        assert_eq!(excursion.sequences, [2, 4]);
        assert_eq!(excursion.position, Some([-23.0, 113.1]));
        assert!(!excursion.open);
        let mean = chain.mean_centi_c.expect("mean");
        assert!((mean - 9_400.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_silence_is_a_gap_not_time_outside_and_an_excursion_at_the_end_stays_open() {
        let samples = vec![sample(0, 0, 1_500), sample(1, 60, 1_500)];
        let chain = summarise(0, 70 * MIN, band(), &one("d1", samples));
        // Each reading stands for 15 minutes at most; the last one up to the window's end.
        assert_eq!(chain.outside_ms, 15 * MIN + 10 * MIN);
        assert_eq!(
            chain.devices[0].gaps,
            vec![Gap {
                from_ms: 0,
                to_ms: 60 * MIN
            }]
        );
        assert_eq!(chain.excursions.len(), 1, "one run of readings outside");
        assert!(chain.excursions[0].open);
    }

    #[test]
    fn two_devices_seeing_the_same_warm_stretch_count_it_once() {
        let warm = |d: u64| {
            vec![
                sample(d, 0, 1_200),
                sample(d + 1, 5, 1_500),
                sample(d + 2, 10, 1_200),
            ]
        };
        let mut samples = one("a", warm(0));
        samples.insert("b".to_owned(), (warm(10), false));
        let chain = summarise(0, 15 * MIN, band(), &samples);
        assert_eq!(chain.outside_ms, 5 * MIN);
        assert_eq!(
            chain.devices.iter().map(|d| d.outside_ms).sum::<u64>(),
            10 * MIN
        );
        assert_eq!(chain.excursions.len(), 2);
    }

    #[test]
    fn cold_and_warm_excursions_are_told_apart_and_no_band_means_none() {
        let samples = vec![sample(0, 0, 500), sample(1, 5, 1_500), sample(2, 10, 1_200)];
        let chain = summarise(0, 15 * MIN, band(), &one("d", samples.clone()));
        let sides: Vec<Side> = chain.excursions.iter().map(|e| e.side).collect();
        assert_eq!(sides, vec![Side::Below, Side::Above]);
        assert_eq!(chain.excursions[0].end_ms, 5 * MIN);
        let unbanded = summarise(0, 15 * MIN, None, &one("d", samples));
        assert!(unbanded.excursions.is_empty());
        assert_eq!(unbanded.outside_ms, 0);
        assert_eq!(unbanded.readings, 3);
    }

    #[test]
    fn silences_at_the_edges_of_the_window_are_gaps() {
        let late = vec![sample(0, 60, 1_200), sample(1, 65, 1_200)];
        let chain = summarise(0, 120 * MIN, band(), &one("d", late));
        assert_eq!(
            chain.devices[0].gaps,
            vec![
                Gap {
                    from_ms: 0,
                    to_ms: 60 * MIN
                },
                Gap {
                    from_ms: 65 * MIN,
                    to_ms: 120 * MIN
                }
            ]
        );
        let silent = summarise(0, 120 * MIN, band(), &one("d", Vec::new()));
        assert_eq!(
            silent.devices[0].gaps,
            vec![Gap {
                from_ms: 0,
                to_ms: 120 * MIN
            }]
        );
        let on_time = vec![sample(0, 5, 1_200), sample(1, 15, 1_200)];
        let chain = summarise(0, 25 * MIN, band(), &one("d", on_time));
        assert!(
            chain.devices[0].gaps.is_empty(),
            "{:?}",
            chain.devices[0].gaps
        );
    }

    #[test]
    fn readings_outside_the_window_are_left_out() {
        let samples = vec![
            sample(0, 0, 1_500),
            sample(1, 5, 1_200),
            sample(2, 20, 1_500),
        ];
        let chain = summarise(5 * MIN, 20 * MIN, band(), &one("d", samples));
        assert_eq!(chain.readings, 1);
        assert_eq!(chain.outside_ms, 0);
    }
}
