//! C2SP signed notes: text signed by one or more keys (c2sp.org/signed-note), with Ed25519 note
//! signatures (type `0x01`) and timestamped Ed25519 witness cosignatures (type `0x04`,
//! c2sp.org/tlog-cosignature, `cosignature/v1`).
//!
//! Format (signed-note "Format"): the text (ending in a newline), a blank line, then signature
//! lines `— <key name> base64(key ID || signature)`. The key ID is the first four bytes of
//! `SHA-256(key name || 0x0A || type || public key)`, read big-endian. Verifier keys are written
//! `<name>+<8 hex digits of key ID>+base64(type || public key)` (a "vkey"); signer keys
//! `PRIVATE+KEY+<name>+<key ID>+base64(type || seed)` as in Go's `golang.org/x/mod/sumdb/note`.
//!
//! Verification rules (signed-note "Signatures"): signatures from unknown keys (name and key ID
//! not both matching a configured verifier) are ignored; a known key whose signature fails
//! rejects the whole note; a note with no verified known signature is rejected.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::{hex_value, push_hex_byte};

/// The Ed25519 key types notes are signed and verified with, re-exported so callers need no
/// direct dependency on the signature crate.
pub use ed25519_dalek::{SigningKey, VerifyingKey as PublicKey};

/// Largest signed note accepted, in bytes (text plus signature lines). Generous for a
/// checkpoint with many cosignatures; bounds the work of a hostile input.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted in one note (the spec requires accepting at least 16).
pub const MAX_NOTE_SIGNATURES: usize = 64;
/// Longest key name accepted, in bytes.
pub const MAX_KEY_NAME_BYTES: usize = 256;

/// The `cosignature/v1` header line (c2sp.org/tlog-cosignature "Ed25519 signed message").
const COSIGNATURE_V1_HEADER: &str = "cosignature/v1\n";
/// Largest cosignature timestamp (tlog-cosignature: must not exceed 2^63 - 1).
pub const MAX_COSIGNATURE_TIMESTAMP: u64 = i64::MAX as u64;

/// The signature types this crate signs and verifies (signed-note "Signature types").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `0x01`: Ed25519 over the note text (log checkpoint signatures).
    Ed25519,
    /// `0x04`: timestamped Ed25519 witness cosignature, `cosignature/v1`.
    CosignatureV1,
}

impl KeyType {
    /// The signature type identifier byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Ed25519 => 0x01,
            Self::CosignatureV1 => 0x04,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x01 => Some(Self::Ed25519),
            0x04 => Some(Self::CosignatureV1),
            _ => None,
        }
    }

    /// Length of the signature bytes after the 4-byte key ID.
    fn signature_len(self) -> usize {
        match self {
            Self::Ed25519 => 64,
            Self::CosignatureV1 => 8 + 64,
        }
    }
}

/// Why a key name or key string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Empty, too long, or containing a space, `+` or a control character.
    #[error("key name must be non-empty, at most 256 bytes, without spaces or '+'")]
    Name,
    /// Not `name+hash+key` (or `PRIVATE+KEY+name+hash+key`).
    #[error("key string must be name+hash+base64key")]
    Format,
    /// The hash part is not 8 hex digits.
    #[error("key hash must be 8 hex digits")]
    Hash,
    /// The key part is not base64 of a known type byte and 32 key bytes.
    #[error("key must be base64 of a known type byte and a 32-byte Ed25519 key")]
    Key,
    /// The key ID in the string does not match the name and key.
    #[error("key hash does not match the key name and key")]
    HashMismatch,
    /// The key type is not the one the caller needs.
    #[error("key has type {found:#04x}, expected {expected:#04x}")]
    WrongType {
        /// Expected type byte.
        expected: u8,
        /// Type byte found.
        found: u8,
    },
}

/// Why a note could not be parsed, signed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Larger than `MAX_NOTE_BYTES`.
    #[error("note is larger than {MAX_NOTE_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8, or contains a control character other than newline.
    #[error("note must be UTF-8 without control characters other than newline")]
    Characters,
    /// Text does not end with a newline, or there is no blank line before the signatures.
    #[error("note text must end with a newline and be followed by a blank line")]
    Layout,
    /// A signature line is malformed.
    #[error("malformed signature line {line}")]
    SignatureLine {
        /// One-based signature line number.
        line: usize,
    },
    /// More signature lines than `MAX_NOTE_SIGNATURES`.
    #[error("note has more than {MAX_NOTE_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signature by a configured key did not verify: the whole note is rejected.
    #[error("signature by known key {name} does not verify")]
    BadSignature {
        /// Key name.
        name: String,
    },
    /// No signature by a configured key.
    #[error("note has no signature by a known key")]
    NoKnownSignature,
    /// A cosignature timestamp above 2^63 - 1.
    #[error("cosignature timestamp is out of range")]
    Timestamp,
}

