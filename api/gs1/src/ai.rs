//! GS1 Application Identifier (AI) values: the character set, the key qualifiers that travel
//! in a GS1 Digital Link path (batch/lot, serial, consumer product variant, GLN extension),
//! YYMMDD dates, and a table of the data-attribute AIs a Digital Link query may carry with
//! their formats (GS1 General Specifications §3.2 and §7.11; GS1 Digital Link URI syntax 1.2,
//! ABNF "Data attributes").
//!
//! Values held here are the decoded element-string values (no percent-encoding); the Digital
//! Link and EPC URI modules encode them for their own syntax.

use std::fmt;
use std::str::FromStr;

/// The 20 symbols of the GS1 AI encodable character set 82 (GS1 General Specifications
/// §7.11, figure 7.11-1); with the 10 digits and the 52 upper- and lower-case letters they make
/// the 82 characters allowed in AIs such as (10) and (21).
pub const CSET82_SYMBOLS: &str = "!\"%&'()*+,-./:;<=>?_";

/// Is `c` in the GS1 AI encodable character set 82?
pub fn is_cset82(c: char) -> bool {
    c.is_ascii_alphanumeric() || CSET82_SYMBOLS.contains(c)
}

/// Why an AI value is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AiValueError {
    /// The value is empty.
    #[error("AI ({ai}) {name} is empty")]
    Empty {
        /// The AI.
        ai: String,
        /// What it is, in words.
        name: &'static str,
    },
    /// The value is longer than the AI allows.
    #[error("AI ({ai}) {name} is {got} characters long; at most {max} are allowed")]
    TooLong {
        /// The AI.
        ai: String,
        /// What it is, in words.
        name: &'static str,
        /// Its length in characters.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The value is shorter than the AI requires.
    #[error("AI ({ai}) {name} is {got} characters long; at least {min} are required")]
    TooShort {
        /// The AI.
        ai: String,
        /// What it is, in words.
        name: &'static str,
        /// Its length in characters.
        got: usize,
        /// The minimum.
        min: usize,
    },
    /// A character outside the GS1 AI encodable character set 82.
    #[error(
        "AI ({ai}) {name} has {found:?} at position {position}, which is not in the GS1 AI encodable character set 82"
    )]
    NotCset82 {
        /// The AI.
        ai: String,
        /// What it is, in words.
        name: &'static str,
        /// The character.
        found: char,
        /// Its position, counted from 1.
        position: usize,
    },
    /// A non-digit in a numeric AI.
    #[error(
        "AI ({ai}) {name} has {found:?} at position {position}; only the digits 0-9 are allowed"
    )]
    NotDigit {
        /// The AI.
        ai: String,
        /// What it is, in words.
        name: &'static str,
        /// The character.
        found: char,
        /// Its position, counted from 1.
        position: usize,
    },
    /// A YYMMDD date that does not exist.
    #[error("AI ({ai}) {name} {value:?} is not a date: {reason}")]
    Date {
        /// The AI.
        ai: String,
        /// What it is, in words.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A GS1 key inside an AI value (GLN of AI 410-416, GTIN of AI 02) is wrong.
    #[error("AI ({ai}) {name}: {source}")]
    Key {
        /// The AI.
        ai: String,
        /// What it is, in words.
        name: &'static str,
        /// The key error.
        #[source]
        source: super::keys::KeyError,
    },
    /// An AI this library does not know.
    #[error("({ai}) is not a GS1 Application Identifier this resolver knows")]
    UnknownAi {
        /// The AI.
        ai: String,
    },
}

/// Checks that `value` is 1..=`max` characters of the GS1 AI encodable character set 82.
pub(crate) fn check_cset82(
    ai: &str,
    name: &'static str,
    value: &str,
    max: usize,
) -> Result<(), AiValueError> {
    if value.is_empty() {
        return Err(AiValueError::Empty {
            ai: ai.to_owned(),
            name,
        });
    }
    if let Some((i, c)) = value.chars().enumerate().find(|(_, c)| !is_cset82(*c)) {
        return Err(AiValueError::NotCset82 {
            ai: ai.to_owned(),
            name,
            found: c,
            position: i + 1,
        });
    }
    let got = value.chars().count();
    if got > max {
        return Err(AiValueError::TooLong {
            ai: ai.to_owned(),
            name,
            got,
            max,
        });
    }
    Ok(())
}

