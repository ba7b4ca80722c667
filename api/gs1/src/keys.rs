//! GS1 identification keys with a mod-10 check digit: GTIN, GLN, SSCC, GSRN and GRAI
//! (GS1 General Specifications §3.2 and §7.9, "Check digit calculation").
//!
//! Every key is a `Copy` newtype over its digits (a GTIN-14 fits in a `u64`, and so does an
//! 18-digit SSCC), parsed with `FromStr`, written with `Display`, and serialised as the same
//! string. The check digit is always verified; a wrong one is reported with the digit found and
//! the digit expected, so a person can see which one they mistyped.

use std::fmt;
use std::str::FromStr;

/// Which GS1 key a [`KeyError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Global Trade Item Number, AI (01).
    Gtin,
    /// Global Location Number, AI (414) and the GLN-valued attributes.
    Gln,
    /// Serial Shipping Container Code, AI (00).
    Sscc,
    /// Global Service Relation Number (recipient), AI (8018).
    Gsrn,
    /// Global Returnable Asset Identifier, AI (8003).
    Grai,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gtin => "GTIN",
            Self::Gln => "GLN",
            Self::Sscc => "SSCC",
            Self::Gsrn => "GSRN",
            Self::Grai => "GRAI",
        })
    }
}

/// Why a string is not a valid GS1 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key has the wrong number of digits.
    #[error("{key} must be {expected} digits long, got {got}")]
    Length {
        /// The key.
        key: KeyKind,
        /// The accepted lengths, in words ("13", "8, 12, 13 or 14").
        expected: &'static str,
        /// The length given (in characters).
        got: usize,
    },
    /// A character that is not a digit where a digit is required.
    #[error("{key} has {found:?} at position {position}; only the digits 0-9 are allowed")]
    NotDigit {
        /// The key.
        key: KeyKind,
        /// The character found.
        found: char,
        /// Its position, counted from 1.
        position: usize,
    },
    /// The last digit is not the mod-10 check digit of the others.
    #[error("{key} check digit is {found}, expected {expected}")]
    CheckDigit {
        /// The key.
        key: KeyKind,
        /// The check digit given.
        found: u8,
        /// The check digit the other digits call for.
        expected: u8,
    },
    /// A GRAI's first digit is the filler digit 0 (GS1 General Specifications, AI 8003).
    #[error("GRAI must start with the filler digit 0, got {found:?}")]
    GraiFiller {
        /// The first character found.
        found: char,
    },
    /// The serial component of a GRAI is not valid.
    #[error("GRAI serial component: {0}")]
    GraiSerial(Box<super::ai::AiValueError>),
}

/// The GS1 mod-10 check digit of `digits` (the key without its check digit), as specified in
/// GS1 General Specifications §7.9.1: from the right, weights 3, 1, 3, 1, ...; the check digit
/// brings the weighted sum up to a multiple of ten. `None` if `digits` holds a non-digit.
pub fn check_digit(digits: &str) -> Option<u8> {
    let mut sum: u8 = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let weight = if i.is_multiple_of(2) { 3 } else { 1 };
        // `sum` stays below 10 and `(b - b'0') * weight` below 28, so this never overflows.
        sum = (sum + (b - b'0') * weight) % 10;
    }
    Some((10 - sum) % 10)
}

/// Checks that `s` is all digits, one of `lengths` long, with a correct check digit; returns
/// its numeric value.
fn parse_checked(
    key: KeyKind,
    s: &str,
    lengths: &[usize],
    expected: &'static str,
) -> Result<u64, KeyError> {
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(KeyError::NotDigit {
            key,
            found: c,
            position: i + 1,
        });
    }
    if !lengths.contains(&s.len()) {
        return Err(KeyError::Length {
            key,
            expected,
            got: s.len(),
        });
    }
    let (body, last) = s.split_at(s.len() - 1);
    let found = last.bytes().next().map_or(0, |b| b - b'0');
    let expected_digit = check_digit(body).unwrap_or(0);
    if found != expected_digit {
        return Err(KeyError::CheckDigit {
            key,
            found,
            expected: expected_digit,
        });
    }
    Ok(digits_value(s))
}

/// Appends the check digit to `body` (which must be `len - 1` digits) and returns the value.
fn from_body(
    key: KeyKind,
    body: &str,
    len: usize,
    expected: &'static str,
) -> Result<u64, KeyError> {
    if let Some((i, c)) = body.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(KeyError::NotDigit {
            key,
            found: c,
            position: i + 1,
        });
    }
    if body.len() + 1 != len {
        return Err(KeyError::Length {
            key,
            expected,
            got: body.len() + 1,
        });
    }
    let cd = check_digit(body).unwrap_or(0);
    Ok(digits_value(body) * 10 + u64::from(cd))
}

/// The value of an all-digit string of at most 19 digits (callers check both).
fn digits_value(s: &str) -> u64 {
    s.bytes()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b.wrapping_sub(b'0')))
}

