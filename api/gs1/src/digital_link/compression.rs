//! The compressed form of GS1 Digital Link URIs (GS1 Digital Link URI syntax 1.2, "Compression",
//! with the binary format of GS1's Digital Link compression toolkit): the primary key, its
//! qualifiers, data attributes and other `key=value` pairs packed into a bit stream written as
//! one path element in the URI-safe base64 alphabet (`A-Z a-z 0-9 - _`, six bits a character,
//! the last character padded with zero bits).
//!
//! The bit stream is a sequence of entries:
//! - an AI: its digits as four-bit nibbles (two, three or four of them: the first two digits
//!   say how many, GS1 General Specifications table of AI lengths), then its value;
//! - an optimisation code: one byte whose nibbles are not both decimal (`0A` = AI 01 then 22,
//!   `9D` = 414 then 254, ...), then the values of the AIs it stands for, in the table's order;
//! - a non-GS1 pair: nibble `F`, a seven-bit key length, the key in base64 (six bits a
//!   character), then an encoded string value.
//!
//! A value is encoded component by component as its AI's format says: `N<n>` fixed-length digits
//! as one binary number of `ceil(n·log2(10) + 0.01)` bits; `N..<m>` the same behind a length of
//! `ceil(log2(m) + 0.01)` bits; `X..<m>` a three-bit encoding indicator, the length, then the
//! characters — 0: digits as one number, 1: lower-case hexadecimal, 2: upper-case hexadecimal
//! (four bits a character), 3: URI-safe base64 (six bits), 4: 7-bit ASCII. The AI formats and
//! optimisation codes below are those of the toolkit's tables (its `tableP`, `tableF`,
//! `tableOpt`), restricted to the AIs this library knows.
//!
//! Decompression validates everything it reads and returns an error (never a panic) for a
//! character outside the alphabet, a stream that ends inside an entry, an AI or code that is
//! not defined, a number too large for its digits, or non-zero padding; the values then go
//! through the same checks (check digits, character set, dates) as an uncompressed link.
//! One deliberate difference from the toolkit's decoder: an all-digit string value keeps the
//! leading zeros its length says it has (`0001` stays `0001`), where the toolkit's script
//! drops them.
//!
//! Compression writes, like the toolkit with optimisations off, the AIs in ascending string
//! order (`01`, `10`, `17`, `21`, `22`, ...); [`Sequences::Optimised`] first uses the longest
//! optimisation codes that apply, as the toolkit does. Non-GS1 query parameters stay in the
//! query string, uncompressed.

use std::fmt;

/// The URI-safe base64 alphabet of the compressed form.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Upper-case hexadecimal digits, the alphabet of encodings 1 and 2.
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Most characters a compressed path element may have (a QR code label is far shorter).
pub const COMPRESSED_CHARS_MAX: usize = 2048;

/// Why a compressed path element does not decode, or a link cannot be compressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// Empty, or longer than [`COMPRESSED_CHARS_MAX`].
    #[error("a compressed link is 1 to {max} characters long, got {got}")]
    Length {
        /// Its length.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the URI-safe base64 alphabet.
    #[error(
        "{found:?} at position {position} is not in the URI-safe base64 alphabet A-Z a-z 0-9 - _"
    )]
    NotBase64Url {
        /// Position of the character (0-based).
        position: usize,
        /// The character.
        found: char,
    },
    /// The bit stream ends inside an entry.
    #[error("the compressed data ends inside {what}")]
    Truncated {
        /// The entry being read, in words.
        what: String,
    },
    /// AI digits that are not a defined AI, or an AI this library has no format for.
    #[error("({ai}) is not a GS1 Application Identifier this resolver can decompress")]
    UnknownAi {
        /// The AI digits read (hexadecimal nibbles as read).
        ai: String,
    },
    /// A one-byte code that is neither an AI, an optimisation code nor a non-GS1 pair.
    #[error(
        "the code {code} is not an AI, an optimisation code of the standard, or a key=value pair"
    )]
    UnknownCode {
        /// The byte, as two hexadecimal digits.
        code: String,
    },
    /// An encoding indicator outside 0-4.
    #[error("AI ({ai}): encoding indicator {indicator} is not defined (0-4)")]
    UnknownEncoding {
        /// The AI (or non-GS1 key).
        ai: String,
        /// The indicator read.
        indicator: u8,
    },
    /// A length field over the AI's maximum.
    #[error("AI ({ai}): length {got} is over the maximum {max}")]
    LengthOverMax {
        /// The AI.
        ai: String,
        /// The length read.
        got: usize,
        /// The AI's maximum.
        max: usize,
    },
    /// A number with more digits than its length allows.
    #[error("AI ({ai}): the encoded number has more than {digits} digits")]
    NumberTooLarge {
        /// The AI (or non-GS1 key).
        ai: String,
        /// Digits allowed.
        digits: usize,
    },
    /// A 7-bit character that is a control character.
    #[error("AI ({ai}): character code {code} is a control character")]
    ControlCharacter {
        /// The AI (or non-GS1 key).
        ai: String,
        /// The character code.
        code: u8,
    },
    /// Bits left after the last entry that are not zero padding.
    #[error("the compressed data has {bits} bits after its last entry that are not zero padding")]
    Trailing {
        /// How many bits are left.
        bits: usize,
    },
    /// A non-GS1 pair with an empty key.
    #[error("a key=value pair in the compressed data has an empty key")]
    EmptyKey,
    /// A value that the compressed form cannot carry.
    #[error("AI ({ai}): the value cannot be compressed: {why}")]
    NotCompressible {
        /// The AI.
        ai: String,
        /// Why, in words.
        why: &'static str,
    },
}