/// Checks that `value` is `min..=max` digits.
fn check_digits(
    ai: &str,
    name: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), AiValueError> {
    if value.is_empty() {
        return Err(AiValueError::Empty {
            ai: ai.to_owned(),
            name,
        });
    }
    if let Some((i, c)) = value.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(AiValueError::NotDigit {
            ai: ai.to_owned(),
            name,
            found: c,
            position: i + 1,
        });
    }
    if value.len() > max {
        return Err(AiValueError::TooLong {
            ai: ai.to_owned(),
            name,
            got: value.len(),
            max,
        });
    }
    if value.len() < min {
        return Err(AiValueError::TooShort {
            ai: ai.to_owned(),
            name,
            got: value.len(),
            min,
        });
    }
    Ok(())
}

macro_rules! cset82_value {
    ($(#[$doc:meta])* $name:ident, $ai:literal, $words:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The AI this value belongs to.
            pub const AI: &'static str = $ai;
            /// Longest value, in characters.
            pub const CHARS_MAX: usize = $max;

            /// Validates a decoded value.
            pub fn new(value: &str) -> Result<Self, AiValueError> {
                check_cset82($ai, $words, value, $max)?;
                Ok(Self(value.to_owned()))
            }

            /// The value (decoded, no percent-encoding).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = AiValueError;

            fn from_str(s: &str) -> Result<Self, AiValueError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        super::serde_via_str!($name);
    };
}

cset82_value!(
    /// Batch or lot number, AI (10): 1-20 characters of the GS1 AI encodable character set 82.
    Lot, "10", "batch/lot number", 20
);
cset82_value!(
    /// Serial number, AI (21): 1-20 characters of the GS1 AI encodable character set 82.
    Serial, "21", "serial number", 20
);
cset82_value!(
    /// Consumer product variant, AI (22): 1-20 characters of character set 82.
    ConsumerProductVariant, "22", "consumer product variant", 20
);
cset82_value!(
    /// GLN extension component, AI (254): 1-20 characters of character set 82.
    GlnExtension, "254", "GLN extension component", 20
);

/// A GS1 date, YYMMDD (GS1 General Specifications §7.12). The century is not part of the
/// value: [`Gs1Date::year`] resolves it against a reference year the caller passes in (the core
/// never reads the clock). A day of `00` means "the last day of that month".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gs1Date {
    yy: u8,
    mm: u8,
    dd: u8,
}

/// Why six characters are not a YYMMDD date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not six digits.
    #[error("a GS1 date is six digits YYMMDD")]
    Format,
    /// The month is not 01-12.
    #[error("month {0:02} is not 01-12")]
    Month(u8),
    /// The day does not exist in that month.
    #[error("day {day:02} does not exist in month {month:02}")]
    Day {
        /// The day.
        day: u8,
        /// The month.
        month: u8,
    },
}

fn two_digits(b: &[u8]) -> u8 {
    (b[0] - b'0') * 10 + (b[1] - b'0')
}

