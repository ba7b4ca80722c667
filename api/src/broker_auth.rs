//! Who may talk to the MQTT broker, and on which topics.
//!
//! **Credentials.** A device logs in with username = its device id (16 hex digits) and
//! password = a 256-bit random secret that the device itself generates when it is provisioned
//! (`agritrace-device` keeps it in `<device-id>.mqtt`, readable by its owner only). The
//! manifest it hands to the backend carries only the salted PBKDF2-SHA512 hash of that secret,
//! in Mosquitto's own `$7$` format, so the secret never leaves the device and the node stores
//! nothing that would let anyone log in (a leaked data directory or manifest gives no access).
//! The hash is kept in the [`CREDENTIALS`] table, keyed by device id, written after the
//! device's key is registered (re-importing a manifest sets it again: a lost secret is replaced
//! by provisioning a new one and importing). Ingest has one service identity,
//! [`INGEST_USERNAME`], whose password the node makes (in-process broker) or reads from a file
//! (external broker). Why not node-issued tokens: they would need a way back to the device;
//! the manifest already travels from the device to the backend, and a hash in it is no secret.
//!
//! **Topic permissions** ([`may_publish`], [`may_subscribe`]): a device publishes only to
//! `agritrace/v1/devices/<its id>/readings` and subscribes only to `.../<its id>/acks`; ingest
//! subscribes only to the readings filter (plain or `$share/<group>/...`) and publishes only
//! device acks. Ingest still trusts only signatures: the broker's check closes the door to
//! floods and to reading other devices' acks, nothing more.
//!
//! **In-process broker.** rumqttd 0.20 offers a login check (a static `auth` map or an
//! `external_auth` handler called with client id, username and password, in
//! `link/remote.rs::handle_auth`) but no topic permissions at all, and on a refused login it
//! closes the connection without a CONNACK. So with `broker.device_auth = true` the node puts
//! [`serve_gateway`] in front of it: an MQTT 3.1.1-aware relay that owns the public listener,
//! checks CONNECT (answering CONNACK 5 "not authorised" when refused), checks every PUBLISH
//! topic (a refused one closes the connection: it never reaches the broker) and every
//! SUBSCRIBE (refused whole with SUBACK 0x80 per filter, nothing forwarded), and relays the
//! rest unchanged. rumqttd itself listens on a loopback port and takes only the gateway's own
//! login (a random password made at start, in its static `auth` map), so a local program cannot
//! go around the gateway.
//!
//! **Mosquitto.** [`mosquitto_files`] writes the `password_file` (the same `$7$` hashes), an
//! `acl_file` with `pattern` rules (`%u` = the username = the device id) and the
//! `allow_anonymous false` fragment that includes both.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ingest::{DeviceRegistry, IngestStorage, KeyStatus};
use ledger::storage::{ReadError, SidecarRecord};
use protocol::DeviceId;
use tokio::io::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader, BufWriter,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Table of device broker credentials: key = the device id's 8 bytes, value = the `$7$` hash.
pub const CREDENTIALS: &str = "broker_credentials";
/// The username of ingest's connections.
pub const INGEST_USERNAME: &str = "agritrace-ingest";
/// The username the gateway logs in to rumqttd with.
const GATEWAY_USERNAME: &str = "agritrace-gateway";
pub use protocol::credential::{
    HashError, PBKDF2_ITERATIONS, PasswordHash, SALT_BYTES, pbkdf2_hmac_sha512,
};
/// Random bytes of a new secret (written as 64 hex digits).
pub const SECRET_BYTES: usize = 32;
/// Longest password or username a login may carry.
const LOGIN_BYTES_MAX: usize = 256;
/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Room in a packet beyond the largest payload (fixed header, topic, packet id).
const PACKET_OVERHEAD_BYTES: usize = 65_536 + 8;

/// MQTT 3.1.1 packet types (§2.2.1) the gateway looks into.
const CONNECT: u8 = 1;
const PUBLISH: u8 = 3;
const SUBSCRIBE: u8 = 8;
/// CONNACK return code 5: not authorised (MQTT 3.1.1 §3.2.2.3).
const CONNACK_NOT_AUTHORISED: [u8; 4] = [0x20, 2, 0, 5];
/// SUBACK return code: failure (MQTT 3.1.1 §3.9.3).
const SUBACK_FAILURE: u8 = 0x80;

/// Why a credential could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The text is not a Mosquitto `$7$` PBKDF2-SHA512 hash.
    #[error(transparent)]
    BadHash(#[from] HashError),
    /// The operating system's random generator failed.
    #[error("the random generator failed: {0}")]
    Random(String),
    /// Storage failed.
    #[error("reading the broker credentials failed")]
    Read(#[from] ReadError),
    /// The device registry failed.
    #[error("reading the device keys failed: {0}")]
    Registry(String),
    /// A file could not be read or written.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("opening the store failed: {0}")]
    Store(String),
    /// A stored record is not what this module writes.
    #[error("the stored broker credential of {0} is corrupt")]
    Corrupt(DeviceId),
}

/// A new salted hash of `password` (random salt, [`PBKDF2_ITERATIONS`]).
///
/// # Errors
/// [`CredentialError::Random`] if the random generator fails.
pub fn hash_password(password: &[u8]) -> Result<PasswordHash, CredentialError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| CredentialError::Random(e.to_string()))?;
    Ok(PasswordHash::with_salt(password, &salt, PBKDF2_ITERATIONS))
}