/// One entry of a compressed link, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// A GS1 Application Identifier and its value (as in an element string, undecorated).
    Ai {
        /// The AI digits.
        ai: String,
        /// The value.
        value: String,
    },
    /// A non-GS1 `key=value` pair.
    Other {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// Whether compression uses the standard's optimisation codes for common AI sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sequences {
    /// Every AI written with its own digits, in ascending order (the toolkit's default output
    /// and that of its published examples).
    #[default]
    Plain,
    /// The longest optimisation codes that apply first (e.g. `0B` for 01 + 10), then the rest.
    Optimised,
}

/// One component of an AI's value format (the toolkit's `tableF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Exactly this many digits.
    Digits(usize),
    /// Up to this many digits, behind a length.
    DigitsUpTo(usize),
    /// Up to this many characters, behind an encoding indicator and a length.
    TextUpTo(usize),
}

use Part::{Digits as N, DigitsUpTo as Nv, TextUpTo as X};

/// The value format of every AI this library knows, for compression (GS1 General
/// Specifications formats, as the toolkit's `tableF` writes them).
fn format(ai: &str) -> Option<&'static [Part]> {
    let parts: &'static [Part] = match ai {
        "00" | "8006" | "8017" | "8018" => &[N(18)],
        "01" | "02" | "8001" => &[N(14)],
        "10" | "21" | "22" | "243" | "254" | "420" | "7020" | "7021" | "7022" | "8002" | "8012" => {
            &[X(20)]
        }
        "11" | "12" | "13" | "15" | "16" | "17" | "7006" | "8005" => &[N(6)],
        "20" => &[N(2)],
        "30" | "37" => &[Nv(8)],
        "90" | "240" | "241" | "250" | "251" | "400" | "403" | "7002" | "7023" => &[X(30)],
        "242" => &[Nv(6)],
        "410" | "411" | "412" | "413" | "414" | "415" | "416" | "417" | "7001" => &[N(13)],
        // Keys and qualifiers that are decoded only to be refused with a precise message.
        "253" => &[N(13), X(17)],
        "255" => &[N(13), Nv(12)],
        "401" | "8004" | "8010" | "8013" => &[X(30)],
        "402" => &[N(17)],
        "8011" => &[Nv(12)],
        "8019" => &[Nv(10)],
        "8020" => &[X(25)],
        "422" | "424" | "426" => &[N(3)],
        "423" | "425" => &[N(3), Nv(12)],
        "427" | "7008" => &[X(3)],
        "7003" => &[N(10)],
        "7004" => &[Nv(4)],
        "7005" => &[X(12)],
        "7007" => &[N(6), Nv(6)],
        "7009" => &[X(10)],
        "7010" => &[X(2)],
        "8003" => &[N(14), X(16)],
        "8008" => &[N(8), Nv(4)],
        _ => return measure_format(ai),
    };
    Some(parts)
}