impl Gs1Date {
    /// Parses YYMMDD.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        let b = s.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
            return Err(DateError::Format);
        }
        let (yy, mm, dd) = (
            two_digits(&b[0..2]),
            two_digits(&b[2..4]),
            two_digits(&b[4..6]),
        );
        if !(1..=12).contains(&mm) {
            return Err(DateError::Month(mm));
        }
        // The century is unknown; within the window GS1 dates live in (1950-2149), a year whose
        // last two digits are a multiple of four is a leap year except 2100. Accept 29
        // February for such years: rejecting a real date is worse than accepting 2100-02-29.
        let leap = yy.is_multiple_of(4);
        if dd > days_in_month(mm, leap) {
            return Err(DateError::Day { day: dd, month: mm });
        }
        Ok(Self { yy, mm, dd })
    }

    /// Two-digit year.
    pub fn yy(&self) -> u8 {
        self.yy
    }

    /// Month, 1-12.
    pub fn month(&self) -> u8 {
        self.mm
    }

    /// Day, 1-31, or 0 for "last day of the month".
    pub fn day(&self) -> u8 {
        self.dd
    }

    /// The full year, resolved with the GS1 sliding window (General Specifications §7.12)
    /// against `reference_year` (normally the current year): a YY more than 50 years ahead is
    /// in the previous century, one 50 or more years behind is in the next century.
    pub fn year(&self, reference_year: u16) -> u16 {
        let century = reference_year / 100 * 100;
        let current = i32::from(reference_year % 100);
        let diff = i32::from(self.yy) - current;
        let base = if (51..=99).contains(&diff) {
            century.saturating_sub(100)
        } else if (-99..=-50).contains(&diff) {
            century.saturating_add(100)
        } else {
            century
        };
        base + u16::from(self.yy)
    }

    /// The calendar date `(year, month, day)` with the century resolved against
    /// `reference_year` and a day of `00` replaced by the last day of the month.
    pub fn calendar(&self, reference_year: u16) -> (u16, u8, u8) {
        let year = self.year(reference_year);
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let day = if self.dd == 0 {
            days_in_month(self.mm, leap)
        } else {
            self.dd
        };
        (year, self.mm, day)
    }
}

fn days_in_month(mm: u8, leap: bool) -> u8 {
    match mm {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl FromStr for Gs1Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Self, DateError> {
        Self::parse(s)
    }
}

impl fmt::Display for Gs1Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:02}{:02}", self.yy, self.mm, self.dd)
    }
}

super::serde_via_str!(Gs1Date);

/// Where an AI may appear in a GS1 Digital Link URI (GS1 Digital Link URI syntax 1.2, ABNF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiRole {
    /// A primary identification key: the first AI of the path.
    PrimaryKey,
    /// A key qualifier: further path elements, in the order the key defines.
    Qualifier,
    /// A data attribute: the query string.
    Attribute,
}

/// The value format of an AI (GS1 General Specifications §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiFormat {
    /// `min..=max` digits.
    Digits {
        /// Fewest digits.
        min: u8,
        /// Most digits.
        max: u8,
    },
    /// 1..=`max` characters of character set 82.
    Cset82 {
        /// Most characters.
        max: u8,
    },
    /// YYMMDD.
    Date,
    /// YYMMDD, optionally followed by a second YYMMDD (a range, e.g. AI 7007 harvest date).
    DateRange,
    /// A 13-digit GLN with its check digit.
    Gln,
    /// A 14-digit GTIN with its check digit.
    Gtin,
    /// Validated by its own key type (primary keys and the path qualifiers).
    Key,
}

/// What this library knows about one AI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiSpec {
    /// The AI digits.
    pub code: &'static str,
    /// What it is, in words.
    pub name: &'static str,
    /// Where it may appear in a Digital Link.
    pub role: AiRole,
    /// Its value format.
    pub format: AiFormat,
}

const fn spec(code: &'static str, name: &'static str, role: AiRole, format: AiFormat) -> AiSpec {
    AiSpec {
        code,
        name,
        role,
        format,
    }
}

const fn attr(code: &'static str, name: &'static str, format: AiFormat) -> AiSpec {
    spec(code, name, AiRole::Attribute, format)
}

const fn digits(min: u8, max: u8) -> AiFormat {
    AiFormat::Digits { min, max }
}

const fn x(max: u8) -> AiFormat {
    AiFormat::Cset82 { max }
}

use AiFormat::{Date, DateRange, Gln as GlnF, Gtin as GtinF, Key};
use AiRole::{PrimaryKey, Qualifier};

