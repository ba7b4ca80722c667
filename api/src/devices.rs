//! Devices of an organisation (issue "Traceability API": devices): an organisation registers
//! a cold-chain logger's Ed25519 public key, rotates it (signed by the old key) and revokes it.
//! Every key change is a `KeyEvent` committed to the log through [`ingest::DeviceRegistry`], so
//! ingest honours it at once; the device's owner is recorded in the same durable transaction as
//! its registering `KeyEvent` (`DeviceRegistry::register_device_with`), so a device never has a
//! key without an owner or an owner without a key.
//!
//! Devices imported by the node's operator (`agritrace device import`) have no owner. An
//! organisation claims one by proving it holds the device's key: a signature by the device's
//! latest key over [`claim_message`]. A claim writes only the owner records (ownership is not on
//! the public log).
//!
//! | route | action | answers |
//! |---|---|---|
//! | `POST /v1/orgs/{org}/devices` | `ManageDevices` | 201, the device (`{device_id, public_key, name?, mqtt_password_hash?}` in: the hash is the broker credential, stored with the registration); 200 if it is already this organisation's with that key; 409 if it is another's, registered with another key, or imported without an owner |
//! | `POST .../devices/{id}/rotation` | `ManageDevices` | 201, the device (`{key_epoch, public_key, signature}` in: the old key's signature over `ledger::entry::key_rotation_message`) |
//! | `POST .../devices/{id}/revocation` | `ManageDevices` | 201, the device (`{key_epoch?, effective_time_ms?}` in; the latest epoch and now by default) |
//! | `POST .../devices/{id}/claim` | `ManageDevices` | 201, the device (`{signature, name?}` in) |
//! | `GET /v1/orgs/{org}/devices?limit=&next=` | `ReadRecords` (owner, its partners, auditors) | a page of devices |
//! | `GET .../devices/{id}` | `ReadRecords` (owner, its partners, auditors) | owner, name, key history with each `KeyEvent`'s log index, the last reading ingest saw |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use ingest::registry::FIRST_KEY_EPOCH;
use ingest::store::locate_entry;
use ingest::{
    Clock, DeviceRegistry, EntryLocator, IngestStorage, KeyRecord, KeyStatus, RegisterOutcome,
    RegistryError,
};
use ledger::merkle::{Hash, LeafIndex};
use ledger::sequencer::SequencerHandle;
use ledger::storage::SidecarRecord;
use protocol::{DeviceId, KeyEpoch, Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::{Caller, require, require_visible};
use crate::auth::directory::org_key;
use crate::auth::{Action, OrgId};
use crate::http::{ApiError, AppState, hex, json_body, json_status};
use crate::paging::{Page, PageQuery, cursor, prefix_end, query};

/// Owners by the device id's 8 bytes.
pub const DEVICE_OWNERS: &str = "api_device_owners";
/// Index: `org 0x00 device id (16 hex digits)` → empty: an organisation's devices.
pub const ORG_DEVICES: &str = "api_org_devices";
/// Longest device name, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// How far from now a revocation's effective time may be: a revocation takes effect when it
/// commits, so its time may differ from the node's clock by the skew of the caller's clock only.
pub const REVOCATION_SKEW_MS: u64 = 5 * 60 * 1_000;
/// Log indexes of key events remembered (they never change).
const INDEX_CACHE_MAX: usize = 100_000;
/// Domain separation of a claim signature.
const CLAIM_CONTEXT: &[u8] = b"agritrace/device-claim/v1\0";

/// What an organisation signs with a device's key to claim it: the context
/// `"agritrace/device-claim/v1\0"`, the device id's 8 bytes, then the organisation id.
#[must_use]
pub fn claim_message(device: DeviceId, org: &OrgId) -> Vec<u8> {
    let mut out = Vec::with_capacity(CLAIM_CONTEXT.len() + 8 + org.as_str().len());
    out.extend_from_slice(CLAIM_CONTEXT);
    out.extend_from_slice(&device.0);
    out.extend_from_slice(org.as_str().as_bytes());
    out
}

/// Who owns a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOwner {
    /// The device (16 hex digits).
    #[serde(with = "device_hex")]
    pub device: DeviceId,
    /// Its owner.
    pub org: OrgId,
    /// A name its owner gave it.
    pub name: Option<String>,
    /// When the organisation registered or claimed it (Unix ms).
    pub since_ms: u64,
    /// Whether it was claimed (imported by the operator first) rather than registered.
    pub claimed: bool,
}