/// A new random secret, as 64 lowercase hex digits.
///
/// # Errors
/// [`CredentialError::Random`] if the random generator fails.
pub fn new_secret() -> Result<String, CredentialError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| CredentialError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Who a login is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A registered device.
    Device(DeviceId),
    /// The ingest service.
    Ingest,
}

/// The device id in `topic` when it is `agritrace/v1/devices/<id>/<leaf>`.
fn device_topic(topic: &str, leaf: &str) -> Option<DeviceId> {
    let id = topic
        .strip_prefix("agritrace/v1/devices/")?
        .strip_suffix(leaf)?
        .strip_suffix('/')?;
    id.parse().ok()
}

/// Whether `identity` may publish to `topic` (a topic name: wildcards are never valid there).
#[must_use]
pub fn may_publish(identity: Identity, topic: &str) -> bool {
    match identity {
        Identity::Device(device) => topic == protocol::topic::readings_topic(device).as_str(),
        Identity::Ingest => device_topic(topic, "acks").is_some(),
    }
}

/// Whether `identity` may subscribe to `filter`.
#[must_use]
pub fn may_subscribe(identity: Identity, filter: &str) -> bool {
    match identity {
        Identity::Device(device) => filter == protocol::topic::acks_topic(device).as_str(),
        Identity::Ingest => {
            // MQTT 5 §4.8.2 (which Mosquitto and rumqttd also take over 3.1.1):
            // `$share/<group>/<filter>`, the group one level without wildcards.
            let plain = match filter.strip_prefix("$share/") {
                Some(rest) => match rest.split_once('/') {
                    Some((group, plain)) if !group.is_empty() && !group.contains(['+', '#']) => {
                        plain
                    }
                    _ => return false,
                },
                None => filter,
            };
            plain == protocol::topic::READINGS_FILTER
        }
    }
}

/// The credential record key of `device`.
fn credential_key(device: DeviceId) -> Vec<u8> {
    device.0.to_vec()
}

/// The record that stores `hash` as `device`'s broker credential (write it with
/// `put_records`, or with the device's registration).
#[must_use]
pub fn credential_record(device: DeviceId, hash: &PasswordHash) -> SidecarRecord {
    SidecarRecord {
        table: CREDENTIALS.to_owned(),
        key: credential_key(device),
        value: hash.to_string().into_bytes(),
    }
}

/// The stored broker credential of `device`.
///
/// # Errors
/// [`CredentialError`] if storage fails or the record is corrupt.
pub fn credential<S: IngestStorage>(
    storage: &S,
    device: DeviceId,
) -> Result<Option<PasswordHash>, CredentialError> {
    let Some(value) = storage.read(CREDENTIALS, &credential_key(device))? else {
        return Ok(None);
    };
    std::str::from_utf8(&value)
        .ok()
        .and_then(|text| text.parse().ok())
        .map(Some)
        .ok_or(CredentialError::Corrupt(device))
}

/// Every stored device credential, in device id order.
///
/// # Errors
/// [`CredentialError`] if storage fails or a record is corrupt.
pub fn credentials<S: IngestStorage>(
    storage: &S,
) -> Result<Vec<(DeviceId, PasswordHash)>, CredentialError> {
    storage
        .scan(CREDENTIALS, &[], &[0xff; 9], usize::MAX)?
        .into_iter()
        .map(|(key, value)| {
            let id: [u8; 8] = key
                .try_into()
                .map_err(|_| CredentialError::Corrupt(DeviceId([0; 8])))?;
            let device = DeviceId(id);
            let hash = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(CredentialError::Corrupt(device))?;
            Ok((device, hash))
        })
        .collect()
}

