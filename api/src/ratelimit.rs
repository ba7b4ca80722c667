//! Rate limits of the HTTP API (issue "Security and operations", item 3): every request but
//! the probes is charged to a token bucket of its class, keyed by who sends it, and one over
//! its budget is answered 429 with `Retry-After` before any handler runs (so nothing is read
//! or written for it).
//!
//! | class | requests | keyed by |
//! |---|---|---|
//! | `public` | the resolver (`/01/...`, compressed links, `/qr/...`, `/.well-known/...`), `/v1/public/...`, `/v1/issuer-keys/{id}`, the pages (`/pages/...`, `/login`, `/entry...`, `/console...`), `/openapi.json` | client address |
//! | `log` | `/log/checkpoint`, `/log/tile/...`, `/v1/log/...` (mirrors and witnesses read these heavily) | client address |
//! | `read` | every other `GET`, `HEAD`, `OPTIONS` | the caller (organisation and member) with a valid token, else the client address |
//! | `write` | every other method | as `read` |
//! | `failed_auth` | a request whose `Authorization` header is not a valid token, on a `read` or `write` route | client address |
//!
//! Not limited: `/healthz`, `/readyz`, `/metrics` (probes and scrapers), and the operator's
//! routes (`/v1/admin/...`, `POST /v1/devices/import`) when the connection comes from the
//! node's own host, the only place they answer.
//!
//! A failed authentication costs the address one unit of its `failed_auth` budget and is then
//! answered as before (401). Once the budget is spent, every request from that address that
//! carries an `Authorization` header on a `read` or `write` route is answered 429 without its
//! token being looked at, valid tokens included: if a valid token still got through, the
//! difference between 200 and 429 would tell a guesser which guess was right, and the limit
//! would slow nothing. Members behind the same address wait `Retry-After` seconds with the
//! guesser; requests without a token (the consumer's pages, the resolver) are not affected.
//!
//! The client address is the one the resolver counts scans under
//! ([`crate::resolver::client_address`]): the connection's peer, or the `X-Forwarded-For`
//! address a configured trusted proxy names. An IPv6 address is keyed by its /64 prefix, the
//! block one subscriber is usually given, so a client cannot step through its own addresses
//! for fresh budgets.
//!
//! The buckets are GCRA (the generic cell rate algorithm of ITU-T I.371 / ATM Forum TM 4.1,
//! the "virtual scheduling" form): one number per key, the theoretical arrival time (TAT). A
//! budget of `per_minute` and `burst` spaces requests `T = 60 s / per_minute` apart and lets
//! `burst` of them through at once; a request at `now` conforms when `TAT - now <= T *
//! (burst - 1)`, and then moves `TAT` to `max(TAT, now) + T`. A refused request changes
//! nothing. The core ([`Buckets`], [`Gcra`]) takes the time as an input; the middleware reads a
//! monotonic clock (a wall-clock jump neither frees nor locks anyone).
//!
//! Memory is bounded: each class keeps at most `keys_max` keys. A key whose TAT has passed
//! (its bucket is full again) decides nothing and is forgotten first; if that frees less than
//! an eighth of the map, the eighth of the keys closest to full are forgotten too (each then
//! starts again with a full bucket: under a flood of more distinct clients than `keys_max`
//! the limit forgives the clients that owed least). The work is amortised: at most one scan
//! of the map per `keys_max / 8` new keys.
//!
//! A class whose `per_minute` is 0 is disabled: its requests are neither counted nor refused
//! (a disabled `failed_auth` never refuses a token; the other classes still apply). Refusals
//! are counted in `agritrace_http_rate_limited_total{class}`, keys tracked in
//! `agritrace_http_rate_limit_keys{class}`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::auth::{AuthError, MemberId, OrgId};
use crate::config::ConfigError;
use crate::http::{ApiError, AppState};

/// Hard ceiling on a class's `per_minute` (100,000 requests a second).
pub const PER_MINUTE_CEILING: u32 = 6_000_000;
/// Hard ceiling on a class's `burst`.
pub const BURST_CEILING: u32 = 1_000_000;
/// Hard ceiling on `keys_max` (about 40 bytes a key).
pub const KEYS_CEILING: usize = 10_000_000;
/// Fewest keys a class may be limited to.
pub const KEYS_FLOOR: usize = 16;
const NANOS_PER_MINUTE: u64 = 60_000_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The budgets requests are charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// Resolver, consumer pages and public JSON, per client address.
    Public,
    /// The log's tiles and checkpoints, per client address.
    Log,
    /// Other reads, per caller (or per address without a token).
    Read,
    /// Other writes, per caller (or per address without a token).
    Write,
    /// Failed authentications, per client address.
    FailedAuth,
}

