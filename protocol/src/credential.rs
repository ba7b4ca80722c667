//! Broker credentials shared by devices and the backend: PBKDF2-HMAC-SHA512 and the salted
//! hash text Mosquitto 2.0 keeps in its `password_file` (`$7$<iterations>$<base64 salt>$<base64
//! hash>`), so that a device can put the hash of its MQTT secret into the manifest it hands to
//! the backend, and the backend can check logins and write Mosquitto's file from it.

use alloc::vec::Vec;

use sha2::{Digest as _, Sha512};

/// PBKDF2 iterations of a new hash: the default of Mosquitto 2.0's `mosquitto_passwd`.
pub const PBKDF2_ITERATIONS: u32 = 101;
/// Most iterations a hash may ask for (bounds the cost of one login check).
pub const PBKDF2_ITERATIONS_MAX: u32 = 1_000_000;
/// Salt length of a new hash: Mosquitto's `SALT_LEN`.
pub const SALT_BYTES: usize = 12;

/// Why a text is not a `$7$` hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a Mosquitto $7$ password hash: {0}")]
pub struct HashError(&'static str);

/// PBKDF2 (RFC 8018 §5.2) with HMAC-SHA512 (RFC 2104), one 64-byte block: what Mosquitto's
/// `$7$` hashes hold (`pw__hash` in its `password_mosq.c`, `PKCS5_PBKDF2_HMAC` with SHA-512).
#[must_use]
pub fn pbkdf2_hmac_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    // RFC 2104: a key longer than the block (128 bytes) is hashed first.
    let mut key = [0u8; 128];
    if password.len() > key.len() {
        key[..64].copy_from_slice(&Sha512::digest(password));
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let mut inner = Sha512::new();
    inner.update(key.map(|b| b ^ 0x36));
    let mut outer = Sha512::new();
    outer.update(key.map(|b| b ^ 0x5c));
    let mac = |parts: &[&[u8]]| -> [u8; 64] {
        let mut i = inner.clone();
        for part in parts {
            i.update(part);
        }
        let mut o = outer.clone();
        o.update(i.finalize());
        o.finalize().into()
    };
    // T_1 = U_1 ^ ... ^ U_c, U_1 = PRF(P, S || INT(1)).
    let mut u = mac(&[salt, &1u32.to_be_bytes()]);
    let mut t = u;
    for _ in 1..iterations {
        u = mac(&[&u]);
        for (t, u) in t.iter_mut().zip(u) {
            *t ^= u;
        }
    }
    t
}

/// A salted password hash in Mosquitto's `$7$<iterations>$<base64 salt>$<base64 hash>` form.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; 64],
}

impl core::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        write!(
            f,
            "$7${}${}${}",
            self.iterations,
            b64.encode(&self.salt),
            b64.encode(self.hash)
        )
    }
}

impl core::str::FromStr for PasswordHash {
    type Err = HashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let rest = text
            .strip_prefix("$7$")
            .ok_or(HashError("it does not start with $7$"))?;
        let mut parts = rest.split('$');
        let (Some(iterations), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HashError("it is not $7$<iterations>$<salt>$<hash>"));
        };
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|n| (1..=PBKDF2_ITERATIONS_MAX).contains(n))
            .ok_or(HashError("the iteration count is not 1..=1000000"))?;
        let salt = b64
            .decode(salt)
            .ok()
            .filter(|s| (8..=64).contains(&s.len()))
            .ok_or(HashError("the salt is not 8..=64 bytes of base64"))?;
        let hash: [u8; 64] = b64
            .decode(hash)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or(HashError("the hash is not 64 bytes of base64"))?;
        Ok(Self {
            iterations,
            salt,
            hash,
        })
    }
}

impl PasswordHash {
    /// The hash of `password` under `salt`.
    #[must_use]
    pub fn with_salt(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        Self {
            iterations,
            salt: salt.to_vec(),
            hash: pbkdf2_hmac_sha512(password, salt, iterations),
        }
    }

    /// Whether `password` is the one hashed (compared in constant time).
    #[must_use]
    pub fn verify(&self, password: &[u8]) -> bool {
        let other = pbkdf2_hmac_sha512(password, &self.salt, self.iterations);
        other
            .iter()
            .zip(self.hash)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}
