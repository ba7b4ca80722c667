//! Known answers and properties of compressed GS1 Digital Link URIs.
//!
//! Provenance of the vectors: the compressed/uncompressed pairs are the examples of GS1's
//! Digital Link compression prototype (github.com/gs1/GS1DigitalLinkCompressionPrototype, the
//! JavaScript toolkit with compression), as published in the "CompressGs1DigitalLink" and
//! "DecompressGs1DigitalLink" feature files of the .NET port of that toolkit
//! (github.com/Solidsoft-Reply/Gs1DigitalLinkLib, `Tests/Features`), restricted to the
//! primary keys this library serves (00, 01, 414, 8003, 8018). `ARHKVAdpQg` is the GTIN
//! example of GS1's compression tools. The links with keys the resolver does not serve (417,
//! 8018 + 8019) are kept as refusals.

use gs1::digital_link::compression::{self, CompressionError, Element, Sequences};
use gs1::{DigitalLink, DigitalLinkError};
use proptest::prelude::*;

/// `(uncompressed, compressed)` on `https://id.gs1.org`.
const VECTORS: &[(&str, &str)] = &[
    ("/00/998440410914660971", "/AN2yxDhfaiaw"),
    ("/01/05412345000013", "/AQnYUc1gmg"),
    ("/01/05412345000013/10/ABC123", "/AQnYUc1gmiCNV4JG"),
    (
        "/01/05412345000013/10/ABC123/21/72292641703",
        "/AQnYUc1gmiCNV4JGQhcNT6K6c",
    ),
    (
        "/01/05412345000013/22/AJY3095721P49/10/ABC123/21/72292641703",
        "/AQnYUc1gmiCNV4JGQhcNT6K6cibQCWN9Pee9tT-PQ",
    ),
    (
        "/01/05412345000013/22/AJY3095721P49/10/ABC123",
        "/AQnYUc1gmiCNV4JGRNoBLG-nvPe2p_Ho",
    ),
    ("/01/05412345000013/21/72292641703", "/AQnYUc1gmkIXDU-iun"),
    (
        "/01/05412345000013/22/AJY3095721P49/21/72292641703",
        "/AQnYUc1gmkIXDU-iunIm0AljfT3nvbU_j0",
    ),
    (
        "/01/05412345000013/22/AJY3095721P49",
        "/AQnYUc1gmkTaASxvp7z3tqfx6",
    ),
    ("/414/5060917510004", "/QUSaVjC_dA"),
    (
        "/414/5060917510004/254/RP56J920471",
        "/JUa0T-eifdtOO9UFEmlYwv3Q",
    ),
    ("/8003/04965031954585", "/gAMJCAXukTMA"),
    ("/8018/411369833821910265", "/gBhbV6rzBENPk"),
    ("/01/09780345418913", "/ARHKVAdpQg"),
];

const HOST: &str = "https://id.gs1.org";

fn parse(uri: &str) -> DigitalLink {
    DigitalLink::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
}

#[test]
fn published_examples_compress_to_the_published_form() {
    for (plain, compressed) in VECTORS {
        let link = parse(&format!("{HOST}{plain}"));
        assert_eq!(
            link.compressed_path().as_deref(),
            Ok(*compressed),
            "{plain}"
        );
        assert_eq!(
            link.to_compressed_uri(),
            Ok(format!("{HOST}{compressed}")),
            "{plain}"
        );
    }
}

#[test]
fn published_examples_decompress_to_the_published_form() {
    for (plain, compressed) in VECTORS {
        let link = parse(&format!("{HOST}{compressed}"));
        assert_eq!(link.to_uri(), format!("{HOST}{plain}"), "{compressed}");
        assert_eq!(link, parse(&format!("{HOST}{plain}")), "{compressed}");
    }
}

#[test]
fn a_gtin_8_is_compressed_as_its_gtin_14() {
    // The toolkit pads GTINs to 14 digits before compressing: /01/5412345000013 and
    // /01/05412345000013 have the same compressed form.
    let link = parse("https://id.gs1.org/01/5412345000013");
    assert_eq!(link.compressed_path().as_deref(), Ok("/AQnYUc1gmg"));
}

#[test]
fn keys_this_resolver_does_not_serve_are_refused_after_decompression() {
    // (417) party GLN, and (8018) with its (8019) qualifier, from the same feature files.
    for (compressed, ai) in [("QXSaVjC_dA", "417"), ("gBhbV6rzBENPmAGXPRfk", "8019")] {
        match DigitalLink::parse(&format!("{HOST}/{compressed}")) {
            Err(DigitalLinkError::Unsupported { ai: got, .. }) => assert_eq!(got, ai),
            other => panic!("{compressed}: {other:?}"),
        }
    }
}

