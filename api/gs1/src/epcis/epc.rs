//! EPC URI -> canonical GS1 Digital Link conversion, and the "constrained canonical" form of a
//! Digital Link URI, as the GS1 event hash needs them (CBV 2.0 §8.9 rules 17 and 18; GS1 Tag
//! Data Standard 2.0 §6 and §7 for the EPC URI schemes; GS1 Digital Link URI Syntax 1.2
//! §4.11 for the canonical form).
//!
//! This is the conversion the hash needs, to the letter of the hash algorithm (including EPC
//! patterns). The crate's [`crate::epc`] converts EPC URIs for joining the trace graph; the two
//! overlap and are to become one, with the behaviour the event hash depends on pinned by the
//! tests below and by the GS1 vectors in `hash.rs`.

/// Why a string is not an EPC URI this module can convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpcError {
    /// Not an `urn:epc:id:`, `urn:epc:class:` or `urn:epc:idpat:` URI of a known scheme.
    #[error("not an EPC URI of a supported scheme: {0}")]
    UnknownScheme(String),
    /// The scheme is known but the parts do not have the lengths and characters it requires.
    #[error("malformed {scheme} EPC URI: {uri}")]
    Malformed {
        /// The EPC scheme, for example `sgtin`.
        scheme: &'static str,
        /// The URI as given.
        uri: String,
    },
}

const ID_HOST: &str = "https://id.gs1.org";