impl RateClass {
    /// Every class, in the order of [`RateLimitConfig`]'s fields.
    pub const ALL: [Self; 5] = [
        Self::Public,
        Self::Log,
        Self::Read,
        Self::Write,
        Self::FailedAuth,
    ];

    /// The class's name in the configuration and in metrics labels.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Log => "log",
            Self::Read => "read",
            Self::Write => "write",
            Self::FailedAuth => "failed_auth",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Public => 0,
            Self::Log => 1,
            Self::Read => 2,
            Self::Write => 3,
            Self::FailedAuth => 4,
        }
    }

    /// What a 429 of this class tells the caller.
    fn refusal(self) -> &'static str {
        match self {
            Self::Public => "too many requests to public paths from this address",
            Self::Log => "too many requests for the log's checkpoints and tiles from this address",
            Self::Read => "too many reads by this caller (by this address without a token)",
            Self::Write => "too many writes by this caller (by this address without a token)",
            Self::FailedAuth => {
                "too many failed authentication attempts from this address; every request \
                 with a token from it is refused until then"
            }
        }
    }
}

/// One class's budget: `per_minute` requests a minute sustained, `burst` at once. `per_minute`
/// 0 disables the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// Sustained rate, requests a minute: 0 (disabled) or 1..=6,000,000.
    pub per_minute: u32,
    /// Requests let through at once from a full bucket: 1..=1,000,000 (ignored when disabled).
    pub burst: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self::OFF
    }
}

impl Budget {
    /// A disabled class.
    pub const OFF: Self = Self {
        per_minute: 0,
        burst: 0,
    };

    /// `per_minute` sustained, `burst` at once.
    #[must_use]
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }

    /// Whether the class is limited.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.per_minute > 0
    }

    fn validate(&self, class: RateClass) -> Result<(), ConfigError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let name = class.name();
        if self.per_minute > PER_MINUTE_CEILING {
            return Err(ConfigError::Invalid(format!(
                "rate_limits.{name}.per_minute is {}, it must be 0 (off) or 1..={PER_MINUTE_CEILING}",
                self.per_minute
            )));
        }
        if !(1..=BURST_CEILING).contains(&self.burst) {
            return Err(ConfigError::Invalid(format!(
                "rate_limits.{name}.burst is {}, it must be 1..={BURST_CEILING} when per_minute is set",
                self.burst
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_enabled() {
            write!(f, "{}/{}", self.per_minute, self.burst)
        } else {
            f.write_str("off")
        }
    }
}

impl FromStr for Budget {
    type Err = String;

    /// `PER_MINUTE/BURST` (`600/100`), or `0` / `off` for a disabled class.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "0" || text.eq_ignore_ascii_case("off") {
            return Ok(Self::OFF);
        }
        let wrong = || format!("{text:?} is not PER_MINUTE/BURST (e.g. 600/100), 0 or off");
        let (per_minute, burst) = text.split_once('/').ok_or_else(wrong)?;
        Ok(Self {
            per_minute: per_minute.trim().parse().map_err(|_| wrong())?,
            burst: burst.trim().parse().map_err(|_| wrong())?,
        })
    }
}