/// One signature line of a note, not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the key hash, big-endian).
    pub key_id: u32,
    /// Signature bytes after the key ID.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// Parses one signature line `— <name> <base64>` (without its trailing newline), as a
    /// witness returns it from `add-checkpoint`. `None` if malformed.
    pub fn parse_line(line: &str) -> Option<Self> {
        parse_signature_line(line)
    }

    /// The signature line, with its trailing newline.
    pub fn to_line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, STANDARD.encode(bytes))
    }
}

/// A parsed (not verified) note: its text and signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The note text, including its final newline.
    pub text: String,
    /// Signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

/// A signature that verified against a configured key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: u32,
    /// Key type.
    pub key_type: KeyType,
    /// For a cosignature, its timestamp (POSIX seconds).
    pub timestamp: Option<u64>,
}

/// A note whose signatures were checked against configured keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedNote {
    /// The note text, including its final newline. Trust it only because `verified` is
    /// non-empty.
    pub text: String,
    /// Signatures by known keys, all verified (one per key).
    pub verified: Vec<VerifiedSignature>,
    /// Signatures by unknown keys, ignored.
    pub unknown: Vec<NoteSignature>,
}

/// The key ID of a key: `SHA-256(name || 0x0A || type || public key)[:4]` big-endian.
pub fn key_id(name: &str, key_type: KeyType, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', key_type.byte()]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks a key name (signed-note "Format": non-empty, no Unicode spaces, no `+`).
pub fn check_key_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty()
        || name.len() > MAX_KEY_NAME_BYTES
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(KeyError::Name);
    }
    Ok(())
}

fn hex8(value: u32) -> String {
    let mut out = String::with_capacity(8);
    for byte in value.to_be_bytes() {
        push_hex_byte(&mut out, byte);
    }
    out
}

fn parse_hex8(text: &str) -> Result<u32, KeyError> {
    let bytes = text.as_bytes();
    if bytes.len() != 8 {
        return Err(KeyError::Hash);
    }
    bytes.iter().try_fold(0u32, |acc, d| {
        hex_value(*d)
            .map(|v| (acc << 4) | u32::from(v))
            .ok_or(KeyError::Hash)
    })
}

/// Splits `name+hash+key`, checks the name and hash, decodes type byte and 32 key bytes.
fn parse_key_string(text: &str) -> Result<(String, u32, KeyType, [u8; 32]), KeyError> {
    // The base64 key may itself contain '+': split off name and hash only.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Format);
    };
    check_key_name(name)?;
    let id = parse_hex8(hash)?;
    let raw = STANDARD.decode(key.as_bytes()).map_err(|_| KeyError::Key)?;
    let (&type_byte, material) = raw.split_first().ok_or(KeyError::Key)?;
    let key_type = KeyType::from_byte(type_byte).ok_or(KeyError::Key)?;
    let material = <[u8; 32]>::try_from(material).map_err(|_| KeyError::Key)?;
    Ok((String::from(name), id, key_type, material))
}

fn encode_key(key_type: KeyType, material: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(33);
    raw.push(key_type.byte());
    raw.extend_from_slice(material);
    STANDARD.encode(raw)
}

