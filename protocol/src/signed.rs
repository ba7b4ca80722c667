//! `SignedReading`: the canonical postcard encoding of a reading with its Ed25519 signature.
//!
//! Wire layout (the postcard encoding of `(u8, &[u8], [u8; 64])`):
//!
//! ```text
//! version: u8 = 1 | body length: varint (< 128, one byte) | body: postcard(Reading) | signature: 64 bytes
//! ```
//!
//! The signature covers `SIGNING_DOMAIN || body` (RFC 8032 Ed25519, verified with
//! `verify_strict`, which also refuses small-order keys and non-canonical signatures). The
//! domain string keeps a reading's signature from ever being valid for another kind of
//! message signed by the same key. Verification works on the exact received body bytes; the
//! decoder refuses any body that postcard would not produce for the decoded value, so a
//! reading has exactly one valid encoding and byte equality means reading equality.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::Reading;
use crate::limits::{BODY_BYTES_MAX, SIGNED_MESSAGE_BYTES_MAX, SIGNED_READING_BYTES_MAX};

/// Domain separation prefix of every reading signature.
pub const SIGNING_DOMAIN: &[u8] = b"agritrace/reading/v1";

/// The only envelope version this crate writes and reads.
pub const WIRE_VERSION: u8 = 1;

const SIGNATURE_BYTES: usize = 64;

/// Why bytes are not a well-formed signed reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("unsupported wire version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("the message is truncated")]
    Truncated,
    #[error("the reading body is {len} bytes, more than the {max} allowed")]
    BodyTooLarge { len: usize, max: usize },
    #[error("the reading body is not a valid postcard-encoded reading")]
    MalformedBody,
    #[error("{0} bytes follow the end of the {1}")]
    TrailingBytes(usize, &'static str),
    #[error("the {0} is not in canonical postcard encoding")]
    NonCanonical(&'static str),
    #[error("field {0} is out of its physical range")]
    OutOfRange(&'static str),
}

/// Why a signed reading did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("undecodable reading: {0}")]
    Decode(#[from] DecodeError),
    #[error("the signature does not verify under the device key")]
    BadSignature,
}

/// Why a reading could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the output buffer is too small")]
    BufferTooSmall,
    #[error("field {0} is out of its physical range")]
    OutOfRange(&'static str),
}

/// A decoded signed reading, borrowing the bytes it was decoded from. Decoding does not verify
/// the signature: look up the key named by `reading().device` and `reading().key_epoch`, then
/// call [`SignedReading::verify`].
#[derive(Clone, Copy, Debug)]
pub struct SignedReading<'a> {
    bytes: &'a [u8],
    body: &'a [u8],
    reading: Reading,
    signature: Signature,
}

impl<'a> SignedReading<'a> {
    /// Decodes exactly `bytes` (no trailing data) as a version 1 signed reading.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.is_empty() {
            return Err(DecodeError::Empty);
        }
        if bytes.len() > SIGNED_READING_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: SIGNED_READING_BYTES_MAX,
            });
        }
        if bytes[0] != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion(bytes[0]));
        }
        let body_len = usize::from(*bytes.get(1).ok_or(DecodeError::Truncated)?);
        // A length byte with the continuation bit set would be a body over 127 bytes: refuse it
        // here instead of decoding a longer varint.
        if body_len > BODY_BYTES_MAX {
            return Err(DecodeError::BodyTooLarge {
                len: body_len,
                max: BODY_BYTES_MAX,
            });
        }
        let body_end = 2 + body_len;
        let signature_end = body_end + SIGNATURE_BYTES;
        if bytes.len() < signature_end {
            return Err(DecodeError::Truncated);
        }
        if bytes.len() > signature_end {
            return Err(DecodeError::TrailingBytes(
                bytes.len() - signature_end,
                "signed reading",
            ));
        }
        let body = &bytes[2..body_end];
        let reading = decode_body(body)?;
        let mut signature = [0u8; SIGNATURE_BYTES];
        signature.copy_from_slice(&bytes[body_end..signature_end]);
        Ok(Self {
            bytes,
            body,
            reading,
            signature: Signature::from_bytes(&signature),
        })
    }

    /// The decoded reading.
    pub fn reading(&self) -> &Reading {
        &self.reading
    }

    /// The exact body bytes the signature covers (without the domain prefix).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The exact bytes this value was decoded from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Writes the signed message (`SIGNING_DOMAIN || body`) into `buf`, for batch verification.
    pub fn signed_message<'b>(&self, buf: &'b mut [u8; SIGNED_MESSAGE_BYTES_MAX]) -> &'b [u8] {
        signed_message(self.body, buf)
    }

    /// Verifies the signature with `verify_strict` under `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), VerifyError> {
        let mut buf = [0u8; SIGNED_MESSAGE_BYTES_MAX];
        let message = self.signed_message(&mut buf);
        key.verify_strict(message, &self.signature)
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// Decodes `bytes` and verifies them under `key` in one step.
pub fn verify_signed_reading(bytes: &[u8], key: &VerifyingKey) -> Result<Reading, VerifyError> {
    let signed = SignedReading::decode(bytes)?;
    signed.verify(key)?;
    Ok(signed.reading)
}

