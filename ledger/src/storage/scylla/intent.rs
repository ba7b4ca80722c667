//! The write-ahead intent of a round: everything a round writes besides the log state row
//! (tiles, entry bundles, sidecar records), encoded into one blob that is stored, in chunks,
//! before the round's lightweight transaction and applied after it (see the parent module).
//!
//! Encoding (all integers big-endian), version 1:
//!
//! ```text
//! version u8 = 1 ‖ write timestamp i64 (µs, the sidecars' CQL write time)
//! tile count u32   ‖ { level u8 ‖ index u64 ‖ length u32 ‖ bytes }*
//! bundle count u32 ‖ { index u64 ‖ length u32 ‖ bytes }*
//! record count u32 ‖ { table length u16 ‖ table ‖ key length u32 ‖ key ‖ value length u32 ‖ value }*
//! ```
//!
//! The decoder reads stored bytes, so every length is checked against what is left: a
//! truncated or garbled intent is [`ReadError::Corrupt`], never a panic.

use crate::storage::{ReadError, RoundCommit, SidecarRecord, TileKey};

const VERSION: u8 = 1;

/// Bytes of one stored chunk of an intent: well under the 4 MiB mutation limit of a node with
/// an 8 MiB commit log segment (Cassandra refuses a mutation over half a segment).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The part of a round that is applied after its lightweight transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// CQL write timestamp (µs since the Unix epoch) of the sidecar records, fixed when the
    /// intent is written, so that a late roll-forward never overwrites a newer record.
    pub write_time_us: i64,
    /// Tiles, each in its new (widest) version.
    pub tiles: Vec<(TileKey, Vec<u8>)>,
    /// Entry bundles, each in its new version.
    pub bundles: Vec<(u64, Vec<u8>)>,
    /// Sidecar records.
    pub sidecars: Vec<SidecarRecord>,
}

impl Intent {
    /// The intent of `round`, to be written at `write_time_us`.
    #[must_use]
    pub fn of_round(round: &RoundCommit, write_time_us: i64) -> Self {
        Self {
            write_time_us,
            tiles: round.tiles.clone(),
            bundles: round.bundles.clone(),
            sidecars: round.sidecars.clone(),
        }
    }

    /// Encodes the intent (see the module documentation).
    ///
    /// # Errors
    /// A sentence if a part is too long for its length field (a round over 4 GiB).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.write_time_us.to_be_bytes());
        put_count(&mut out, self.tiles.len())?;
        for (key, tile) in &self.tiles {
            out.push(key.level);
            out.extend_from_slice(&key.index.to_be_bytes());
            put_bytes32(&mut out, tile)?;
        }
        put_count(&mut out, self.bundles.len())?;
        for (index, bundle) in &self.bundles {
            out.extend_from_slice(&index.to_be_bytes());
            put_bytes32(&mut out, bundle)?;
        }
        put_count(&mut out, self.sidecars.len())?;
        for record in &self.sidecars {
            let table = u16::try_from(record.table.len())
                .map_err(|_| "sidecar table name over 65,535 bytes".to_owned())?;
            out.extend_from_slice(&table.to_be_bytes());
            out.extend_from_slice(record.table.as_bytes());
            put_bytes32(&mut out, &record.key)?;
            put_bytes32(&mut out, &record.value)?;
        }
        Ok(out)
    }

    /// Decodes [`Intent::encode`].
    ///
    /// # Errors
    /// [`ReadError::Corrupt`] if the bytes are not an intent of this version.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReadError> {
        let mut r = Reader { bytes };
        if r.take(1)? != [VERSION] {
            return Err(corrupt("unknown intent version"));
        }
        let write_time_us = i64::from_be_bytes(r.array::<8>()?);
        let mut tiles = Vec::new();
        for _ in 0..r.u32()? {
            let level = r.take(1)?[0];
            let index = u64::from_be_bytes(r.array::<8>()?);
            tiles.push((TileKey { level, index }, r.bytes32()?));
        }
        let mut bundles = Vec::new();
        for _ in 0..r.u32()? {
            let index = u64::from_be_bytes(r.array::<8>()?);
            bundles.push((index, r.bytes32()?));
        }
        let mut sidecars = Vec::new();
        for _ in 0..r.u32()? {
            let length = usize::from(u16::from_be_bytes(r.array::<2>()?));
            let table = String::from_utf8(r.take(length)?.to_vec())
                .map_err(|_| corrupt("sidecar table name is not UTF-8"))?;
            let key = r.bytes32()?;
            let value = r.bytes32()?;
            sidecars.push(SidecarRecord { table, key, value });
        }
        if !r.bytes.is_empty() {
            return Err(corrupt("bytes after the last record"));
        }
        Ok(Self {
            write_time_us,
            tiles,
            bundles,
            sidecars,
        })
    }
}

