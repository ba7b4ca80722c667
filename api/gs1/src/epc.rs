//! EPC pure identity URIs (GS1 EPC Tag Data Standard 2.x, "EPC URI", the URIs EPCIS events carry)
//! and [`EpcKey`], the one canonical key both they and GS1 Digital Link URIs reduce to.
//!
//! Supported schemes: `urn:epc:id:sgtin:CompanyPrefix.ItemRef.Serial`,
//! `urn:epc:id:sscc:CompanyPrefix.SerialRef`, `urn:epc:id:sgln:CompanyPrefix.LocationRef.Ext`,
//! `urn:epc:id:grai:CompanyPrefix.AssetType.Serial`, `urn:epc:id:gsrn:CompanyPrefix.ServiceRef`,
//! the class-level `urn:epc:class:lgtin:CompanyPrefix.ItemRef.Lot` and the product pattern
//! `urn:epc:idpat:sgtin:CompanyPrefix.ItemRef.*`.
//!
//! An EPC URI spells out where the GS1 Company Prefix ends; a GS1 key does not, so going from a
//! Digital Link to an EPC URI needs the prefix length as a parameter
//! ([`EpcUri::from_key`]). The other direction computes the check digit (TDS, "Correspondence
//! between EPCs and GS1 Keys").
//!
//! EPCIS 2.0 accepts both EPC URIs and Digital Link URIs as identifiers, so the trace
//! graph joins on [`canonical_epc`]: both forms of the same object give equal [`EpcKey`]s,
//! written as the canonical Digital Link on `id.gs1.org`.

use std::fmt;
use std::str::FromStr;

use super::ai::{AiValueError, GlnExtension, Lot, Serial};
use super::digital_link::{DigitalLink, DigitalLinkError, PrimaryKey};
use super::keys::{Gln, Grai, Gsrn, Gtin, KeyError, Sscc};

/// Length of a GS1 Company Prefix: 6 to 12 digits (TDS, partition tables; GS1 General
/// Specifications, GS1 Company Prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompanyPrefixLength(u8);

impl CompanyPrefixLength {
    /// Shortest GS1 Company Prefix.
    pub const MIN: u8 = 6;
    /// Longest GS1 Company Prefix.
    pub const MAX: u8 = 12;

    /// Checks the range.
    pub fn new(digits: u8) -> Result<Self, EpcError> {
        if (Self::MIN..=Self::MAX).contains(&digits) {
            Ok(Self(digits))
        } else {
            Err(EpcError::CompanyPrefixLength {
                got: usize::from(digits),
            })
        }
    }

    /// The number of digits.
    pub fn get(self) -> u8 {
        self.0
    }

    fn len(self) -> usize {
        usize::from(self.0)
    }
}

/// The identity of one object or class, whichever URI form it came in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EpcKey {
    /// Serialised trade item: GTIN + serial (SGTIN; Digital Link `/01/{gtin}/21/{serial}`).
    Sgtin {
        /// The GTIN.
        gtin: Gtin,
        /// AI (21).
        serial: Serial,
    },
    /// A batch of a trade item: GTIN + lot (LGTIN; Digital Link `/01/{gtin}/10/{lot}`).
    Lgtin {
        /// The GTIN.
        gtin: Gtin,
        /// AI (10).
        lot: Lot,
    },
    /// Every instance of a trade item (`urn:epc:idpat:sgtin:...*`; Digital Link `/01/{gtin}`).
    Product(Gtin),
    /// A logistic unit.
    Sscc(Sscc),
    /// A location: GLN with an optional extension (SGLN; Digital Link `/414/{gln}[/254/..]`).
    Sgln {
        /// The GLN.
        gln: Gln,
        /// AI (254); `None` is written `0` in the EPC URI.
        extension: Option<GlnExtension>,
    },
    /// A returnable asset with its serial.
    Grai(Grai),
    /// A service relation.
    Gsrn(Gsrn),
}

