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
//! IPv6 address counts as IPv4). When the operator configured an IP-to-country table
//! ([`super::geo`]), the country of the address is looked up at scan time and only its code is
//! kept with the prefixes.
//!
//! The rule ([`ScanRule`], [`ScanRecord::reasons`]) flags a code scanned in more than one
//! country, from more than [`SUSPICIOUS_PREFIXES`] prefixes, or unusually often (more than a
//! configured count) from more than one prefix. The count alone never decides: anyone can
//! repeat a request and mark a genuine pack.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gs1::{Gtin, Serial};

use super::geo::CountryCode;
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
/// Distinct countries kept per key.
pub const COUNTRIES_KEPT_MAX: usize = 64;
/// A key scanned from more distinct address prefixes than this is suspicious.
pub const SUSPICIOUS_PREFIXES: usize = 5;
/// Default of [`ScanRule::unusual_count`] (`scans_unusual_count` in the configuration).
pub const UNUSUAL_COUNT_DEFAULT: u64 = 50;

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
    /// The client's country, when the node has an IP-to-country table that knows it.
    pub country: Option<CountryCode>,
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
    /// Distinct countries of the clients (ISO 3166-1 alpha-2), at most
    /// [`COUNTRIES_KEPT_MAX`]; empty without an IP-to-country table. Records written before
    /// countries were kept read as none.
    #[serde(default)]
    pub countries: BTreeSet<String>,
    /// Whether more countries were seen than are kept.
    #[serde(default)]
    pub countries_capped: bool,
}

/// Why a code counts as suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Scanned in more than one country.
    Countries,
    /// Scanned from more than [`SUSPICIOUS_PREFIXES`] address prefixes.
    Prefixes,
    /// Scanned more than [`ScanRule::unusual_count`] times, from more than one prefix.
    Count,
}

/// The configured part of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRule {
    /// More scans than this, from more than one prefix, are unusually many
    /// (`scans_unusual_count`).
    pub unusual_count: u64,
}

impl Default for ScanRule {
    fn default() -> Self {
        Self {
            unusual_count: UNUSUAL_COUNT_DEFAULT,
        }
    }
}

impl ScanRule {
    /// The rule in words (served with the flag).
    #[must_use]
    pub fn text(&self) -> String {
        format!(
            "suspicious when scanned in more than one country (with the operator's IP-to-country \
             table), from more than {SUSPICIOUS_PREFIXES} distinct client address prefixes \
             (IPv4 /24, IPv6 /48), or more than {} times from more than one prefix: a genuine \
             pack is scanned by a few people in one place; a copied code is scanned far apart \
             (the count from one place alone is not used: anyone can repeat a request)",
            self.unusual_count
        )
    }
}

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
            countries: scan.country.iter().map(ToString::to_string).collect(),
            countries_capped: false,
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
        for country in &other.countries {
            insert_capped(
                &mut self.countries,
                &mut self.countries_capped,
                country,
                COUNTRIES_KEPT_MAX,
            );
        }
        self.countries_capped |= other.countries_capped;
    }

    /// Why the scans look like a copied code, in [`Reason`] order; empty when they do not.
    /// See [`ScanRule::text`].
    #[must_use]
    pub fn reasons(&self, rule: &ScanRule) -> Vec<Reason> {
        let mut reasons = Vec::new();
        if self.countries.len() > 1 || self.countries_capped {
            reasons.push(Reason::Countries);
        }
        if self.prefixes.len() > SUSPICIOUS_PREFIXES || self.prefixes_capped {
            reasons.push(Reason::Prefixes);
        }
        if self.count > rule.unusual_count && (self.prefixes.len() > 1 || self.prefixes_capped) {
            reasons.push(Reason::Count);
        }
        reasons
    }
}

/// A record with the rule applied: what the scans endpoint and the consumer page show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// The scans.
    pub record: ScanRecord,
    /// Why they look like a copied code (empty: they do not).
    pub reasons: Vec<Reason>,
}