/// The `[rate_limits]` section of the node's configuration.
///
/// ```toml
/// [rate_limits]
/// keys_max = 100000                                  # keys tracked per class
/// public = { per_minute = 3000, burst = 1000 }       # per client address
/// log = { per_minute = 12000, burst = 4000 }         # per client address
/// read = { per_minute = 3000, burst = 1000 }         # per caller, or per address without a token
/// write = { per_minute = 1200, burst = 500 }         # per caller, or per address without a token
/// failed_auth = { per_minute = 6, burst = 20 }       # per client address
/// ```
///
/// A class left out keeps its default; `per_minute = 0` disables it. Environment overrides:
/// `AGRITRACE_RATE_LIMIT_PUBLIC`, `_LOG`, `_READ`, `_WRITE`, `_FAILED_AUTH` as
/// `PER_MINUTE/BURST` or `0`/`off`, and `AGRITRACE_RATE_LIMIT_KEYS_MAX`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Most keys (addresses or callers) each class tracks: 16..=10,000,000. Default 100,000
    /// (a few MiB a class when full).
    pub keys_max: usize,
    /// Resolver, consumer pages, public JSON, `/openapi.json`; per client address. Default
    /// 3,000 a minute, burst 1,000 (one address may be a carrier's NAT of many phones).
    pub public: Budget,
    /// `/log/checkpoint`, `/log/tile/...`, `/v1/log/...`; per client address. Default 12,000
    /// a minute, burst 4,000 (a mirror catching up reads a tile per 256 entries).
    pub log: Budget,
    /// Other `GET`/`HEAD`/`OPTIONS`; per caller with a valid token, else per address. Default
    /// 3,000 a minute, burst 1,000.
    pub read: Budget,
    /// Other methods; per caller with a valid token, else per address. Default 1,200 a
    /// minute, burst 500.
    pub write: Budget,
    /// Requests whose `Authorization` is not a valid token; per client address. Once spent,
    /// every request with a token from the address gets 429. Default 6 a minute, burst 20.
    pub failed_auth: Budget,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            keys_max: 100_000,
            public: Budget::new(3_000, 1_000),
            log: Budget::new(12_000, 4_000),
            read: Budget::new(3_000, 1_000),
            write: Budget::new(1_200, 500),
            failed_auth: Budget::new(6, 20),
        }
    }
}

impl RateLimitConfig {
    /// Every class disabled.
    #[must_use]
    pub fn off() -> Self {
        Self {
            public: Budget::OFF,
            log: Budget::OFF,
            read: Budget::OFF,
            write: Budget::OFF,
            failed_auth: Budget::OFF,
            ..Self::default()
        }
    }

    /// The budget of `class`.
    #[must_use]
    pub fn budget(&self, class: RateClass) -> Budget {
        match class {
            RateClass::Public => self.public,
            RateClass::Log => self.log,
            RateClass::Read => self.read,
            RateClass::Write => self.write,
            RateClass::FailedAuth => self.failed_auth,
        }
    }

    fn budget_mut(&mut self, class: RateClass) -> &mut Budget {
        match class {
            RateClass::Public => &mut self.public,
            RateClass::Log => &mut self.log,
            RateClass::Read => &mut self.read,
            RateClass::Write => &mut self.write,
            RateClass::FailedAuth => &mut self.failed_auth,
        }
    }

    /// Applies `AGRITRACE_RATE_LIMIT_<CLASS>` (`PER_MINUTE/BURST`, `0` or `off`) and
    /// `AGRITRACE_RATE_LIMIT_KEYS_MAX` found by `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::Env`] naming the first variable that does not parse.
    pub fn apply_env(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        const NAMES: [&str; 5] = [
            "AGRITRACE_RATE_LIMIT_PUBLIC",
            "AGRITRACE_RATE_LIMIT_LOG",
            "AGRITRACE_RATE_LIMIT_READ",
            "AGRITRACE_RATE_LIMIT_WRITE",
            "AGRITRACE_RATE_LIMIT_FAILED_AUTH",
        ];
        for (class, name) in RateClass::ALL.into_iter().zip(NAMES) {
            if let Some(text) = lookup(name) {
                *self.budget_mut(class) = text
                    .parse()
                    .map_err(|reason| ConfigError::Env { name, reason })?;
            }
        }
        let name = "AGRITRACE_RATE_LIMIT_KEYS_MAX";
        if let Some(text) = lookup(name) {
            self.keys_max = text.trim().parse().map_err(|e| ConfigError::Env {
                name,
                reason: format!("{e}"),
            })?;
        }
        Ok(())
    }

    /// Checks every budget and `keys_max` against their ranges.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(KEYS_FLOOR..=KEYS_CEILING).contains(&self.keys_max) {
            return Err(ConfigError::Invalid(format!(
                "rate_limits.keys_max is {}, it must be {KEYS_FLOOR}..={KEYS_CEILING}",
                self.keys_max
            )));
        }
        for class in RateClass::ALL {
            self.budget(class).validate(class)?;
        }
        Ok(())
    }
}

/// A budget as GCRA parameters, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// `T`: the spacing of conforming requests.
    pub interval_ns: u64,
    /// `τ = T * (burst - 1)`: how far ahead of `now` the TAT may be.
    pub tolerance_ns: u64,
}

