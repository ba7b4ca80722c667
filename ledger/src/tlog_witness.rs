//! The wire format of C2SP tlog-witness `add-checkpoint`, both sides: the request body a log
//! sends (`old <size>`, consistency proof lines, an empty line, the signed checkpoint) and the
//! witness's answers (cosignature lines on `200`, `<size>\n` on `409 Conflict`).
//!
//! Pure parsing and formatting over bytes, `no_std` + `alloc`, so that the fuzz targets reach it
//! with the default features off; the HTTP service (`witness`) and the log's client
//! (`witness_client`) are thin layers over it.

use alloc::string::String;
use alloc::vec::Vec;

use crate::merkle::Hash;
use crate::note::{MAX_NOTE_BYTES, NoteSignature};

/// Most consistency proof lines a request may carry (C2SP tlog-witness: at most 63).
pub const PROOF_LINES_MAX: usize = 63;
/// Largest request body accepted: the `old` line, 63 proof lines and a signed note.
pub const REQUEST_BYTES_MAX: usize = MAX_NOTE_BYTES + 64 * 64 + 32;
/// Largest response body a log reads from a witness.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024;
/// Content type of a `409 Conflict` body (C2SP tlog-witness).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A parsed `add-checkpoint` request body. Nothing in it is verified by parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// Size of the previous checkpoint the client believes the witness holds.
    pub old: u64,
    /// Consistency proof hashes from `old` to the checkpoint.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note bytes.
    pub note: Vec<u8>,
}

/// Why a request body was rejected (answered `400 Bad Request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Larger than [`REQUEST_BYTES_MAX`].
    #[error("request body too large")]
    TooLarge,
    /// No first line, or it is not `old <decimal>`.
    #[error("first line must be `old <size>`, a decimal without leading zeroes")]
    OldLine,
    /// More than [`PROOF_LINES_MAX`] proof lines.
    #[error("more than 63 consistency proof lines")]
    TooManyProofLines,
    /// A proof line is not base64 of 32 bytes.
    #[error("proof line is not base64 of a 32-byte hash")]
    ProofLine,
    /// The body ends before the empty line that separates the proof from the note.
    #[error("missing empty line before the checkpoint")]
    MissingEmptyLine,
}

/// Parses a decimal as C2SP specs write sizes: ASCII digits, no sign, no leading zeroes (`0`
/// itself is fine), within `u64`. `str::parse` would also take `+5`.
#[must_use]
pub fn parse_canonical_decimal(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes == b"0" || bytes.first() != Some(&b'0'));
    if !canonical {
        return None;
    }
    text.parse().ok()
}

/// Splits off the next `\n`-terminated line (without its newline).
fn next_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let end = rest.iter().position(|b| *b == b'\n')?;
    let (line, tail) = rest.split_at(end);
    *rest = tail.get(1..).unwrap_or_default();
    Some(line)
}

/// Parses `old <size>\n`, up to 63 base64 hash lines, `\n`, then the signed note (returned as
/// bytes, unparsed).
///
/// # Errors
/// [`RequestError`] saying what is wrong.
pub fn parse_request(body: &[u8]) -> Result<AddCheckpointRequest, RequestError> {
    if body.len() > REQUEST_BYTES_MAX {
        return Err(RequestError::TooLarge);
    }
    let mut rest = body;
    let old_line = next_line(&mut rest).ok_or(RequestError::OldLine)?;
    let old = old_line
        .strip_prefix(b"old ")
        .and_then(|t| core::str::from_utf8(t).ok())
        .and_then(parse_canonical_decimal)
        .ok_or(RequestError::OldLine)?;
    let mut proof = Vec::new();
    loop {
        let line = next_line(&mut rest).ok_or(RequestError::MissingEmptyLine)?;
        if line.is_empty() {
            break;
        }
        if proof.len() == PROOF_LINES_MAX {
            return Err(RequestError::TooManyProofLines);
        }
        let hash = core::str::from_utf8(line)
            .ok()
            .and_then(|text| Hash::from_base64(text).ok())
            .ok_or(RequestError::ProofLine)?;
        proof.push(hash);
    }
    Ok(AddCheckpointRequest {
        old,
        proof,
        note: rest.to_vec(),
    })
}

