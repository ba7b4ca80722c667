//! Device identities, signing keys and the manifest the backend imports.
//!
//! Layout of the keys directory:
//!
//! ```text
//! <keys-dir>/<device-id>.key   Ed25519 secret seed: 64 hex digits and a newline, mode 0600
//! <keys-dir>/<device-id>.mqtt  MQTT password: 64 hex digits and a newline, mode 0600 (the
//!                              manifest carries only its salted PBKDF2 hash)
//! <keys-dir>/<device-id>.seq   sequence reservation mark (`firmware::FileSequenceStore`),
//!                              written as 0 before a new key is created
//! <keys-dir>/<device-id>.outbox  outbox journal (see `device.rs`)
//! <keys-dir>/manifest.json     device ids, key epochs, public keys, MQTT password hashes: for
//!                              the backend to import
//! <keys-dir>/.lock             held with an exclusive advisory lock (flock) by the one process
//!                              using the directory; holds that process's id
//! ```
//!
//! Two processes on one keys directory would both continue each device's sequence from the
//! same mark and sign different readings under the same numbers, so a process takes the lock
//! before it touches anything else and refuses to run if another one holds it. The lock dies
//! with the process (kill -9 included), so no stale lock file can block a restart.
//!
//! The manifest lists the devices of the latest run (`--devices`); key files of other devices
//! stay in the directory untouched.
//!
//! Device ids are the 4-byte fleet prefix followed by the device index as a big-endian u32,
//! so that a rerun with the same prefix and count finds the same key files again. A key file
//! that exists is always used as it is; a missing one is created from the operating system's
//! random number generator, or, with `--seed`, derived from the seed for reproducible tests
//! and demonstrations (such keys are not secret: anyone who knows the seed has them).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use firmware::{FileSequenceStore, SequenceStore};
use protocol::{DeviceId, KeyEpoch, SigningKey, topic};
use sha2::{Digest, Sha512};

/// The key epoch of every key this binary creates: the first generation of a device's key.
pub const FIRST_KEY_EPOCH: KeyEpoch = KeyEpoch(1);

/// Format tag of the manifest, checked by importers.
pub const MANIFEST_FORMAT: &str = "agritrace-device-manifest/v1";

/// Domain separation for keys derived from `--seed`.
const SEEDED_KEY_DOMAIN: &[u8] = b"agritrace-device/seeded-test-key/v1";
/// Domain separation for MQTT passwords derived from `--seed`.
const SEEDED_MQTT_DOMAIN: &[u8] = b"agritrace-device/seeded-mqtt-password/v1";
/// Domain separation for the salt of an MQTT password's hash.
const MQTT_SALT_DOMAIN: &[u8] = b"agritrace-device/mqtt-password-salt/v1";

/// The id of device number `index` of the fleet whose ids start with `prefix`.
pub fn device_id(prefix: [u8; 4], index: u32) -> DeviceId {
    let mut id = [0u8; 8];
    id[..4].copy_from_slice(&prefix);
    id[4..].copy_from_slice(&index.to_be_bytes());
    DeviceId(id)
}

/// Where a device's key came from, for the log and the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The key file already existed.
    Existing,
    /// Created now from the operating system's random number generator.
    CreatedRandom,
    /// Created now from `--seed` (not secret).
    CreatedFromSeed,
}

/// A device's identity and key, loaded or provisioned.
#[derive(Debug)]
pub struct DeviceKey {
    pub device: DeviceId,
    pub key_epoch: KeyEpoch,
    pub signing_key: SigningKey,
    pub origin: KeyOrigin,
    pub key_file: PathBuf,
    /// The MQTT password (username = the device id): 64 hex digits.
    pub mqtt_secret: String,
}

/// The exclusive lock on a keys directory: held while this value lives, released by the
/// operating system when the process ends however it ends.
#[derive(Debug)]
pub struct KeysDirLock {
    _file: fs::File,
}