/// A public key that verifies note signatures of one type under one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key_type: KeyType,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `name` and `key` of `key_type`.
    pub fn new(name: &str, key_type: KeyType, key: VerifyingKey) -> Result<Self, KeyError> {
        check_key_name(name)?;
        // A small-order key would let anyone forge signatures that verify under it.
        if key.is_weak() {
            return Err(KeyError::Key);
        }
        Ok(Self {
            name: String::from(name),
            key_id: key_id(name, key_type, key.as_bytes()),
            key_type,
            key,
        })
    }

    /// Parses a vkey `name+hash+base64(type || key)`, checking that the hash matches.
    pub fn parse(vkey: &str) -> Result<Self, KeyError> {
        let (name, id, key_type, material) = parse_key_string(vkey)?;
        let key = VerifyingKey::from_bytes(&material).map_err(|_| KeyError::Key)?;
        let verifier = Self::new(&name, key_type, key)?;
        if verifier.key_id != id {
            return Err(KeyError::HashMismatch);
        }
        Ok(verifier)
    }

    /// Parses a vkey and checks it has the expected type.
    pub fn parse_typed(vkey: &str, expected: KeyType) -> Result<Self, KeyError> {
        let verifier = Self::parse(vkey)?;
        if verifier.key_type != expected {
            return Err(KeyError::WrongType {
                expected: expected.byte(),
                found: verifier.key_type.byte(),
            });
        }
        Ok(verifier)
    }

    /// The vkey string.
    pub fn to_vkey(&self) -> String {
        format!(
            "{}+{}+{}",
            self.name,
            hex8(self.key_id),
            encode_key(self.key_type, self.key.as_bytes())
        )
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether this verifier is the one a signature line names.
    pub fn matches(&self, signature: &NoteSignature) -> bool {
        self.name == signature.name && self.key_id == signature.key_id
    }

    /// Verifies one signature over `text`; returns the cosignature timestamp if any.
    fn verify(&self, text: &str, signature: &[u8]) -> Result<Option<u64>, NoteError> {
        let bad = || NoteError::BadSignature {
            name: self.name.clone(),
        };
        if signature.len() != self.key_type.signature_len() {
            return Err(bad());
        }
        match self.key_type {
            KeyType::Ed25519 => {
                let sig = Signature::from_slice(signature).map_err(|_| bad())?;
                self.key
                    .verify_strict(text.as_bytes(), &sig)
                    .map_err(|_| bad())?;
                Ok(None)
            }
            KeyType::CosignatureV1 => {
                let (time, sig) = signature.split_at(8);
                let mut time_bytes = [0u8; 8];
                time_bytes.copy_from_slice(time);
                let timestamp = u64::from_be_bytes(time_bytes);
                if timestamp > MAX_COSIGNATURE_TIMESTAMP {
                    return Err(NoteError::Timestamp);
                }
                let sig = Signature::from_slice(sig).map_err(|_| bad())?;
                let message = cosignature_message(text, timestamp);
                self.key
                    .verify_strict(message.as_bytes(), &sig)
                    .map_err(|_| bad())?;
                Ok(Some(timestamp))
            }
        }
    }
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <secs>\n` then the checkpoint
/// note text (c2sp.org/tlog-cosignature "Ed25519 signed message").
pub fn cosignature_message(checkpoint_text: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_V1_HEADER}time {timestamp}\n{checkpoint_text}")
}

/// A private key that signs notes (type `0x01`) or cosignatures (type `0x04`) under one name.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key_type: KeyType,
    key: SigningKey,
}

impl core::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the private key.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex8(self.key_id))
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer for `name` with `key` of `key_type`.
    pub fn new(name: &str, key_type: KeyType, key: SigningKey) -> Result<Self, KeyError> {
        check_key_name(name)?;
        let public = key.verifying_key();
        Ok(Self {
            name: String::from(name),
            key_id: key_id(name, key_type, public.as_bytes()),
            key_type,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+name+hash+base64(type || 32-byte seed)` (Go `note.NewSigner` form).
    pub fn parse(skey: &str) -> Result<Self, KeyError> {
        let rest = skey.strip_prefix("PRIVATE+KEY+").ok_or(KeyError::Format)?;
        let (name, id, key_type, seed) = parse_key_string(rest)?;
        let signer = Self::new(&name, key_type, SigningKey::from_bytes(&seed))?;
        if signer.key_id != id {
            return Err(KeyError::HashMismatch);
        }
        Ok(signer)
    }

    /// The private key string (`PRIVATE+KEY+...`). Handle like the key itself.
    pub fn to_skey(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex8(self.key_id),
            encode_key(self.key_type, self.key.as_bytes())
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key_type: self.key_type,
            key: self.key.verifying_key(),
        }
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Signs `text` (which must be valid note text). For a cosigner, `timestamp` is the POSIX
    /// time of the cosignature (passed in: the core never reads a clock); for a note signer it
    /// is ignored.
    pub fn sign(&self, text: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        let signature = match self.key_type {
            KeyType::Ed25519 => self.key.sign(text.as_bytes()).to_bytes().to_vec(),
            KeyType::CosignatureV1 => {
                if timestamp > MAX_COSIGNATURE_TIMESTAMP {
                    return Err(NoteError::Timestamp);
                }
                let message = cosignature_message(text, timestamp);
                let mut out = Vec::with_capacity(72);
                out.extend_from_slice(&timestamp.to_be_bytes());
                out.extend_from_slice(&self.key.sign(message.as_bytes()).to_bytes());
                out
            }
        };
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature,
        })
    }
}