/// The measure and amount families: 310n-316n, 320n-329n, 330n-337n, 340n-349n, 350n-357n,
/// 360n-369n (n = 0-5) are six digits; 390n and 392n up to 15 digits; 391n and 393n a
/// three-digit currency then up to 15 digits; 3940-3943 four digits.
fn measure_format(ai: &str) -> Option<&'static [Part]> {
    let b = ai.as_bytes();
    if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let [_, family, third, fourth] = [b[0], b[1], b[2], b[3]].map(|d| d - b'0');
    if b[0] != b'3' {
        return None;
    }
    let third_max = match family {
        1 => 6,
        2 | 4 | 6 => 9,
        3 | 5 => 7,
        9 => {
            return match (third, fourth) {
                (0 | 2, _) => Some(&[Nv(15)]),
                (1 | 3, _) => Some(&[N(3), Nv(15)]),
                (4, 0..=3) => Some(&[N(4)]),
                _ => None,
            };
        }
        _ => return None,
    };
    (third <= third_max && fourth <= 5).then_some(&[N(6)])
}

/// How many digits an AI starting with these two digits has (the toolkit's `tableP`, from the
/// GS1 General Specifications); `None` for a reserved prefix.
fn ai_length(first_two: u8) -> Option<usize> {
    match first_two {
        0..=2 | 10..=13 | 15..=17 | 20..=22 | 30 | 37 | 90..=99 => Some(2),
        23..=25 | 40..=42 | 71 => Some(3),
        31..=36 | 39 | 70 | 72 | 80..=82 => Some(4),
        _ => None,
    }
}

/// The optimisation codes of the standard's table: the byte and the AIs it stands for, in
/// stream order. Codes `A0`-`CD` are in the table too; those whose AIs this library does not
/// know decode to an unknown-AI error.
const OPTIMISATIONS: &[(u8, &[&str])] = &[
    (0x0A, &["01", "22"]),
    (0x0B, &["01", "10"]),
    (0x0C, &["01", "21"]),
    (0x0D, &["01", "17"]),
    (0x0E, &["01", "7003"]),
    (0x0F, &["01", "30"]),
    (0x1A, &["01", "10", "21", "17"]),
    (0x1B, &["01", "15"]),
    (0x1C, &["01", "11"]),
    (0x1D, &["01", "16"]),
    (0x1E, &["01", "91"]),
    (0x1F, &["01", "10", "15"]),
    (0x2A, &["01", "3100"]),
    (0x2B, &["01", "3101"]),
    (0x2C, &["01", "3102"]),
    (0x2D, &["01", "3103"]),
    (0x2E, &["01", "3104"]),
    (0x2F, &["01", "3105"]),
    (0x3A, &["01", "3200"]),
    (0x3B, &["01", "3201"]),
    (0x3C, &["01", "3202"]),
    (0x3D, &["01", "3203"]),
    (0x3E, &["01", "3204"]),
    (0x3F, &["01", "3205"]),
    (0x9A, &["8010", "8011"]),
    (0x9B, &["8017", "8019"]),
    (0x9C, &["8018", "8019"]),
    (0x9D, &["414", "254"]),
    (0xA0, &["01", "3920"]),
    (0xA1, &["01", "3921"]),
    (0xA2, &["01", "3922"]),
    (0xA3, &["01", "3923"]),
    (0xA4, &["01", "3924"]),
    (0xA5, &["01", "3925"]),
    (0xA6, &["01", "3926"]),
    (0xA7, &["01", "3927"]),
    (0xA8, &["01", "3928"]),
    (0xA9, &["01", "3929"]),
    (0xC0, &["255", "3900"]),
    (0xC1, &["255", "3901"]),
    (0xC2, &["255", "3902"]),
    (0xC3, &["255", "3903"]),
    (0xC4, &["255", "3904"]),
    (0xC5, &["255", "3905"]),
    (0xC6, &["255", "3906"]),
    (0xC7, &["255", "3907"]),
    (0xC8, &["255", "3908"]),
    (0xC9, &["255", "3909"]),
    (0xCA, &["255", "3940"]),
    (0xCB, &["255", "3941"]),
    (0xCC, &["255", "3942"]),
    (0xCD, &["255", "3943"]),
];