/// Takes the exclusive lock on `<keys-dir>/.lock` (creating the file), or explains that
/// another process holds it.
pub fn lock_keys_dir(keys_dir: &Path) -> anyhow::Result<KeysDirLock> {
    let path = keys_dir.join(".lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("while opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // Best effort: the holder's id is only for the message.
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            bail!(
                "the keys directory {} is in use by another agritrace-device process{holder},                  which holds the lock on {}. Two processes on the same keys would sign different                  readings under the same sequence numbers: stop the other process, or give this                  one its own --keys-dir (and its own --fleet-prefix)",
                keys_dir.display(),
                path.display()
            );
        }
        Err(fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("while locking {}", path.display()));
        }
    }
    // Who holds it, for the message above; the lock itself does not depend on this.
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("while writing the lock file {}", path.display()))?;
    Ok(KeysDirLock { _file: file })
}

/// `<keys-dir>/<device>.seq`, the device's sequence reservation mark.
pub fn sequence_file(keys_dir: &Path, device: DeviceId) -> PathBuf {
    keys_dir.join(format!("{device}.seq"))
}

/// Loads `<keys-dir>/<device>.key`, creating it first if it does not exist. A new key gets a
/// sequence mark of 0 first (unless one is there), so that a key file without a mark always
/// means a lost mark, never a device that did not run yet.
pub fn load_or_create(
    keys_dir: &Path,
    device: DeviceId,
    seed: Option<u64>,
) -> anyhow::Result<DeviceKey> {
    let key_file = keys_dir.join(format!("{device}.key"));
    let (secret, origin) = match fs::read_to_string(&key_file) {
        Ok(text) => (
            parse_hex32(text.trim_end_matches('\n'))
                .with_context(|| format!("while reading the key file {}", key_file.display()))?,
            KeyOrigin::Existing,
        ),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let (secret, origin) = match seed {
                Some(seed) => (seeded_secret(seed, device), KeyOrigin::CreatedFromSeed),
                None => {
                    let mut secret = [0u8; 32];
                    getrandom::fill(&mut secret).map_err(|error| {
                        anyhow::anyhow!("the OS random number generator failed: {error}")
                    })?;
                    (secret, KeyOrigin::CreatedRandom)
                }
            };
            let sequence_file = sequence_file(keys_dir, device);
            let mut store = FileSequenceStore::new(&sequence_file);
            let context = || {
                format!(
                    "while creating the sequence file {}",
                    sequence_file.display()
                )
            };
            // A crash between the mark and the key leaves a mark without a key: the next run
            // creates the key and keeps the mark.
            if store.load().with_context(context)?.is_none() {
                store.store(0).with_context(context)?;
            }
            create_key_file(&key_file, &secret)
                .with_context(|| format!("while creating the key file {}", key_file.display()))?;
            (secret, origin)
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("while reading the key file {}", key_file.display()));
        }
    };
    let mqtt_secret = load_or_create_mqtt_secret(keys_dir, device, seed)?;
    Ok(DeviceKey {
        device,
        key_epoch: FIRST_KEY_EPOCH,
        signing_key: SigningKey::from_bytes(&secret),
        origin,
        key_file,
        mqtt_secret,
    })
}

