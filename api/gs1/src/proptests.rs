//! Property tests for the GS1 layer: every key round-trips and every single-digit change is
//! caught by its check digit; Digital Link, EPC URI and percent-encoding round-trip; the two
//! URI forms of one object always join on the same canonical key; no input panics a parser.

use proptest::prelude::*;

use super::ai::{CSET82_SYMBOLS, ConsumerProductVariant, Gs1Date, Lot, Serial};
use super::digital_link::{DateAttribute, DigitalLink, PrimaryKey};
use super::epc::{CompanyPrefixLength, EpcKey, EpcUri, canonical_epc};
use super::keys::{Gln, Gsrn, Gtin, KeyError, Sscc};
use super::percent::{self, Component};

fn digits(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, len)
        .prop_map(|d| d.into_iter().map(|x| char::from(b'0' + x)).collect())
}

fn cset82_string(max: usize) -> impl Strategy<Value = String> {
    let mut chars: Vec<char> = ('0'..='9').chain('A'..='Z').chain('a'..='z').collect();
    chars.extend(CSET82_SYMBOLS.chars());
    proptest::collection::vec(proptest::sample::select(chars), 1..=max)
        .prop_map(|v| v.into_iter().collect())
}

fn gtin() -> impl Strategy<Value = Gtin> {
    digits(13).prop_map(|b| Gtin::from_body(&b).expect("13 digits"))
}

fn date() -> impl Strategy<Value = Gs1Date> {
    (0u8..100, 1u8..=12, 0u8..=28)
        .prop_map(|(y, m, d)| Gs1Date::parse(&format!("{y:02}{m:02}{d:02}")).expect("valid date"))
}

/// Replaces the digit at `position` with a different one.
fn change_digit(s: &str, position: usize, delta: u8) -> String {
    s.char_indices()
        .map(|(i, c)| {
            if i == position {
                let d = c
                    .to_digit(10)
                    .and_then(|d| u8::try_from(d).ok())
                    .unwrap_or(0);
                char::from(b'0' + (d + delta) % 10)
            } else {
                c
            }
        })
        .collect()
}