/// Why a string is not an EPC URI, or a key has no EPC form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpcError {
    /// Neither an EPC URI nor a Digital Link.
    #[error(
        "not an EPC: expected urn:epc:id:..., urn:epc:class:lgtin:..., urn:epc:idpat:sgtin:... or a GS1 Digital Link URI"
    )]
    NotEpc,
    /// An EPC scheme this library does not handle.
    #[error(
        "EPC scheme {0:?} is not supported (sgtin, sscc, sgln, grai, gsrn, lgtin, idpat:sgtin are)"
    )]
    UnsupportedScheme(String),
    /// Wrong number of `.`-separated components.
    #[error("{scheme} EPC URI needs {expected} components separated by '.', got {got}")]
    Components {
        /// The scheme.
        scheme: &'static str,
        /// Components required.
        expected: usize,
        /// Components found.
        got: usize,
    },
    /// The company prefix length is not 6-12.
    #[error("a GS1 Company Prefix is 6 to 12 digits long, got {got}")]
    CompanyPrefixLength {
        /// Its length.
        got: usize,
    },
    /// A numeric component of the wrong length for the company prefix.
    #[error(
        "{scheme} {component} must be {expected} digits with a {prefix}-digit company prefix, got {got}"
    )]
    ComponentLength {
        /// The scheme.
        scheme: &'static str,
        /// The component.
        component: &'static str,
        /// Its required length.
        expected: usize,
        /// The company prefix length.
        prefix: usize,
        /// Its length.
        got: usize,
    },
    /// A non-digit in a numeric component.
    #[error("{scheme} {component} has {found:?} at position {position}; only digits are allowed")]
    NotDigit {
        /// The scheme.
        scheme: &'static str,
        /// The component.
        component: &'static str,
        /// The character.
        found: char,
        /// Its position, counted from 1.
        position: usize,
    },
    /// A `%` escape that is not one of TDS's seven.
    #[error(
        "{component}: invalid escape at position {position}; EPC URIs escape only \" % & / < > ? as %22 %25 %26 %2F %3C %3E %3F"
    )]
    Escape {
        /// The component.
        component: &'static str,
        /// Position of the `%`, counted from 1.
        position: usize,
    },
    /// A character an EPC URI component cannot carry unescaped.
    #[error("{component} has {found:?} at position {position}, which an EPC URI cannot carry")]
    RawChar {
        /// The component.
        component: &'static str,
        /// The character.
        found: char,
        /// Its position, counted from 1.
        position: usize,
    },
    /// An `idpat` that is not a whole-product pattern.
    #[error("only product patterns urn:epc:idpat:sgtin:CompanyPrefix.ItemRef.* are supported")]
    Pattern,
    /// The value of an alphanumeric component is not valid for its AI.
    #[error(transparent)]
    Value(#[from] AiValueError),
    /// The key built from the components is not valid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A Digital Link that does not parse.
    #[error(transparent)]
    DigitalLink(#[from] DigitalLinkError),
    /// A key with no EPC form (e.g. a GRAI without serial).
    #[error("{0} has no EPC pure identity form")]
    NoEpcForm(&'static str),
}

/// Characters an EPC URI component may carry unescaped besides letters and digits (TDS,
/// "Common grammar elements": the `OtherChar` of the GS3A3 component grammar).
const EPC_OTHER_CHARS: &str = "!'()*+,-.:;=_";

/// Escapes a GS3A3 component (TDS, "Common grammar elements"): exactly `"` `%` `&` `/` `<`
/// `>` `?` are escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("%22"),
            '%' => out.push_str("%25"),
            '&' => out.push_str("%26"),
            '/' => out.push_str("%2F"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '?' => out.push_str("%3F"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(raw: &str, component: &'static str) -> Result<String, EpcError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '%' {
            let code: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
            let decoded = match code.to_ascii_uppercase().as_str() {
                "22" => '"',
                "25" => '%',
                "26" => '&',
                "2F" => '/',
                "3C" => '<',
                "3E" => '>',
                "3F" => '?',
                _ => {
                    return Err(EpcError::Escape {
                        component,
                        position: i + 1,
                    });
                }
            };
            out.push(decoded);
        } else if c.is_ascii_alphanumeric() || EPC_OTHER_CHARS.contains(c) {
            out.push(c);
        } else {
            return Err(EpcError::RawChar {
                component,
                found: c,
                position: i + 1,
            });
        }
    }
    Ok(out)
}

fn numeric<'a>(
    scheme: &'static str,
    component: &'static str,
    value: &'a str,
    expected: usize,
    prefix: usize,
) -> Result<&'a str, EpcError> {
    if let Some((i, c)) = value.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(EpcError::NotDigit {
            scheme,
            component,
            found: c,
            position: i + 1,
        });
    }
    if value.len() != expected {
        return Err(EpcError::ComponentLength {
            scheme,
            component,
            expected,
            prefix,
            got: value.len(),
        });
    }
    Ok(value)
}