/// Loads `<keys-dir>/<device>.mqtt`, creating it first if it does not exist (random, or with
/// `--seed` derived from the seed like the keys).
fn load_or_create_mqtt_secret(
    keys_dir: &Path,
    device: DeviceId,
    seed: Option<u64>,
) -> anyhow::Result<String> {
    let path = keys_dir.join(format!("{device}.mqtt"));
    let context = || format!("while reading the MQTT password file {}", path.display());
    match fs::read_to_string(&path) {
        Ok(text) => {
            let secret = parse_hex32(text.trim_end_matches('\n')).with_context(context)?;
            Ok(to_hex(&secret))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let secret = match seed {
                Some(seed) => {
                    let digest = Sha512::new()
                        .chain_update(SEEDED_MQTT_DOMAIN)
                        .chain_update(seed.to_le_bytes())
                        .chain_update(device.0)
                        .finalize();
                    let mut secret = [0u8; 32];
                    secret.copy_from_slice(&digest[..32]);
                    secret
                }
                None => {
                    let mut secret = [0u8; 32];
                    getrandom::fill(&mut secret).map_err(|error| {
                        anyhow::anyhow!("the OS random number generator failed: {error}")
                    })?;
                    secret
                }
            };
            // Losing this file before the directory is synced only means a new password and
            // a new import; no reading depends on it.
            create_key_file(&path, &secret).with_context(|| {
                format!("while creating the MQTT password file {}", path.display())
            })?;
            Ok(to_hex(&secret))
        }
        Err(error) => Err(error).with_context(context),
    }
}

/// The `$7$` hash of a device's MQTT password for the manifest. The salt is derived from the
/// password (a 256-bit random secret needs no random salt against precomputed tables), so that
/// provisioning the same directory again writes the same manifest.
pub fn mqtt_password_hash(mqtt_secret: &str) -> String {
    let digest = Sha512::new()
        .chain_update(MQTT_SALT_DOMAIN)
        .chain_update(mqtt_secret.as_bytes())
        .finalize();
    protocol::credential::PasswordHash::with_salt(
        mqtt_secret.as_bytes(),
        &digest[..protocol::credential::SALT_BYTES],
        protocol::credential::PBKDF2_ITERATIONS,
    )
    .to_string()
}

/// The secret derived from `--seed`: the first 32 bytes of
/// SHA-512(domain || seed as little-endian u64 || device id).
fn seeded_secret(seed: u64, device: DeviceId) -> [u8; 32] {
    let digest = Sha512::new()
        .chain_update(SEEDED_KEY_DOMAIN)
        .chain_update(seed.to_le_bytes())
        .chain_update(device.0)
        .finalize();
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&digest[..32]);
    secret
}

/// Creates the key file with mode 0600, refusing to overwrite one that appeared meanwhile
/// (another process provisioning the same directory), and makes it durable.
fn create_key_file(path: &Path, secret: &[u8; 32]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{}\n", to_hex(secret)).as_bytes())?;
    file.sync_all()?;
    // A crash before the directory fsync may lose the new file; the device then gets a new key
    // on the next run, which is fine because no reading has been signed with this one yet.
    fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Exactly 64 hex digits (either case) as 32 bytes. Each digit is checked on its own:
/// `u8::from_str_radix` would take a sign ("+f" parses), so it is not used.
fn parse_hex32(text: &str) -> anyhow::Result<[u8; 32]> {
    if text.len() != 64 {
        bail!(
            "a key file holds 64 hex digits, this one holds {} characters",
            text.len()
        );
    }
    let mut out = [0u8; 32];
    // 64 bytes: 32 pairs, nothing left over.
    let (pairs, _) = text.as_bytes().as_chunks::<2>();
    for (byte, &[high, low]) in out.iter_mut().zip(pairs) {
        match (hex_digit(high), hex_digit(low)) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => bail!(
                "{:?} is not a hex byte",
                String::from_utf8_lossy(&[high, low])
            ),
        }
    }
    Ok(out)
}

/// The value of one hex digit (either case), `None` for any other byte.
fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Parses a fleet prefix: 8 lowercase hex digits.
pub fn parse_fleet_prefix(text: &str) -> Result<[u8; 4], String> {
    if text.len() != 8
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "a fleet prefix is 8 lowercase hex digits, got {text:?}"
        ));
    }
    let value = u32::from_str_radix(text, 16).map_err(|error| error.to_string())?;
    Ok(value.to_be_bytes())
}