/// The `add-checkpoint` request body: `old <size>`, the proof hashes in base64 one per line, an
/// empty line, then the signed checkpoint note.
#[must_use]
pub fn add_checkpoint_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = alloc::format!("old {old}\n");
    for hash in proof {
        body.push_str(&hash.to_base64());
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// Why a witness response could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Larger than [`RESPONSE_BYTES_MAX`].
    #[error("response too large")]
    TooLarge,
    /// Not UTF-8.
    #[error("response is not UTF-8")]
    NotText,
    /// A `409` body that is not `<size>\n` with a canonical decimal.
    #[error("409 body is not a size line")]
    Size,
}

/// The signature lines of a `200` answer (each `— <name> <base64>`); other lines are skipped.
/// The caller verifies them against the witness's key.
///
/// # Errors
/// [`ResponseError::TooLarge`] or [`ResponseError::NotText`].
pub fn parse_cosignature_response(body: &[u8]) -> Result<Vec<NoteSignature>, ResponseError> {
    if body.len() > RESPONSE_BYTES_MAX {
        return Err(ResponseError::TooLarge);
    }
    let text = core::str::from_utf8(body).map_err(|_| ResponseError::NotText)?;
    Ok(text.lines().filter_map(NoteSignature::parse_line).collect())
}

/// The size in a `409 Conflict` answer: exactly `<size>\n`.
///
/// # Errors
/// [`ResponseError`] if the body is too large, not UTF-8 or not one canonical size line.
pub fn parse_size_response(body: &[u8]) -> Result<u64, ResponseError> {
    if body.len() > RESPONSE_BYTES_MAX {
        return Err(ResponseError::TooLarge);
    }
    let text = core::str::from_utf8(body).map_err(|_| ResponseError::NotText)?;
    text.strip_suffix('\n')
        .and_then(parse_canonical_decimal)
        .ok_or(ResponseError::Size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_decimals_only() {
        let check = |text: &str, expected: Option<u64>| {
            assert_eq!(parse_canonical_decimal(text), expected, "{text:?}");
        };
        check("0", Some(0));
        check("5", Some(5));
        check("18446744073709551615", Some(u64::MAX));
        check("18446744073709551616", None);
        check("+5", None);
        check("-0", None);
        check("05", None);
        check("00", None);
        check("", None);
        check(" 5", None);
        check("5 ", None);
    }

    #[test]
    fn size_responses_are_one_canonical_line() {
        let check = |body: &[u8], expected: Result<u64, ResponseError>| {
            assert_eq!(parse_size_response(body), expected, "{body:?}");
        };
        check(b"12\n", Ok(12));
        check(b"+12\n", Err(ResponseError::Size));
        check(b"12", Err(ResponseError::Size));
        check(b"12\n\n", Err(ResponseError::Size));
        check(b"\xff\n", Err(ResponseError::NotText));
    }

    #[test]
    fn requests_round_trip_and_malformed_ones_name_the_problem() {
        let hash = Hash([7; 32]);
        let body = add_checkpoint_body(3, &[hash, hash], "note\n");
        let parsed = parse_request(body.as_bytes()).expect("well-formed");
        assert_eq!(
            parsed,
            AddCheckpointRequest {
                old: 3,
                proof: alloc::vec![hash, hash],
                note: b"note\n".to_vec(),
            }
        );
        let check = |body: &[u8], expected: RequestError| {
            assert_eq!(parse_request(body), Err(expected), "{body:?}");
        };
        check(b"", RequestError::OldLine);
        check(b"old +3\n\nnote", RequestError::OldLine);
        check(b"old 03\n\nnote", RequestError::OldLine);
        check(b"old 3\nnot base64\n\nnote", RequestError::ProofLine);
        check(b"old 3\n", RequestError::MissingEmptyLine);
    }
}