/// Encodes and signs `reading` into `out`, returning the number of bytes written.
pub fn encode_signed_reading(
    reading: &Reading,
    key: &SigningKey,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    if let Some(field) = reading.out_of_range_field() {
        return Err(EncodeError::OutOfRange(field));
    }
    let mut body_buf = [0u8; BODY_BYTES_MAX];
    // The body of any in-range reading fits BODY_BYTES_MAX (checked by a test on the widest
    // values), so a failure here is a bug in the limits, reported as a small buffer.
    let body_len = postcard::to_slice(reading, &mut body_buf)
        .map_err(|_| EncodeError::BufferTooSmall)?
        .len();
    let body = &body_buf[..body_len];
    let total = 2 + body_len + SIGNATURE_BYTES;
    if out.len() < total {
        return Err(EncodeError::BufferTooSmall);
    }
    let mut message_buf = [0u8; SIGNED_MESSAGE_BYTES_MAX];
    let signature = key.sign(signed_message(body, &mut message_buf));
    out[0] = WIRE_VERSION;
    // body_len <= BODY_BYTES_MAX < 128: its varint is this one byte.
    out[1] = u8::try_from(body_len).map_err(|_| EncodeError::BufferTooSmall)?;
    out[2..2 + body_len].copy_from_slice(body);
    out[2 + body_len..total].copy_from_slice(&signature.to_bytes());
    Ok(total)
}

fn signed_message<'b>(body: &[u8], buf: &'b mut [u8; SIGNED_MESSAGE_BYTES_MAX]) -> &'b [u8] {
    let len = SIGNING_DOMAIN.len() + body.len();
    buf[..SIGNING_DOMAIN.len()].copy_from_slice(SIGNING_DOMAIN);
    buf[SIGNING_DOMAIN.len()..len].copy_from_slice(body);
    &buf[..len]
}

fn decode_body(body: &[u8]) -> Result<Reading, DecodeError> {
    let (reading, rest): (Reading, _) =
        postcard::take_from_bytes(body).map_err(|_| DecodeError::MalformedBody)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len(), "reading body"));
    }
    // postcard accepts over-long varints; re-encode and compare so there is one encoding.
    let mut canonical = [0u8; BODY_BYTES_MAX];
    let encoded = postcard::to_slice(&reading, &mut canonical)
        .map_err(|_| DecodeError::NonCanonical("reading body"))?;
    if encoded != body {
        return Err(DecodeError::NonCanonical("reading body"));
    }
    if let Some(field) = reading.out_of_range_field() {
        return Err(DecodeError::OutOfRange(field));
    }
    Ok(reading)
}