/// The `mqtt_password_hash` of each device of an `agritrace-device` manifest that has one
/// (older manifests have none). Call it after the manifest was imported.
///
/// # Errors
/// A message naming the device whose hash is malformed.
pub fn manifest_credentials(manifest_json: &str) -> Result<Vec<(DeviceId, PasswordHash)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(manifest_json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(devices) = value["devices"].as_array() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in devices {
        let Some(hash) = entry.get("mqtt_password_hash") else {
            continue;
        };
        let device: DeviceId = entry["device_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| "a device_id is malformed".to_owned())?;
        let hash = hash
            .as_str()
            .ok_or_else(|| format!("device {device}: mqtt_password_hash is not a string"))?
            .parse()
            .map_err(|e| format!("device {device}: mqtt_password_hash: {e}"))?;
        out.push((device, hash));
    }
    Ok(out)
}

/// Stores the broker credentials a manifest carries (every device of it must be registered).
///
/// # Errors
/// A message if a hash is malformed or storage fails; nothing is written then.
pub async fn store_manifest_credentials<S: IngestStorage>(
    storage: &S,
    manifest_json: &str,
) -> Result<usize, String> {
    let found = manifest_credentials(manifest_json)?;
    let count = found.len();
    if count == 0 {
        return Ok(0);
    }
    let records = found
        .iter()
        .map(|(device, hash)| credential_record(*device, hash))
        .collect();
    storage
        .put_records(records)
        .await
        .map_err(|e| format!("storing the broker credentials failed: {e}"))?;
    Ok(count)
}

/// Decides logins against the node's storage: a device's stored hash (while it has an active
/// key: a device whose every key is revoked is refused) and ingest's password.
#[derive(Debug)]
pub struct Authority<S> {
    registry: DeviceRegistry<S>,
    ingest: Arc<PasswordHash>,
}

impl<S> Clone for Authority<S> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            ingest: self.ingest.clone(),
        }
    }
}

impl<S: IngestStorage> Authority<S> {
    /// An authority over the registry's storage (its keys are read uncached, so a
    /// revocation refuses the next login at once), with ingest logging in with
    /// `ingest_password`.
    ///
    /// # Errors
    /// [`CredentialError::Random`] if no salt can be drawn.
    pub fn new(
        registry: DeviceRegistry<S>,
        ingest_password: &str,
    ) -> Result<Self, CredentialError> {
        Ok(Self {
            registry,
            ingest: Arc::new(hash_password(ingest_password.as_bytes())?),
        })
    }

    /// Who logs in with `username` and `password` from `client_id`, or `None` if refused. A
    /// device must use its id as client id too, so it cannot take over another client's
    /// session (MQTT 3.1.1 §3.1.4: a new connection with the same client id closes the old);
    /// ingest may use any client id that is not a device id.
    ///
    /// # Errors
    /// [`CredentialError`] if storage fails.
    pub fn check(
        &self,
        client_id: &str,
        username: &str,
        password: &[u8],
    ) -> Result<Option<Identity>, CredentialError> {
        if username == INGEST_USERNAME {
            let ok = client_id.parse::<DeviceId>().is_err() && self.ingest.verify(password);
            return Ok(ok.then_some(Identity::Ingest));
        }
        let Ok(device) = username.parse::<DeviceId>() else {
            return Ok(None);
        };
        if client_id != username {
            return Ok(None);
        }
        let Some(hash) = credential(self.registry.storage(), device)? else {
            return Ok(None);
        };
        if !hash.verify(password) {
            return Ok(None);
        }
        let active = self
            .registry
            .keys(device)
            .map_err(|e| CredentialError::Registry(e.to_string()))?
            .iter()
            .any(|record| record.status == KeyStatus::Active);
        Ok(active.then_some(Identity::Device(device)))
    }
}

/// The login the gateway presents to rumqttd (rumqttd's static `auth` map holds it).
#[derive(Clone)]
pub struct UpstreamLogin {
    password: String,
}

impl std::fmt::Debug for UpstreamLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamLogin(..)")
    }
}

impl UpstreamLogin {
    /// A login with a fresh random password.
    ///
    /// # Errors
    /// [`CredentialError::Random`] if the random generator fails.
    pub fn new() -> Result<Self, CredentialError> {
        Ok(Self {
            password: new_secret()?,
        })
    }

    /// The `(username, password)` pair for rumqttd's `auth` map.
    #[must_use]
    pub fn pair(&self) -> (String, String) {
        (GATEWAY_USERNAME.to_owned(), self.password.clone())
    }
}

/// One MQTT control packet, whole (fixed header included), as read from a stream.
struct RawPacket {
    bytes: Vec<u8>,
    body_start: usize,
}

impl RawPacket {
    fn kind(&self) -> u8 {
        self.bytes[0] >> 4
    }

    fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }
}

/// Reads one packet; `None` at a clean end of stream.
async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    bytes_max: usize,
) -> std::io::Result<Option<RawPacket>> {
    let mut first = [0u8; 1];
    if reader.read(&mut first).await? == 0 {
        return Ok(None);
    }
    let mut bytes = vec![first[0]];
    // MQTT 3.1.1 §2.2.3: remaining length, up to four bytes of 7 bits.
    let mut length: usize = 0;
    for shift in [0, 7, 14, 21] {
        let byte = reader.read_u8().await?;
        bytes.push(byte);
        length |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        if shift == 21 {
            return Err(std::io::Error::other("malformed remaining length"));
        }
    }
    if length > bytes_max {
        return Err(std::io::Error::other("packet larger than allowed"));
    }
    let body_start = bytes.len();
    bytes.resize(body_start + length, 0);
    reader.read_exact(&mut bytes[body_start..]).await?;
    Ok(Some(RawPacket { bytes, body_start }))
}

