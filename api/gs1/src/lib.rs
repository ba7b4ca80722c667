//! GS1 standards for the traceability API, as a pure library (no HTTP, no storage): the keys
//! with their check digits, Application Identifier values, GS1 Digital Link URIs and EPC URIs,
//! the one canonical key both URI forms reduce to so the trace graph can join them, and EPCIS
//! 2.0 documents with the GS1 canonical event hash. Kept apart from the node so that its parsers
//! are fuzzed and tested without building the node.
//!
//! - [`keys`]: `Gtin` (GTIN-8/12/13/14 in, GTIN-14 out), `Gln`, `Sscc`, `Gsrn`, `Grai`; the
//!   mod-10 check digit (GS1 General Specifications §7.9).
//! - [`ai`]: batch/lot (10), serial (21), CPV (22), GLN extension (254), YYMMDD dates
//!   (11, 13, 15, 16, 17), character set 82, and the data-attribute table.
//! - [`percent`]: percent-encoding as GS1 Digital Link and RFC 3986 require.
//! - [`digital_link`]: `DigitalLink`, the uncompressed GS1 Digital Link URI (syntax 1.2).
//! - [`epc`]: EPC pure identity URIs (Tag Data Standard 2.x), conversion to and from Digital
//!   Link, and `canonical_epc`.
//! - [`epcis`]: EPCIS 2.0 documents, their validation and the canonical event hash.
//!
//! Every parser returns a typed error whose message says what is wrong in user terms
//! ("GTIN check digit is 3, expected 7"); nothing here panics on input. Every type that has a
//! string form serialises as that string.

pub mod ai;
pub mod digital_link;
pub mod epc;
pub mod epcis;
pub mod keys;
pub mod percent;

#[cfg(test)]
mod proptests;

pub use ai::{AiValueError, ConsumerProductVariant, DateError, GlnExtension, Gs1Date, Lot, Serial};
pub use digital_link::{DateAttribute, DigitalLink, DigitalLinkError, PrimaryKey, UriStem};
pub use epc::{CompanyPrefixLength, EpcError, EpcKey, EpcUri, canonical_epc};
pub use keys::{Gln, Grai, Gsrn, Gtin, KeyError, KeyKind, check_digit};

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`, so a type travels in JSON
/// as the same string a person would type.
macro_rules! serde_via_str {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize<'de>>::deserialize(
                    deserializer,
                )?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_via_str;