fn corrupt(what: &str) -> ReadError {
    ReadError::Corrupt(format!("round intent: {what}"))
}

fn put_count(out: &mut Vec<u8>, count: usize) -> Result<(), String> {
    let count = u32::try_from(count).map_err(|_| "over 2^32 parts in one round".to_owned())?;
    out.extend_from_slice(&count.to_be_bytes());
    Ok(())
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let length = u32::try_from(bytes.len()).map_err(|_| "a part over 4 GiB".to_owned())?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.bytes.len() {
            return Err(corrupt("ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    fn bytes32(&mut self) -> Result<Vec<u8>, ReadError> {
        let length = usize::try_from(self.u32()?).map_err(|_| corrupt("length overflows"))?;
        Ok(self.take(length)?.to_vec())
    }
}

/// Splits an encoded intent into the chunks it is stored as (at least one, possibly empty).
#[must_use]
pub fn chunks(encoded: &[u8]) -> Vec<&[u8]> {
    if encoded.is_empty() {
        return vec![encoded];
    }
    encoded.chunks(CHUNK_BYTES).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Intent {
        Intent {
            write_time_us: 1_700_000_000_000_123,
            tiles: vec![
                (TileKey { level: 0, index: 3 }, vec![7; 64]),
                (TileKey { level: 1, index: 0 }, vec![8; 32]),
            ],
            bundles: vec![(3, vec![0, 2, 0xAB, 0xCD])],
            sidecars: vec![
                SidecarRecord {
                    table: "ingest_readings".into(),
                    key: vec![1, 2, 3],
                    value: b"reading".to_vec(),
                },
                SidecarRecord {
                    table: "t".into(),
                    key: Vec::new(),
                    value: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn an_intent_decodes_to_what_was_encoded() {
        let intent = sample();
        let encoded = intent.encode().expect("encodes");
        assert_eq!(Intent::decode(&encoded).expect("decodes"), intent);
        let empty = Intent {
            write_time_us: -1,
            tiles: Vec::new(),
            bundles: Vec::new(),
            sidecars: Vec::new(),
        };
        let encoded = empty.encode().expect("encodes");
        assert_eq!(encoded.len(), 1 + 8 + 12);
        assert_eq!(Intent::decode(&encoded).expect("decodes"), empty);
    }

    #[test]
    fn every_truncation_and_every_extra_byte_is_corrupt_not_a_panic() {
        let encoded = sample().encode().expect("encodes");
        for cut in 0..encoded.len() {
            assert!(
                matches!(Intent::decode(&encoded[..cut]), Err(ReadError::Corrupt(_))),
                "cut at {cut} decoded"
            );
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(Intent::decode(&longer).is_err());
        let mut other_version = encoded;
        other_version[0] = 2;
        assert!(Intent::decode(&other_version).is_err());
    }

    #[test]
    fn chunks_cover_the_blob_in_order() {
        assert_eq!(chunks(&[]), vec![&[] as &[u8]]);
        let blob: Vec<u8> = (0..CHUNK_BYTES * 2 + 5)
            .map(|i| u8::try_from(i % 251).expect("small"))
            .collect();
        let parts = chunks(&blob);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [CHUNK_BYTES, CHUNK_BYTES, 5]
        );
        assert_eq!(parts.concat(), blob);
    }
}