/// Converts an EPC pure identity, EPC class or EPC id pattern URI to its canonical GS1
/// Digital Link URI (`urn:epc:id:sgtin:4012345.011111.9876` ->
/// `https://id.gs1.org/01/04012345111118/21/9876`).
///
/// Note: this minimal converter lives here until the `gs1` module's EPC/Digital Link
/// converter is available; the event hash will then call that one.
pub fn canonical_epc(uri: &str) -> Result<String, EpcError> {
    let unknown = || EpcError::UnknownScheme(uri.to_owned());
    let (kind, rest) = if let Some(rest) = uri.strip_prefix("urn:epc:id:") {
        (Kind::Id, rest)
    } else if let Some(rest) = uri.strip_prefix("urn:epc:class:") {
        (Kind::Class, rest)
    } else if let Some(rest) = uri.strip_prefix("urn:epc:idpat:") {
        (Kind::Pattern, rest)
    } else {
        return Err(unknown());
    };
    let (scheme, body) = rest.split_once(':').ok_or_else(unknown)?;
    let parts: Vec<&str> = body.split('.').collect();
    let scheme = Scheme::find(kind, scheme).ok_or_else(unknown)?;
    scheme.convert(&parts).ok_or_else(|| EpcError::Malformed {
        scheme: scheme.name(),
        uri: uri.to_owned(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Class,
    Pattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sgtin,
    Sscc,
    Sgln,
    Grai,
    Giai,
    Gsrn,
    Gsrnp,
    Gdti,
    Cpi,
    Sgcn,
    Ginc,
    Gsin,
    Itip,
    Upui,
    Pgln,
    Lgtin,
    PatSgtin,
    PatGrai,
    PatGdti,
    PatSgcn,
    PatCpi,
    PatItip,
    PatUpui,
}

impl Scheme {
    fn find(kind: Kind, name: &str) -> Option<Self> {
        Some(match (kind, name) {
            (Kind::Id, "sgtin") => Self::Sgtin,
            (Kind::Id, "sscc") => Self::Sscc,
            (Kind::Id, "sgln") => Self::Sgln,
            (Kind::Id, "grai") => Self::Grai,
            (Kind::Id, "giai") => Self::Giai,
            (Kind::Id, "gsrn") => Self::Gsrn,
            (Kind::Id, "gsrnp") => Self::Gsrnp,
            (Kind::Id, "gdti") => Self::Gdti,
            (Kind::Id, "cpi") => Self::Cpi,
            (Kind::Id, "sgcn") => Self::Sgcn,
            (Kind::Id, "ginc") => Self::Ginc,
            (Kind::Id, "gsin") => Self::Gsin,
            (Kind::Id, "itip") => Self::Itip,
            (Kind::Id, "upui") => Self::Upui,
            (Kind::Id, "pgln") => Self::Pgln,
            (Kind::Class, "lgtin") => Self::Lgtin,
            (Kind::Pattern, "sgtin") => Self::PatSgtin,
            (Kind::Pattern, "grai") => Self::PatGrai,
            (Kind::Pattern, "gdti") => Self::PatGdti,
            (Kind::Pattern, "sgcn") => Self::PatSgcn,
            (Kind::Pattern, "cpi") => Self::PatCpi,
            (Kind::Pattern, "itip") => Self::PatItip,
            (Kind::Pattern, "upui") => Self::PatUpui,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sgtin | Self::PatSgtin => "sgtin",
            Self::Sscc => "sscc",
            Self::Sgln => "sgln",
            Self::Grai | Self::PatGrai => "grai",
            Self::Giai => "giai",
            Self::Gsrn => "gsrn",
            Self::Gsrnp => "gsrnp",
            Self::Gdti | Self::PatGdti => "gdti",
            Self::Cpi | Self::PatCpi => "cpi",
            Self::Sgcn | Self::PatSgcn => "sgcn",
            Self::Ginc => "ginc",
            Self::Gsin => "gsin",
            Self::Itip | Self::PatItip => "itip",
            Self::Upui | Self::PatUpui => "upui",
            Self::Pgln => "pgln",
            Self::Lgtin => "lgtin",
        }
    }

    /// TDS 2.0 §6.3: the URI body split at `.`; returns the Digital Link or `None`.
    fn convert(self, p: &[&str]) -> Option<String> {
        match (self, p) {
            (Self::Sgtin, [cp, item, serial @ ..]) => {
                let serial = join_rest(serial)?;
                Some(format!(
                    "{ID_HOST}/01/{}/21/{}",
                    gtin(cp, item)?,
                    serial_component(&serial, 20)?
                ))
            }
            (Self::Sscc, [cp, serial]) => {
                keyed(cp, serial, 17)?;
                let (ext, rest) = split_first_char(serial)?;
                Some(format!(
                    "{ID_HOST}/00/{}",
                    with_check_digit(&format!("{ext}{cp}{rest}"))
                ))
            }
            (Self::Sgln, [cp, loc, ext @ ..]) => {
                let gln = with_check_digit(&keyed(cp, loc, 12)?);
                let ext = join_rest(ext)?;
                let ext = serial_component(&ext, 20)?;
                if ext == "0" {
                    Some(format!("{ID_HOST}/414/{gln}"))
                } else {
                    Some(format!("{ID_HOST}/414/{gln}/254/{ext}"))
                }
            }
            (Self::Grai, [cp, asset, serial @ ..]) => {
                let body = with_check_digit(&format!("0{}", keyed(cp, asset, 12)?));
                let serial = join_rest(serial)?;
                Some(format!(
                    "{ID_HOST}/8003/{body}{}",
                    serial_component(&serial, 16)?
                ))
            }
            (Self::Giai, [cp, asset @ ..]) => {
                company_prefix(cp)?;
                let asset = join_rest(asset)?;
                let max = 30 - cp.len();
                Some(format!(
                    "{ID_HOST}/8004/{cp}{}",
                    serial_component(&asset, max)?
                ))
            }
            (Self::Gsrn, [cp, service]) => Some(format!(
                "{ID_HOST}/8018/{}",
                with_check_digit(&keyed(cp, service, 17)?)
            )),
            (Self::Gsrnp, [cp, service]) => Some(format!(
                "{ID_HOST}/8017/{}",
                with_check_digit(&keyed(cp, service, 17)?)
            )),
            (Self::Gdti, [cp, doc, serial @ ..]) => {
                let body = with_check_digit(&keyed(cp, doc, 12)?);
                let serial = join_rest(serial)?;
                Some(format!(
                    "{ID_HOST}/253/{body}{}",
                    serial_component(&serial, 17)?
                ))
            }
            (Self::Cpi, [cp, cpref, serial]) => {
                company_prefix(cp)?;
                if cpref.is_empty() || !all_digits(serial) || serial.is_empty() || serial.len() > 12
                {
                    return None;
                }
                Some(format!(
                    "{ID_HOST}/8010/{cp}{}/8011/{serial}",
                    percent_encode_key(cpref)
                ))
            }
            (Self::Sgcn, [cp, coupon, serial]) => {
                let body = with_check_digit(&keyed(cp, coupon, 12)?);
                if !all_digits(serial) || serial.is_empty() || serial.len() > 12 {
                    return None;
                }
                Some(format!("{ID_HOST}/255/{body}{serial}"))
            }
            (Self::Ginc, [cp, consignment @ ..]) => {
                company_prefix(cp)?;
                let consignment = join_rest(consignment)?;
                let max = 30 - cp.len();
                Some(format!(
                    "{ID_HOST}/401/{cp}{}",
                    serial_component(&consignment, max)?
                ))
            }
            (Self::Gsin, [cp, shipper]) => Some(format!(
                "{ID_HOST}/402/{}",
                with_check_digit(&keyed(cp, shipper, 16)?)
            )),
            (Self::Itip, [cp, item, piece, total, serial @ ..]) => {
                two_digit_part(piece)?;
                two_digit_part(total)?;
                let serial = join_rest(serial)?;
                Some(format!(
                    "{ID_HOST}/8006/{}{piece}{total}/21/{}",
                    gtin(cp, item)?,
                    serial_component(&serial, 20)?
                ))
            }
            (Self::Upui, [cp, item, tpx @ ..]) => {
                let tpx = join_rest(tpx)?;
                Some(format!(
                    "{ID_HOST}/01/{}/235/{}",
                    gtin(cp, item)?,
                    serial_component(&tpx, 28)?
                ))
            }
            (Self::Pgln, [cp, party]) => Some(format!(
                "{ID_HOST}/417/{}",
                with_check_digit(&keyed(cp, party, 12)?)
            )),
            (Self::Lgtin, [cp, item, lot @ ..]) => {
                let lot = join_rest(lot)?;
                Some(format!(
                    "{ID_HOST}/01/{}/10/{}",
                    gtin(cp, item)?,
                    serial_component(&lot, 20)?
                ))
            }
            (Self::PatSgtin | Self::PatUpui, [cp, item, "*"]) => {
                Some(format!("{ID_HOST}/01/{}", gtin(cp, item)?))
            }
            (Self::PatGrai, [cp, asset, "*"]) => Some(format!(
                "{ID_HOST}/8003/{}",
                with_check_digit(&format!("0{}", keyed(cp, asset, 12)?))
            )),
            (Self::PatGdti, [cp, doc, "*"]) => Some(format!(
                "{ID_HOST}/253/{}",
                with_check_digit(&keyed(cp, doc, 12)?)
            )),
            (Self::PatSgcn, [cp, coupon, "*"]) => Some(format!(
                "{ID_HOST}/255/{}",
                with_check_digit(&keyed(cp, coupon, 12)?)
            )),
            (Self::PatCpi, [cp, cpref, "*"]) => {
                company_prefix(cp)?;
                if cpref.is_empty() {
                    return None;
                }
                Some(format!("{ID_HOST}/8010/{cp}{}", percent_encode_key(cpref)))
            }
            (Self::PatItip, [cp, item, piece, total, "*"]) => {
                two_digit_part(piece)?;
                two_digit_part(total)?;
                Some(format!("{ID_HOST}/8006/{}{piece}{total}", gtin(cp, item)?))
            }
            _ => None,
        }
    }
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn company_prefix(cp: &str) -> Option<()> {
    ((6..=12).contains(&cp.len()) && all_digits(cp)).then_some(())
}

fn two_digit_part(s: &str) -> Option<()> {
    (s.len() == 2 && all_digits(s)).then_some(())
}

fn split_first_char(s: &str) -> Option<(char, &str)> {
    let mut chars = s.chars();
    chars.next().map(|c| (c, chars.as_str()))
}

/// Company prefix and reference, all digits, together `total` digits long.
fn keyed(cp: &str, reference: &str, total: usize) -> Option<String> {
    company_prefix(cp)?;
    (all_digits(reference) && cp.len() + reference.len() == total)
        .then(|| format!("{cp}{reference}"))
}

/// A GTIN-14 from a company prefix and an indicator-plus-item reference (TDS 2.0 §6.3.1).
fn gtin(cp: &str, item: &str) -> Option<String> {
    keyed(cp, item, 13)?;
    let (indicator, rest) = split_first_char(item)?;
    Some(with_check_digit(&format!("{indicator}{cp}{rest}")))
}

/// Re-joins the parts after the key (serials may contain `.`) and checks their characters.
fn join_rest(parts: &[&str]) -> Option<String> {
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("."))
}

/// TDS 2.0 Table A-1: EPC URI serial characters, written as the Digital Link path segment
/// (GS1 Digital Link 1.2 Table 7-1: `!`, `(`, `)`, `*`, `+`, `,` and `:` are percent-encoded;
/// escapes the EPC URI already carries stay as they are).
fn serial_component(serial: &str, max_chars: usize) -> Option<String> {
    let bytes = serial.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(serial.len());
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push_str(serial.get(i..i + 3)?);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"-._'=;".contains(&b) {
            out.push(char::from(b));
            i += 1;
        } else if b"!()*+,:".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
            i += 1;
        } else {
            return None;
        }
        count += 1;
    }
    (count <= max_chars).then_some(out)
}

fn percent_encode_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '!' | '(' | ')' | '*' | '+' | ',' | ':' => {
                out.push_str(&format!("%{:02X}", u32::from(c)))
            }
            _ => out.push(c),
        }
    }
    out
}