impl Gcra {
    /// The parameters of `budget`; `None` for a disabled class.
    #[must_use]
    pub fn of(budget: Budget) -> Option<Self> {
        if !budget.is_enabled() {
            return None;
        }
        let interval_ns = NANOS_PER_MINUTE / u64::from(budget.per_minute);
        let tolerance_ns = interval_ns.saturating_mul(u64::from(budget.burst.saturating_sub(1)));
        Some(Self {
            interval_ns,
            tolerance_ns,
        })
    }

    /// The TAT after a conforming request at `now` (`Ok`), or how long until one would
    /// conform (`Err`, nanoseconds). `tat` is the key's TAT, `None` for a new key.
    ///
    /// # Errors
    /// The wait, when the request does not conform.
    pub fn decide(self, tat: Option<u64>, now: u64) -> Result<u64, u64> {
        let tat = tat.map_or(now, |t| t.max(now));
        let ahead = tat - now;
        if ahead > self.tolerance_ns {
            Err(ahead - self.tolerance_ns)
        } else {
            Ok(tat.saturating_add(self.interval_ns))
        }
    }
}

/// Whom a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A client address (IPv4, or the /64 prefix of an IPv6 address).
    Address(IpAddr),
    /// An authenticated caller: the first 16 bytes of a domain-separated SHA-256 of its
    /// organisation and member ids (fixed size, so the key map's memory is bounded by its
    /// length alone).
    Member([u8; 16]),
}

impl Subject {
    /// The key of a client address: IPv4 (IPv4-mapped IPv6 included) as it is, IPv6 by its
    /// /64 prefix.
    #[must_use]
    pub fn address(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => Self::Address(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                Self::Address(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }

    /// The key of a member, whichever of its tokens it calls with.
    #[must_use]
    pub fn member(org: &OrgId, member: &MemberId) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"agritrace/rate-limit/member/v1\0");
        hasher.update(org.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(member.as_str().as_bytes());
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Self::Member(key)
    }
}

/// The TATs of one class's keys, at most `keys_max` of them (the pure core: time is an input).
#[derive(Debug)]
pub struct Buckets {
    tats: HashMap<Subject, u64>,
    keys_max: usize,
}

impl Buckets {
    /// No keys yet; at most `keys_max` (at least 1) will be kept.
    #[must_use]
    pub fn new(keys_max: usize) -> Self {
        Self {
            tats: HashMap::new(),
            keys_max: keys_max.max(1),
        }
    }

    /// Keys tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    /// Whether no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }

    /// Charges one request of `subject` at `now` if it conforms to `gcra`.
    ///
    /// # Errors
    /// The wait in nanoseconds until it would; nothing changes then.
    pub fn admit(&mut self, subject: Subject, gcra: Gcra, now: u64) -> Result<(), u64> {
        let tat = self.tats.get(&subject).copied();
        let next = gcra.decide(tat, now)?;
        if tat.is_none() {
            self.make_room(now);
        }
        self.tats.insert(subject, next);
        Ok(())
    }

    /// Whether a request of `subject` at `now` would conform, charging nothing.
    ///
    /// # Errors
    /// The wait in nanoseconds until it would.
    pub fn check(&self, subject: Subject, gcra: Gcra, now: u64) -> Result<(), u64> {
        gcra.decide(self.tats.get(&subject).copied(), now)
            .map(|_| ())
    }

    /// Makes room for one more key: forgets the keys whose bucket is full again, and if that
    /// frees less than an eighth of the map, the eighth closest to full.
    fn make_room(&mut self, now: u64) {
        if self.tats.len() < self.keys_max {
            return;
        }
        self.tats.retain(|_, tat| *tat > now);
        let target = self.keys_max - self.keys_max.div_ceil(8);
        if self.tats.len() <= target {
            return;
        }
        let excess = self.tats.len() - target;
        let mut by_tat: Vec<(u64, Subject)> = self.tats.iter().map(|(s, t)| (*t, *s)).collect();
        by_tat.select_nth_unstable_by_key(excess - 1, |(tat, _)| *tat);
        for (_, subject) in &by_tat[..excess] {
            self.tats.remove(subject);
        }
    }
}

/// Why a request was refused: its class and how long until it would be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The class whose budget is spent.
    pub class: RateClass,
    /// Nanoseconds until a request would conform.
    pub wait_ns: u64,
}

impl Refusal {
    /// `Retry-After` in whole seconds, rounded up (at least 1).
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        self.wait_ns.div_ceil(NANOS_PER_SECOND).max(1)
    }
}

