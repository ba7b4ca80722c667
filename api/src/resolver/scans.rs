//! Scan counts of serialised keys (`/01/{gtin}[/10/{lot}]/21/{serial}`): every resolver GET of
//! one counts a scan (its time, the client's address prefix, the primary language tag of its
//! `Accept-Language`), so that a consumer page can warn when a code is scanned unusually often
//! or from many places: a copied label shows up that way.
//!
//! Nothing is written on the request path. Scans accumulate in a bounded in-memory map
//! ([`PENDING_KEYS_MAX`] keys; a scan of a new key beyond that is dropped and counted in
//! [`ScanCounter::dropped`]) that a background task folds into the store in one transaction
//! at most every [`FLUSH_PERIOD_MS`], and once more on shutdown. A crash loses at most the
//! scans of the last period, which is acceptable for a warning sign, not evidence.
//!
//! Only an address prefix is kept, never an address: IPv4 /24, IPv6 /48 (an IPv4-mapped
//! IPv6 address counts as IPv4).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gs1::{Gtin, Serial};
use ingest::IngestStorage;
use ledger::storage::SidecarRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Scan records by `gtin14 0x00 serial`.
pub const SCANS: &str = "resolver_scans";
/// Most keys with scans waiting for the next flush.
pub const PENDING_KEYS_MAX: usize = 100_000;
/// Time between flushes of pending scans to the store.
pub const FLUSH_PERIOD_MS: u64 = 1_000;
/// Distinct address prefixes kept per key (the count of scans is always exact).
pub const PREFIXES_KEPT_MAX: usize = 64;
/// Distinct languages kept per key.
pub const LANGUAGES_KEPT_MAX: usize = 32;
/// A key scanned from more distinct address prefixes than this is suspicious.
pub const SUSPICIOUS_PREFIXES: usize = 5;

/// The store key of a serialised item's scans.
#[must_use]
pub fn scan_key(gtin: Gtin, serial: &Serial) -> Vec<u8> {
    let mut key = gtin.digits().into_bytes();
    key.push(0);
    key.extend_from_slice(serial.as_str().as_bytes());
    key
}