/// Bits of a number of `digits` decimal digits: `ceil(digits·log2(10) + 0.01)`, in integer
/// arithmetic (log2(10) to 16 significant digits; exact for every length up to 127).
fn value_bits(digits: usize) -> usize {
    const LOG2_10_E15: u128 = 3_321_928_094_887_362;
    const HUNDREDTH_E15: u128 = 10_000_000_000_000;
    const ONE_E15: u128 = 1_000_000_000_000_000;
    if digits == 0 {
        return 0;
    }
    // `digits` comes from a 7-bit length or a table entry: far below u128 and usize limits.
    let scaled = digits as u128 * LOG2_10_E15 + HUNDREDTH_E15;
    usize::try_from(scaled.div_ceil(ONE_E15)).unwrap_or(usize::MAX)
}

/// Bits of a length field for lengths up to `max`: `ceil(log2(max) + 0.01)`, which is the
/// bit length of `max`.
fn length_bits(max: usize) -> usize {
    (usize::BITS - max.leading_zeros()) as usize
}

/// A bit stream being written.
#[derive(Default)]
struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    fn push(&mut self, value: u64, width: usize) {
        for i in (0..width).rev() {
            self.bits.push((value >> i) & 1 == 1);
        }
    }

    /// A decimal number (all ASCII digits) as `width` bits, most significant first.
    fn push_decimal(&mut self, digits: &str, width: usize) {
        let mut number: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
        let mut bits = vec![false; width];
        for bit in bits.iter_mut().rev() {
            // Long division by two, most significant digit first.
            let mut carry = 0;
            for d in &mut number {
                let cur = carry * 10 + *d;
                *d = cur / 2;
                carry = cur % 2;
            }
            *bit = carry == 1;
        }
        debug_assert!(number.iter().all(|&d| d == 0), "value_bits is large enough");
        self.bits.extend(bits);
    }

    /// The stream in the URI-safe base64 alphabet, the last character padded with zeros.
    fn to_base64url(&self) -> String {
        self.bits
            .chunks(6)
            .map(|chunk| {
                let index = (0..6).fold(0usize, |acc, i| {
                    (acc << 1) | usize::from(chunk.get(i).copied().unwrap_or(false))
                });
                char::from(ALPHABET[index])
            })
            .collect()
    }
}

/// A bit stream being read.
struct BitReader {
    bits: Vec<bool>,
    cursor: usize,
}

impl BitReader {
    fn from_base64url(segment: &str) -> Result<Self, CompressionError> {
        if segment.is_empty() || segment.len() > COMPRESSED_CHARS_MAX {
            return Err(CompressionError::Length {
                got: segment.len(),
                max: COMPRESSED_CHARS_MAX,
            });
        }
        let mut bits = Vec::with_capacity(segment.len() * 6);
        for (position, c) in segment.chars().enumerate() {
            let index = ALPHABET
                .iter()
                .position(|&a| char::from(a) == c)
                .ok_or(CompressionError::NotBase64Url { position, found: c })?;
            for i in (0..6).rev() {
                bits.push((index >> i) & 1 == 1);
            }
        }
        Ok(Self { bits, cursor: 0 })
    }

    fn remaining(&self) -> usize {
        self.bits.len() - self.cursor
    }

    fn take(
        &mut self,
        width: usize,
        what: &dyn Fn() -> String,
    ) -> Result<&[bool], CompressionError> {
        if width > self.remaining() {
            return Err(CompressionError::Truncated { what: what() });
        }
        let start = self.cursor;
        self.cursor += width;
        Ok(&self.bits[start..self.cursor])
    }