mod device_hex {
    use protocol::DeviceId;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(device: &DeviceId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(device)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceId, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The devices of organisations, over the node's registry and store.
#[derive(Debug)]
pub struct Devices<S> {
    registry: DeviceRegistry<S>,
    sequencer: SequencerHandle<S>,
    clock: Arc<dyn Clock>,
    write: Arc<tokio::sync::Mutex<()>>,
    indexes: Arc<Mutex<HashMap<Hash, LeafIndex>>>,
}

impl<S: Clone> Clone for Devices<S> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            sequencer: self.sequencer.clone(),
            clock: self.clock.clone(),
            write: self.write.clone(),
            indexes: self.indexes.clone(),
        }
    }
}

fn internal(error: impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("{error:#?}"))
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::BadRequest(reason.into())
}

/// `N` bytes from `2 * N` hex digits (either case).
fn hex_array<const N: usize>(what: &str, text: &str) -> Result<[u8; N], ApiError> {
    let wrong = || bad(format!("{what} must be {} hex digits", 2 * N));
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(wrong());
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let digits = std::str::from_utf8(pair).map_err(|_| wrong())?;
        *byte = u8::from_str_radix(digits, 16).map_err(|_| wrong())?;
    }
    Ok(out)
}

fn check_name(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name {
        Some(name)
            if name.trim().is_empty()
                || name.chars().count() > NAME_CHARS_MAX
                || name.chars().any(char::is_control) =>
        {
            Err(bad(format!(
                "name must be 1 to {NAME_CHARS_MAX} characters without control characters"
            )))
        }
        other => Ok(other),
    }
}

/// The API's answer to a registry refusal.
fn registry_error(error: RegistryError) -> ApiError {
    match error {
        RegistryError::BadKey { .. } | RegistryError::BadRotation { .. } => bad(error.to_string()),
        RegistryError::AlreadyRegistered { .. }
        | RegistryError::WrongEpoch { .. }
        | RegistryError::AlreadyRevoked { .. } => ApiError::Conflict(error.to_string()),
        RegistryError::UnknownKey { .. } => ApiError::NotFound(error.to_string()),
        other => internal(other),
    }
}