/// One class's numbers for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassSample {
    /// The class.
    pub class: RateClass,
    /// Requests answered 429 since start.
    pub refused: u64,
    /// Keys tracked now.
    pub keys: u64,
}

#[derive(Debug)]
struct ClassLimiter {
    gcra: Option<Gcra>,
    buckets: Mutex<Buckets>,
    refused: AtomicU64,
}

impl ClassLimiter {
    fn buckets(&self) -> std::sync::MutexGuard<'_, Buckets> {
        // A panic while the lock was held left a consistent map (every update is one insert
        // or remove), so a poisoned lock is used as it is.
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Inner {
    classes: [ClassLimiter; 5],
    epoch: Instant,
}

/// The node's rate limits: one bucket map per class. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

impl RateLimiter {
    /// The limits of `config` (validated by [`RateLimitConfig::validate`]).
    #[must_use]
    pub fn new(config: &RateLimitConfig) -> Self {
        let class = |class: RateClass| ClassLimiter {
            gcra: Gcra::of(config.budget(class)),
            buckets: Mutex::new(Buckets::new(config.keys_max)),
            refused: AtomicU64::new(0),
        };
        Self {
            inner: Arc::new(Inner {
                classes: RateClass::ALL.map(class),
                epoch: Instant::now(),
            }),
        }
    }

    fn class(&self, class: RateClass) -> &ClassLimiter {
        &self.inner.classes[class.index()]
    }

    /// Nanoseconds since this limiter was made (monotonic).
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether `class` is limited.
    #[must_use]
    pub fn is_enabled(&self, class: RateClass) -> bool {
        self.class(class).gcra.is_some()
    }

    /// Charges one request of `subject` to `class` at `now_ns` (always admitted when the class
    /// is disabled).
    ///
    /// # Errors
    /// The [`Refusal`] when the budget is spent (counted in the class's refusals).
    pub fn admit(&self, class: RateClass, subject: Subject, now_ns: u64) -> Result<(), Refusal> {
        let limiter = self.class(class);
        let Some(gcra) = limiter.gcra else {
            return Ok(());
        };
        let outcome = limiter.buckets().admit(subject, gcra, now_ns);
        self.refused(class, outcome)
    }

    /// Whether a request of `subject` would be admitted to `class` at `now_ns`, charging
    /// nothing.
    ///
    /// # Errors
    /// The [`Refusal`] when the budget is spent (counted in the class's refusals: the caller
    /// answers it with 429).
    pub fn check(&self, class: RateClass, subject: Subject, now_ns: u64) -> Result<(), Refusal> {
        let limiter = self.class(class);
        let Some(gcra) = limiter.gcra else {
            return Ok(());
        };
        let outcome = limiter.buckets().check(subject, gcra, now_ns);
        self.refused(class, outcome)
    }

    fn refused(&self, class: RateClass, outcome: Result<(), u64>) -> Result<(), Refusal> {
        outcome.map_err(|wait_ns| {
            self.class(class).refused.fetch_add(1, Ordering::Relaxed);
            Refusal { class, wait_ns }
        })
    }

    /// Each class's refusals and keys, for `/metrics`.
    #[must_use]
    pub fn samples(&self) -> Vec<ClassSample> {
        RateClass::ALL
            .into_iter()
            .map(|class| {
                let limiter = self.class(class);
                ClassSample {
                    class,
                    refused: limiter.refused.load(Ordering::Relaxed),
                    keys: u64::try_from(limiter.buckets().len()).unwrap_or(u64::MAX),
                }
            })
            .collect()
    }
}

/// Which limit a request falls under, from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`, `/readyz`, `/metrics`: never limited.
    Exempt,
    /// `/v1/admin/...`, `/v1/devices/import`: not limited from the node's own host (the only
    /// place they answer), else a `read` or `write` route.
    Operator(RateClass),
    /// Per client address in this class (`public` or `log`).
    ByAddress(RateClass),
    /// Per caller with a token, else per address, in `read` or `write`; a token that is not
    /// valid is charged to `failed_auth`.
    ByCaller(RateClass),
}