/// A cursor over a packet body (MQTT 3.1.1 §1.5 data representations).
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.rest.get(..2)?;
        let value = u16::from_be_bytes([bytes[0], bytes[1]]);
        self.rest = &self.rest[2..];
        Some(value)
    }

    fn binary(&mut self) -> Option<&'a [u8]> {
        let length = usize::from(self.u16()?);
        let value = self.rest.get(..length)?;
        self.rest = &self.rest[length..];
        Some(value)
    }

    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.binary()?).ok()
    }
}

/// The parts of a CONNECT the gateway checks and passes on.
struct Connect<'a> {
    level: u8,
    flags: u8,
    keep_alive: u16,
    client_id: &'a str,
    will: Option<(&'a str, &'a [u8])>,
    username: Option<&'a str>,
    password: Option<&'a [u8]>,
}

fn parse_connect(body: &[u8]) -> Option<Connect<'_>> {
    let mut fields = Fields { rest: body };
    if fields.string()? != "MQTT" {
        return None;
    }
    let level = fields.u8()?;
    let flags = fields.u8()?;
    let keep_alive = fields.u16()?;
    let client_id = fields.string()?;
    let will = if flags & 0x04 != 0 {
        Some((fields.string()?, fields.binary()?))
    } else {
        None
    };
    let username = if flags & 0x80 != 0 {
        Some(fields.string()?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(fields.binary()?)
    } else {
        None
    };
    Some(Connect {
        level,
        flags,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn put_binary(out: &mut Vec<u8>, value: &[u8]) -> Option<()> {
    out.extend_from_slice(&u16::try_from(value.len()).ok()?.to_be_bytes());
    out.extend_from_slice(value);
    Some(())
}

/// The fixed header and body of a packet of `first` byte.
fn frame(first: u8, body: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![first];
    let mut length = body.len();
    if length > 268_435_455 {
        return None;
    }
    loop {
        // Seven bits at a time (MQTT 3.1.1 §2.2.3); the mask makes the cast exact.
        let mut byte = u8::try_from(length & 0x7f).ok()?;
        length >>= 7;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    Some(out)
}

/// The CONNECT the gateway sends rumqttd: the client's, with the gateway's login instead of
/// the client's.
fn upstream_connect(connect: &Connect<'_>, login: &UpstreamLogin) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    put_binary(&mut body, b"MQTT")?;
    body.push(connect.level);
    body.push((connect.flags & 0x3e) | 0xc0);
    body.extend_from_slice(&connect.keep_alive.to_be_bytes());
    put_binary(&mut body, connect.client_id.as_bytes())?;
    if let Some((topic, message)) = connect.will {
        put_binary(&mut body, topic.as_bytes())?;
        put_binary(&mut body, message)?;
    }
    put_binary(&mut body, GATEWAY_USERNAME.as_bytes())?;
    put_binary(&mut body, login.password.as_bytes())?;
    frame(CONNECT << 4, &body)
}

/// The SUBSCRIBE's packet id and filters.
fn parse_subscribe(body: &[u8]) -> Option<(u16, Vec<&str>)> {
    let mut fields = Fields { rest: body };
    let packet_id = fields.u16()?;
    let mut filters = Vec::new();
    while !fields.rest.is_empty() {
        filters.push(fields.string()?);
        fields.u8()?;
    }
    (!filters.is_empty()).then_some((packet_id, filters))
}

/// The topic name of a PUBLISH.
fn publish_topic(body: &[u8]) -> Option<&str> {
    Fields { rest: body }.string()
}

/// Settings of the gateway.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// rumqttd's loopback listener.
    pub upstream: SocketAddr,
    /// The login rumqttd accepts.
    pub login: UpstreamLogin,
    /// Most client connections at once.
    pub connections_max: usize,
    /// Largest publish payload in bytes.
    pub payload_bytes_max: usize,
}

/// Serves MQTT clients on `listener`, checking each against `authority` and relaying what
/// it allows to rumqttd. Runs until the listener fails.
pub async fn serve_gateway<S: IngestStorage + Send + Sync + 'static>(
    listener: TcpListener,
    authority: Authority<S>,
    settings: GatewaySettings,
) {
    let permits = Arc::new(Semaphore::new(settings.connections_max));
    let settings = Arc::new(settings);
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "the MQTT gateway could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "MQTT connection refused: connections_max reached");
            continue;
        };
        let authority = authority.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            if let Err(reason) = relay(client, &authority, &settings).await {
                tracing::info!(%peer, reason, "MQTT connection closed by the gateway");
            }
            drop(permit);
        });
    }
}