fn single_digit_change_is_caught<T>(canonical: &str, position: usize, delta: u8) -> bool
where
    T: std::str::FromStr<Err = KeyError>,
{
    let changed = change_digit(canonical, position % canonical.len(), delta);
    matches!(changed.parse::<T>(), Err(KeyError::CheckDigit { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn keys_round_trip_through_their_strings(body13 in digits(13), body12 in digits(12), body17 in digits(17)) {
        let g = Gtin::from_body(&body13).expect("gtin");
        prop_assert_eq!(g.to_string().parse::<Gtin>(), Ok(g));
        let l = Gln::from_body(&body12).expect("gln");
        prop_assert_eq!(l.to_string().parse::<Gln>(), Ok(l));
        let s = Sscc::from_body(&body17).expect("sscc");
        prop_assert_eq!(s.to_string().parse::<Sscc>(), Ok(s));
        let r = Gsrn::from_body(&body17).expect("gsrn");
        prop_assert_eq!(r.to_string().parse::<Gsrn>(), Ok(r));
        // A GTIN-13 written without its leading zero parses to the same GTIN-14.
        if let Some(short) = g.to_string().strip_prefix('0') {
            prop_assert_eq!(short.parse::<Gtin>(), Ok(g));
        }
    }

    #[test]
    fn any_single_digit_change_is_caught(
        body13 in digits(13),
        body12 in digits(12),
        body17 in digits(17),
        position in 0usize..18,
        delta in 1u8..10,
    ) {
        let g = Gtin::from_body(&body13).expect("gtin").to_string();
        prop_assert!(single_digit_change_is_caught::<Gtin>(&g, position, delta));
        let l = Gln::from_body(&body12).expect("gln").to_string();
        prop_assert!(single_digit_change_is_caught::<Gln>(&l, position, delta));
        let s = Sscc::from_body(&body17).expect("sscc").to_string();
        prop_assert!(single_digit_change_is_caught::<Sscc>(&s, position, delta));
    }

    #[test]
    fn percent_encoding_round_trips(value in any::<String>()) {
        let encoded = percent::encode(&value);
        prop_assert_eq!(percent::decode(&encoded, Component::PathSegment), Ok(value.clone()));
        prop_assert_eq!(percent::decode(&encoded, Component::Query), Ok(value));
    }

    #[test]
    fn digital_links_round_trip(
        gtin in gtin(),
        cpv in proptest::option::of(cset82_string(20)),
        lot in proptest::option::of(cset82_string(20)),
        serial in proptest::option::of(cset82_string(20)),
        expiry in proptest::option::of(date()),
        link_type in proptest::option::of(cset82_string(12)),
    ) {
        let key = PrimaryKey::Gtin {
            gtin,
            cpv: cpv.map(|v| ConsumerProductVariant::new(&v).expect("cpv")),
            lot: lot.map(|v| Lot::new(&v).expect("lot")),
            serial: serial.map(|v| Serial::new(&v).expect("serial")),
        };
        let mut link = DigitalLink::new(key);
        if let Some(d) = expiry {
            link = link.with_date(DateAttribute::Expiration, d);
        }
        if let Some(t) = link_type {
            link = link.with_param("linkType", &t).expect("param");
        }
        let uri = link.to_uri();
        let parsed = DigitalLink::parse(&uri).map_err(|e| e.to_string());
        prop_assert!(parsed.is_ok(), "{}: {:?}", uri, parsed);
        let parsed = parsed.expect("checked");
        prop_assert_eq!(parsed.key(), link.key());
        prop_assert_eq!(parsed.to_uri(), uri.clone());
        prop_assert_eq!(parsed.date(DateAttribute::Expiration), expiry);
        let path_only = DigitalLink::parse_path_and_query(&link.path(), Some(&link.query()));
        prop_assert_eq!(path_only.map(|l| l.to_uri()), Ok(uri));
    }

    #[test]
    fn epc_uris_round_trip_and_join_their_digital_links(
        gtin in gtin(),
        serial in cset82_string(20),
        prefix in 6u8..=12,
    ) {
        let prefix = CompanyPrefixLength::new(prefix).expect("6-12");
        let key = EpcKey::Sgtin { gtin, serial: Serial::new(&serial).expect("serial") };
        let epc = EpcUri::from_key(key.clone(), prefix).expect("epc");
        let text = epc.to_string();
        prop_assert_eq!(EpcUri::parse(&text), Ok(epc.clone()));
        prop_assert_eq!(canonical_epc(&text), Ok(key.clone()));
        let dl = key.to_digital_link().to_uri();
        prop_assert_eq!(canonical_epc(&dl), Ok(key.clone()));
        prop_assert_eq!(key.to_string().parse::<EpcKey>(), Ok(key));
    }

    #[test]
    fn whatever_parses_formats_to_a_fixed_point(input in any::<String>(), tail in "[0-9A-Za-z%/?&=.:*'()!+-]{0,40}") {
        let candidates = [
            input.clone(),
            format!("https://id.gs1.org/01/09520123456788/{tail}"),
            format!("https://id.gs1.org/01/09520123456788?{tail}"),
        ];
        for candidate in &candidates {
            if let Ok(link) = DigitalLink::parse(candidate) {
                let uri = link.to_uri();
                prop_assert_eq!(DigitalLink::parse(&uri).map(|l| l.to_uri()), Ok(uri));
            }
        }
        if let Ok(link) = DigitalLink::parse_path_and_query(&input, Some(&tail)) {
            prop_assert_eq!(DigitalLink::parse(&link.to_uri()).map(|l| l.key().clone()), Ok(link.key().clone()));
        }
        for candidate in [input.clone(), format!("urn:epc:id:sgtin:{tail}"), format!("urn:epc:id:sgln:{tail}")] {
            if let Ok(key) = canonical_epc(&candidate) {
                prop_assert_eq!(canonical_epc(&key.to_string()), Ok(key));
            }
        }
        if let Ok(g) = input.parse::<Gtin>() {
            prop_assert_eq!(g.to_string().parse::<Gtin>(), Ok(g));
        }
        if let Ok(d) = Gs1Date::parse(&input) {
            prop_assert_eq!(d.to_string(), input);
        }
    }
}