    /// Up to 64 bits as a number.
    fn read(&mut self, width: usize, what: &dyn Fn() -> String) -> Result<u64, CompressionError> {
        debug_assert!(width <= 64);
        Ok(self
            .take(width, what)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 1) | u64::from(b)))
    }

    fn read_usize(
        &mut self,
        width: usize,
        what: &dyn Fn() -> String,
    ) -> Result<usize, CompressionError> {
        let v = self.read(width, what)?;
        // Widths here are at most 7 bits.
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }

    /// A `digits`-digit decimal number, zero-padded on the left.
    fn read_decimal(&mut self, digits: usize, ai: &str) -> Result<String, CompressionError> {
        let width = value_bits(digits);
        let what = || format!("the value of ({ai})");
        let bits = self.take(width, &what)?;
        // Little-endian decimal digits; each bit doubles the number and adds itself.
        let mut number: Vec<u8> = vec![0];
        for &bit in bits {
            let mut carry = u8::from(bit);
            for d in &mut number {
                let cur = *d * 2 + carry;
                *d = cur % 10;
                carry = cur / 10;
            }
            if carry > 0 {
                number.push(carry);
            }
        }
        while number.len() > 1 && number.last() == Some(&0) {
            number.pop();
        }
        if number.len() > digits && !(digits == 0 && number == [0]) {
            return Err(CompressionError::NumberTooLarge {
                ai: ai.to_owned(),
                digits,
            });
        }
        let mut out = "0".repeat(digits - number.len().min(digits));
        if digits > 0 {
            out.extend(number.iter().rev().map(|&d| char::from(b'0' + d)));
        }
        Ok(out)
    }

    /// A string of `chars` characters in encoding `indicator` (0-4).
    fn read_text(
        &mut self,
        indicator: u8,
        chars: usize,
        ai: &str,
    ) -> Result<String, CompressionError> {
        let what = || format!("the value of ({ai})");
        match indicator {
            0 => self.read_decimal(chars, ai),
            1 | 2 => {
                let mut s = String::with_capacity(chars);
                for _ in 0..chars {
                    let c = char::from(HEX[self.read_usize(4, &what)?]);
                    s.push(if indicator == 1 {
                        c.to_ascii_lowercase()
                    } else {
                        c
                    });
                }
                Ok(s)
            }
            3 => (0..chars)
                .map(|_| Ok(char::from(ALPHABET[self.read_usize(6, &what)?])))
                .collect(),
            4 => (0..chars)
                .map(|_| {
                    let code = u8::try_from(self.read(7, &what)?).unwrap_or(u8::MAX);
                    if code < 0x20 || code == 0x7F {
                        Err(CompressionError::ControlCharacter {
                            ai: ai.to_owned(),
                            code,
                        })
                    } else {
                        Ok(char::from(code))
                    }
                })
                .collect(),
            other => Err(CompressionError::UnknownEncoding {
                ai: ai.to_owned(),
                indicator: other,
            }),
        }
    }

    /// The value of `ai`, component by component.
    fn read_value(&mut self, ai: &str) -> Result<String, CompressionError> {
        let parts = format(ai).ok_or_else(|| CompressionError::UnknownAi { ai: ai.to_owned() })?;
        let what = || format!("the value of ({ai})");
        let mut value = String::new();
        for part in parts {
            match *part {
                N(n) => value.push_str(&self.read_decimal(n, ai)?),
                Nv(max) => {
                    let n = self.read_usize(length_bits(max), &what)?;
                    check_length(ai, n, max)?;
                    value.push_str(&self.read_decimal(n, ai)?);
                }
                X(max) => {
                    let indicator = u8::try_from(self.read(3, &what)?).unwrap_or(u8::MAX);
                    let n = self.read_usize(length_bits(max), &what)?;
                    check_length(ai, n, max)?;
                    value.push_str(&self.read_text(indicator, n, ai)?);
                }
            }
        }
        Ok(value)
    }
}

fn check_length(ai: &str, n: usize, max: usize) -> Result<(), CompressionError> {
    if n > max {
        return Err(CompressionError::LengthOverMax {
            ai: ai.to_owned(),
            got: n,
            max,
        });
    }
    Ok(())
}