/// One client connection: login check, then both directions until either side closes.
async fn relay<S: IngestStorage + Send + Sync + 'static>(
    client: TcpStream,
    authority: &Authority<S>,
    settings: &GatewaySettings,
) -> Result<(), String> {
    let _ = client.set_nodelay(true);
    let bytes_max = settings.payload_bytes_max + PACKET_OVERHEAD_BYTES;
    let (client_read, client_write) = client.into_split();
    let mut client_read = BufReader::new(client_read);
    let mut client_write = BufWriter::new(client_write);
    let first = tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut client_read, 4096))
        .await
        .map_err(|_| "no CONNECT in time".to_owned())?
        .map_err(|e| format!("reading CONNECT: {e}"))?
        .ok_or("closed before CONNECT")?;
    if first.kind() != CONNECT {
        return Err("the first packet is not CONNECT".to_owned());
    }
    let connect = parse_connect(first.body()).ok_or("malformed CONNECT")?;
    let (username, password) = match (connect.username, connect.password) {
        (Some(u), Some(p)) if u.len() <= LOGIN_BYTES_MAX && p.len() <= LOGIN_BYTES_MAX => (u, p),
        _ => {
            refuse(&mut client_write).await;
            return Err("CONNECT without username and password".to_owned());
        }
    };
    let (client_id, user, pass) = (
        connect.client_id.to_owned(),
        username.to_owned(),
        password.to_vec(),
    );
    let checker = authority.clone();
    let identity = tokio::task::spawn_blocking(move || checker.check(&client_id, &user, &pass))
        .await
        .map_err(|e| format!("the login check failed: {e}"))?
        .map_err(|e| format!("the login check failed: {e}"))?;
    let will_ok = |identity: Identity| {
        connect
            .will
            .is_none_or(|(topic, _)| may_publish(identity, topic))
    };
    let identity = match identity {
        Some(identity) if will_ok(identity) => identity,
        _ => {
            refuse(&mut client_write).await;
            return Err(format!("login of {username:?} refused"));
        }
    };
    let upstream_connect =
        upstream_connect(&connect, &settings.login).ok_or("CONNECT too large to relay")?;
    let upstream = TcpStream::connect(settings.upstream)
        .await
        .map_err(|e| format!("connecting to the broker: {e}"))?;
    let _ = upstream.set_nodelay(true);
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut upstream_read = BufReader::new(upstream_read);
    let mut upstream_write = BufWriter::new(upstream_write);
    upstream_write
        .write_all(&upstream_connect)
        .await
        .map_err(|e| e.to_string())?;
    upstream_write.flush().await.map_err(|e| e.to_string())?;
    // Answers of the gateway's own (SUBACK of a refused SUBSCRIBE) go to the client through
    // the task that writes to it, between two of the broker's packets.
    let (answers, mut answers_rx) = mpsc::channel::<Vec<u8>>(16);
    let down = async move {
        loop {
            tokio::select! {
                packet = read_packet(&mut upstream_read, bytes_max) => {
                    let Some(packet) = packet.map_err(|e| format!("from the broker: {e}"))? else {
                        return Ok::<(), String>(());
                    };
                    client_write.write_all(&packet.bytes).await.map_err(|e| e.to_string())?;
                    if upstream_read.buffer().is_empty() {
                        client_write.flush().await.map_err(|e| e.to_string())?;
                    }
                }
                Some(answer) = answers_rx.recv() => {
                    client_write.write_all(&answer).await.map_err(|e| e.to_string())?;
                    client_write.flush().await.map_err(|e| e.to_string())?;
                }
            }
        }
    };
    let up = async move {
        loop {
            let Some(packet) = read_packet(&mut client_read, bytes_max)
                .await
                .map_err(|e| format!("from the client: {e}"))?
            else {
                return Ok::<(), String>(());
            };
            match packet.kind() {
                CONNECT => return Err("a second CONNECT".to_owned()),
                PUBLISH => {
                    let topic = publish_topic(packet.body()).ok_or("malformed PUBLISH")?;
                    if !may_publish(identity, topic) {
                        return Err(format!("{identity:?} may not publish to {topic:?}"));
                    }
                }
                SUBSCRIBE => {
                    let (packet_id, filters) =
                        parse_subscribe(packet.body()).ok_or("malformed SUBSCRIBE")?;
                    if let Some(denied) = filters.iter().find(|f| !may_subscribe(identity, f)) {
                        tracing::info!(?identity, filter = denied, "MQTT subscription refused");
                        let mut body = packet_id.to_be_bytes().to_vec();
                        body.extend(std::iter::repeat_n(SUBACK_FAILURE, filters.len()));
                        let answer = frame(0x90, &body).ok_or("SUBACK too large")?;
                        answers.send(answer).await.map_err(|e| e.to_string())?;
                        continue;
                    }
                }
                _ => {}
            }
            upstream_write
                .write_all(&packet.bytes)
                .await
                .map_err(|e| e.to_string())?;
            if client_read.buffer().is_empty() {
                upstream_write.flush().await.map_err(|e| e.to_string())?;
            }
        }
    };
    // Either side ending ends the connection (dropping both halves closes both sockets).
    tokio::select! {
        result = down => result,
        result = up => result,
    }
}