/// The AIs known by name. Primary keys and qualifiers are all those of the GS1 Digital Link
/// URI syntax 1.2 ABNF (so that a known-but-unsupported key gets a precise error); attributes
/// are the ones a food traceability link is expected to carry. The measure families
/// 31nn-36nn and 39nn are recognised by [`lookup`] without being listed.
pub const AI_TABLE: &[AiSpec] = &[
    // Primary keys (GS1 Digital Link URI syntax 1.2, "Primary identification keys").
    spec("00", "SSCC", PrimaryKey, Key),
    spec("01", "GTIN", PrimaryKey, Key),
    spec("253", "GDTI", PrimaryKey, Key),
    spec("255", "GCN", PrimaryKey, Key),
    spec("401", "GINC", PrimaryKey, Key),
    spec("402", "GSIN", PrimaryKey, Key),
    spec("414", "GLN of a physical location", PrimaryKey, Key),
    spec("415", "GLN of the invoicing party", PrimaryKey, Key),
    spec("417", "party GLN", PrimaryKey, Key),
    spec("8003", "GRAI", PrimaryKey, Key),
    spec("8004", "GIAI", PrimaryKey, Key),
    spec("8006", "ITIP", PrimaryKey, Key),
    spec("8010", "CPID", PrimaryKey, Key),
    spec("8013", "global model number", PrimaryKey, Key),
    spec("8017", "GSRN of the provider", PrimaryKey, Key),
    spec("8018", "GSRN of the recipient", PrimaryKey, Key),
    // Key qualifiers.
    spec("10", "batch/lot number", Qualifier, Key),
    spec("21", "serial number", Qualifier, Key),
    spec("22", "consumer product variant", Qualifier, Key),
    spec(
        "235",
        "third-party controlled serial extension",
        Qualifier,
        Key,
    ),
    spec("254", "GLN extension component", Qualifier, Key),
    spec("7040", "UIC with extension", Qualifier, Key),
    spec("8011", "CPID serial number", Qualifier, Key),
    spec("8019", "service relation instance number", Qualifier, Key),
    spec("8020", "payment slip reference number", Qualifier, Key),
    // Data attributes.
    attr("02", "GTIN of contained trade items", GtinF),
    attr("11", "production date", Date),
    attr("12", "due date", Date),
    attr("13", "packaging date", Date),
    attr("15", "best before date", Date),
    attr("16", "sell by date", Date),
    attr("17", "expiration date", Date),
    attr("20", "internal product variant", digits(2, 2)),
    attr("30", "variable count", digits(1, 8)),
    attr("37", "count of trade items", digits(1, 8)),
    attr("90", "mutually agreed information", x(30)),
    attr("240", "additional product identification", x(30)),
    attr("241", "customer part number", x(30)),
    attr("242", "made-to-order variation number", digits(1, 6)),
    attr("243", "packaging component number", x(20)),
    attr("250", "secondary serial number", x(30)),
    attr("251", "reference to source entity", x(30)),
    attr("400", "customer's purchase order number", x(30)),
    attr("403", "routing code", x(30)),
    attr("410", "ship to GLN", GlnF),
    attr("411", "bill to GLN", GlnF),
    attr("412", "purchased from GLN", GlnF),
    attr("413", "ship for GLN", GlnF),
    attr("416", "GLN of the production or service location", GlnF),
    attr("420", "ship to postal code", x(20)),
    attr("422", "country of origin", digits(3, 3)),
    attr("423", "country of initial processing", digits(4, 15)),
    attr("424", "country of processing", digits(3, 3)),
    attr("425", "country of disassembly", digits(4, 15)),
    attr("426", "country covering full process chain", digits(3, 3)),
    attr("427", "country subdivision of origin", x(3)),
    attr("7001", "NATO stock number", digits(13, 13)),
    attr(
        "7002",
        "UN/ECE meat carcasses and cuts classification",
        x(30),
    ),
    attr("7003", "expiration date and time", digits(10, 10)),
    attr("7004", "active potency", digits(1, 4)),
    attr("7005", "catch area", x(12)),
    attr("7006", "first freeze date", Date),
    attr("7007", "harvest date", DateRange),
    attr("7008", "species for fishery purposes", x(3)),
    attr("7009", "fishing gear type", x(10)),
    attr("7010", "production method", x(2)),
    attr("7020", "refurbishment lot ID", x(20)),
    attr("7021", "functional status", x(20)),
    attr("7022", "revision status", x(20)),
    attr("7023", "GIAI of an assembly", x(30)),
    attr("8001", "roll products dimensions", digits(14, 14)),
    attr("8002", "cellular mobile telephone identifier", x(20)),
    attr("8005", "price per unit of measure", digits(6, 6)),
    attr("8008", "date and time of production", digits(8, 12)),
    attr("8012", "software version", x(20)),
];