fn company_prefix(scheme: &'static str, value: &str) -> Result<CompanyPrefixLength, EpcError> {
    if let Some((i, c)) = value.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(EpcError::NotDigit {
            scheme,
            component: "company prefix",
            found: c,
            position: i + 1,
        });
    }
    let len = u8::try_from(value.len())
        .map_err(|_| EpcError::CompanyPrefixLength { got: value.len() })?;
    CompanyPrefixLength::new(len)
}

/// Splits `body` into `n` components on `.`; the last one keeps any further dots (a serial
/// may contain `.`).
fn components<'a>(scheme: &'static str, body: &'a str, n: usize) -> Result<Vec<&'a str>, EpcError> {
    let parts: Vec<&str> = body.splitn(n, '.').collect();
    if parts.len() == n {
        Ok(parts)
    } else {
        Err(EpcError::Components {
            scheme,
            expected: n,
            got: parts.len(),
        })
    }
}

/// An EPC pure identity URI: a key and where its GS1 Company Prefix ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EpcUri {
    key: EpcKey,
    prefix: CompanyPrefixLength,
}

impl EpcUri {
    /// The EPC URI of `key` with a GS1 Company Prefix of `prefix` digits.
    pub fn from_key(key: EpcKey, prefix: CompanyPrefixLength) -> Result<Self, EpcError> {
        if let EpcKey::Grai(grai) = &key
            && grai.serial().is_none()
        {
            return Err(EpcError::NoEpcForm("a GRAI without serial component"));
        }
        Ok(Self { key, prefix })
    }

    /// The EPC URI of a Digital Link (see [`EpcKey::from_digital_link`]).
    pub fn from_digital_link(
        link: &DigitalLink,
        prefix: CompanyPrefixLength,
    ) -> Result<Self, EpcError> {
        Self::from_key(EpcKey::from_digital_link(link)?, prefix)
    }

    /// The key.
    pub fn key(&self) -> &EpcKey {
        &self.key
    }

    /// The length of the GS1 Company Prefix.
    pub fn company_prefix_length(&self) -> CompanyPrefixLength {
        self.prefix
    }

    /// The canonical Digital Link of the same object.
    pub fn to_digital_link(&self) -> DigitalLink {
        self.key.to_digital_link()
    }