#[test]
fn decompression_reports_the_stream_entries() {
    assert_eq!(
        compression::decompress("AQnYUc1gmiCNV4JG"),
        Ok(vec![
            Element::Ai {
                ai: "01".to_owned(),
                value: "05412345000013".to_owned()
            },
            Element::Ai {
                ai: "10".to_owned(),
                value: "ABC123".to_owned()
            },
        ])
    );
}

#[test]
fn optimisation_codes_decode_to_their_ai_sequence() {
    // 0B stands for (01) then (10): the plain stream of /01/.../10/ABC123 with its leading
    // AI byte 0x01 and the (10) byte 0x10 taken out, behind 0x0B, is the same link.
    let link = parse("https://id.gs1.org/01/05412345000013/10/ABC123");
    let optimised = link
        .compressed_path_with(Sequences::Optimised)
        .expect("compresses");
    assert!(optimised.starts_with("/CwnYUc1gm"), "{optimised}");
    assert_eq!(parse(&format!("{HOST}{optimised}")), link);
    assert_eq!(
        compression::decompress(&optimised[1..]).map(|e| e.len()),
        Ok(2)
    );
}

#[test]
fn non_gs1_pairs_in_the_stream_become_query_parameters() {
    // F, a 7-bit key length, the key in base64, encoding 4 (ASCII), a 7-bit length, the value:
    // built here bit by bit after the published /01/05412345000013 stream.
    let mut bits = String::new();
    for c in "AQnYUc1gmg".chars() {
        let i = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .find(c)
            .expect("alphabet");
        bits.push_str(&format!("{i:06b}"));
    }
    bits.truncate(55); // 8 bits of AI 01, 47 bits of GTIN
    bits.push_str("1111");
    bits.push_str(&format!("{:07b}", 8)); // "linkType"
    for c in "linkType".chars() {
        let i = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .find(c)
            .expect("alphabet");
        bits.push_str(&format!("{i:06b}"));
    }
    bits.push_str("100");
    bits.push_str(&format!("{:07b}", 7)); // "gs1:pip"
    for b in "gs1:pip".bytes() {
        bits.push_str(&format!("{b:07b}"));
    }
    while !bits.len().is_multiple_of(6) {
        bits.push('0');
    }
    let segment: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| {
            let i = usize::from_str_radix(std::str::from_utf8(c).expect("ascii"), 2).expect("bits");
            char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i])
        })
        .collect();
    let link = parse(&format!("{HOST}/{segment}"));
    assert_eq!(link.link_type(), Some("gs1:pip"));
    assert_eq!(
        link.to_uri(),
        "https://id.gs1.org/01/05412345000013?linkType=gs1%3Apip"
    );
}

#[test]
fn bad_compressed_input_is_an_error() {
    type Check = fn(&CompressionError) -> bool;
    let cases: &[(&str, Check)] = &[
        // Not base64url (through the low-level decoder; in a URI '.' is just not compressed).
        ("AQnYUc1g.g", |e| {
            matches!(e, CompressionError::NotBase64Url { position: 8, .. })
        }),
        // Truncated: the GTIN needs 47 bits after the AI byte.
        ("AQnYUc1g", |e| {
            matches!(e, CompressionError::Truncated { .. })
        }),
        // Non-zero padding after the last entry.
        ("AQnYUc1gmh", |e| {
            matches!(e, CompressionError::Trailing { .. })
        }),
        // 0xD0: an unallocated code.
        ("0AAAAAAAAA", |e| {
            matches!(e, CompressionError::UnknownCode { .. })
        }),
        // 0x14: no AI starts with 14.
        ("FAAAAAAAAA", |e| {
            matches!(e, CompressionError::UnknownAi { .. })
        }),
        ("", |e| matches!(e, CompressionError::Length { .. })),
    ];
    for (segment, expected) in cases {
        match compression::decompress(segment) {
            Err(e) => assert!(expected(&e), "{segment}: {e:?}"),
            Ok(elements) => panic!("{segment} decoded to {elements:?}"),
        }
    }
}