impl<S: IngestStorage> Devices<S> {
    /// The devices over `registry` (the one ingest verifies with) and the sequencer's store.
    pub fn new(
        registry: DeviceRegistry<S>,
        sequencer: SequencerHandle<S>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            registry,
            sequencer,
            clock,
            write: Arc::new(tokio::sync::Mutex::new(())),
            indexes: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn storage(&self) -> &S {
        self.sequencer.storage()
    }

    /// Who owns `device` (`None`: unknown, or imported by the operator and not claimed).
    ///
    /// # Errors
    /// 500 if the store fails.
    pub fn owner(&self, device: DeviceId) -> Result<Option<DeviceOwner>, ApiError> {
        self.storage()
            .read(DEVICE_OWNERS, &device.0)
            .map_err(internal)?
            .map(|value| serde_json::from_slice(&value).map_err(internal))
            .transpose()
    }

    /// The owner of `device` if it is `org`, else 404 (a device of another organisation is
    /// not told apart from one that does not exist).
    pub(crate) fn owned(&self, org: &OrgId, device: DeviceId) -> Result<DeviceOwner, ApiError> {
        self.owner(device)?
            .filter(|owner| owner.org == *org)
            .ok_or_else(|| ApiError::NotFound(format!("{org} has no device {device}")))
    }

    fn owner_records(owner: &DeviceOwner) -> Vec<SidecarRecord> {
        vec![
            SidecarRecord {
                table: DEVICE_OWNERS.to_owned(),
                key: owner.device.0.to_vec(),
                // Serialising this plain struct cannot fail.
                value: serde_json::to_vec(owner).unwrap_or_default(),
            },
            SidecarRecord {
                table: ORG_DEVICES.to_owned(),
                key: org_key(&owner.org, &owner.device.to_string()),
                value: Vec::new(),
            },
        ]
    }

    fn keys(&self, device: DeviceId) -> Result<Vec<KeyRecord>, ApiError> {
        self.registry.keys(device).map_err(internal)
    }

    /// Registers `device` with `public_key` for `org`: the `KeyEvent` and the owner records in
    /// one durable transaction. `Ok(false)`: it was `org`'s already with that key.
    async fn register(
        &self,
        org: &OrgId,
        device: DeviceId,
        public_key: [u8; 32],
        name: Option<String>,
        broker_credential: Option<crate::broker_auth::PasswordHash>,
    ) -> Result<bool, ApiError> {
        let _guard = self.write.lock().await;
        let owner = self.owner(device)?;
        if let Some(owner) = &owner
            && owner.org != *org
        {
            return Err(ApiError::Conflict(format!(
                "device {device} belongs to another organisation"
            )));
        }
        let keys = self.keys(device)?;
        if let Some(first) = keys.first() {
            let same_key = keys.len() == 1 && first.public_key == public_key;
            return match (owner, same_key) {
                (Some(_), true) => Ok(false),
                (Some(_), false) => Err(ApiError::Conflict(format!(
                    "device {device} is registered with another key; rotate it instead"
                ))),
                (None, _) => Err(unowned(device)),
            };
        }
        let owner = DeviceOwner {
            device,
            org: org.clone(),
            name,
            since_ms: self.clock.now_ms(),
            claimed: false,
        };
        match self
            .registry
            .register_device_with(
                device,
                FIRST_KEY_EPOCH,
                public_key,
                self.clock.now_ms(),
                // The broker credential commits with the key event and the owner, or not at all.
                Self::owner_records(&owner)
                    .into_iter()
                    .chain(
                        broker_credential
                            .map(|hash| crate::broker_auth::credential_record(device, &hash)),
                    )
                    .collect(),
            )
            .await
            .map_err(registry_error)?
        {
            RegisterOutcome::Registered { index, record } => {
                if let Some(index) = index {
                    self.remember(record.event.leaf_hash, index);
                }
                Ok(true)
            }
            // The operator imported it between our check and the registry's.
            RegisterOutcome::AlreadyRegistered(_) => Err(unowned(device)),
        }
    }

    async fn rotate(
        &self,
        org: &OrgId,
        device: DeviceId,
        epoch: KeyEpoch,
        public_key: [u8; 32],
        signature: [u8; 64],
    ) -> Result<(), ApiError> {
        let _guard = self.write.lock().await;
        self.owned(org, device)?;
        if self
            .keys(device)?
            .last()
            .is_some_and(|k| matches!(k.status, KeyStatus::Revoked { .. }))
        {
            return Err(ApiError::Conflict(format!(
                "device {device}: its latest key is revoked, so nothing can sign a rotation; \
                 register a new device"
            )));
        }
        let (index, record) = self
            .registry
            .rotate_key(device, epoch, public_key, self.clock.now_ms(), signature)
            .await
            .map_err(registry_error)?;
        if let Some(index) = index {
            self.remember(record.event.leaf_hash, index);
        }
        Ok(())
    }

    async fn revoke(
        &self,
        org: &OrgId,
        device: DeviceId,
        epoch: Option<KeyEpoch>,
        effective_time_ms: Option<u64>,
    ) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        let effective = effective_time_ms.unwrap_or(now);
        if effective.abs_diff(now) > REVOCATION_SKEW_MS {
            return Err(bad(format!(
                "effective_time_ms must be within {} minutes of now ({now}): a revocation \
                 takes effect when it is committed",
                REVOCATION_SKEW_MS / 60_000
            )));
        }
        let _guard = self.write.lock().await;
        self.owned(org, device)?;
        let epoch = match epoch {
            Some(epoch) => epoch,
            None => self
                .keys(device)?
                .last()
                .map(|k| k.epoch)
                .ok_or_else(|| ApiError::NotFound(format!("device {device} has no key")))?,
        };
        let (index, record) = self
            .registry
            .revoke_key(device, epoch, effective)
            .await
            .map_err(registry_error)?;
        if let (Some(index), KeyStatus::Revoked { event, .. }) = (index, record.status) {
            self.remember(event.leaf_hash, index);
        }
        Ok(())
    }

    async fn claim(
        &self,
        org: &OrgId,
        device: DeviceId,
        signature: [u8; 64],
        name: Option<String>,
    ) -> Result<(), ApiError> {
        let _guard = self.write.lock().await;
        if let Some(owner) = self.owner(device)? {
            return Err(ApiError::Conflict(if owner.org == *org {
                format!("device {device} is {org}'s already")
            } else {
                format!("device {device} belongs to another organisation")
            }));
        }
        let keys = self.keys(device)?;
        let latest = keys
            .last()
            .ok_or_else(|| ApiError::NotFound(format!("device {device} is not registered")))?;
        if matches!(latest.status, KeyStatus::Revoked { .. }) {
            return Err(ApiError::Conflict(format!(
                "device {device}: its latest key is revoked; nothing can prove it"
            )));
        }
        let key = VerifyingKey::from_bytes(&latest.public_key).map_err(internal)?;
        key.verify_strict(
            &claim_message(device, org),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| {
            bad(format!(
                "signature: not a signature of device {device}'s key epoch {} over the claim \
                 message for {org}",
                latest.epoch.0
            ))
        })?;
        let owner = DeviceOwner {
            device,
            org: org.clone(),
            name,
            since_ms: self.clock.now_ms(),
            claimed: true,
        };
        self.storage()
            .put_records(Self::owner_records(&owner))
            .await
            .map_err(internal)
    }