macro_rules! numeric_key {
    (
        $(#[$doc:meta])*
        $name:ident, $kind:expr, $digits:literal, $lengths:expr, $expected:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// Number of digits in the canonical form.
            pub const DIGITS: usize = $digits;

            /// Builds the key from its digits without the check digit, computing the check
            /// digit (GS1 General Specifications §7.9.1).
            pub fn from_body(body: &str) -> Result<Self, KeyError> {
                from_body($kind, body, $digits, $expected).map(Self)
            }

            /// The canonical digits, zero-padded to full length.
            pub fn digits(&self) -> String {
                format!("{:0width$}", self.0, width = $digits)
            }

            /// The check digit (last digit).
            pub fn check_digit(&self) -> u8 {
                // The remainder is below 10; the conversion cannot fail.
                u8::try_from(self.0 % 10).unwrap_or(0)
            }
        }

        impl FromStr for $name {
            type Err = KeyError;

            fn from_str(s: &str) -> Result<Self, KeyError> {
                parse_checked($kind, s, $lengths, $expected).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:0width$}", self.0, width = $digits)
            }
        }

        super::serde_via_str!($name);
    };
}

numeric_key!(
    /// A Global Trade Item Number, always held as a GTIN-14: GTIN-8, GTIN-12 and GTIN-13
    /// inputs are left-padded with zeros (GS1 General Specifications, AI 01; GS1 Digital Link
    /// URI syntax: "GTIN-8, GTIN-12 and GTIN-13 SHALL be expressed as 14 digits").
    Gtin, KeyKind::Gtin, 14, &[8, 12, 13, 14], "8, 12, 13 or 14"
);

numeric_key!(
    /// A Global Location Number (13 digits), AI (414) and the GLN-valued attributes.
    Gln, KeyKind::Gln, 13, &[13], "13"
);

numeric_key!(
    /// A Serial Shipping Container Code (18 digits: extension digit, GS1 Company Prefix,
    /// serial reference, check digit), AI (00).
    Sscc, KeyKind::Sscc, 18, &[18], "18"
);

numeric_key!(
    /// A Global Service Relation Number (18 digits), AI (8018).
    Gsrn, KeyKind::Gsrn, 18, &[18], "18"
);

impl Gtin {
    /// The indicator digit (first digit of the GTIN-14): 0 for trade items whose GTIN-8/12/13
    /// was padded, 1-8 for packaging levels, 9 for variable-measure items.
    pub fn indicator(&self) -> u8 {
        // The value is below 10^14, so the quotient is one digit.
        u8::try_from(self.0 / 10_000_000_000_000).unwrap_or(0)
    }
}

/// A Global Returnable Asset Identifier, AI (8003): the filler digit 0, the 13-digit asset
/// type (GS1 Company Prefix, asset type, check digit) and an optional serial component of up
/// to 16 characters of the GS1 AI encodable character set 82 (GS1 General
/// Specifications, AI (8003)).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grai {
    asset_type: u64,
    serial: Option<String>,
}

/// Longest GRAI serial component, in characters.
pub const GRAI_SERIAL_CHARS_MAX: usize = 16;

impl Grai {
    /// The 14-digit asset part (filler 0, company prefix, asset type, check digit).
    pub fn asset_digits(&self) -> String {
        format!("{:014}", self.asset_type)
    }

    /// The serial component, if any.
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_deref()
    }

    /// Builds a GRAI from the 12 digits of GS1 Company Prefix and asset type (without the
    /// filler and the check digit) and an optional serial.
    pub fn from_parts(body12: &str, serial: Option<&str>) -> Result<Self, KeyError> {
        let with_filler = format!("0{body12}");
        let asset_type = from_body(KeyKind::Grai, &with_filler, 14, "14")?;
        let serial = match serial {
            Some(s) => Some(validate_grai_serial(s)?),
            None => None,
        };
        Ok(Self { asset_type, serial })
    }
}

fn validate_grai_serial(s: &str) -> Result<String, KeyError> {
    super::ai::check_cset82("8003", "GRAI serial component", s, GRAI_SERIAL_CHARS_MAX)
        .map_err(|e| KeyError::GraiSerial(Box::new(e)))?;
    Ok(s.to_owned())
}

impl FromStr for Grai {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let split = s.char_indices().nth(14).map_or(s.len(), |(i, _)| i);
        let (digits, serial) = s.split_at(split);
        if let Some(first) = digits.chars().next()
            && first != '0'
        {
            return Err(KeyError::GraiFiller { found: first });
        }
        let asset_type =
            parse_checked(KeyKind::Grai, digits, &[14], "14 (plus an optional serial)")?;
        let serial = if serial.is_empty() {
            None
        } else {
            Some(validate_grai_serial(serial)?)
        };
        Ok(Self { asset_type, serial })
    }
}

impl fmt::Display for Grai {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:014}{}",
            self.asset_type,
            self.serial.as_deref().unwrap_or("")
        )
    }
}

super::serde_via_str!(Grai);

#[cfg(test)]
mod tests {
    //! Known answers: GS1 check digit calculator examples and the keys used as examples in the
    //! GS1 Digital Link standard 1.2, the EPC Tag Data Standard and GS1 General Specifications
    //! (09520123456788, 09521234543213, 106141411234567897, 80614141123458, 6291041500213,
    //! 376104250021234569, 036000291452 ...). Every expected check digit below was also
    //! computed by hand with the §7.9.1 weights.