/// Appends the GS1 mod-10 check digit (GS1 General Specifications §7.9.1).
pub fn with_check_digit(digits: &str) -> String {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d.saturating_sub(b'0'));
            if i % 2 == 0 { d * 3 } else { d }
        })
        .sum();
    format!("{digits}{}", (10 - sum % 10) % 10)
}

/// The primary GS1 keys that identify something in a Digital Link path, with their
/// convenience alphas (Digital Link 1.2 §4.8).
const PRIMARY_KEYS: &[(&str, &str)] = &[
    ("00", "sscc"),
    ("01", "gtin"),
    ("253", "gdti"),
    ("255", "gcn"),
    ("401", "ginc"),
    ("402", "gsin"),
    ("414", "gln"),
    ("417", "party"),
    ("8003", "grai"),
    ("8004", "giai"),
    ("8006", "itip"),
    ("8010", "cpid"),
    ("8017", "gsrnp"),
    ("8018", "gsrn"),
];

/// Rule 18 of the event hash: a GS1 Digital Link URI on any domain becomes the constrained
/// canonical form on `https://id.gs1.org` — query string dropped, convenience alphas replaced
/// by AIs, GTINs padded to 14 digits, CPV dropped, and only the finest identification level
/// kept (a serial wins over a lot). `None` if `uri` is not such a Digital Link.
pub fn constrain_digital_link(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let before_query = rest.split(['?', '#']).next().unwrap_or(rest);
    // The path must carry a primary key followed by a value of at least five characters
    // that starts with four digits (the shape the reference implementation recognises).
    let path_start = before_query.find('/')?;
    let segments: Vec<&str> = before_query[path_start + 1..].split('/').collect();
    let key_at = segments.iter().enumerate().position(|(i, seg)| {
        PRIMARY_KEYS
            .iter()
            .any(|(ai, alpha)| seg == ai || seg == alpha)
            && segments
                .get(i + 1)
                .is_some_and(|v| v.len() >= 5 && v.bytes().take(4).all(|b| b.is_ascii_digit()))
    })?;
    let mut path: Vec<String> = segments[key_at..]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| (*s).to_owned())
        .collect();
    // Convenience alphas to AIs, on key and qualifier positions.
    for (i, seg) in path.iter_mut().enumerate() {
        if i % 2 == 0 {
            if let Some((ai, _)) = PRIMARY_KEYS.iter().find(|(_, alpha)| alpha == seg) {
                *seg = (*ai).to_owned();
            } else if let Some(ai) = match seg.as_str() {
                "cpv" => Some("22"),
                "lot" => Some("10"),
                "ser" => Some("21"),
                _ => None,
            } {
                *seg = ai.to_owned();
            }
        }
    }
    if !path.len().is_multiple_of(2) {
        return None;
    }
    if path[0] == "01" {
        let gtin = &path[1];
        let digits = gtin.bytes().take_while(u8::is_ascii_digit).count();
        let padded = match digits {
            14.. => gtin.clone(),
            13 => format!("0{gtin}"),
            12 => format!("00{gtin}"),
            8..=11 => format!("000000{gtin}"),
            _ => gtin.clone(),
        };
        path[1] = padded;
    }
    // Drop the CPV qualifier (22) of a GTIN or ITIP.
    if matches!(path[0].as_str(), "01" | "8006") {
        if let Some(i) = (2..path.len()).step_by(2).find(|i| path[*i] == "22") {
            path.drain(i..i + 2);
        }
        // A serial is finer than a lot: keep only the serial.
        let has_serial = (2..path.len()).step_by(2).any(|i| path[i] == "21");
        if has_serial && let Some(i) = (2..path.len()).step_by(2).find(|i| path[*i] == "10") {
            path.drain(i..i + 2);
        }
    }
    let canonical = format!("{ID_HOST}/{}", path.join("/"));
    is_constrained_form(&path).then_some(canonical)
}