/// Checks that note text is acceptable: non-empty, ends with a newline, no control characters
/// but newline, and within the size limit.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge);
    }
    check_characters(text)?;
    if !text.ends_with('\n') {
        return Err(NoteError::Layout);
    }
    Ok(())
}

fn check_characters(text: &str) -> Result<(), NoteError> {
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Characters);
    }
    Ok(())
}

impl Note {
    /// A note with `text` and no signatures yet.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_text(text)?;
        Ok(Self {
            text: String::from(text),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note without verifying anything.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        let message = core::str::from_utf8(bytes).map_err(|_| NoteError::Characters)?;
        check_characters(message)?;
        // The text is separated from the signatures by the last blank line.
        let split = message.rfind("\n\n").ok_or(NoteError::Layout)?;
        let text = &message[..=split];
        let signature_block = &message[split + 2..];
        if signature_block.is_empty() || !signature_block.ends_with('\n') {
            return Err(NoteError::Layout);
        }
        let lines: Vec<&str> = signature_block[..signature_block.len() - 1]
            .split('\n')
            .collect();
        if lines.len() > MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let mut signatures = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            signatures
                .push(parse_signature_line(line).ok_or(NoteError::SignatureLine { line: i + 1 })?);
        }
        Ok(Self {
            text: String::from(text),
            signatures,
        })
    }

    /// The signed note: text, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 1 + 100 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.to_line());
        }
        out
    }

    /// Adds a signature by `signer` (see `NoteSigner::sign` for `timestamp`).
    pub fn sign(&mut self, signer: &NoteSigner, timestamp: u64) -> Result<(), NoteError> {
        if self.signatures.len() >= MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let signature = signer.sign(&self.text, timestamp)?;
        self.signatures.push(signature);
        Ok(())
    }

    /// Verifies the signatures by known keys (signed-note "Signatures"): unknown ones are
    /// ignored, a failing known one rejects the note, and at least one must verify.
    pub fn open(&self, verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
        let mut verified: Vec<VerifiedSignature> = Vec::new();
        let mut unknown = Vec::new();
        for signature in &self.signatures {
            let Some(verifier) = verifiers.iter().find(|v| v.matches(signature)) else {
                unknown.push(signature.clone());
                continue;
            };
            let timestamp = verifier.verify(&self.text, &signature.signature)?;
            // The same key signing twice counts once.
            if !verified
                .iter()
                .any(|v| v.name == verifier.name && v.key_id == verifier.key_id)
            {
                verified.push(VerifiedSignature {
                    name: verifier.name.clone(),
                    key_id: verifier.key_id,
                    key_type: verifier.key_type,
                    timestamp,
                });
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        Ok(OpenedNote {
            text: self.text.clone(),
            verified,
            unknown,
        })
    }
}

/// Parses `— <name> <base64(key ID || signature)>` (without the newline).
fn parse_signature_line(line: &str) -> Option<NoteSignature> {
    let rest = line.strip_prefix("\u{2014} ")?;
    let (name, encoded) = rest.split_once(' ')?;
    check_key_name(name).ok()?;
    let raw = STANDARD.decode(encoded.as_bytes()).ok()?;
    if raw.len() < 5 {
        return None;
    }
    let (id, signature) = raw.split_at(4);
    Some(NoteSignature {
        name: name.to_string(),
        key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
        signature: signature.to_vec(),
    })
}

/// Signs `text` with every signer and returns the signed note (see `NoteSigner::sign` for
/// `timestamp`).
pub fn sign_note(text: &str, signers: &[&NoteSigner], timestamp: u64) -> Result<String, NoteError> {
    let mut note = Note::new(text)?;
    for signer in signers {
        note.sign(signer, timestamp)?;
    }
    Ok(note.to_text())
}

/// Parses and opens a signed note in one step.
pub fn open_note(bytes: &[u8], verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
    Note::parse(bytes)?.open(verifiers)
}