/// Looks up an AI by its digits: the table, then the measure families 31nn-36nn (trade and
/// logistic measures, six digits with the decimal point position in the last AI digit, 0-5)
/// and 390n-394n (amounts and prices).
pub fn lookup(code: &str) -> Option<AiSpec> {
    if let Some(s) = AI_TABLE.iter().find(|s| s.code == code) {
        return Some(*s);
    }
    let b = code.as_bytes();
    if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let family = two_digits(&b[0..2]);
    let third = b[2] - b'0';
    let fourth = b[3] - b'0';
    // The returned spec names the family ("3nnn"); the caller keeps the code it looked up.
    match (family, third) {
        (31..=36, _) if fourth <= 5 => Some(attr("3nnn", "measure", digits(6, 6))),
        (39, 0 | 2) => Some(attr("39nn", "amount or price", digits(1, 15))),
        (39, 1 | 3) => Some(attr(
            "39nn",
            "amount or price with ISO currency",
            digits(4, 18),
        )),
        (39, 4) if fourth <= 3 => Some(attr("394n", "percentage discount", digits(4, 4))),
        _ => None,
    }
}

/// Validates the decoded value of data attribute `code` against its format.
pub fn validate_attribute(code: &str, spec: &AiSpec, value: &str) -> Result<(), AiValueError> {
    let name = spec.name;
    match spec.format {
        AiFormat::Digits { min, max } => {
            check_digits(code, name, value, usize::from(min), usize::from(max))
        }
        AiFormat::Cset82 { max } => check_cset82(code, name, value, usize::from(max)),
        AiFormat::Date => check_date(code, name, value),
        AiFormat::DateRange => {
            if value.len() == 12 && value.is_char_boundary(6) {
                let (a, b) = value.split_at(6);
                check_date(code, name, a)?;
                check_date(code, name, b)
            } else {
                check_date(code, name, value)
            }
        }
        AiFormat::Gln => value
            .parse::<super::keys::Gln>()
            .map(|_| ())
            .map_err(|source| AiValueError::Key {
                ai: code.to_owned(),
                name,
                source,
            }),
        AiFormat::Gtin => value
            .parse::<super::keys::Gtin>()
            .map(|_| ())
            .and_then(|()| gtin_is_fourteen_digits(value))
            .map_err(|source| AiValueError::Key {
                ai: code.to_owned(),
                name,
                source,
            }),
        AiFormat::Key => Ok(()),
    }
}

/// In an element string a GTIN is always 14 digits (padding is for typed input only).
fn gtin_is_fourteen_digits(value: &str) -> Result<(), super::keys::KeyError> {
    if value.len() == super::keys::Gtin::DIGITS {
        Ok(())
    } else {
        Err(super::keys::KeyError::Length {
            key: super::keys::KeyKind::Gtin,
            expected: "14",
            got: value.len(),
        })
    }
}