/// CONNACK 5 (not authorised), then the connection closes.
async fn refuse<W: AsyncWrite + Unpin>(writer: &mut W) {
    let _ = writer.write_all(&CONNACK_NOT_AUTHORISED).await;
    let _ = writer.flush().await;
}

/// The Mosquitto files of [`mosquitto_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoFiles {
    /// `password_file`: `username:$7$...` lines, ingest first.
    pub passwords: String,
    /// `acl_file`.
    pub acl: String,
}

/// The password file and ACL file for Mosquitto 2.0: ingest's login and every device's.
#[must_use]
pub fn mosquitto_files(
    ingest: &PasswordHash,
    devices: &[(DeviceId, PasswordHash)],
) -> MosquittoFiles {
    let mut passwords = format!("{INGEST_USERNAME}:{ingest}\n");
    for (device, hash) in devices {
        passwords.push_str(&format!("{device}:{hash}\n"));
    }
    // mosquitto.conf(5), acl_file: `user` rules apply to that user; `pattern` rules to
    // everyone, with %u the username (the device id for devices).
    let acl = format!(
        "# agritrace: ingest reads every device's readings and writes device acks.\n\
         user {INGEST_USERNAME}\n\
         topic read {readings}\n\
         topic write agritrace/v1/devices/+/acks\n\
         \n\
         # agritrace: a device (username = its id) writes only its own readings and reads\n\
         # only its own acks.\n\
         pattern write agritrace/v1/devices/%u/readings\n\
         pattern read agritrace/v1/devices/%u/acks\n",
        readings = protocol::topic::READINGS_FILTER,
    );
    MosquittoFiles { passwords, acl }
}

/// The `mosquitto.conf` lines that turn the files on (`password_file`, `acl_file` at the
/// paths given).
#[must_use]
pub fn mosquitto_conf_fragment(password_file: &str, acl_file: &str) -> String {
    format!(
        "# agritrace broker authentication (generated by `agritrace broker config`).\n\
         # Mosquitto 2.0 reads these options once per listener when per_listener_settings is\n\
         # false (its default). Send SIGHUP to reload the files after a new import.\n\
         allow_anonymous false\n\
         password_file {password_file}\n\
         acl_file {acl_file}\n"
    )
}

/// What [`write_mosquitto_config`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoConfigReport {
    /// The `mosquitto.conf` fragment to include.
    pub conf: PathBuf,
    /// The file ingest reads its password from (`broker.ingest_password_file`).
    pub ingest_password_file: PathBuf,
    /// Whether that password was made now (otherwise the existing one was kept).
    pub ingest_password_created: bool,
    /// Devices in the password file.
    pub devices: usize,
}