/// The 8-torsion points' encodings (canonical, plus the ones with the sign bit on `x = 0`).
/// `verify_strict` refuses an `R` among them; batch verification would not.
pub const SMALL_ORDER_ENCODINGS: [[u8; 32]; 10] = {
    const fn hex(text: &[u8; 64]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = (nibble(text[2 * i]) << 4) | nibble(text[2 * i + 1]);
            i += 1;
        }
        out
    }
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            _ => c - b'a' + 10,
        }
    }
    [
        hex(b"0100000000000000000000000000000000000000000000000000000000000000"),
        hex(b"0100000000000000000000000000000000000000000000000000000000000080"),
        hex(b"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        hex(b"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
        hex(b"0000000000000000000000000000000000000000000000000000000000000000"),
        hex(b"0000000000000000000000000000000000000000000000000000000000000080"),
        hex(b"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        hex(b"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
        hex(b"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        hex(b"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    ]
};

/// Whether `R` is canonically encoded (`y < p = 2^255 - 19`) and not of small order: the
/// checks `verify_strict` makes on `R` that batch verification (`ed25519_dalek::verify_batch`)
/// does not. Verifiers that batch (ingest, the offline verifier) put only such signatures in a
/// batch, so that batch and strict verification accept the same signatures.
pub fn r_is_strict(signature: &Signature) -> bool {
    let r = signature.r_bytes();
    let y_at_least_p = r[0] >= 0xed && r[1..31].iter().all(|b| *b == 0xff) && r[31] & 0x7f == 0x7f;
    !y_at_least_p && !SMALL_ORDER_ENCODINGS.contains(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceId, DoorState, GeoPosition, KeyEpoch, SequenceNumber};

    fn widest_reading() -> Reading {
        Reading {
            device: DeviceId([0xff; 8]),
            key_epoch: KeyEpoch(u32::MAX),
            sequence: SequenceNumber(u64::MAX),
            device_time_ms: u64::MAX,
            temperature_centi_c: i16::MIN,
            humidity_centi_pct: 10_000,
            position: Some(GeoPosition {
                lat_e7: -900_000_000,
                lon_e7: -1_800_000_000,
            }),
            door: DoorState::Open,
            shock_events: u16::MAX,
            battery_mv: u16::MAX,
            dropped_samples: u32::MAX,
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn check_decode(bytes: &[u8], expected: DecodeError) {
        assert_eq!(SignedReading::decode(bytes).map(|_| ()), Err(expected));
    }

    #[test]
    fn the_widest_reading_fits_the_limits() {
        let mut out = [0u8; SIGNED_READING_BYTES_MAX];
        let len = encode_signed_reading(&widest_reading(), &key(), &mut out).unwrap();
        assert!(len <= SIGNED_READING_BYTES_MAX);
        let signed = SignedReading::decode(&out[..len]).unwrap();
        assert_eq!(signed.reading(), &widest_reading());
        signed.verify(&key().verifying_key()).unwrap();
    }

    #[test]
    fn malformed_envelopes_get_the_error_that_names_them() {
        let mut out = [0u8; SIGNED_READING_BYTES_MAX + 1];
        let len = encode_signed_reading(&widest_reading(), &key(), &mut out).unwrap();
        let good = &out[..len];
        check_decode(&[], DecodeError::Empty);
        check_decode(&[1], DecodeError::Truncated);
        check_decode(&good[..len - 1], DecodeError::Truncated);
        check_decode(
            &out[..len + 1],
            DecodeError::TrailingBytes(1, "signed reading"),
        );
        let mut wrong_version = [0u8; SIGNED_READING_BYTES_MAX];
        wrong_version[..len].copy_from_slice(good);
        wrong_version[0] = 2;
        check_decode(&wrong_version[..len], DecodeError::UnsupportedVersion(2));
        check_decode(
            &[0u8; SIGNED_READING_BYTES_MAX + 1],
            DecodeError::TooLarge {
                len: SIGNED_READING_BYTES_MAX + 1,
                max: SIGNED_READING_BYTES_MAX,
            },
        );
        check_decode(
            &[1, 0x80, 1],
            DecodeError::BodyTooLarge {
                len: 0x80,
                max: BODY_BYTES_MAX,
            },
        );
    }

    #[test]
    fn an_overlong_varint_in_the_body_is_not_canonical() {
        let reading = Reading {
            key_epoch: KeyEpoch(1),
            ..widest_reading()
        };
        let mut body = [0u8; BODY_BYTES_MAX];
        let len = postcard::to_slice(&reading, &mut body).unwrap().len();
        // key_epoch is the varint right after the 8-byte device id: 0x01 -> 0x81 0x00.
        assert_eq!(body[8], 1);
        let mut padded = [0u8; BODY_BYTES_MAX + 1];
        padded[..9].copy_from_slice(&body[..9]);
        padded[8] = 0x81;
        padded[9] = 0x00;
        padded[10..len + 1].copy_from_slice(&body[9..len]);
        assert_eq!(
            decode_body(&padded[..len + 1]),
            Err(DecodeError::NonCanonical("reading body"))
        );
    }

    #[test]
    fn out_of_range_values_are_refused_both_ways() {
        let reading = Reading {
            humidity_centi_pct: 10_001,
            ..widest_reading()
        };
        let mut out = [0u8; SIGNED_READING_BYTES_MAX];
        assert_eq!(
            encode_signed_reading(&reading, &key(), &mut out),
            Err(EncodeError::OutOfRange("humidity_centi_pct"))
        );
        let mut body = [0u8; BODY_BYTES_MAX];
        let len = postcard::to_slice(&reading, &mut body).unwrap().len();
        assert_eq!(
            decode_body(&body[..len]),
            Err(DecodeError::OutOfRange("humidity_centi_pct"))
        );
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let mut out = [0u8; SIGNED_READING_BYTES_MAX];
        let len = encode_signed_reading(&widest_reading(), &key(), &mut out).unwrap();
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(
            verify_signed_reading(&out[..len], &other),
            Err(VerifyError::BadSignature)
        );
    }
}