/// The shapes a constrained canonical Digital Link may take (event hash rule 18 (III)).
fn is_constrained_form(path: &[String]) -> bool {
    let s: Vec<&str> = path.iter().map(String::as_str).collect();
    let digits = |v: &str, n: usize| v.len() == n && all_digits(v);
    let ext = |v: &str, max: usize| v.len() <= max && v.bytes().all(is_extension_char);
    match s.as_slice() {
        ["00", v] => digits(v, 18),
        ["01", g] => digits(g, 14),
        ["01", g, "21" | "10", v] => digits(g, 14) && ext(v, 20),
        ["01", g, "235", v] => digits(g, 14) && ext(v, 28),
        ["253", v] => v.len() >= 13 && digits(&v[..13], 13) && ext(&v[13..], 17),
        ["255", v] => v.len() >= 13 && v.len() <= 25 && all_digits(v),
        ["401", v] | ["8004", v] => ext(v, 30),
        ["402", v] => digits(v, 17),
        ["414", v] | ["417", v] => digits(v, 13),
        ["414", v, "254", e] => digits(v, 13) && ext(e, 20),
        ["8003", v] => v.len() >= 14 && digits(&v[..14], 14) && ext(&v[14..], 16),
        ["8006", v] => digits(v, 18),
        ["8006", v, "21" | "10", e] => digits(v, 18) && ext(e, 20),
        ["8010", v] => cpid(v),
        ["8010", v, "8011", n] => cpid(v) && n.len() <= 12 && all_digits(n),
        ["8017", v] | ["8018", v] => digits(v, 18),
        _ => false,
    }
}