/// Writes Mosquitto's files for the devices of the node's data directory into `out`:
/// `passwords` (`password_file`), `acl` (`acl_file`), `agritrace.conf` (the fragment to
/// include from `mosquitto.conf`) and `ingest.password` (kept when it exists, mode 0600). The
/// node must not be running on the data directory (the store admits one process).
///
/// # Errors
/// [`CredentialError`] if the store or a file fails.
pub fn write_mosquitto_config(
    config: &crate::config::NodeConfig,
    out: &Path,
) -> Result<MosquittoConfigReport, CredentialError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |what: String| move |source| CredentialError::Io { what, source };
    let store = config.store_path();
    let storage = ledger::storage::redb::RedbStorage::open(&store, ledger::empty_root().0)
        .map_err(|e| CredentialError::Store(format!("{}: {e}", store.display())))?;
    let devices = credentials(&storage)?;
    drop(storage);
    std::fs::create_dir_all(out).map_err(io(format!("creating {}", out.display())))?;
    let out = out
        .canonicalize()
        .map_err(io(format!("resolving {}", out.display())))?;
    let ingest_password_file = out.join("ingest.password");
    let (password, created) = match std::fs::read_to_string(&ingest_password_file) {
        Ok(text) => (
            text.lines().next().unwrap_or_default().trim().to_owned(),
            false,
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let password = new_secret()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&ingest_password_file)
                .map_err(io(format!("creating {}", ingest_password_file.display())))?;
            file.write_all(format!("{password}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io(format!("writing {}", ingest_password_file.display())))?;
            (password, true)
        }
        Err(error) => {
            return Err(io(format!("reading {}", ingest_password_file.display()))(
                error,
            ));
        }
    };
    if password.is_empty() {
        return Err(CredentialError::Io {
            what: format!("{} is empty", ingest_password_file.display()),
            source: std::io::Error::other("empty password"),
        });
    }
    let files = mosquitto_files(&hash_password(password.as_bytes())?, &devices);
    let passwords = out.join("passwords");
    let acl = out.join("acl");
    let conf = out.join("agritrace.conf");
    // Written whole then renamed, so a broker reloading (SIGHUP) never reads half a file.
    for (path, text) in [
        (&passwords, files.passwords),
        (&acl, files.acl),
        (
            &conf,
            mosquitto_conf_fragment(&passwords.display().to_string(), &acl.display().to_string()),
        ),
    ] {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(MosquittoConfigReport {
        conf,
        ingest_password_file,
        ingest_password_created: created,
        devices: devices.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Known answers of PBKDF2-HMAC-SHA512, from Python's `hashlib.pbkdf2_hmac("sha512", ...)`
    /// (OpenSSL), 64-byte output.
    #[test]
    fn pbkdf2_hmac_sha512_matches_known_answers() {
        let check = |password: &[u8], salt: &[u8], iterations: u32, expected: &str| {
            assert_eq!(
                hex(&pbkdf2_hmac_sha512(password, salt, iterations)),
                expected,
                "{password:?} {salt:?} {iterations}"
            );
        };
        check(b"password", b"salt", 1, KAT_1);
        check(b"password", b"salt", 2, KAT_2);
        check(b"password", b"salt", 101, KAT_101);
        check(&[b'k'; 200], b"saltsaltsalt", 3, KAT_LONG_KEY);
    }

    const KAT_1: &str = "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce";
    const KAT_2: &str = "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53cf76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e";
    const KAT_101: &str = "0899b1f8f12cd157a81fc4cc1f8f046f1ac1f5f733a0534b26eebf34e94415d0e3983938e77f0e205b568937a0c9e21792c46a6944aba1b30ab14186a117e7f2";
    const KAT_LONG_KEY: &str = "7fda7aace7df022b038298a6680485b91d40f714b8e0269567bf77e0595a7ebe02f0efcba17aa7afb1228e45eb4e8c450be0ad9bc13c26c564e2f5087e4a6225";

    #[test]
    fn a_hash_round_trips_through_its_mosquitto_text() {
        let hash = PasswordHash::with_salt(b"secret", &[7; SALT_BYTES], PBKDF2_ITERATIONS);
        let text = hash.to_string();
        assert!(text.starts_with("$7$101$BwcHBwcHBwcHBwcH$"), "{text}");
        let parsed: PasswordHash = text.parse().expect("parses");
        assert_eq!(parsed, hash);
        assert!(parsed.verify(b"secret"));
        assert!(!parsed.verify(b"secreT"));
        assert!(!parsed.verify(b""));
    }

    #[test]
    fn malformed_hashes_are_refused() {
        let good = PasswordHash::with_salt(b"x", &[1; 12], 101).to_string();
        for bad in [
            "",
            "$6$101$AAAA$BBBB",
            "$7$101$AAAA",
            "$7$0$AQEBAQEBAQEBAQEB$AAAA",
            "$7$x$AQEBAQEBAQEBAQEB$AAAA",
            "$7$2000000$AQEBAQEBAQEBAQEB$AAAA",
            "$7$101$!!!$AAAA",
            "$7$101$AQEBAQEBAQEBAQEB$AAAA",
            &format!("{good}$extra"),
        ] {
            assert!(bad.parse::<PasswordHash>().is_err(), "{bad:?} was accepted");
        }
    }

    const A: DeviceId = DeviceId([0xa9, 0, 0, 0, 0, 0, 0, 1]);
    const B: DeviceId = DeviceId([0xa9, 0, 0, 0, 0, 0, 0, 2]);

    #[test]
    fn a_device_publishes_only_its_own_readings() {
        let check = |topic: &str, expected: bool| {
            assert_eq!(may_publish(Identity::Device(A), topic), expected, "{topic}");
        };
        check("agritrace/v1/devices/a900000000000001/readings", true);
        check("agritrace/v1/devices/a900000000000002/readings", false);
        check("agritrace/v1/devices/a900000000000001/acks", false);
        check("agritrace/v1/devices/+/readings", false);
        check("agritrace/v1/devices/A900000000000001/readings", false);
        check("other", false);
    }

    #[test]
    fn a_device_subscribes_only_to_its_own_acks() {
        let check = |filter: &str, expected: bool| {
            assert_eq!(
                may_subscribe(Identity::Device(A), filter),
                expected,
                "{filter}"
            );
        };
        check("agritrace/v1/devices/a900000000000001/acks", true);
        check("agritrace/v1/devices/a900000000000002/acks", false);
        check("agritrace/v1/devices/+/acks", false);
        check("agritrace/v1/devices/#", false);
        check("#", false);
        check("$share/ingest/agritrace/v1/devices/+/readings", false);
        assert!(may_subscribe(
            Identity::Device(B),
            "agritrace/v1/devices/a900000000000002/acks"
        ));
    }

    #[test]
    fn ingest_reads_readings_and_writes_acks_only() {
        let sub = |filter: &str, expected: bool| {
            assert_eq!(
                may_subscribe(Identity::Ingest, filter),
                expected,
                "{filter}"
            );
        };
        sub("$share/ingest/agritrace/v1/devices/+/readings", true);
        sub("$share/other/agritrace/v1/devices/+/readings", true);
        sub("agritrace/v1/devices/+/readings", true);
        sub("$share//agritrace/v1/devices/+/readings", false);
        sub("$share/+/agritrace/v1/devices/+/readings", false);
        sub("agritrace/v1/devices/+/acks", false);
        sub("#", false);
        let publish = |topic: &str, expected: bool| {
            assert_eq!(may_publish(Identity::Ingest, topic), expected, "{topic}");
        };
        publish("agritrace/v1/devices/a900000000000002/acks", true);
        publish("agritrace/v1/devices/a900000000000002/readings", false);
        publish("agritrace/v1/devices/+/acks", false);
    }

    #[test]
    fn connect_is_rewritten_with_the_gateway_login() {
        // rumqttc-style CONNECT: clean session, keep-alive 30, client id "abc", user "u",
        // password "p", a will on topic "w" with message "m".
        let mut body = Vec::new();
        put_binary(&mut body, b"MQTT").expect("short");
        body.extend_from_slice(&[4, 0xc6, 0, 30]);
        for field in [&b"abc"[..], b"w", b"m", b"u", b"p"] {
            put_binary(&mut body, field).expect("short");
        }
        let connect = parse_connect(&body).expect("parses");
        assert_eq!(connect.client_id, "abc");
        assert_eq!(connect.will, Some(("w", &b"m"[..])));
        assert_eq!(connect.username, Some("u"));
        assert_eq!(connect.password, Some(&b"p"[..]));
        let login = UpstreamLogin {
            password: "gw".to_owned(),
        };
        let packet = upstream_connect(&connect, &login).expect("fits");
        assert_eq!(packet[0], 0x10);
        let rewritten = parse_connect(&packet[2..]).expect("parses");
        assert_eq!(rewritten.client_id, "abc");
        assert_eq!(rewritten.keep_alive, 30);
        assert_eq!(rewritten.will, Some(("w", &b"m"[..])));
        assert_eq!(rewritten.username, Some(GATEWAY_USERNAME));
        assert_eq!(rewritten.password, Some(&b"gw"[..]));
        assert_eq!(rewritten.flags & 0x3e, 0x06);
    }

    #[test]
    fn truncated_packets_do_not_parse() {
        assert!(parse_connect(&[0, 4, b'M', b'Q']).is_none());
        assert!(parse_subscribe(&[0, 1]).is_none());
        assert!(parse_subscribe(&[0, 1, 0, 3, b'a']).is_none());
        assert!(publish_topic(&[0, 9, b'a']).is_none());
        assert_eq!(
            parse_subscribe(&[0, 1, 0, 1, b'a', 1]).map(|(id, f)| (id, f.len())),
            Some((1, 1))
        );
    }

    #[test]
    fn remaining_lengths_are_encoded_as_mqtt_says() {
        let check = |length: usize, header: &[u8]| {
            let packet = frame(0x30, &vec![0; length]).expect("fits");
            assert_eq!(&packet[..header.len()], header, "{length}");
            assert_eq!(packet.len(), header.len() + length);
        };
        // MQTT 3.1.1 §2.2.3, table 2.4 boundaries.
        check(0, &[0x30, 0x00]);
        check(127, &[0x30, 0x7f]);
        check(128, &[0x30, 0x80, 0x01]);
        check(16_383, &[0x30, 0xff, 0x7f]);
        check(16_384, &[0x30, 0x80, 0x80, 0x01]);
    }

    #[test]
    fn the_acl_gives_each_device_its_own_topics() {
        let ingest = PasswordHash::with_salt(b"i", &[2; 12], 101);
        let device = PasswordHash::with_salt(b"d", &[3; 12], 101);
        let files = mosquitto_files(&ingest, &[(A, device.clone())]);
        assert_eq!(
            files.passwords,
            format!("agritrace-ingest:{ingest}\na900000000000001:{device}\n")
        );
        assert!(
            files
                .acl
                .contains("pattern write agritrace/v1/devices/%u/readings\n")
        );
        assert!(
            files
                .acl
                .contains("pattern read agritrace/v1/devices/%u/acks\n")
        );
        assert!(files.acl.contains("user agritrace-ingest\n"));
    }

    #[test]
    fn manifest_hashes_are_read_and_checked() {
        let hash = PasswordHash::with_salt(b"d", &[3; 12], 101);
        let manifest = format!(
            r#"{{"devices": [{{"device_id": "a900000000000001", "mqtt_password_hash": "{hash}"}},
                            {{"device_id": "a900000000000002"}}]}}"#
        );
        assert_eq!(manifest_credentials(&manifest), Ok(vec![(A, hash)]));
        let bad = r#"{"devices": [{"device_id": "a900000000000001", "mqtt_password_hash": "x"}]}"#;
        assert!(manifest_credentials(bad).is_err());
    }
}