    fn remember(&self, leaf_hash: Hash, index: LeafIndex) {
        // The map holds no invariant a panic could break half-way.
        let mut indexes = self
            .indexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if indexes.len() >= INDEX_CACHE_MAX {
            indexes.clear();
        }
        indexes.insert(leaf_hash, index);
    }

    /// The log index of the `KeyEvent` `locator` names (`None` if it is not in the durable log).
    async fn log_index(&self, locator: &EntryLocator) -> Result<Option<LeafIndex>, ApiError> {
        let cached = self
            .indexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&locator.leaf_hash)
            .copied();
        if cached.is_some() {
            return Ok(cached);
        }
        let size = self.sequencer.durable_state().size;
        let found = locate_entry(self.storage(), locator, size)
            .await
            .map_err(internal)?;
        if let Some(index) = found {
            self.remember(locator.leaf_hash, index);
        }
        Ok(found)
    }

    /// A device as the API shows it: owner, name, key history with log indexes, last seen.
    ///
    /// # Errors
    /// 500 if the store fails.
    pub async fn view(&self, owner: &DeviceOwner) -> Result<Value, ApiError> {
        let device = owner.device;
        let mut keys = Vec::new();
        for record in self.keys(device)? {
            let revocation = match record.status {
                KeyStatus::Active => Value::Null,
                KeyStatus::Revoked {
                    effective_time_ms,
                    event,
                } => json!({
                    "effective_time_ms": effective_time_ms,
                    "log_index": self.log_index(&event).await?.map(|i| i.0),
                }),
            };
            keys.push(json!({
                "key_epoch": record.epoch.0,
                "public_key": hex(&record.public_key),
                "status": if revocation.is_null() { "active" } else { "revoked" },
                "effective_time_ms": record.effective_time_ms,
                "log_index": self.log_index(&record.event).await?.map(|i| i.0),
                "revocation": revocation,
            }));
        }
        let last_seen = ingest::query::device_seen(self.storage(), device)
            .map_err(internal)?
            .map(|seen| {
                json!({
                    "ingest_time_ms": seen.last_ingest_time_ms,
                    "device_time_ms": seen.last_device_time_ms,
                    "sequence": seen.last_sequence.0,
                    "batch_root": seen.last_batch_root.to_hex(),
                })
            });
        Ok(json!({
            "device_id": device.to_string(),
            "org": owner.org,
            "name": owner.name,
            "since_ms": owner.since_ms,
            "claimed": owner.claimed,
            "keys": keys,
            "last_seen": last_seen,
        }))
    }

    /// A page of `org`'s devices, in device id order, and the cursor of the next page.
    async fn page(
        &self,
        org: &OrgId,
        page: &Page,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let prefix = org_key(org, "");
        let rows = self
            .storage()
            .scan(
                ORG_DEVICES,
                &page.start(&prefix),
                &prefix_end(&prefix),
                page.limit + 1,
            )
            .map_err(internal)?;
        let more = rows.len() > page.limit;
        let rows = &rows[..rows.len().min(page.limit)];
        let mut devices = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            let device: DeviceId = std::str::from_utf8(&key[prefix.len()..])
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| internal("a corrupt device index key"))?;
            let owner = self
                .owner(device)?
                .ok_or_else(|| internal("an indexed device has no owner record"))?;
            devices.push(self.view(&owner).await?);
        }
        let next = if more {
            rows.last().map(|(key, _)| cursor(key))
        } else {
            None
        };
        Ok((devices, next))
    }
}

/// The answer for a device the operator imported without an owner.
fn unowned(device: DeviceId) -> ApiError {
    ApiError::Conflict(format!(
        "device {device} was imported by the node's operator and has no owner; claim it with \
         POST .../devices/{device}/claim and a signature by its key"
    ))
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/devices", get(list).post(register))
        .route("/v1/orgs/{org}/devices/{device}", get(one))
        .route("/v1/orgs/{org}/devices/{device}/rotation", post(rotate))
        .route("/v1/orgs/{org}/devices/{device}/revocation", post(revoke))
        .route("/v1/orgs/{org}/devices/{device}/claim", post(claim))
}