/// Decodes a compressed path element into its entries, in stream order.
pub fn decompress(segment: &str) -> Result<Vec<Element>, CompressionError> {
    let mut r = BitReader::from_base64url(segment)?;
    let mut out = Vec::new();
    // Every entry is at least eight bits; fewer left are the padding of the last character.
    while r.remaining() >= 8 {
        let what = || "an AI".to_owned();
        let h1 = r.read(4, &what)?;
        let h2 = r.read(4, &what)?;
        if h1 <= 9 && h2 <= 9 {
            let first_two = u8::try_from(h1 * 10 + h2).unwrap_or(u8::MAX);
            let unknown = |ai: String| CompressionError::UnknownAi { ai };
            let len = ai_length(first_two).ok_or_else(|| unknown(format!("{first_two:02}")))?;
            let mut ai = format!("{first_two:02}");
            for _ in 2..len {
                let d = r.read(4, &what)?;
                let digit = char::from_digit(u32::try_from(d).unwrap_or(u32::MAX), 16)
                    .map(|c| c.to_ascii_uppercase())
                    .unwrap_or('?');
                ai.push(digit);
                if d > 9 {
                    return Err(unknown(ai));
                }
            }
            let value = r.read_value(&ai)?;
            out.push(Element::Ai { ai, value });
        } else if let Some((_, seq)) = OPTIMISATIONS
            .iter()
            .find(|(code, _)| u64::from(*code) == (h1 << 4 | h2))
        {
            for ai in *seq {
                let value = r.read_value(ai)?;
                out.push(Element::Ai {
                    ai: (*ai).to_owned(),
                    value,
                });
            }
        } else if h1 == 0xF {
            let what = || "a key=value pair".to_owned();
            let key_len = usize::try_from(h2 << 3 | r.read(3, &what)?).unwrap_or(usize::MAX);
            if key_len == 0 {
                return Err(CompressionError::EmptyKey);
            }
            let key = r.read_text(3, key_len, "key")?;
            let indicator = u8::try_from(r.read(3, &what)?).unwrap_or(u8::MAX);
            let value_len = r.read_usize(7, &what)?;
            let value = r.read_text(indicator, value_len, &key)?;
            out.push(Element::Other { key, value });
        } else {
            return Err(CompressionError::UnknownCode {
                code: format!("{:02X}", h1 << 4 | h2),
            });
        }
    }
    if r.bits[r.cursor..].iter().any(|&b| b) {
        return Err(CompressionError::Trailing {
            bits: r.remaining(),
        });
    }
    Ok(out)
}

/// The encoding indicator the toolkit picks for a string: the first of digits, lower-case
/// hexadecimal, upper-case hexadecimal, URI-safe base64 that holds all of it, else ASCII.
fn encoding_of(s: &str) -> u8 {
    let all = |f: fn(u8) -> bool| !s.is_empty() && s.bytes().all(f);
    if all(|b| b.is_ascii_digit()) {
        0
    } else if all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        1
    } else if all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
        2
    } else if all(|b| ALPHABET.contains(&b)) {
        3
    } else {
        4
    }
}

fn write_text(w: &mut BitWriter, ai: &str, s: &str, max: usize) -> Result<(), CompressionError> {
    let chars = s.chars().count();
    if chars > max {
        return Err(CompressionError::NotCompressible {
            ai: ai.to_owned(),
            why: "it is longer than the AI allows",
        });
    }
    if !s.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err(CompressionError::NotCompressible {
            ai: ai.to_owned(),
            why: "it has a character outside printable 7-bit ASCII",
        });
    }
    let indicator = encoding_of(s);
    w.push(u64::from(indicator), 3);
    w.push(chars as u64, length_bits(max));
    match indicator {
        0 => w.push_decimal(s, value_bits(chars)),
        1 | 2 => {
            for b in s.bytes() {
                let i = HEX
                    .iter()
                    .position(|&h| h == b.to_ascii_uppercase())
                    .unwrap_or(0);
                w.push(i as u64, 4);
            }
        }
        3 => {
            for b in s.bytes() {
                let i = ALPHABET.iter().position(|&a| a == b).unwrap_or(0);
                w.push(i as u64, 6);
            }
        }
        _ => {
            for b in s.bytes() {
                w.push(u64::from(b), 7);
            }
        }
    }
    Ok(())
}

fn write_value(w: &mut BitWriter, ai: &str, value: &str) -> Result<(), CompressionError> {
    let parts = format(ai).ok_or_else(|| CompressionError::UnknownAi { ai: ai.to_owned() })?;
    let not = |why| CompressionError::NotCompressible {
        ai: ai.to_owned(),
        why,
    };
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *part {
            N(n) => {
                let digits = rest
                    .get(..n)
                    .ok_or_else(|| not("it is shorter than the AI's format"))?;
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(not("the AI's format wants digits"));
                }
                w.push_decimal(digits, value_bits(n));
                rest = &rest[n..];
            }
            Nv(max) => {
                if rest.len() > max || !rest.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(not("the AI's format wants at most that many digits"));
                }
                w.push(rest.len() as u64, length_bits(max));
                w.push_decimal(rest, value_bits(rest.len()));
                rest = "";
            }
            X(max) => {
                write_text(w, ai, rest, max)?;
                rest = "";
            }
        }
        if last && !rest.is_empty() {
            return Err(not("it is longer than the AI's format"));
        }
    }
    Ok(())
}