/// Whether `path` is never limited: the probes and the scrape (`/healthz`, `/readyz`,
/// `/metrics`).
#[must_use]
pub fn is_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Whether `path` starts with the segments of `prefix` (`/console` matches `/console` and
/// `/console/x`, not `/consoles`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The limit a request of `method` on `path` falls under (see the module's table).
#[must_use]
pub fn route_of(method: &Method, path: &str) -> Route {
    let by_method = if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        RateClass::Read
    } else {
        RateClass::Write
    };
    if is_exempt(path) {
        return Route::Exempt;
    }
    if under(path, "/log") || under(path, "/v1/log") {
        return Route::ByAddress(RateClass::Log);
    }
    if under(path, "/v1/admin") || path == "/v1/devices/import" {
        return Route::Operator(by_method);
    }
    const PUBLIC: [&str; 10] = [
        "/01",
        "/qr",
        "/.well-known",
        "/v1/public",
        "/v1/issuer-keys",
        "/pages",
        "/console",
        "/entry",
        "/login",
        "/openapi.json",
    ];
    let public = PUBLIC.iter().any(|prefix| under(path, prefix));
    // One path segment that is none of the above: a compressed Digital Link (or a 404).
    let one_segment = !path.get(1..).unwrap_or("").contains('/');
    if public || one_segment {
        return Route::ByAddress(RateClass::Public);
    }
    Route::ByCaller(by_method)
}

/// What a request is charged to before any handler runs: see the module docs.
fn verdict(
    state: &AppState,
    route: Route,
    peer: IpAddr,
    headers: &HeaderMap,
    now: u64,
) -> Result<(), Refusal> {
    let limits = &state.rate_limits;
    let address = || Subject::address(state.resolver.client(peer, headers));
    let class = match route {
        Route::Exempt => return Ok(()),
        Route::Operator(_) if peer.is_loopback() => return Ok(()),
        Route::ByAddress(class) => return limits.admit(class, address(), now),
        Route::Operator(class) | Route::ByCaller(class) => class,
    };
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return limits.admit(class, address(), now);
    };
    // A spent failure budget refuses every token from the address unseen (module docs).
    let address = address();
    limits.check(RateClass::FailedAuth, address, now)?;
    // The same reading of the header as `access::Caller`, so the same requests fail.
    let token = authorization
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.map(|t| state.directory.authenticate(t.trim())) {
        Some(Ok(principal)) => limits.admit(
            class,
            Subject::member(&principal.org, &principal.member),
            now,
        ),
        // The store failed: not the caller's fault; the handler answers it.
        Some(Err(AuthError::Directory(_))) => limits.admit(class, address, now),
        // The handler answers 401 for it.
        Some(Err(_)) | None => limits.admit(RateClass::FailedAuth, address, now),
    }
}