    /// Parses an EPC pure identity URI (or class/pattern URI, see the module documentation).
    pub fn parse(s: &str) -> Result<Self, EpcError> {
        let (scheme, body) = if let Some(body) = s.strip_prefix("urn:epc:id:") {
            body.split_once(':').ok_or(EpcError::NotEpc)?
        } else if let Some(body) = s.strip_prefix("urn:epc:class:") {
            match body.split_once(':') {
                Some(("lgtin", rest)) => ("lgtin", rest),
                Some((other, _)) => {
                    return Err(EpcError::UnsupportedScheme(format!("class:{other}")));
                }
                None => return Err(EpcError::NotEpc),
            }
        } else if let Some(body) = s.strip_prefix("urn:epc:idpat:") {
            match body.split_once(':') {
                Some(("sgtin", rest)) => ("idpat:sgtin", rest),
                Some(_) => return Err(EpcError::Pattern),
                None => return Err(EpcError::NotEpc),
            }
        } else {
            return Err(EpcError::NotEpc);
        };
        match scheme {
            "sgtin" => parse_gtin_based(body, "SGTIN", GtinTail::Serial),
            "lgtin" => parse_gtin_based(body, "LGTIN", GtinTail::Lot),
            "idpat:sgtin" => parse_gtin_based(body, "SGTIN pattern", GtinTail::Any),
            "sscc" => {
                let [cp, sr] = components("SSCC", body, 2)?[..] else {
                    return Err(EpcError::NotEpc);
                };
                let prefix = company_prefix("SSCC", cp)?;
                let sr = numeric(
                    "SSCC",
                    "serial reference",
                    sr,
                    17 - prefix.len(),
                    prefix.len(),
                )?;
                let (extension, rest) = sr.split_at(1);
                let sscc = Sscc::from_body(&format!("{extension}{cp}{rest}"))?;
                Ok(Self {
                    key: EpcKey::Sscc(sscc),
                    prefix,
                })
            }
            "sgln" => {
                let [cp, lr, ext] = components("SGLN", body, 3)?[..] else {
                    return Err(EpcError::NotEpc);
                };
                let prefix = company_prefix("SGLN", cp)?;
                let lr = numeric(
                    "SGLN",
                    "location reference",
                    lr,
                    12 - prefix.len(),
                    prefix.len(),
                )?;
                let gln = Gln::from_body(&format!("{cp}{lr}"))?;
                let ext = unescape(ext, "SGLN extension")?;
                // TDS, SGLN: the extension 0 means "the GLN alone, no AI (254)".
                let extension = if ext == "0" {
                    None
                } else {
                    Some(GlnExtension::new(&ext)?)
                };
                Ok(Self {
                    key: EpcKey::Sgln { gln, extension },
                    prefix,
                })
            }
            "grai" => {
                let [cp, at, serial] = components("GRAI", body, 3)?[..] else {
                    return Err(EpcError::NotEpc);
                };
                let prefix = company_prefix("GRAI", cp)?;
                let at = numeric("GRAI", "asset type", at, 12 - prefix.len(), prefix.len())?;
                let serial = unescape(serial, "GRAI serial")?;
                let grai = Grai::from_parts(&format!("{cp}{at}"), Some(&serial))?;
                Ok(Self {
                    key: EpcKey::Grai(grai),
                    prefix,
                })
            }
            "gsrn" => {
                let [cp, sr] = components("GSRN", body, 2)?[..] else {
                    return Err(EpcError::NotEpc);
                };
                let prefix = company_prefix("GSRN", cp)?;
                let sr = numeric(
                    "GSRN",
                    "service reference",
                    sr,
                    17 - prefix.len(),
                    prefix.len(),
                )?;
                let gsrn = Gsrn::from_body(&format!("{cp}{sr}"))?;
                Ok(Self {
                    key: EpcKey::Gsrn(gsrn),
                    prefix,
                })
            }
            other => Err(EpcError::UnsupportedScheme(other.to_owned())),
        }
    }
}

enum GtinTail {
    Serial,
    Lot,
    Any,
}

fn parse_gtin_based(body: &str, scheme: &'static str, tail: GtinTail) -> Result<EpcUri, EpcError> {
    let [cp, ir, last] = components(scheme, body, 3)?[..] else {
        return Err(EpcError::NotEpc);
    };
    let prefix = company_prefix(scheme, cp)?;
    let ir = numeric(
        scheme,
        "indicator and item reference",
        ir,
        13 - prefix.len(),
        prefix.len(),
    )?;
    let (indicator, item) = ir.split_at(1);
    let gtin = Gtin::from_body(&format!("{indicator}{cp}{item}"))?;
    let key = match tail {
        GtinTail::Serial => EpcKey::Sgtin {
            gtin,
            serial: Serial::new(&unescape(last, "SGTIN serial")?)?,
        },
        GtinTail::Lot => EpcKey::Lgtin {
            gtin,
            lot: Lot::new(&unescape(last, "LGTIN lot")?)?,
        },
        GtinTail::Any if last == "*" => EpcKey::Product(gtin),
        GtinTail::Any => return Err(EpcError::Pattern),
    };
    Ok(EpcUri { key, prefix })
}