/// Compresses `(AI, value)` pairs into a path element (without the `/`).
pub fn compress(
    elements: &[(&str, &str)],
    sequences: Sequences,
) -> Result<String, CompressionError> {
    let mut remaining: Vec<(&str, &str)> = elements.to_vec();
    remaining.sort_by(|a, b| a.0.cmp(b.0));
    let mut w = BitWriter::default();
    if sequences == Sequences::Optimised {
        loop {
            // The applicable code whose AIs are longest written out; the first in table order
            // on a tie.
            let best = OPTIMISATIONS
                .iter()
                .filter(|(_, seq)| seq.iter().all(|ai| remaining.iter().any(|(a, _)| a == ai)))
                .fold(None::<(u8, &[&str])>, |best, &(code, seq)| {
                    let len = |s: &[&str]| s.iter().map(|a| a.len()).sum::<usize>();
                    match best {
                        Some((_, b)) if len(b) >= len(seq) => best,
                        _ => Some((code, seq)),
                    }
                });
            let Some((code, seq)) = best else { break };
            w.push(u64::from(code), 8);
            for ai in seq {
                if let Some(pos) = remaining.iter().position(|(a, _)| a == ai) {
                    let (a, v) = remaining.remove(pos);
                    write_value(&mut w, a, v)?;
                }
            }
        }
    }
    for (ai, value) in remaining {
        for c in ai.bytes() {
            w.push(u64::from(c - b'0'), 4);
        }
        write_value(&mut w, ai, value)?;
    }
    Ok(w.to_base64url())
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ai { ai, value } => write!(f, "({ai}){value}"),
            Self::Other { key, value } => write!(f, "{key}={value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests of the bit-level pieces; the published examples are in
    //! `tests/digital_link_compression.rs`.

    use super::*;

    #[test]
    fn bit_counts_follow_the_toolkit_formulas() {
        // ceil(n·log2(10) + 0.01): 14 digits → 47 bits, 18 → 60, 6 → 20, and 59 digits is
        // the one length up to 127 where the 0.01 adds a bit (195.99... → 197).
        for (digits, bits) in [
            (0, 0),
            (1, 4),
            (2, 7),
            (3, 10),
            (6, 20),
            (13, 44),
            (14, 47),
            (18, 60),
            (59, 197),
        ] {
            assert_eq!(value_bits(digits), bits, "{digits} digits");
        }
        for (max, bits) in [
            (2, 2),
            (3, 2),
            (4, 3),
            (8, 4),
            (12, 4),
            (15, 4),
            (16, 5),
            (20, 5),
            (30, 5),
            (90, 7),
        ] {
            assert_eq!(length_bits(max), bits, "max {max}");
        }
    }

    #[test]
    fn numbers_keep_their_leading_zeros() {
        let mut w = BitWriter::default();
        w.push_decimal("000123", value_bits(6));
        let mut r = BitReader {
            bits: w.bits,
            cursor: 0,
        };
        assert_eq!(r.read_decimal(6, "t"), Ok("000123".to_owned()));
    }

    #[test]
    fn a_number_too_large_for_its_digits_is_refused() {
        // 4 bits hold 0-15; one digit holds 0-9.
        let mut r = BitReader {
            bits: vec![true, true, true, true],
            cursor: 0,
        };
        assert_eq!(
            r.read_decimal(1, "t"),
            Err(CompressionError::NumberTooLarge {
                ai: "t".to_owned(),
                digits: 1
            })
        );
    }

    #[test]
    fn encodings_are_chosen_like_the_toolkit() {
        for (s, e) in [
            ("0123", 0),
            ("ab12", 1),
            ("AB12", 2),
            ("ABC123", 2),
            ("ABCXYZ", 3),
            ("a-b_C", 3),
            ("A&B", 4),
            ("", 4),
        ] {
            assert_eq!(encoding_of(s), e, "{s:?}");
        }
    }

    #[test]
    fn measure_families_match_the_toolkit_table() {
        assert!(format("3103").is_some());
        assert!(format("3165").is_some());
        assert!(format("3170").is_none());
        assert!(format("3106").is_none());
        assert!(format("3375").is_some());
        assert!(format("3380").is_none());
        assert!(format("3695").is_some());
        assert_eq!(format("3923"), Some(&[Nv(15)][..]));
        assert_eq!(format("3913"), Some(&[N(3), Nv(15)][..]));
        assert_eq!(format("3943"), Some(&[N(4)][..]));
        assert!(format("3944").is_none());
    }
}