pub(crate) fn org_of(text: &str) -> Result<OrgId, ApiError> {
    text.parse().map_err(|e| bad(format!("organisation: {e}")))
}

pub(crate) fn device_of(text: &str) -> Result<DeviceId, ApiError> {
    text.parse().map_err(|e| bad(format!("device id: {e}")))
}

/// The device's view with `status`.
async fn answer(
    state: &AppState,
    org: &OrgId,
    device: DeviceId,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let owner = state.devices.owned(org, device)?;
    Ok(json_status(status, &state.devices.view(&owner).await?))
}

/// A new device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    device_id: String,
    public_key: String,
    #[serde(default)]
    name: Option<String>,
    /// The `$7$` hash of the device's MQTT password (`broker.device_auth`), as in its manifest.
    #[serde(default)]
    mqtt_password_hash: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::ManageDevices, Some(&org))?;
    let new: NewDevice = json_body(&body)?;
    let device = device_of(&new.device_id)?;
    let public_key = hex_array::<32>("public_key", &new.public_key)?;
    let name = check_name(new.name)?;
    let broker_credential = new
        .mqtt_password_hash
        .map(|hash| {
            hash.parse::<crate::broker_auth::PasswordHash>()
                .map_err(|e| bad(format!("mqtt_password_hash: {e}")))
        })
        .transpose()?;
    let created = state
        .devices
        .register(&org, device, public_key, name, broker_credential)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    answer(&state, &org, device, status).await
}

/// A key rotation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    key_epoch: u32,
    public_key: String,
    signature: String,
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, device)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::ManageDevices, Some(&org))?;
    let device = device_of(&device)?;
    let rotation: Rotation = json_body(&body)?;
    let public_key = hex_array::<32>("public_key", &rotation.public_key)?;
    let signature = hex_array::<64>("signature", &rotation.signature)?;
    state
        .devices
        .rotate(
            &org,
            device,
            KeyEpoch(rotation.key_epoch),
            public_key,
            signature,
        )
        .await?;
    answer(&state, &org, device, StatusCode::CREATED).await
}

/// A revocation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Revocation {
    #[serde(default)]
    key_epoch: Option<u32>,
    #[serde(default)]
    effective_time_ms: Option<u64>,
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, device)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::ManageDevices, Some(&org))?;
    let device = device_of(&device)?;
    let revocation: Revocation = json_body(&body)?;
    state
        .devices
        .revoke(
            &org,
            device,
            revocation.key_epoch.map(KeyEpoch),
            revocation.effective_time_ms,
        )
        .await?;
    answer(&state, &org, device, StatusCode::CREATED).await
}

/// A claim of an imported device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claim {
    signature: String,
    #[serde(default)]
    name: Option<String>,
}

async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, device)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::ManageDevices, Some(&org))?;
    let device = device_of(&device)?;
    let claim: Claim = json_body(&body)?;
    let signature = hex_array::<64>("signature", &claim.signature)?;
    let name = check_name(claim.name)?;
    state.devices.claim(&org, device, signature, name).await?;
    answer(&state, &org, device, StatusCode::CREATED).await
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require_visible(&state, &caller, Action::ReadRecords, &org)?;
    let paging = query(paging)?;
    let page = Page::of(paging.limit, paging.next.as_deref())?;
    let (devices, next) = state.devices.page(&org, &page).await?;
    Ok(json_status(
        StatusCode::OK,
        &json!({ "devices": devices, "next": next }),
    ))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, device)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require_visible(&state, &caller, Action::ReadRecords, &org)?;
    let device = device_of(&device)?;
    answer(&state, &org, device, StatusCode::OK).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_signatures_are_exact_hex() {
        assert_eq!(hex_array::<2>("k", "0aFf").ok(), Some([0x0a, 0xff]));
        for bad in ["0a", "0aff00", "0g00", "+1ff", "é0"] {
            assert!(hex_array::<2>("k", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_claim_message_binds_the_device_and_the_organisation() {
        let device = DeviceId([1, 2, 3, 4, 5, 6, 7, 8]);
        let coop: OrgId = "coop".parse().expect("org");
        let other: OrgId = "coop2".parse().expect("org");
        let message = claim_message(device, &coop);
        assert!(message.starts_with(CLAIM_CONTEXT));
        assert_eq!(&message[CLAIM_CONTEXT.len()..][..8], &device.0);
        assert!(message.ends_with(b"coop"));
        assert_ne!(message, claim_message(device, &other));
        assert_ne!(message, claim_message(DeviceId([0; 8]), &coop));
    }
}