impl fmt::Display for EpcUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.prefix.len();
        match &self.key {
            EpcKey::Sgtin { gtin, serial } => {
                let d = gtin.digits();
                write!(
                    f,
                    "urn:epc:id:sgtin:{}.{}{}.{}",
                    &d[1..=l],
                    &d[..1],
                    &d[1 + l..13],
                    escape(serial.as_str())
                )
            }
            EpcKey::Lgtin { gtin, lot } => {
                let d = gtin.digits();
                write!(
                    f,
                    "urn:epc:class:lgtin:{}.{}{}.{}",
                    &d[1..=l],
                    &d[..1],
                    &d[1 + l..13],
                    escape(lot.as_str())
                )
            }
            EpcKey::Product(gtin) => {
                let d = gtin.digits();
                write!(
                    f,
                    "urn:epc:idpat:sgtin:{}.{}{}.*",
                    &d[1..=l],
                    &d[..1],
                    &d[1 + l..13]
                )
            }
            EpcKey::Sscc(sscc) => {
                let d = sscc.digits();
                write!(
                    f,
                    "urn:epc:id:sscc:{}.{}{}",
                    &d[1..=l],
                    &d[..1],
                    &d[1 + l..17]
                )
            }
            EpcKey::Sgln { gln, extension } => {
                let d = gln.digits();
                let ext = extension
                    .as_ref()
                    .map_or("0".to_owned(), |e| escape(e.as_str()));
                write!(f, "urn:epc:id:sgln:{}.{}.{}", &d[..l], &d[l..12], ext)
            }
            EpcKey::Grai(grai) => {
                let d = grai.asset_digits();
                write!(
                    f,
                    "urn:epc:id:grai:{}.{}.{}",
                    &d[1..=l],
                    &d[1 + l..13],
                    escape(grai.serial().unwrap_or(""))
                )
            }
            EpcKey::Gsrn(gsrn) => {
                let d = gsrn.digits();
                write!(f, "urn:epc:id:gsrn:{}.{}", &d[..l], &d[l..17])
            }
        }
    }
}

impl FromStr for EpcUri {
    type Err = EpcError;

    fn from_str(s: &str) -> Result<Self, EpcError> {
        Self::parse(s)
    }
}

super::serde_via_str!(EpcUri);

impl EpcKey {
    /// The key a Digital Link identifies, at the granularity EPCIS uses: a serial makes it an
    /// SGTIN (GTIN + serial identify the instance; lot and CPV are attributes of it), a lot
    /// without serial an LGTIN, a bare GTIN (or GTIN + CPV, which has no EPC form) the product.
    /// A GLN extension of `0` is the GLN alone (TDS, SGLN).
    pub fn from_digital_link(link: &DigitalLink) -> Result<Self, EpcError> {
        Ok(match link.key() {
            PrimaryKey::Gtin {
                gtin,
                serial: Some(serial),
                ..
            } => Self::Sgtin {
                gtin: *gtin,
                serial: serial.clone(),
            },
            PrimaryKey::Gtin {
                gtin,
                lot: Some(lot),
                ..
            } => Self::Lgtin {
                gtin: *gtin,
                lot: lot.clone(),
            },
            PrimaryKey::Gtin { gtin, .. } => Self::Product(*gtin),
            PrimaryKey::Sscc(sscc) => Self::Sscc(*sscc),
            PrimaryKey::Gln { gln, extension } => Self::Sgln {
                gln: *gln,
                extension: extension.clone().filter(|e| e.as_str() != "0"),
            },
            PrimaryKey::Grai(grai) if grai.serial().is_some() => Self::Grai(grai.clone()),
            PrimaryKey::Grai(_) => {
                return Err(EpcError::NoEpcForm("a GRAI without serial component"));
            }
            PrimaryKey::Gsrn(gsrn) => Self::Gsrn(*gsrn),
        })
    }

