//! Sensirion's CRC-8 over each 16-bit word on the I2C bus.
//!
//! SHT4x datasheet (v6.6, §4.4 "Checksum Calculation"): polynomial 0x31 (x^8 + x^5 + x^4 + 1),
//! initialisation 0xFF, no reflection, no final XOR; the datasheet's example is
//! CRC(0xBEEF) = 0x92. The `sht4x` driver checks it through `sensirion-i2c`; the simulated sensor
//! needs it to answer like the real part.

/// CRC-8 of `data` as the SHT4x computes it for every 2-byte word it sends.
pub fn crc8(data: &[u8]) -> u8 {
    const POLYNOMIAL: u8 = 0x31;
    let mut crc: u8 = 0xFF;
    for &byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The three bytes the sensor sends for one word: big-endian value, then its CRC.
pub fn word_with_crc(word: u16) -> [u8; 3] {
    let [hi, lo] = word.to_be_bytes();
    [hi, lo, crc8(&[hi, lo])]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_datasheet_example() {
        assert_eq!(crc8(&[0xBE, 0xEF]), 0x92);
        assert_eq!(word_with_crc(0xBEEF), [0xBE, 0xEF, 0x92]);
    }
}