/// What the consumer page's warning says: which rules fired and the figures behind them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanWarning {
    /// The rules that fired (never empty).
    pub reasons: Vec<Reason>,
    /// Scans counted.
    pub count: u64,
    /// The countries (upper-case codes).
    pub countries: Vec<String>,
    /// Whether more countries were seen than are listed.
    pub countries_capped: bool,
    /// Distinct address prefixes.
    pub networks: usize,
    /// Whether more prefixes were seen than counted.
    pub networks_capped: bool,
}

impl ScanReport {
    /// Whether any rule fired.
    #[must_use]
    pub fn suspicious(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// The consumer page's warning, if any rule fired.
    #[must_use]
    pub fn warning(&self) -> Option<ScanWarning> {
        self.suspicious().then(|| ScanWarning {
            reasons: self.reasons.clone(),
            count: self.record.count,
            countries: self.record.countries.iter().cloned().collect(),
            countries_capped: self.record.countries_capped,
            networks: self.record.prefixes.len(),
            networks_capped: self.record.prefixes_capped,
        })
    }
}

/// Pending scans, shared by the request handlers and the flush task.
#[derive(Debug, Clone, Default)]
pub struct ScanCounter {
    rule: ScanRule,
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

    /// A counter applying `rule`.
    #[must_use]
    pub fn new(rule: ScanRule) -> Self {
        Self {
            rule,
            ..Self::default()
        }
    }

    /// The rule reads apply.
    #[must_use]
    pub fn rule(&self) -> &ScanRule {
        &self.rule
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

    /// Everything counted for `gtin` + `serial` (stored and pending), with the rule applied.
    ///
    /// # Errors
    /// [`FlushError`] if the store fails or holds a record that does not decode.
    pub async fn read<S: IngestStorage>(
        &self,
        storage: &S,
        gtin: Gtin,
        serial: &Serial,
    ) -> Result<ScanReport, FlushError> {
        let record = self.read_record(storage, gtin, serial).await?;
        Ok(ScanReport {
            reasons: record.reasons(&self.rule),
            record,
        })
    }

    async fn read_record<S: IngestStorage>(
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
            country: None,
        }
    }

    fn scan_in(prefix: &str, country: &str) -> Scan {
        Scan {
            country: Some(CountryCode::parse(country).expect("a code")),
            ..scan(1, prefix, None)
        }
    }

    const RULE: ScanRule = ScanRule { unusual_count: 50 };

    #[test]
    fn records_merge_in_any_order() {
        let mut a = ScanRecord::default();
        a.add(&scan(20, "1.2.3.0/24", Some("zh")));
        a.add(&scan(10, "1.2.3.0/24", None));
        let mut b = ScanRecord::default();
        b.add(&scan_in("5.6.7.0/24", "th"));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!((ab.count, ab.first_ms, ab.last_ms), (3, 1, 20));
        assert_eq!(ab.prefixes.len(), 2);
        assert_eq!(ab.countries, BTreeSet::from(["TH".to_owned()]));
        assert!(ab.reasons(&RULE).is_empty());

        let mut many = ScanRecord::default();
        for i in 0..PREFIXES_KEPT_MAX + 3 {
            many.add(&scan(1, &format!("10.{}.{}.0/24", i / 256, i % 256), None));
        }
        assert_eq!(many.prefixes.len(), PREFIXES_KEPT_MAX);
        assert!(many.prefixes_capped);
        let mut everywhere = ScanRecord::default();
        for i in 0..COUNTRIES_KEPT_MAX + 1 {
            let code = format!(
                "{}{}",
                char::from(b'A' + u8::try_from(i / 26).expect("small")),
                char::from(b'A' + u8::try_from(i % 26).expect("small"))
            );
            everywhere.add(&scan_in("10.0.0.0/24", &code));
        }
        assert_eq!(everywhere.countries.len(), COUNTRIES_KEPT_MAX);
        assert!(everywhere.countries_capped);
        assert_eq!(everywhere.reasons(&RULE), [Reason::Countries]);
    }