    /// The Digital Link of this key, on `id.gs1.org`.
    pub fn to_digital_link(&self) -> DigitalLink {
        let key = match self {
            Self::Sgtin { gtin, serial } => PrimaryKey::Gtin {
                gtin: *gtin,
                cpv: None,
                lot: None,
                serial: Some(serial.clone()),
            },
            Self::Lgtin { gtin, lot } => PrimaryKey::Gtin {
                gtin: *gtin,
                cpv: None,
                lot: Some(lot.clone()),
                serial: None,
            },
            Self::Product(gtin) => PrimaryKey::gtin(*gtin),
            Self::Sscc(sscc) => PrimaryKey::Sscc(*sscc),
            Self::Sgln { gln, extension } => PrimaryKey::Gln {
                gln: *gln,
                extension: extension.clone(),
            },
            Self::Grai(grai) => PrimaryKey::Grai(grai.clone()),
            Self::Gsrn(gsrn) => PrimaryKey::Gsrn(*gsrn),
        };
        DigitalLink::new(key)
    }

    /// Whether the key names a class (a lot or a product) rather than one object.
    pub fn is_class(&self) -> bool {
        matches!(self, Self::Lgtin { .. } | Self::Product(_))
    }

    /// The GTIN, for keys of trade items.
    pub fn gtin(&self) -> Option<Gtin> {
        match self {
            Self::Sgtin { gtin, .. } | Self::Lgtin { gtin, .. } | Self::Product(gtin) => {
                Some(*gtin)
            }
            _ => None,
        }
    }
}

/// Reduces an identifier as EPCIS 2.0 events carry it (an EPC URI or a GS1 Digital Link URI
/// on any host, with any prefix and query) to its canonical key, so that the trace graph joins
/// both forms of the same object.
pub fn canonical_epc(s: &str) -> Result<EpcKey, EpcError> {
    if s.starts_with("urn:epc:") {
        return EpcUri::parse(s).map(|uri| uri.key);
    }
    let lower = s.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        let link = DigitalLink::parse(s)?;
        return EpcKey::from_digital_link(&link);
    }
    Err(EpcError::NotEpc)
}

impl fmt::Display for EpcKey {
    /// The canonical Digital Link URI: `https://id.gs1.org/01/{gtin14}/21/{serial}` etc.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_digital_link().to_canonical_uri())
    }
}

impl FromStr for EpcKey {
    type Err = EpcError;

    fn from_str(s: &str) -> Result<Self, EpcError> {
        canonical_epc(s)
    }
}

super::serde_via_str!(EpcKey);

#[cfg(test)]
mod tests {
    //! Known answers from the EPC Tag Data Standard's examples (`urn:epc:id:sgtin:0614141.
    //! 812345.6789` = (01)80614141123458 (21)6789; `urn:epc:id:sscc:0614141.1234567890` =
    //! (00)106141412345678908; `urn:epc:id:sgln:0614141.12345.400` = (414)0614141123452
    //! (254)400; `urn:epc:class:lgtin:4012345.012345.998877` = (01)04012345123456 (10)998877;
    //! `urn:epc:id:sgtin:0614141.112345.400` = (01)10614141123459 (21)400) and the escaping
    //! rules of TDS "Common grammar elements".

    use super::*;

    fn cp(n: u8) -> CompanyPrefixLength {
        CompanyPrefixLength::new(n).expect("6-12")
    }