/// Writes `<keys-dir>/manifest.json` atomically. Only public data goes into it (the MQTT
/// password as a salted hash only).
pub fn write_manifest(keys_dir: &Path, devices: &[DeviceKey]) -> anyhow::Result<PathBuf> {
    let entries: Vec<serde_json::Value> = devices
        .iter()
        .map(|key| {
            serde_json::json!({
                "device_id": key.device.to_string(),
                "key_epoch": key.key_epoch.0,
                "algorithm": "ed25519",
                "public_key": to_hex(key.signing_key.verifying_key().as_bytes()),
                "readings_topic": topic::readings_topic(key.device).as_str(),
                "acks_topic": topic::acks_topic(key.device).as_str(),
                "mqtt_username": key.device.to_string(),
                "mqtt_password_hash": mqtt_password_hash(&key.mqtt_secret),
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "format": MANIFEST_FORMAT,
        "devices": entries,
    });
    let mut text =
        serde_json::to_string_pretty(&manifest).context("while encoding the manifest")?;
    text.push('\n');
    let path = keys_dir.join("manifest.json");
    crate::atomic_file::write_atomically(&path, text.as_bytes(), 0o644)
        .with_context(|| format!("while writing the manifest {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_the_prefix_then_the_index() {
        assert_eq!(
            device_id([0xa9, 0x7e, 0, 1], 258).to_string(),
            "a97e000100000102"
        );
        assert_eq!(parse_fleet_prefix("a97e0001"), Ok([0xa9, 0x7e, 0, 1]));
        assert!(parse_fleet_prefix("A97E0001").is_err());
        assert!(parse_fleet_prefix("a97e001").is_err());
        assert!(parse_fleet_prefix("+97e0001").is_err());
    }

    #[test]
    fn keys_are_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_id([1, 2, 3, 4], 0);
        let first = load_or_create(dir.path(), device, None).unwrap();
        assert_eq!(first.origin, KeyOrigin::CreatedRandom);
        let mode = fs::metadata(&first.key_file).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        // Reused even when a seed is given now: an existing key is never replaced.
        let again = load_or_create(dir.path(), device, Some(5)).unwrap();
        assert_eq!(again.origin, KeyOrigin::Existing);
        assert_eq!(again.signing_key.to_bytes(), first.signing_key.to_bytes());
    }

    #[test]
    fn a_new_key_gets_a_zero_sequence_mark_and_an_existing_mark_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = device_id([1, 2, 3, 4], 0);
        load_or_create(dir.path(), fresh, Some(1)).unwrap();
        let mark = |device| {
            FileSequenceStore::new(sequence_file(dir.path(), device))
                .load()
                .unwrap()
        };
        assert_eq!(mark(fresh), Some(0));
        // A mark left without its key (a crash between the two) is kept.
        let orphan = device_id([1, 2, 3, 4], 1);
        FileSequenceStore::new(sequence_file(dir.path(), orphan))
            .store(512)
            .unwrap();
        load_or_create(dir.path(), orphan, Some(1)).unwrap();
        assert_eq!(mark(orphan), Some(512));
    }

    #[test]
    fn the_keys_directory_is_locked_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_keys_dir(dir.path()).unwrap();
        // flock conflicts between two open files of one process too.
        let error = lock_keys_dir(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("in use by another agritrace-device process"),
            "{error}"
        );
        assert!(
            error.contains(&format!("(process {})", std::process::id())),
            "{error}"
        );
        drop(first);
        lock_keys_dir(dir.path()).unwrap();
    }

    #[test]
    fn seeded_keys_are_reproducible_and_differ_per_device_and_seed() {
        let a = device_id([1, 2, 3, 4], 0);
        let b = device_id([1, 2, 3, 4], 1);
        assert_eq!(seeded_secret(9, a), seeded_secret(9, a));
        assert_ne!(seeded_secret(9, a), seeded_secret(9, b));
        assert_ne!(seeded_secret(9, a), seeded_secret(10, a));
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create(dir.path(), a, Some(9)).unwrap();
        assert_eq!(key.origin, KeyOrigin::CreatedFromSeed);
        assert_eq!(key.signing_key.to_bytes(), seeded_secret(9, a));
    }

    #[test]
    fn key_files_are_exactly_64_hex_digits_of_either_case() {
        let check = |text: &str, expected: Option<[u8; 32]>| {
            assert_eq!(parse_hex32(text).ok(), expected, "{text:?}");
        };
        let mut ascending = [0u8; 32];
        for (i, byte) in ascending.iter_mut().enumerate() {
            *byte = u8::try_from(i * 8).unwrap();
        }
        check(&to_hex(&ascending), Some(ascending));
        check(&to_hex(&ascending).to_uppercase(), Some(ascending));
        check(&"fF".repeat(32), Some([0xff; 32]));
        // A sign is not a digit, in any position: from_str_radix would take "+f" as 0x0f.
        check(&format!("+f{}", "00".repeat(31)), None);
        check(&format!("{}+f", "00".repeat(31)), None);
        check(&format!("-0{}", "00".repeat(31)), None);
        check(&format!(" f{}", "00".repeat(31)), None);
        check(&format!("0x{}", "00".repeat(31)), None);
        check(&"g0".repeat(32), None);
        // Non-ASCII of the right byte length.
        check(&format!("é{}", "00".repeat(31)), None);
        check(&"00".repeat(31), None);
        check(&"00".repeat(33), None);
    }

    #[test]
    fn a_damaged_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_id([1, 2, 3, 4], 0);
        for content in ["", "abcd\n", &"zz".repeat(32)] {
            fs::write(dir.path().join(format!("{device}.key")), content).unwrap();
            assert!(
                load_or_create(dir.path(), device, None).is_err(),
                "{content:?}"
            );
        }
    }

    #[test]
    fn the_manifest_lists_public_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create(dir.path(), device_id([1, 2, 3, 4], 7), Some(1)).unwrap();
        let path = write_manifest(dir.path(), std::slice::from_ref(&key)).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(manifest["format"], MANIFEST_FORMAT);
        let entry = &manifest["devices"][0];
        assert_eq!(entry["device_id"], "0102030400000007");
        assert_eq!(entry["key_epoch"], 1);
        assert_eq!(
            entry["public_key"],
            to_hex(key.signing_key.verifying_key().as_bytes())
        );
        assert_eq!(
            entry["acks_topic"],
            "agritrace/v1/devices/0102030400000007/acks"
        );
        let text = serde_json::to_string(&manifest).unwrap();
        assert!(!text.contains(&to_hex(&key.signing_key.to_bytes())));
        // The MQTT password is in the manifest as its salted hash only, one that checks.
        assert!(!text.contains(&key.mqtt_secret));
        assert_eq!(entry["mqtt_username"], "0102030400000007");
        let hash: protocol::credential::PasswordHash = entry["mqtt_password_hash"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(hash.verify(key.mqtt_secret.as_bytes()));
        assert!(!hash.verify(b"another password"));
    }

    #[test]
    fn the_mqtt_password_is_kept_across_runs_and_differs_per_device() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), device_id([1, 2, 3, 4], 7), None).unwrap();
        let again = load_or_create(dir.path(), device_id([1, 2, 3, 4], 7), None).unwrap();
        let other = load_or_create(dir.path(), device_id([1, 2, 3, 4], 8), None).unwrap();
        assert_eq!(first.mqtt_secret.len(), 64);
        assert_eq!(first.mqtt_secret, again.mqtt_secret);
        assert_ne!(first.mqtt_secret, other.mqtt_secret);
        assert_eq!(
            mqtt_password_hash(&first.mqtt_secret),
            mqtt_password_hash(&again.mqtt_secret),
            "the same directory gives the same manifest"
        );
        let mode = fs::metadata(dir.path().join("0102030400000007.mqtt"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