/// The prefix an address is counted under: `a.b.c.0/24` or the first 48 bits of IPv6 `/48`.
#[must_use]
pub fn address_prefix(address: IpAddr) -> String {
    let v4_prefix = |v4: std::net::Ipv4Addr| {
        let [a, b, c, _] = v4.octets();
        format!("{a}.{b}.{c}.0/24")
    };
    match address {
        IpAddr::V4(v4) => v4_prefix(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_prefix(v4),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

/// The primary language subtag of the first language range of an `Accept-Language` header
/// (RFC 9110 §12.5.4, RFC 5646 §2.2.1: 2 to 8 letters), lower case; `None` for `*`, an empty
/// header or anything else.
#[must_use]
pub fn primary_language(accept_language: &str) -> Option<String> {
    let first = accept_language.split(',').next()?.split(';').next()?.trim();
    let primary = first.split('-').next()?;
    ((2..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| primary.to_ascii_lowercase())
}

/// One scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// When (Unix ms).
    pub at_ms: u64,
    /// The client's address prefix ([`address_prefix`]).
    pub prefix: String,
    /// The primary language the client asked for ([`primary_language`]).
    pub language: Option<String>,
}

/// What is known about the scans of one serialised item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Scans counted.
    pub count: u64,
    /// The first scan (Unix ms).
    pub first_ms: u64,
    /// The latest scan (Unix ms).
    pub last_ms: u64,
    /// Distinct client address prefixes, at most [`PREFIXES_KEPT_MAX`].
    pub prefixes: BTreeSet<String>,
    /// Whether more prefixes were seen than are kept.
    pub prefixes_capped: bool,
    /// Distinct primary languages, at most [`LANGUAGES_KEPT_MAX`].
    pub languages: BTreeSet<String>,
    /// Whether more languages were seen than are kept.
    pub languages_capped: bool,
}

/// The rule [`ScanRecord::suspicious`] applies, in words (served with the flag).
pub const SUSPICIOUS_RULE: &str = "scans from more than 5 distinct client address prefixes \
     (IPv4 /24, IPv6 /48): a genuine pack is scanned by a few people; a copied code is scanned \
     far apart (the count alone is not used: anyone can repeat a request)";

fn insert_capped(set: &mut BTreeSet<String>, capped: &mut bool, value: &str, max: usize) {
    if set.contains(value) {
        return;
    }
    if set.len() < max {
        set.insert(value.to_owned());
    } else {
        *capped = true;
    }
}

impl ScanRecord {
    /// Counts one scan.
    pub fn add(&mut self, scan: &Scan) {
        self.merge(&Self {
            count: 1,
            first_ms: scan.at_ms,
            last_ms: scan.at_ms,
            prefixes: BTreeSet::from([scan.prefix.clone()]),
            prefixes_capped: false,
            languages: scan.language.iter().cloned().collect(),
            languages_capped: false,
        });
    }

    /// Adds the scans of `other`.
    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        self.first_ms = if self.count == 0 {
            other.first_ms
        } else {
            self.first_ms.min(other.first_ms)
        };
        self.last_ms = self.last_ms.max(other.last_ms);
        self.count = self.count.saturating_add(other.count);
        for prefix in &other.prefixes {
            insert_capped(
                &mut self.prefixes,
                &mut self.prefixes_capped,
                prefix,
                PREFIXES_KEPT_MAX,
            );
        }
        self.prefixes_capped |= other.prefixes_capped;
        for language in &other.languages {
            insert_capped(
                &mut self.languages,
                &mut self.languages_capped,
                language,
                LANGUAGES_KEPT_MAX,
            );
        }
        self.languages_capped |= other.languages_capped;
    }

    /// Whether the scans look like a copied code: scans from more than
    /// [`SUSPICIOUS_PREFIXES`] distinct address prefixes (a stand-in for "several countries"
    /// that needs no address database). The count alone decides nothing: anyone can repeat a
    /// request and mark a genuine pack. See [`SUSPICIOUS_RULE`].
    #[must_use]
    pub fn suspicious(&self) -> bool {
        self.prefixes.len() > SUSPICIOUS_PREFIXES || self.prefixes_capped
    }
}

/// Pending scans, shared by the request handlers and the flush task.
#[derive(Debug, Clone, Default)]
pub struct ScanCounter {
    pending: Arc<std::sync::Mutex<HashMap<Vec<u8>, ScanRecord>>>,
    /// Held while a flush moves scans from memory to the store, and by readers, so a reader
    /// never sees a scan twice or not at all.
    flushing: Arc<tokio::sync::Mutex<()>>,
    dropped: Arc<AtomicU64>,
}

/// Why a flush failed (the scans stay pending for the next one).
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Reading the stored records failed.
    #[error("reading scan records failed")]
    Read(#[from] ledger::storage::ReadError),
    /// Writing them failed.
    #[error("writing scan records failed")]
    Commit(#[from] ledger::storage::CommitError),
    /// A stored record does not decode.
    #[error("a stored scan record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

impl ScanCounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, ScanRecord>> {
        // A poisoned lock means a panic while counting; the map is still a valid tally.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a scan of `gtin` + `serial` (no I/O).
    pub fn record(&self, gtin: Gtin, serial: &Serial, scan: &Scan) {
        let key = scan_key(gtin, serial);
        let mut pending = self.lock();
        if let Some(record) = pending.get_mut(&key) {
            record.add(scan);
        } else if pending.len() < PENDING_KEYS_MAX {
            let mut record = ScanRecord::default();
            record.add(scan);
            pending.insert(key, record);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Scans dropped because too many keys were pending.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Everything counted for `gtin` + `serial`: stored and pending.
    ///
    /// # Errors
    /// [`FlushError`] if the store fails or holds a record that does not decode.
    pub async fn read<S: IngestStorage>(
        &self,
        storage: &S,
        gtin: Gtin,
        serial: &Serial,
    ) -> Result<ScanRecord, FlushError> {
        let key = scan_key(gtin, serial);
        let _flushing = self.flushing.lock().await;
        let mut record: ScanRecord = match storage.read(SCANS, &key)? {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => ScanRecord::default(),
        };
        if let Some(pending) = self.lock().get(&key) {
            record.merge(pending);
        }
        Ok(record)
    }

    /// Folds every pending scan into the store in one transaction; returns the number of keys
    /// written. On failure the scans are pending again.
    ///
    /// # Errors
    /// [`FlushError`] if the store fails.
    pub async fn flush<S: IngestStorage>(&self, storage: &S) -> Result<usize, FlushError> {
        let _flushing = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.lock());
        if taken.is_empty() {
            return Ok(0);
        }
        let written = self.write(storage, &taken).await;
        if written.is_err() {
            let mut pending = self.lock();
            for (key, record) in taken {
                pending.entry(key).or_default().merge(&record);
            }
        }
        written
    }

    async fn write<S: IngestStorage>(
        &self,
        storage: &S,
        taken: &HashMap<Vec<u8>, ScanRecord>,
    ) -> Result<usize, FlushError> {
        let keys: Vec<Vec<u8>> = taken.keys().cloned().collect();
        let stored = storage.read_many(SCANS, &keys)?;
        let mut records = Vec::with_capacity(keys.len());
        for (key, old) in keys.into_iter().zip(stored) {
            let mut record: ScanRecord = match old {
                Some(bytes) => serde_json::from_slice(&bytes)?,
                None => ScanRecord::default(),
            };
            if let Some(new) = taken.get(&key) {
                record.merge(new);
            }
            records.push(SidecarRecord {
                table: SCANS.to_owned(),
                key,
                value: serde_json::to_vec(&record)?,
            });
        }
        let count = records.len();
        // The flush task is the only writer of this table, so read-merge-write cannot race.
        storage.put_records(records).await?;
        Ok(count)
    }
}

/// The flush task.
#[derive(Debug)]
pub struct ScanTasks {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts the task that flushes `counter` into `storage` every [`FLUSH_PERIOD_MS`].
pub fn start<S: IngestStorage + Send + Sync + 'static>(
    counter: ScanCounter,
    storage: S,
) -> ScanTasks {
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(FLUSH_PERIOD_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop_rx.wait_for(|s| *s) => break,
            }
            if let Err(error) = counter.flush(&storage).await {
                tracing::warn!(error = %error, "flushing scan counts failed; retrying next period");
            }
        }
        // Shutdown: the HTTP server has stopped taking requests; write what is left.
        match counter.flush(&storage).await {
            Ok(keys) => tracing::debug!(keys, "flushed scan counts on shutdown"),
            Err(error) => tracing::error!(error = %error, "scan counts lost on shutdown"),
        }
    });
    ScanTasks { stop, task }
}

impl ScanTasks {
    /// Stops the task after a last flush.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the scan flush task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_by_prefix_only() {
        let check = |ip: &str, prefix: &str| {
            assert_eq!(address_prefix(ip.parse().expect("ip")), prefix, "{ip}");
        };
        check("203.0.113.77", "203.0.113.0/24");
        check("::ffff:203.0.113.77", "203.0.113.0/24");
        check("2001:db8:abcd:12::1", "2001:db8:abcd::/48");
        check("::1", "0:0:0::/48");
    }

    #[test]
    fn the_primary_language_is_the_first_ranges_primary_subtag() {
        let check = |header: &str, expected: Option<&str>| {
            assert_eq!(primary_language(header).as_deref(), expected, "{header}");
        };
        check("zh-CN,zh;q=0.9,en;q=0.8", Some("zh"));
        check("EN-gb", Some("en"));
        check("de;q=0.5", Some("de"));
        check("*", None);
        check("", None);
        check("x", None);
        check("zh1-CN", None);
    }

    fn scan(at_ms: u64, prefix: &str, language: Option<&str>) -> Scan {
        Scan {
            at_ms,
            prefix: prefix.to_owned(),
            language: language.map(str::to_owned),
        }
    }

    #[test]
    fn records_merge_in_any_order_and_flag_by_the_stated_rule() {
        let mut a = ScanRecord::default();
        a.add(&scan(20, "1.2.3.0/24", Some("zh")));
        a.add(&scan(10, "1.2.3.0/24", None));
        let mut b = ScanRecord::default();
        b.add(&scan(30, "5.6.7.0/24", Some("en")));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!((ab.count, ab.first_ms, ab.last_ms), (3, 10, 30));
        assert_eq!(ab.prefixes.len(), 2);
        assert!(!ab.suspicious());

        let mut often = ScanRecord::default();
        for i in 0..1_000 {
            often.add(&scan(i, "1.2.3.0/24", None));
        }
        assert!(!often.suspicious(), "one place scanning often is no copy");
        let mut five = ScanRecord::default();
        for i in 0..SUSPICIOUS_PREFIXES {
            five.add(&scan(1, &format!("10.0.{i}.0/24"), None));
        }
        assert!(!five.suspicious(), "exactly the limit is fine");

        let mut far = ScanRecord::default();
        for i in 0..=SUSPICIOUS_PREFIXES {
            far.add(&scan(1, &format!("10.0.{i}.0/24"), None));
        }
        assert!(far.suspicious(), "{far:?}");

        let mut many = ScanRecord::default();
        for i in 0..PREFIXES_KEPT_MAX + 3 {
            many.add(&scan(1, &format!("10.{}.{}.0/24", i / 256, i % 256), None));
        }
        assert_eq!(many.prefixes.len(), PREFIXES_KEPT_MAX);
        assert!(many.prefixes_capped);
    }

    #[test]
    fn the_pending_map_is_bounded() {
        let counter = ScanCounter::default();
        let gtin: Gtin = "09520123456788".parse().expect("gtin");
        {
            let mut pending = counter.lock();
            for i in 0..PENDING_KEYS_MAX {
                pending.insert(i.to_be_bytes().to_vec(), ScanRecord::default());
            }
        }
        let serial = Serial::new("1").expect("serial");
        counter.record(gtin, &serial, &scan(1, "1.2.3.0/24", None));
        assert_eq!(counter.dropped(), 1);
        assert_eq!(counter.lock().len(), PENDING_KEYS_MAX);
    }
}