fn check_date(code: &str, name: &'static str, value: &str) -> Result<(), AiValueError> {
    Gs1Date::parse(value)
        .map(|_| ())
        .map_err(|e| AiValueError::Date {
            ai: code.to_owned(),
            name,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    //! Known answers from GS1 General Specifications §7.11 (character set 82) and §7.12
    //! (dates and the century window).

    use super::*;

    #[test]
    fn character_set_82_has_exactly_82_characters() {
        let count = (0u8..=127).filter(|b| is_cset82(char::from(*b))).count();
        assert_eq!(count, 82);
        for c in [
            '#', ' ', '$', '@', '[', '\\', ']', '^', '`', '{', '|', '}', '~', 'é',
        ] {
            assert!(!is_cset82(c), "{c:?} is not in set 82");
        }
    }

    #[test]
    fn lot_and_serial_enforce_length_and_character_set() {
        assert_eq!(
            Lot::new("ABC&+123").map(|l| l.to_string()),
            Ok("ABC&+123".to_owned())
        );
        assert_eq!(
            Lot::new("ABCDEFGHIJKLMNOPQRSTU").map_err(|e| e.to_string()),
            Err(
                "AI (10) batch/lot number is 21 characters long; at most 20 are allowed".to_owned()
            )
        );
        assert_eq!(
            Serial::new("12 34").map_err(|e| e.to_string()),
            Err("AI (21) serial number has ' ' at position 3, which is not in the GS1 AI encodable character set 82".to_owned())
        );
        assert_eq!(
            Serial::new("").map_err(|e| e.to_string()),
            Err("AI (21) serial number is empty".to_owned())
        );
        assert!(Serial::new("abcdefghijklmnopqrst").is_ok());
        assert!(GlnExtension::new("32a/b").is_ok());
        assert!(ConsumerProductVariant::new("2A").is_ok());
    }

    #[test]
    fn dates_are_validated_and_resolved_with_the_gs1_century_window() {
        let d: Gs1Date = "261231".parse().expect("date");
        assert_eq!((d.yy(), d.month(), d.day()), (26, 12, 31));
        assert_eq!(d.to_string(), "261231");
        assert_eq!(d.calendar(2025), (2026, 12, 31));
        // Day 00 is the last day of the month.
        assert_eq!(
            Gs1Date::parse("240200").map(|d| d.calendar(2025)),
            Ok((2024, 2, 29))
        );
        assert_eq!(
            Gs1Date::parse("230200").map(|d| d.calendar(2025)),
            Ok((2023, 2, 28))
        );
        assert_eq!(Gs1Date::parse("241300"), Err(DateError::Month(13)));
        assert_eq!(
            Gs1Date::parse("240431"),
            Err(DateError::Day { day: 31, month: 4 })
        );
        assert_eq!(
            Gs1Date::parse("230229"),
            Err(DateError::Day { day: 29, month: 2 })
        );
        assert!(Gs1Date::parse("240229").is_ok());
        assert_eq!(Gs1Date::parse("24011"), Err(DateError::Format));
        assert_eq!(Gs1Date::parse("2401a1"), Err(DateError::Format));
        // §7.12: more than 50 years ahead is the previous century; 50 or more behind, the next.
        let year = |s: &str, reference| Gs1Date::parse(s).map(|d| d.year(reference));
        assert_eq!(year("750101", 2025), Ok(2075));
        assert_eq!(year("760101", 2025), Ok(1976));
        assert_eq!(year("010101", 2099), Ok(2101));
        assert_eq!(year("500101", 2099), Ok(2050));
        assert_eq!(year("490101", 2099), Ok(2149));
        assert_eq!(year("990101", 2000), Ok(1999));
    }

    #[test]
    fn attribute_table_validates_formats() {
        let ok = |code: &str, value: &str| {
            let spec = lookup(code).expect(code);
            validate_attribute(code, &spec, value)
        };
        assert!(ok("17", "261231").is_ok());
        assert_eq!(
            ok("17", "261331").map_err(|e| e.to_string()),
            Err(
                "AI (17) expiration date \"261331\" is not a date: month 13 is not 01-12"
                    .to_owned()
            )
        );
        assert!(ok("7007", "250901250915").is_ok());
        assert!(ok("7007", "250901").is_ok());
        assert!(ok("7007", "2509012509").is_err());
        assert!(ok("3103", "000189").is_ok());
        assert!(ok("3103", "00189").is_err());
        assert!(lookup("3106").is_none());
        assert!(ok("3923", "2172").is_ok());
        assert!(ok("422", "156").is_ok());
        assert!(ok("422", "15").is_err());
        assert!(ok("410", "9520123456788").is_ok());
        assert_eq!(
            ok("410", "9520123456789").map_err(|e| e.to_string()),
            Err("AI (410) ship to GLN: GLN check digit is 9, expected 8".to_owned())
        );
        assert!(ok("02", "09520123456788").is_ok());
        assert!(ok("02", "9520123456788").is_err());
        assert!(lookup("99").is_none());
        assert_eq!(lookup("01").map(|s| s.role), Some(AiRole::PrimaryKey));
        assert_eq!(lookup("254").map(|s| s.role), Some(AiRole::Qualifier));
    }
}