fn is_extension_char(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'-' | b'.' | b'0'..=b'9' | b';'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

fn cpid(v: &str) -> bool {
    v.len() <= 30
        && v.bytes()
            .all(|b| matches!(b, b'#' | b'-' | b'/' | b'0'..=b'9' | b'A'..=b'Z'))
}

/// The identifier rule of the event hash: an EPC URI becomes its canonical Digital Link, a
/// Digital Link its constrained canonical form; anything else is `None` (kept as it is).
pub fn hash_identifier(value: &str) -> Option<String> {
    if value.starts_with("urn:epc:") {
        return canonical_epc(value).ok();
    }
    constrain_digital_link(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(canonical_epc(input).as_deref(), Ok(expected), "{input}");
    }

    #[test]
    fn epc_uris_become_canonical_digital_links() {
        check(
            "urn:epc:id:sgtin:4012345.011111.9876",
            "https://id.gs1.org/01/04012345111118/21/9876",
        );
        check(
            "urn:epc:id:sgtin:0614141.107346.2018",
            "https://id.gs1.org/01/10614141073464/21/2018",
        );
        check(
            "urn:epc:id:sscc:4012345.0000000333",
            "https://id.gs1.org/00/040123450000003338",
        );
        check(
            "urn:epc:id:sscc:5200001.0111111146",
            "https://id.gs1.org/00/052000011111111461",
        );
        check(
            "urn:epc:id:sgln:4012345.00011.987",
            "https://id.gs1.org/414/4012345000115/254/987",
        );
        check(
            "urn:epc:id:sgln:4012345.00005.0",
            "https://id.gs1.org/414/4012345000054",
        );
        check(
            "urn:epc:id:pgln:4012345.00000",
            "https://id.gs1.org/417/4012345000009",
        );
        check(
            "urn:epc:id:gdti:4012345.11111.123",
            "https://id.gs1.org/253/4012345111118123",
        );
        check(
            "urn:epc:id:gdti:0614141.00001.1618034",
            "https://id.gs1.org/253/06141410000121618034",
        );
        check(
            "urn:epc:id:gsrn:0614141.0000010253",
            "https://id.gs1.org/8018/061414100000102534",
        );
        check(
            "urn:epc:id:giai:4000001.111",
            "https://id.gs1.org/8004/4000001111",
        );
        check(
            "urn:epc:class:lgtin:4012345.012345.998877",
            "https://id.gs1.org/01/04012345123456/10/998877",
        );
        check(
            "urn:epc:idpat:sgtin:4012345.066666.*",
            "https://id.gs1.org/01/04012345666663",
        );
        check(
            "urn:epc:id:sgtin:4012345.011111.A%2FB",
            "https://id.gs1.org/01/04012345111118/21/A%2FB",
        );
        check(
            "urn:epc:id:sgtin:4012345.011111.a:b",
            "https://id.gs1.org/01/04012345111118/21/a%3Ab",
        );
    }

    #[test]
    fn malformed_epc_uris_are_errors() {
        assert!(matches!(
            canonical_epc("urn:epc:id:sgtin:4012345.0111.9876"),
            Err(EpcError::Malformed { .. })
        ));
        assert!(matches!(
            canonical_epc("urn:epc:id:sscc:4012345.12"),
            Err(EpcError::Malformed { .. })
        ));
        assert!(matches!(
            canonical_epc("urn:epc:id:nope:1.2"),
            Err(EpcError::UnknownScheme(_))
        ));
        assert!(matches!(
            canonical_epc("https://id.gs1.org/01/1"),
            Err(EpcError::UnknownScheme(_))
        ));
        assert!(matches!(
            canonical_epc("urn:epc:id:sgtin:4012345.011111.a b"),
            Err(EpcError::Malformed { .. })
        ));
    }

    fn check_dl(input: &str, expected: Option<&str>) {
        assert_eq!(
            constrain_digital_link(input).as_deref(),
            expected,
            "{input}"
        );
    }

    #[test]
    fn digital_links_are_constrained() {
        check_dl(
            "https://id.gs1.de/00/040123451111111110",
            Some("https://id.gs1.org/00/040123451111111110"),
        );
        check_dl(
            "https://id.gs1.de/01/04012345999990/21/XYZ-1234",
            Some("https://id.gs1.org/01/04012345999990/21/XYZ-1234"),
        );
        check_dl(
            "https://example.com/253/4012345000054987",
            Some("https://id.gs1.org/253/4012345000054987"),
        );
        check_dl(
            "https://example.org/8004/401234599999",
            Some("https://id.gs1.org/8004/401234599999"),
        );
        check_dl(
            "https://example.com/gtin/4012345111118?linkType=all",
            Some("https://id.gs1.org/01/04012345111118"),
        );
        check_dl(
            "https://example.com/01/04012345111118/22/A1/10/L1/21/S1",
            Some("https://id.gs1.org/01/04012345111118/21/S1"),
        );
        check_dl("https://www.ncbi.nlm.nih.gov/taxonomy/1126011", None);
        check_dl("https://example.com/01/123", None);
        check_dl("urn:epc:id:sgtin:4012345.011111.9876", None);
    }

    #[test]
    fn check_digits() {
        assert_eq!(with_check_digit("0401234511111"), "04012345111118");
        assert_eq!(with_check_digit("401234500011"), "4012345000115");
    }
}