/// The 429 problem document of `refusal`, with `Retry-After`.
fn too_many(refusal: Refusal) -> Response {
    let seconds = refusal.retry_after_secs();
    let mut response = ApiError::TooMany(format!(
        "{}; retry after {seconds} s",
        refusal.class.refusal()
    ))
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The middleware: charges the request to its class ([`route_of`]) and answers 429 when the
/// budget is spent, else runs the rest of the router. A request without connection info (a
/// router not served with `into_make_service_with_connect_info`) is not limited.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let route = route_of(request.method(), request.uri().path());
    let now = state.rate_limits.now_ns();
    match verdict(&state, route, peer.ip(), request.headers(), now) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(
                class = refusal.class.name(),
                path = request.uri().path(),
                wait_ns = refusal.wait_ns,
                "rate limited"
            );
            too_many(refusal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;

    fn a(n: u32) -> Subject {
        Subject::address(IpAddr::from(n.to_be_bytes()))
    }

    /// Runs `steps` of (time in ms, expected outcome: `Ok` or the wait in ms) on one key.
    fn check(budget: Budget, steps: &[(u64, Result<(), u64>)]) {
        let gcra = Gcra::of(budget).expect("enabled");
        let mut buckets = Buckets::new(16);
        for (at_ms, expected) in steps {
            let got = buckets.admit(a(1), gcra, at_ms * 1_000_000);
            let got = got.map_err(|wait| wait / 1_000_000);
            assert_eq!(got, *expected, "{budget} at {at_ms} ms");
        }
    }

    #[test]
    fn a_bucket_lets_its_burst_through_then_refills_at_its_rate() {
        // 60 a minute: one a second, three at once.
        check(
            Budget::new(60, 3),
            &[
                (0, Ok(())),
                (0, Ok(())),
                (0, Ok(())),
                (0, Err(1_000)),
                (400, Err(600)),
                (1_000, Ok(())),
                (1_000, Err(1_000)),
                (5_000, Ok(())),
                (5_000, Ok(())),
                (5_000, Ok(())),
                (5_000, Err(1_000)),
            ],
        );
        // A burst of one spaces every request.
        check(
            Budget::new(2, 1),
            &[
                (0, Ok(())),
                (1, Err(29_999)),
                (30_000, Ok(())),
                (59_999, Err(1)),
            ],
        );
    }

    #[test]
    fn a_refused_request_charges_nothing_and_a_check_never_charges() {
        let gcra = Gcra::of(Budget::new(60, 2)).expect("enabled");
        let mut buckets = Buckets::new(16);
        assert_eq!(buckets.check(a(1), gcra, 0), Ok(()));
        assert!(buckets.is_empty(), "a check adds no key");
        for _ in 0..2 {
            assert_eq!(buckets.admit(a(1), gcra, 0), Ok(()));
        }
        for _ in 0..100 {
            assert_eq!(buckets.admit(a(1), gcra, 0), Err(SECOND));
            assert_eq!(buckets.check(a(1), gcra, 0), Err(SECOND));
        }
        assert_eq!(buckets.admit(a(1), gcra, SECOND), Ok(()));
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let check = |wait_ns: u64, expected: u64| {
            let refusal = Refusal {
                class: RateClass::Public,
                wait_ns,
            };
            assert_eq!(refusal.retry_after_secs(), expected, "{wait_ns} ns");
        };
        check(0, 1);
        check(1, 1);
        check(SECOND, 1);
        check(SECOND + 1, 2);
        check(59 * SECOND + 1, 60);
    }

    #[test]
    fn the_key_map_stays_bounded_under_a_flood_of_addresses() {
        let gcra = Gcra::of(Budget::new(60, 2)).expect("enabled");
        let keys_max = 64;
        let mut buckets = Buckets::new(keys_max);
        // A flooder spends its budget first, and stays the key that owes most.
        let flooder = a(0xC633_6401);
        assert_eq!(buckets.admit(flooder, gcra, 0), Ok(()));
        assert_eq!(buckets.admit(flooder, gcra, 0), Ok(()));
        assert!(buckets.admit(flooder, gcra, 0).is_err());
        // Then 100,000 distinct addresses, all at the same instant (none is idle yet).
        for n in 0..100_000 {
            assert_eq!(buckets.admit(a(n), gcra, 0), Ok(()), "address {n}");
            assert!(buckets.len() <= keys_max, "{} keys", buckets.len());
        }
        assert!(
            buckets.admit(flooder, gcra, 0).is_err(),
            "the flooder, owing most, is never the one forgotten"
        );
        // Once their buckets are full again, keys are forgotten first.
        let later = 10 * SECOND;
        for n in 200_000..200_010 {
            assert_eq!(buckets.admit(a(n), gcra, later), Ok(()));
        }
        assert!(buckets.len() <= keys_max);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        let parse = |text: &str| text.parse::<IpAddr>().expect("address");
        assert_eq!(
            Subject::address(parse("2001:db8:1:2:aaaa::1")),
            Subject::address(parse("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            Subject::address(parse("2001:db8:1:2::1")),
            Subject::address(parse("2001:db8:1:3::1"))
        );
        assert_eq!(
            Subject::address(parse("::ffff:192.0.2.7")),
            Subject::address(parse("192.0.2.7"))
        );
        assert_ne!(
            Subject::address(parse("192.0.2.7")),
            Subject::address(parse("192.0.2.8"))
        );
    }

    #[test]
    fn members_are_keyed_by_organisation_and_member() {
        let id = |org: &str, member: &str| {
            Subject::member(
                &org.parse().expect("org id"),
                &member.parse().expect("member id"),
            )
        };
        assert_eq!(id("coop", "li"), id("coop", "li"));
        assert_ne!(id("coop", "li"), id("coop", "wang"));
        assert_ne!(id("coop", "li"), id("coop2", "li"));
        assert_ne!(id("coo", "pli"), id("coop", "li"));
    }

    #[test]
    fn a_disabled_class_admits_everything_and_tracks_nothing() {
        let limiter = RateLimiter::new(&RateLimitConfig {
            public: Budget::OFF,
            read: Budget::new(1, 1),
            ..RateLimitConfig::default()
        });
        for _ in 0..1_000 {
            assert_eq!(limiter.admit(RateClass::Public, a(1), 0), Ok(()));
        }
        assert_eq!(limiter.admit(RateClass::Read, a(1), 0), Ok(()));
        let refusal = limiter
            .admit(RateClass::Read, a(1), 0)
            .expect_err("one a minute");
        assert_eq!(refusal.retry_after_secs(), 60);
        let samples = limiter.samples();
        let public = samples[RateClass::Public.index()];
        assert_eq!((public.refused, public.keys), (0, 0));
        let read = samples[RateClass::Read.index()];
        assert_eq!(
            (read.class, read.refused, read.keys),
            (RateClass::Read, 1, 1)
        );
    }

    fn check_route(method: Method, path: &str, expected: Route) {
        assert_eq!(route_of(&method, path), expected, "{method} {path}");
    }

    #[test]
    fn routes_fall_in_their_classes() {
        use RateClass::{Log, Public, Read, Write};
        use Route::{ByAddress, ByCaller, Exempt, Operator};
        check_route(Method::GET, "/healthz", Exempt);
        check_route(Method::GET, "/readyz", Exempt);
        check_route(Method::GET, "/metrics", Exempt);
        check_route(Method::GET, "/metrics/x", ByCaller(Read));
        check_route(Method::GET, "/log/checkpoint", ByAddress(Log));
        check_route(Method::GET, "/log/tile/0/x001/234.p/5", ByAddress(Log));
        check_route(Method::GET, "/log/tile/entries/000", ByAddress(Log));
        check_route(Method::GET, "/v1/log/key", ByAddress(Log));
        check_route(Method::GET, "/v1/log/policy", ByAddress(Log));
        check_route(Method::GET, "/01/06901234567892/10/L1", ByAddress(Public));
        check_route(Method::HEAD, "/01/06901234567892", ByAddress(Public));
        check_route(Method::OPTIONS, "/01/06901234567892", ByAddress(Public));
        check_route(Method::GET, "/AQnYUc1gmiCNV4JG", ByAddress(Public));
        check_route(Method::GET, "/", ByAddress(Public));
        check_route(Method::GET, "/qr/01/06901234567892.svg", ByAddress(Public));
        check_route(Method::GET, "/.well-known/gs1resolver", ByAddress(Public));
        check_route(
            Method::GET,
            "/v1/public/01/06901234567892",
            ByAddress(Public),
        );
        check_route(
            Method::GET,
            "/v1/public/lots/g/l/journey",
            ByAddress(Public),
        );
        check_route(Method::GET, "/v1/issuer-keys/k1", ByAddress(Public));
        check_route(Method::GET, "/pages/verify.js", ByAddress(Public));
        check_route(Method::GET, "/console", ByAddress(Public));
        check_route(Method::GET, "/console/shipments/o/s", ByAddress(Public));
        check_route(Method::GET, "/entry/harvest", ByAddress(Public));
        check_route(Method::GET, "/login", ByAddress(Public));
        check_route(Method::GET, "/openapi.json", ByAddress(Public));
        check_route(Method::GET, "/consoles/x", ByCaller(Read));
        check_route(Method::GET, "/v1/whoami", ByCaller(Read));
        check_route(
            Method::GET,
            "/trace/01/06901234567892/10/L1",
            ByCaller(Read),
        );
        check_route(Method::GET, "/epcis/events", ByCaller(Read));
        check_route(Method::POST, "/epcis/capture", ByCaller(Write));
        check_route(Method::POST, "/v1/verify/document", ByCaller(Write));
        check_route(
            Method::DELETE,
            "/v1/tokens/0102030405060708",
            ByCaller(Write),
        );
        check_route(Method::PUT, "/v1/orgs/coop/partners/p", ByCaller(Write));
        check_route(Method::POST, "/v1/admin/orgs", Operator(Write));
        check_route(Method::POST, "/v1/devices/import", Operator(Write));
        check_route(
            Method::GET,
            "/v1/devices/d/readings/0/anchor",
            ByCaller(Read),
        );
    }

    #[test]
    fn budgets_parse_from_their_environment_form() {
        let check = |text: &str, expected: Result<Budget, ()>| {
            assert_eq!(text.parse::<Budget>().map_err(|_| ()), expected, "{text:?}");
        };
        check("600/100", Ok(Budget::new(600, 100)));
        check(" 6 / 20 ", Ok(Budget::new(6, 20)));
        check("0", Ok(Budget::OFF));
        check("off", Ok(Budget::OFF));
        check("600", Err(()));
        check("600/", Err(()));
        check("-1/2", Err(()));
        check("", Err(()));
        assert_eq!(Budget::new(600, 100).to_string(), "600/100");
        assert_eq!(Budget::OFF.to_string(), "off");
    }
}