#[test]
fn a_bad_check_digit_after_decompression_is_refused() {
    // /01/05412345000013 with the GTIN's last digit changed to 4: 5412345000014.
    let link = parse("https://id.gs1.org/01/05412345000013");
    let good = link.compressed_path().expect("compresses");
    assert_eq!(good, "/AQnYUc1gmg");
    // The GTIN field holds 5412345000013 in bits 8..55; adding one makes it 5412345000014.
    let mut bits: Vec<u8> = Vec::new();
    for c in "AQnYUc1gmg".bytes() {
        let i = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .iter()
            .position(|&a| a == c)
            .expect("alphabet");
        for k in (0..6).rev() {
            bits.push(u8::try_from((i >> k) & 1).expect("bit"));
        }
    }
    // Add one to the 47-bit number at bits 8..55.
    let mut carry = 1;
    for b in bits[8..55].iter_mut().rev() {
        let s = *b + carry;
        *b = s % 2;
        carry = s / 2;
    }
    let segment: String = bits
        .chunks(6)
        .map(|c| {
            let i = c.iter().fold(0usize, |acc, &b| acc << 1 | usize::from(b));
            char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i])
        })
        .collect();
    match DigitalLink::parse(&format!("{HOST}/{segment}")) {
        Err(e) => assert_eq!(e.to_string(), "AI (01): GTIN check digit is 4, expected 3"),
        Ok(link) => panic!("{segment} parsed as {link}"),
    }
}

#[test]
fn words_that_are_not_compressed_links_keep_their_old_errors() {
    assert_eq!(
        DigitalLink::parse("https://id.gs1.org/products/shampoo"),
        Err(DigitalLinkError::NoPrimaryKey)
    );
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, n)
        .prop_map(|d| d.into_iter().map(|x| char::from(b'0' + x)).collect())
}

fn cset82(max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = ('0'..='9')
        .chain('A'..='Z')
        .chain('a'..='z')
        .chain("!\"%&'()*+,-./:;<=>?_".chars())
        .collect();
    prop_oneof![
        proptest::collection::vec(proptest::sample::select(chars), 1..=max)
            .prop_map(|v| v.into_iter().collect::<String>()),
        // All digits, with leading zeros: encoding 0 must keep them.
        (1..=max).prop_flat_map(digits),
        proptest::collection::vec(
            proptest::sample::select(b"0123456789abcdef".to_vec()),
            1..=max
        )
        .prop_map(|v| v.into_iter().map(char::from).collect::<String>()),
    ]
}

/// A GTIN-14 with its check digit.
fn gtin() -> impl Strategy<Value = String> {
    digits(13).prop_map(|body| {
        let sum: u32 = body
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
            .sum();
        format!("{body}{}", (10 - sum % 10) % 10)
    })
}

fn link() -> impl Strategy<Value = String> {
    (
        gtin(),
        proptest::option::of(cset82(20)),
        proptest::option::of(cset82(20)),
        proptest::option::of(cset82(20)),
        proptest::option::of((0u8..100, 1u8..13, 1u8..29)),
        proptest::option::of(digits(6)),
        proptest::option::of((1..=8usize).prop_flat_map(digits)),
    )
        .prop_map(|(gtin, cpv, lot, serial, date, weight, count)| {
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                            char::from(b).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect::<String>()
            };
            let mut uri = format!("https://id.gs1.org/01/{gtin}");
            for (ai, v) in [("22", cpv), ("10", lot), ("21", serial)] {
                if let Some(v) = v {
                    uri.push_str(&format!("/{ai}/{}", enc(&v)));
                }
            }
            let mut query = Vec::new();
            if let Some((y, m, d)) = date {
                query.push(format!("17={y:02}{m:02}{d:02}"));
            }
            if let Some(w) = weight {
                query.push(format!("3103={w}"));
            }
            if let Some(c) = count {
                query.push(format!("30={c}"));
            }
            if !query.is_empty() {
                uri.push('?');
                uri.push_str(&query.join("&"));
            }
            uri
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compress_then_decompress_is_the_identity(uri in link(), optimised in any::<bool>()) {
        let link = parse(&uri);
        let sequences = if optimised { Sequences::Optimised } else { Sequences::Plain };
        let path = link.compressed_path_with(sequences).expect("compresses");
        let back = parse(&format!("https://id.gs1.org{path}"));
        prop_assert_eq!(back, link);
    }

    #[test]
    fn whatever_decompresses_is_a_valid_link(segment in "[A-Za-z0-9_-]{1,80}") {
        // Never a panic; and a link that decodes is one the uncompressed parser accepts.
        let decoded = compression::decompress(&segment);
        if let Ok(link) = DigitalLink::parse(&format!("https://id.gs1.org/{segment}")) {
            prop_assert!(decoded.is_ok() || link.gtin().is_some());
            prop_assert_eq!(parse(&link.to_uri()), link);
        }
    }
}