    #[test]
    fn the_rule_says_which_reason_fired() {
        let check = |scans: &[Scan], expected: &[Reason]| {
            let mut record = ScanRecord::default();
            for s in scans {
                record.add(s);
            }
            assert_eq!(record.reasons(&RULE), expected, "{record:?}");
        };
        let from = |prefixes: usize, times: usize| -> Vec<Scan> {
            (0..times)
                .map(|i| scan(1, &format!("10.0.{}.0/24", i % prefixes), None))
                .collect()
        };
        // One country, however many scans from one place: nothing.
        check(
            &[scan_in("1.2.3.0/24", "CN"), scan_in("1.2.4.0/24", "CN")],
            &[],
        );
        // Two countries: flagged, even from two scans.
        check(
            &[scan_in("1.2.3.0/24", "CN"), scan_in("5.6.7.0/24", "NL")],
            &[Reason::Countries],
        );
        // A scan whose country is unknown adds no country.
        check(
            &[scan_in("1.2.3.0/24", "CN"), scan(1, "5.6.7.0/24", None)],
            &[],
        );
        // Prefixes: the limit is fine, one more is not.
        check(&from(SUSPICIOUS_PREFIXES, SUSPICIOUS_PREFIXES), &[]);
        check(
            &from(SUSPICIOUS_PREFIXES + 1, SUSPICIOUS_PREFIXES + 1),
            &[Reason::Prefixes],
        );
        // The count: one place scanning often is no copy; the limit from two places is fine;
        // one more from two places is unusually often.
        check(&from(1, 1_000), &[]);
        check(&from(2, 50), &[]);
        check(&from(2, 51), &[Reason::Count]);
        // All three at once, in their order.
        let mut all = from(SUSPICIOUS_PREFIXES + 1, 60);
        all.push(scan_in("1.2.3.0/24", "CN"));
        all.push(scan_in("1.2.3.0/24", "TH"));
        check(&all, &[Reason::Countries, Reason::Prefixes, Reason::Count]);
        // The configured count is the one applied.
        let mut record = ScanRecord::default();
        for s in from(2, 11) {
            record.add(&s);
        }
        assert_eq!(
            record.reasons(&ScanRule { unusual_count: 10 }),
            [Reason::Count]
        );
        assert!(
            ScanRule { unusual_count: 10 }
                .text()
                .contains("more than 10 times")
        );
    }

    #[test]
    fn records_written_before_countries_were_kept_still_read() {
        let old = r#"{"count":3,"first_ms":1,"last_ms":2,"prefixes":["1.2.3.0/24"],
            "prefixes_capped":false,"languages":["zh"],"languages_capped":false}"#;
        let record: ScanRecord = serde_json::from_str(old).expect("an old record decodes");
        assert_eq!(record.count, 3);
        assert!(record.countries.is_empty());
        assert!(!record.countries_capped);
        let again: ScanRecord =
            serde_json::from_slice(&serde_json::to_vec(&record).expect("encodes"))
                .expect("decodes");
        assert_eq!(again, record);
    }

    #[test]
    fn a_report_warns_with_its_figures() {
        let mut record = ScanRecord::default();
        record.add(&scan_in("1.2.3.0/24", "TH"));
        record.add(&scan_in("5.6.7.0/24", "CN"));
        let report = ScanReport {
            reasons: record.reasons(&RULE),
            record,
        };
        let warning = report.warning().expect("a warning");
        assert_eq!(warning.reasons, [Reason::Countries]);
        assert_eq!(warning.countries, ["CN", "TH"]);
        assert_eq!((warning.count, warning.networks), (2, 2));
        let quiet = ScanReport {
            record: ScanRecord::default(),
            reasons: Vec::new(),
        };
        assert_eq!(quiet.warning(), None);
        assert_eq!(
            serde_json::to_value(Reason::Countries).expect("json"),
            serde_json::json!("countries")
        );
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
