//! CRC-32 (the ISO-HDLC / IEEE 802.3 / zlib CRC: reflected polynomial 0xEDB88320, initial
//! value and final XOR 0xFFFFFFFF), written here rather than pulled in as a crate: 20 lines,
//! `const` table, no allocation. It guards the outbox journal's records against torn writes
//! and flash bit rot; it is not a cryptographic check (the reading's signature is).
//!
//! Known answer (the check value of every CRC catalogue): `crc32(b"123456789") == 0xCBF43926`.

const POLYNOMIAL: u32 = 0xEDB8_8320;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "index < 256; `u32::try_from` is not const"
        )]
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// A running CRC-32 over several slices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    pub(crate) const fn new() -> Self {
        Self(0xFFFF_FFFF)
    }

    pub(crate) fn update(mut self, bytes: &[u8]) -> Self {
        for &byte in bytes {
            let index = usize::from(self.0.to_le_bytes()[0] ^ byte);
            self.0 = (self.0 >> 8) ^ TABLE[index];
        }
        self
    }

    pub(crate) const fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32;

    fn check(input: &[u8], expected: u32) {
        assert_eq!(
            Crc32::new().update(input).finish(),
            expected,
            "crc32({input:?})"
        );
    }

    #[test]
    fn crc32_matches_the_catalogue_check_values() {
        check(b"", 0);
        check(b"123456789", 0xCBF4_3926);
        check(b"a", 0xE8B7_BE43);
        check(b"The quick brown fox jumps over the lazy dog", 0x414F_A339);
    }

    #[test]
    fn crc32_over_pieces_equals_crc32_over_the_whole() {
        let whole = Crc32::new().update(b"123456789").finish();
        let pieces = Crc32::new().update(b"1234").update(b"").update(b"56789");
        assert_eq!(pieces.finish(), whole);
    }
}