    /// Parses `epc`, checks its canonical key, and that it formats back to itself both directly
    /// and through the Digital Link with the same prefix length.
    fn check(epc: &str, canonical: &str) {
        let uri = EpcUri::parse(epc).unwrap_or_else(|e| panic!("{epc}: {e}"));
        assert_eq!(uri.to_string(), epc, "round trip");
        assert_eq!(uri.key().to_string(), canonical, "canonical key of {epc}");
        let link = uri.to_digital_link();
        let back = EpcUri::from_digital_link(&link, uri.company_prefix_length()).expect("to EPC");
        assert_eq!(back.to_string(), epc, "through Digital Link");
        assert_eq!(
            canonical_epc(epc),
            canonical_epc(canonical),
            "joins with {canonical}"
        );
    }

    #[test]
    fn tag_data_standard_examples() {
        check(
            "urn:epc:id:sgtin:0614141.812345.6789",
            "https://id.gs1.org/01/80614141123458/21/6789",
        );
        check(
            "urn:epc:id:sgtin:0614141.112345.400",
            "https://id.gs1.org/01/10614141123459/21/400",
        );
        check(
            "urn:epc:id:sscc:0614141.1234567890",
            "https://id.gs1.org/00/106141412345678908",
        );
        check(
            "urn:epc:id:sgln:0614141.12345.400",
            "https://id.gs1.org/414/0614141123452/254/400",
        );
        check(
            "urn:epc:id:sgln:0614141.12345.0",
            "https://id.gs1.org/414/0614141123452",
        );
        check(
            "urn:epc:class:lgtin:4012345.012345.998877",
            "https://id.gs1.org/01/04012345123456/10/998877",
        );
        check(
            "urn:epc:idpat:sgtin:4012345.012345.*",
            "https://id.gs1.org/01/04012345123456",
        );
        check(
            "urn:epc:id:grai:0614141.12345.400",
            "https://id.gs1.org/8003/00614141123452400",
        );
        check(
            "urn:epc:id:gsrn:0614141.1234567890",
            "https://id.gs1.org/8018/061414112345678902",
        );
    }

    #[test]
    fn escaped_serials_round_trip() {
        check(
            "urn:epc:id:sgtin:0614141.812345.A%2FB%25C%26D%3F'(x)",
            "https://id.gs1.org/01/80614141123458/21/A%2FB%25C%26D%3F%27%28x%29",
        );
        let uri = EpcUri::parse("urn:epc:id:sgtin:0614141.812345.a.b").expect("dot in serial");
        assert_eq!(
            uri.key(),
            &EpcKey::Sgtin {
                gtin: "80614141123458".parse().expect("gtin"),
                serial: Serial::new("a.b").expect("serial"),
            }
        );
        assert_eq!(
            EpcUri::parse("urn:epc:id:sgtin:0614141.812345.a%2Fb").map(|u| u.to_string()),
            Ok("urn:epc:id:sgtin:0614141.812345.a%2Fb".to_owned())
        );
    }

    #[test]
    fn digital_link_converts_with_a_given_prefix_length() {
        let link =
            DigitalLink::parse("https://example.com/01/80614141123458/10/L1/21/6789?17=261231")
                .expect("link");
        let epc = EpcUri::from_digital_link(&link, cp(7)).expect("epc");
        assert_eq!(epc.to_string(), "urn:epc:id:sgtin:0614141.812345.6789");
        let epc = EpcUri::from_digital_link(&link, cp(9)).expect("epc");
        assert_eq!(epc.to_string(), "urn:epc:id:sgtin:061414112.8345.6789");
        let epc = EpcUri::from_digital_link(&link, cp(12)).expect("epc");
        assert_eq!(epc.to_string(), "urn:epc:id:sgtin:061414112345.8.6789");
        let lot_only =
            DigitalLink::parse("https://id.gs1.org/01/04012345123456/10/998877").expect("link");
        assert_eq!(
            EpcUri::from_digital_link(&lot_only, cp(7)).map(|e| e.to_string()),
            Ok("urn:epc:class:lgtin:4012345.012345.998877".to_owned())
        );
        let grai = DigitalLink::parse("https://id.gs1.org/8003/00614141123452").expect("link");
        assert_eq!(
            EpcUri::from_digital_link(&grai, cp(7)),
            Err(EpcError::NoEpcForm("a GRAI without serial component"))
        );
        assert_eq!(
            CompanyPrefixLength::new(5),
            Err(EpcError::CompanyPrefixLength { got: 5 })
        );
        assert_eq!(
            CompanyPrefixLength::new(13),
            Err(EpcError::CompanyPrefixLength { got: 13 })
        );
    }