    use super::*;

    fn check(body: &str, expected: u8) {
        assert_eq!(check_digit(body), Some(expected), "check digit of {body}");
    }

    #[test]
    fn check_digit_matches_the_standard_examples() {
        check("0952012345678", 8);
        check("0952123454321", 3);
        check("10614141123456789", 7);
        check("8061414112345", 8);
        check("629104150021", 3);
        check("37610425002123456", 9);
        check("03600029145", 2);
        check("7351353", 7);
        check("952012345678", 8);
        check("", 0);
        assert_eq!(check_digit("12a4"), None);
    }

    #[test]
    fn gtin_pads_short_forms_to_fourteen_digits() {
        let cases = [
            ("73513537", "00000073513537"),
            ("036000291452", "00036000291452"),
            ("6291041500213", "06291041500213"),
            ("09520123456788", "09520123456788"),
        ];
        for (input, canonical) in cases {
            let gtin: Gtin = input.parse().expect(input);
            assert_eq!(gtin.to_string(), canonical);
            assert_eq!(gtin.digits(), canonical);
        }
        let g: Gtin = "80614141123458".parse().expect("valid");
        assert_eq!(g.indicator(), 8);
        assert_eq!(g.check_digit(), 8);
    }

    #[test]
    fn gtin_errors_say_what_is_wrong() {
        assert_eq!(
            "09520123456787".parse::<Gtin>(),
            Err(KeyError::CheckDigit {
                key: KeyKind::Gtin,
                found: 7,
                expected: 8
            })
        );
        assert_eq!(
            "09520123456787".parse::<Gtin>().map_err(|e| e.to_string()),
            Err("GTIN check digit is 7, expected 8".to_owned())
        );
        assert_eq!(
            "0952012345678".parse::<Gtin>().map_err(|e| e.to_string()),
            Err("GTIN check digit is 8, expected 2".to_owned())
        );
        assert_eq!(
            "12345678901".parse::<Gtin>().map_err(|e| e.to_string()),
            Err("GTIN must be 8, 12, 13 or 14 digits long, got 11".to_owned())
        );
        assert_eq!(
            "0952O123456788".parse::<Gtin>().map_err(|e| e.to_string()),
            Err("GTIN has 'O' at position 5; only the digits 0-9 are allowed".to_owned())
        );
        assert!("".parse::<Gtin>().is_err());
        assert!("+9520123456788".parse::<Gtin>().is_err());
    }

    #[test]
    fn other_keys_parse_and_check() {
        let sscc: Sscc = "106141411234567897".parse().expect("sscc");
        assert_eq!(sscc.to_string(), "106141411234567897");
        assert_eq!(
            "106141411234567898"
                .parse::<Sscc>()
                .map_err(|e| e.to_string()),
            Err("SSCC check digit is 8, expected 7".to_owned())
        );
        let gln: Gln = "9520123456788".parse().expect("gln");
        assert_eq!(gln.to_string(), "9520123456788");
        assert_eq!(Gln::from_body("061414112345"), "0614141123452".parse());
        assert!("09520123456788".parse::<Gln>().is_err());
        let gsrn: Gsrn = "376104250021234569".parse().expect("gsrn");
        assert_eq!(gsrn.to_string(), "376104250021234569");
        assert_eq!(
            Sscc::from_body("10614141234567890"),
            "106141412345678908".parse()
        );
    }

    #[test]
    fn grai_has_filler_check_digit_and_optional_serial() {
        let grai: Grai = "09520123456788ABC-1".parse().expect("grai");
        assert_eq!(grai.asset_digits(), "09520123456788");
        assert_eq!(grai.serial(), Some("ABC-1"));
        assert_eq!(grai.to_string(), "09520123456788ABC-1");
        let bare: Grai = "09520123456788".parse().expect("grai");
        assert_eq!(bare.serial(), None);
        assert_eq!(
            "19520123456788".parse::<Grai>(),
            Err(KeyError::GraiFiller { found: '1' })
        );
        assert!("09520123456787".parse::<Grai>().is_err());
        assert!("09520123456788 x".parse::<Grai>().is_err());
        assert!("09520123456788ABCDEFGHIJKLMNOPQ".parse::<Grai>().is_err());
        assert_eq!(
            Grai::from_parts("952012345678", Some("7")).map(|g| g.to_string()),
            Ok("095201234567887".to_owned())
        );
    }

    #[test]
    fn keys_serialise_as_strings() {
        let gtin: Gtin = "9520123456788".parse().expect("gtin");
        let json = serde_json::to_string(&gtin).expect("serialise");
        assert_eq!(json, "\"09520123456788\"");
        let back: Gtin = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, gtin);
        let err = serde_json::from_str::<Gtin>("\"09520123456789\"").expect_err("bad check digit");
        assert!(
            err.to_string()
                .contains("GTIN check digit is 9, expected 8"),
            "{err}"
        );
    }
}