    #[test]
    fn both_forms_join_on_one_canonical_key() {
        let forms = [
            "urn:epc:id:sgtin:0614141.812345.6789",
            "https://id.gs1.org/01/80614141123458/21/6789",
            "https://brand.example/p/01/80614141123458/10/LOT9/21/6789?17=261231&linkType=all",
            "HTTPS://id.gs1.org/01/80614141123458/21/6789",
        ];
        let keys: Vec<EpcKey> = forms
            .iter()
            .map(|f| canonical_epc(f).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
        assert_eq!(
            keys[0].to_string(),
            "https://id.gs1.org/01/80614141123458/21/6789"
        );
        assert!(!keys[0].is_class());
        let lot = canonical_epc("urn:epc:class:lgtin:4012345.012345.998877").expect("lgtin");
        assert!(lot.is_class());
        assert_eq!(
            canonical_epc("https://id.gs1.org/414/0614141123452/254/0"),
            canonical_epc("urn:epc:id:sgln:0614141.12345.0")
        );
        let json = serde_json::to_string(&keys[0]).expect("serialise");
        assert_eq!(json, "\"https://id.gs1.org/01/80614141123458/21/6789\"");
        assert_eq!(
            serde_json::from_str::<EpcKey>(&json).expect("deserialise"),
            keys[0]
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |s: &str| {
            EpcUri::parse(s)
                .map(|u| u.to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            err("urn:epc:id:sgtin:0614141.81234.6789"),
            Err("SGTIN indicator and item reference must be 6 digits with a 7-digit company prefix, got 5".to_owned())
        );
        assert_eq!(
            err("urn:epc:id:sgtin:06141.8123456.6789"),
            Err("a GS1 Company Prefix is 6 to 12 digits long, got 5".to_owned())
        );
        assert_eq!(
            err("urn:epc:id:sgtin:0614141.812345"),
            Err("SGTIN EPC URI needs 3 components separated by '.', got 2".to_owned())
        );
        assert_eq!(
            err("urn:epc:id:sgtin:0614141.812345.a%41"),
            Err("SGTIN serial: invalid escape at position 2; EPC URIs escape only \" % & / < > ? as %22 %25 %26 %2F %3C %3E %3F".to_owned())
        );
        assert_eq!(
            err("urn:epc:id:sgtin:0614141.812345.a b"),
            Err("SGTIN serial has ' ' at position 2, which an EPC URI cannot carry".to_owned())
        );
        assert_eq!(
            err("urn:epc:id:sscc:0614141.12345678x0"),
            Err("SSCC serial reference has 'x' at position 9; only digits are allowed".to_owned())
        );
        assert_eq!(
            err("urn:epc:id:giai:0614141.12345"),
            Err("EPC scheme \"giai\" is not supported (sgtin, sscc, sgln, grai, gsrn, lgtin, idpat:sgtin are)".to_owned())
        );
        assert_eq!(
            err("urn:epc:idpat:sgtin:0614141.812345.12"),
            Err(
                "only product patterns urn:epc:idpat:sgtin:CompanyPrefix.ItemRef.* are supported"
                    .to_owned()
            )
        );
        assert_eq!(
            err("urn:epc:id:sgtin:0614141.812345.ABCDEFGHIJKLMNOPQRSTU"),
            Err("AI (21) serial number is 21 characters long; at most 20 are allowed".to_owned())
        );
        assert_eq!(canonical_epc("epc:0614141"), Err(EpcError::NotEpc));
        assert!(matches!(
            canonical_epc("https://id.gs1.org/01/80614141123459/21/1"),
            Err(EpcError::DigitalLink(DigitalLinkError::Key { .. }))
        ));
    }
}
