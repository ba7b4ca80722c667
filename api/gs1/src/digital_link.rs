//! GS1 Digital Link URIs, uncompressed form (GS1 Digital Link URI syntax 1.2, with the
//! qualifier paths of 1.4): `https://host[/prefix...]/01/{gtin}[/22/{cpv}][/10/{lot}][/21/{serial}]
//! [?17=YYMMDD&...&linkType=...]`, and the other primary keys served here: `/00/{sscc}`,
//! `/414/{gln}[/254/{ext}]`, `/8003/{grai}` and `/8018/{gsrn}`.
//!
//! Parsing follows the standard's structure: the primary key is the rightmost known key AI
//! that the remaining path elements pair up behind (so a resolver may sit under any path
//! prefix), key qualifiers must follow in the order the key defines (01: 22 → 10 → 21;
//! 414: 254) with no repeats, data attributes live in the query string, and query parameters
//! whose names are not all digits (`linkType`, `context`, ...) are kept apart, in order. Every
//! value is percent-decoded, then checked against its AI's format and check digit.
//!
//! Formatting is canonical: GTINs as 14 digits, values percent-encoded with upper-case hex,
//! attributes in AI order before the other parameters. [`DigitalLink::to_canonical_uri`] writes
//! the form on GS1's canonical host `id.gs1.org` (GS1 Digital Link URI syntax 1.2).
//!
//! The compressed form (one base64url path element after the stem, GS1 Digital Link 1.2
//! compression, see [`compression`]) is told apart by the standard's rule: the path has no
//! primary key AI at a pair boundary and its last element is in the base64url alphabet. It is
//! decompressed and then checked exactly like the uncompressed form;
//! [`DigitalLink::compressed_path`] writes it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::ai::{
    self, AiRole, AiValueError, ConsumerProductVariant, GlnExtension, Gs1Date, Lot, Serial,
};
use super::keys::{Gln, Grai, Gsrn, Gtin, KeyError, Sscc};
use super::percent::{self, Component, PercentError};

pub mod compression;

use compression::{CompressionError, Element, Sequences};

/// Longest Digital Link URI accepted, in bytes. QR codes hold at most a few thousand bytes;
/// anything longer is not a label.
pub const DIGITAL_LINK_BYTES_MAX: usize = 4096;
/// Most query parameters accepted (data attributes and others together).
pub const QUERY_PARAMS_MAX: usize = 32;
/// GS1's canonical resolver host, used by [`DigitalLink::to_canonical_uri`].
pub const CANONICAL_HOST: &str = "id.gs1.org";

/// The identification part of a Digital Link: a primary key with its key qualifiers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrimaryKey {
    /// AI (01) GTIN with its optional qualifiers (22) CPV, (10) batch/lot, (21) serial.
    Gtin {
        /// The GTIN.
        gtin: Gtin,
        /// AI (22).
        cpv: Option<ConsumerProductVariant>,
        /// AI (10).
        lot: Option<Lot>,
        /// AI (21).
        serial: Option<Serial>,
    },
    /// AI (00) SSCC.
    Sscc(Sscc),
    /// AI (414) GLN of a physical location with its optional (254) extension.
    Gln {
        /// The GLN.
        gln: Gln,
        /// AI (254).
        extension: Option<GlnExtension>,
    },
    /// AI (8003) GRAI (its serial is part of the value).
    Grai(Grai),
    /// AI (8018) GSRN of a service recipient.
    Gsrn(Gsrn),
}

impl PrimaryKey {
    /// A GTIN with no qualifiers.
    pub fn gtin(gtin: Gtin) -> Self {
        Self::Gtin {
            gtin,
            cpv: None,
            lot: None,
            serial: None,
        }
    }

    /// The AI of the key.
    pub fn ai(&self) -> &'static str {
        match self {
            Self::Gtin { .. } => "01",
            Self::Sscc(_) => "00",
            Self::Gln { .. } => "414",
            Self::Grai(_) => "8003",
            Self::Gsrn(_) => "8018",
        }
    }

    /// The canonical path: `/01/{gtin14}[/22/..][/10/..][/21/..]`, values percent-encoded.
    pub fn path(&self) -> String {
        let mut out = String::new();
        let mut push = |ai: &str, value: &str| {
            out.push('/');
            out.push_str(ai);
            out.push('/');
            out.push_str(&percent::encode(value));
        };
        match self {
            Self::Gtin {
                gtin,
                cpv,
                lot,
                serial,
            } => {
                push("01", &gtin.digits());
                if let Some(v) = cpv {
                    push(ConsumerProductVariant::AI, v.as_str());
                }
                if let Some(v) = lot {
                    push(Lot::AI, v.as_str());
                }
                if let Some(v) = serial {
                    push(Serial::AI, v.as_str());
                }
            }
            Self::Sscc(sscc) => push("00", &sscc.digits()),
            Self::Gln { gln, extension } => {
                push("414", &gln.digits());
                if let Some(v) = extension {
                    push(GlnExtension::AI, v.as_str());
                }
            }
            Self::Grai(grai) => push("8003", &grai.to_string()),
            Self::Gsrn(gsrn) => push("8018", &gsrn.digits()),
        }
        out
    }

    /// The key qualifiers this key accepts, in the order they must appear.
    fn qualifier_order(ai: &str) -> &'static [&'static str] {
        match ai {
            "01" => &["22", "10", "21"],
            "414" => &["254"],
            _ => &[],
        }
    }

    /// Qualifiers the standard allows after this key that are not served here.
    fn unsupported_qualifiers(ai: &str) -> &'static [&'static str] {
        match ai {
            "01" => &["235"],
            "8018" => &["8019"],
            _ => &[],
        }
    }
}

/// Scheme, host and path prefix a Digital Link was found under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UriStem {
    https: bool,
    host: String,
    prefix: Vec<String>,
}

impl UriStem {
    /// An `https` stem on `host` with no path prefix. The host is checked like a parsed one.
    pub fn https(host: &str) -> Result<Self, DigitalLinkError> {
        Ok(Self {
            https: true,
            host: check_host(host)?,
            prefix: Vec::new(),
        })
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host (lower case), with its port if one was given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path segments before the primary key, as received (still percent-encoded).
    pub fn prefix(&self) -> &[String] {
        &self.prefix
    }
}

impl fmt::Display for UriStem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        for seg in &self.prefix {
            write!(f, "/{seg}")?;
        }
        Ok(())
    }
}

/// A parsed, validated GS1 Digital Link URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitalLink {
    stem: Option<UriStem>,
    key: PrimaryKey,
    attributes: BTreeMap<String, String>,
    params: Vec<(String, String)>,
}

/// Why a string is not a GS1 Digital Link URI this resolver serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigitalLinkError {
    /// Longer than [`DIGITAL_LINK_BYTES_MAX`].
    #[error("the URI is {got} bytes long; at most {max} are accepted")]
    TooLong {
        /// Its length.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// Not an `http://` or `https://` URI.
    #[error("a GS1 Digital Link URI starts with https:// or http://")]
    NotHttp,
    /// The host is empty or has characters a host cannot have (or user information).
    #[error("the host {0:?} is not a valid host name")]
    BadHost(String),
    /// No GS1 primary key in the path.
    #[error(
        "no GS1 primary key in the path; expected e.g. /01/{{gtin}}[/10/{{lot}}][/21/{{serial}}]"
    )]
    NoPrimaryKey,
    /// A compressed Digital Link that does not decompress.
    #[error("the path looks like a compressed GS1 Digital Link URI but does not decompress: {0}")]
    Compressed(#[from] CompressionError),
    /// A compressed Digital Link carrying two primary keys.
    #[error("the compressed link carries two primary keys, ({first}) and ({second})")]
    TwoPrimaryKeys {
        /// The first key's AI.
        first: String,
        /// The second key's AI.
        second: String,
    },
    /// An alphabetic AI short name from GS1 Digital Link 1.0/1.1.
    #[error(
        "alphabetic AI short names like {name:?} are not part of GS1 Digital Link 1.2; use the numeric AI ({ai})"
    )]
    ShortName {
        /// The short name found.
        name: String,
        /// Its numeric AI.
        ai: &'static str,
    },
    /// A primary key or qualifier that is valid GS1 but not served here.
    #[error("AI ({ai}) {name} is valid in a GS1 Digital Link but not served by this resolver")]
    Unsupported {
        /// The AI.
        ai: String,
        /// What it is.
        name: &'static str,
    },
    /// An AI this resolver does not know.
    #[error("({ai}) is not a GS1 Application Identifier this resolver knows")]
    UnknownAi {
        /// The AI.
        ai: String,
    },
    /// A data attribute in the path.
    #[error("AI ({ai}) is a data attribute; it belongs in the query string (?{ai}=...)")]
    AttributeInPath {
        /// The AI.
        ai: String,
    },
    /// An AI in the path that does not qualify this primary key.
    #[error("AI ({ai}) is not a key qualifier of AI ({key})")]
    NotAQualifier {
        /// The AI found.
        ai: String,
        /// The primary key's AI.
        key: &'static str,
    },
    /// Qualifiers out of the standard's order.
    #[error("AI ({ai}) must come before AI ({after}) in the path")]
    QualifierOrder {
        /// The AI found too late.
        ai: String,
        /// The AI it must precede.
        after: &'static str,
    },
    /// The same AI twice.
    #[error("AI ({ai}) appears more than once")]
    DuplicateAi {
        /// The AI.
        ai: String,
    },
    /// An AI at the end of the path with no value after it.
    #[error("AI ({ai}) at the end of the path has no value")]
    MissingValue {
        /// The AI.
        ai: String,
    },
    /// An empty path segment (`//` or a trailing `/`).
    #[error("the path has an empty segment ('//' or a trailing '/')")]
    EmptySegment,
    /// A primary key or qualifier in the query string.
    #[error("AI ({ai}) identifies the item; it belongs in the path, not the query string")]
    KeyInQuery {
        /// The AI.
        ai: String,
    },
    /// Too many query parameters.
    #[error("more than {max} query parameters")]
    TooManyParams {
        /// The limit.
        max: usize,
    },
    /// A component does not percent-decode.
    #[error("{part}: {source}")]
    Percent {
        /// Which part, in words.
        part: String,
        /// The decoding error.
        #[source]
        source: PercentError,
    },
    /// A primary key value is wrong (check digit, length, characters).
    #[error("AI ({ai}): {source}")]
    Key {
        /// The AI.
        ai: &'static str,
        /// What is wrong.
        #[source]
        source: KeyError,
    },
    /// A qualifier or attribute value is wrong.
    #[error(transparent)]
    Value(#[from] AiValueError),
}

/// Alphabetic short names of GS1 Digital Link 1.0/1.1 (removed in 1.2), with their AIs.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("gtin", "01"),
    ("cpv", "22"),
    ("lot", "10"),
    ("ser", "21"),
    ("sscc", "00"),
    ("gln", "414"),
    ("glnx", "254"),
    ("grai", "8003"),
    ("gsrn", "8018"),
];

impl DigitalLink {
    /// A link with this key, no stem (written on `id.gs1.org`), no query.
    pub fn new(key: PrimaryKey) -> Self {
        Self {
            stem: None,
            key,
            attributes: BTreeMap::new(),
            params: Vec::new(),
        }
    }

    /// Parses a full URI.
    pub fn parse(uri: &str) -> Result<Self, DigitalLinkError> {
        if uri.len() > DIGITAL_LINK_BYTES_MAX {
            return Err(DigitalLinkError::TooLong {
                got: uri.len(),
                max: DIGITAL_LINK_BYTES_MAX,
            });
        }
        let (scheme, rest) = uri.split_once("://").ok_or(DigitalLinkError::NotHttp)?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(DigitalLinkError::NotHttp);
        };
        // A fragment never reaches a resolver (RFC 3986 §3.5); it carries no GS1 data.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        let host = check_host(authority)?;
        let (prefix, mut link) = Self::parse_parts(path, query)?;
        link.stem = Some(UriStem {
            https,
            host,
            prefix,
        });
        Ok(link)
    }

    /// Parses the path (starting with `/`) and raw query (without `?`) of a request that
    /// reached this resolver; the stem is left unset. Any path prefix before the primary key
    /// is dropped: the HTTP layer knows where it mounted the resolver.
    pub fn parse_path_and_query(path: &str, query: Option<&str>) -> Result<Self, DigitalLinkError> {
        let len = path.len() + query.map_or(0, str::len);
        if len > DIGITAL_LINK_BYTES_MAX {
            return Err(DigitalLinkError::TooLong {
                got: len,
                max: DIGITAL_LINK_BYTES_MAX,
            });
        }
        Self::parse_parts(path, query).map(|(_, link)| link)
    }

    fn parse_parts(
        path: &str,
        query: Option<&str>,
    ) -> Result<(Vec<String>, Self), DigitalLinkError> {
        let (prefix, mut link) = match parse_path(path)? {
            ParsedPath::Uncompressed(prefix, key) => (prefix, Self::new(key)),
            ParsedPath::Compressed(prefix, segment) => (
                prefix,
                Self::from_elements(compression::decompress(segment)?)?,
            ),
        };
        if let Some(q) = query {
            link.parse_query(q)?;
        }
        if link.attributes.len() + link.params.len() > QUERY_PARAMS_MAX {
            return Err(DigitalLinkError::TooManyParams {
                max: QUERY_PARAMS_MAX,
            });
        }
        Ok((prefix, link))
    }

    /// Builds a link from the entries of a compressed one: exactly one primary key, its
    /// qualifiers (each once, any order: the stream sorts them), data attributes and other
    /// parameters, every value checked as if it came uncompressed.
    fn from_elements(elements: Vec<Element>) -> Result<Self, DigitalLinkError> {
        let mut key_at: Option<usize> = None;
        for (i, e) in elements.iter().enumerate() {
            if let Element::Ai { ai, .. } = e
                && is_primary_key_ai(ai)
            {
                if let Some(first) = key_at.and_then(|k| match &elements[k] {
                    Element::Ai { ai, .. } => Some(ai.clone()),
                    Element::Other { .. } => None,
                }) {
                    return Err(DigitalLinkError::TwoPrimaryKeys {
                        first,
                        second: ai.clone(),
                    });
                }
                key_at = Some(i);
            }
        }
        let Some(Element::Ai {
            ai: key_ai,
            value: key_value,
        }) = key_at.map(|k| &elements[k])
        else {
            return Err(DigitalLinkError::NoPrimaryKey);
        };
        let mut link = Self::new(parse_primary_key(key_ai, key_value)?);
        let static_key_ai = link.key.ai();
        let order = PrimaryKey::qualifier_order(key_ai);
        let mut seen: Vec<&str> = Vec::new();
        for (i, e) in elements.iter().enumerate() {
            match e {
                _ if Some(i) == key_at => {}
                Element::Ai { ai, value } => match ai::lookup(ai).map(|s| s.role) {
                    Some(AiRole::Qualifier) => {
                        if !order.contains(&ai.as_str()) {
                            return Err(misplaced_ai(ai, key_ai, static_key_ai));
                        }
                        if seen.contains(&ai.as_str()) {
                            return Err(DigitalLinkError::DuplicateAi { ai: ai.clone() });
                        }
                        seen.push(ai);
                        set_qualifier(&mut link.key, ai, value)?;
                    }
                    _ => link.insert_attribute(ai.clone(), value.clone())?,
                },
                Element::Other { key, value } => {
                    if link.attributes.len() + link.params.len() >= QUERY_PARAMS_MAX {
                        return Err(DigitalLinkError::TooManyParams {
                            max: QUERY_PARAMS_MAX,
                        });
                    }
                    link.params.push((key.clone(), value.clone()));
                }
            }
        }
        Ok(link)
    }

    /// The compressed path element (with its leading `/`) of the primary key, its qualifiers
    /// and data attributes, written as GS1's toolkit writes it with optimisations off. The
    /// non-GS1 parameters are not part of it: [`DigitalLink::to_compressed_uri`] keeps them in
    /// the query string.
    pub fn compressed_path(&self) -> Result<String, DigitalLinkError> {
        self.compressed_path_with(Sequences::Plain)
    }

    /// [`DigitalLink::compressed_path`], choosing whether to use the optimisation codes.
    pub fn compressed_path_with(&self, sequences: Sequences) -> Result<String, DigitalLinkError> {
        let mut elements: Vec<(&str, String)> = Vec::new();
        match &self.key {
            PrimaryKey::Gtin {
                gtin,
                cpv,
                lot,
                serial,
            } => {
                elements.push(("01", gtin.digits()));
                if let Some(v) = cpv {
                    elements.push((ConsumerProductVariant::AI, v.as_str().to_owned()));
                }
                if let Some(v) = lot {
                    elements.push((Lot::AI, v.as_str().to_owned()));
                }
                if let Some(v) = serial {
                    elements.push((Serial::AI, v.as_str().to_owned()));
                }
            }
            PrimaryKey::Sscc(sscc) => elements.push(("00", sscc.digits())),
            PrimaryKey::Gln { gln, extension } => {
                elements.push(("414", gln.digits()));
                if let Some(v) = extension {
                    elements.push((GlnExtension::AI, v.as_str().to_owned()));
                }
            }
            PrimaryKey::Grai(grai) => elements.push(("8003", grai.to_string())),
            PrimaryKey::Gsrn(gsrn) => elements.push(("8018", gsrn.digits())),
        }
        for (k, v) in &self.attributes {
            elements.push((k.as_str(), v.clone()));
        }
        let pairs: Vec<(&str, &str)> = elements.iter().map(|(a, v)| (*a, v.as_str())).collect();
        Ok(format!("/{}", compression::compress(&pairs, sequences)?))
    }

    /// The compressed URI under the link's stem (or `https://id.gs1.org`), the non-GS1
    /// parameters in the query string.
    pub fn to_compressed_uri(&self) -> Result<String, DigitalLinkError> {
        let stem = match &self.stem {
            Some(stem) => stem.to_string(),
            None => format!("https://{CANONICAL_HOST}"),
        };
        let query = self
            .params
            .iter()
            .map(|(k, v)| format!("{}={}", percent::encode(k), percent::encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        Ok(join(&stem, &self.compressed_path()?, &query))
    }

    fn parse_query(&mut self, query: &str) -> Result<(), DigitalLinkError> {
        let mut count = 0;
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            count += 1;
            if count > QUERY_PARAMS_MAX {
                return Err(DigitalLinkError::TooManyParams {
                    max: QUERY_PARAMS_MAX,
                });
            }
            let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = decode(raw_name, Component::Query, "query parameter name")?;
            let value = decode(raw_value, Component::Query, "query parameter value")?;
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                self.insert_attribute(name, value)?;
            } else {
                self.params.push((name, value));
            }
        }
        Ok(())
    }

    fn insert_attribute(&mut self, code: String, value: String) -> Result<(), DigitalLinkError> {
        let spec =
            ai::lookup(&code).ok_or_else(|| DigitalLinkError::UnknownAi { ai: code.clone() })?;
        if spec.role != AiRole::Attribute {
            return Err(DigitalLinkError::KeyInQuery { ai: code });
        }
        ai::validate_attribute(&code, &spec, &value)?;
        if self.attributes.contains_key(&code) {
            return Err(DigitalLinkError::DuplicateAi { ai: code });
        }
        self.attributes.insert(code, value);
        Ok(())
    }

    /// Adds a data attribute (AI digits and decoded value), validated like a parsed one.
    pub fn with_attribute(mut self, code: &str, value: &str) -> Result<Self, DigitalLinkError> {
        self.insert_attribute(code.to_owned(), value.to_owned())?;
        Ok(self)
    }

    /// Adds a YYMMDD data attribute such as (17) expiration date.
    pub fn with_date(mut self, attribute: DateAttribute, date: Gs1Date) -> Self {
        self.attributes
            .insert(attribute.ai().to_owned(), date.to_string());
        self
    }

    /// Adds a non-GS1 query parameter (e.g. `linkType`). Names that are all digits are AIs:
    /// use [`DigitalLink::with_attribute`].
    pub fn with_param(mut self, name: &str, value: &str) -> Result<Self, DigitalLinkError> {
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return self.with_attribute(name, value);
        }
        if self.attributes.len() + self.params.len() >= QUERY_PARAMS_MAX {
            return Err(DigitalLinkError::TooManyParams {
                max: QUERY_PARAMS_MAX,
            });
        }
        self.params.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Puts the link under `stem` (scheme, host, path prefix).
    pub fn with_stem(mut self, stem: UriStem) -> Self {
        self.stem = Some(stem);
        self
    }

    /// The stem the link was parsed under, if it came with one.
    pub fn stem(&self) -> Option<&UriStem> {
        self.stem.as_ref()
    }

    /// The primary key and its qualifiers.
    pub fn key(&self) -> &PrimaryKey {
        &self.key
    }

    /// The GTIN, if the primary key is one.
    pub fn gtin(&self) -> Option<Gtin> {
        match &self.key {
            PrimaryKey::Gtin { gtin, .. } => Some(*gtin),
            _ => None,
        }
    }

    /// The batch/lot (10), if any.
    pub fn lot(&self) -> Option<&Lot> {
        match &self.key {
            PrimaryKey::Gtin { lot, .. } => lot.as_ref(),
            _ => None,
        }
    }

    /// The serial (21), if any.
    pub fn serial(&self) -> Option<&Serial> {
        match &self.key {
            PrimaryKey::Gtin { serial, .. } => serial.as_ref(),
            _ => None,
        }
    }

    /// The data attributes, `(AI, decoded value)`, in AI order.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The decoded value of data attribute `code`.
    pub fn attribute(&self, code: &str) -> Option<&str> {
        self.attributes.get(code).map(String::as_str)
    }

    /// A YYMMDD attribute, already validated.
    pub fn date(&self, attribute: DateAttribute) -> Option<Gs1Date> {
        self.attribute(attribute.ai())
            .and_then(|v| Gs1Date::parse(v).ok())
    }

    /// The non-GS1 query parameters, decoded, in the order given.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The first non-GS1 query parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `linkType` (e.g. `all`, `gs1:pip`), which GS1-conformant resolvers act on.
    pub fn link_type(&self) -> Option<&str> {
        self.param("linkType")
    }

    /// The canonical path: primary key and qualifiers, percent-encoded, no prefix.
    pub fn path(&self) -> String {
        self.key.path()
    }

    /// The query string (without `?`): data attributes in AI order, then the other
    /// parameters in the order given. Empty if there are none.
    pub fn query(&self) -> String {
        self.query_with(true)
    }

    fn query_with(&self, params: bool) -> String {
        let attributes = self.attributes.iter();
        let others = self.params.iter().filter(|_| params).map(|(k, v)| (k, v));
        attributes
            .chain(others)
            .map(|(k, v)| format!("{}={}", percent::encode(k), percent::encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The URI under its own stem (or `https://id.gs1.org` if it has none), formatted
    /// canonically.
    pub fn to_uri(&self) -> String {
        let stem = match &self.stem {
            Some(stem) => stem.to_string(),
            None => format!("https://{CANONICAL_HOST}"),
        };
        join(&stem, &self.path(), &self.query())
    }

    /// The canonical GS1 Digital Link URI: `https://id.gs1.org`, no prefix, GTIN-14, the data
    /// attributes in AI order, no non-GS1 parameters.
    pub fn to_canonical_uri(&self) -> String {
        join(
            &format!("https://{CANONICAL_HOST}"),
            &self.path(),
            &self.query_with(false),
        )
    }
}

fn join(stem: &str, path: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{stem}{path}")
    } else {
        format!("{stem}{path}?{query}")
    }
}

/// The YYMMDD data attributes a traceability link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateAttribute {
    /// AI (11).
    Production,
    /// AI (13).
    Packaging,
    /// AI (15).
    BestBefore,
    /// AI (16).
    SellBy,
    /// AI (17).
    Expiration,
}

impl DateAttribute {
    /// The AI digits.
    pub fn ai(self) -> &'static str {
        match self {
            Self::Production => "11",
            Self::Packaging => "13",
            Self::BestBefore => "15",
            Self::SellBy => "16",
            Self::Expiration => "17",
        }
    }
}

fn decode(raw: &str, component: Component, part: &str) -> Result<String, DigitalLinkError> {
    percent::decode(raw, component).map_err(|source| DigitalLinkError::Percent {
        part: part.to_owned(),
        source,
    })
}

fn check_host(authority: &str) -> Result<String, DigitalLinkError> {
    let ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    if ok {
        Ok(authority.to_ascii_lowercase())
    } else {
        Err(DigitalLinkError::BadHost(authority.to_owned()))
    }
}

/// A heuristic for the compressed form: one path element of base64url characters, mixing
/// letter cases or letters and digits, long enough to hold a key (a GTIN alone compresses to
/// 10 characters, e.g. `ARHKVAdpQg`).
fn looks_compressed(segment: &str) -> bool {
    segment.len() >= 10
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && segment.bytes().any(|b| b.is_ascii_uppercase())
        && segment
            .bytes()
            .any(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_primary_key_ai(segment: &str) -> bool {
    ai::lookup(segment).is_some_and(|s| s.role == AiRole::PrimaryKey)
}

/// What a path holds: a primary key with its qualifiers, or a compressed link.
enum ParsedPath<'a> {
    Uncompressed(Vec<String>, PrimaryKey),
    Compressed(Vec<String>, &'a str),
}

fn is_base64url(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_path(path: &str) -> Result<ParsedPath<'_>, DigitalLinkError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(DigitalLinkError::NoPrimaryKey);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    if n > 1 && segments.iter().any(|s| s.is_empty()) {
        return Err(DigitalLinkError::EmptySegment);
    }
    // The path ends in (AI, value) pairs; the primary key is the rightmost key AI at a pair
    // boundary. Everything before it is the resolver's own prefix.
    let start = (0..n)
        .rev()
        .filter(|i| (n - i).is_multiple_of(2))
        .find(|&i| is_primary_key_ai(segments[i]));
    let Some(start) = start else {
        if let Some((name, ai)) = segments.iter().find_map(|s| {
            SHORT_NAMES
                .iter()
                .find(|(short, _)| short == s)
                .map(|(short, ai)| (*short, *ai))
        }) {
            return Err(DigitalLinkError::ShortName {
                name: name.to_owned(),
                ai,
            });
        }
        if let Some(last) = segments.last() {
            // GS1 Digital Link 1.2 compression: the stem, then one base64url element that is
            // not a primary key AI. A word such as `shampoo` is base64url too: it counts as
            // compressed only if it decompresses or looks like compressed data.
            if is_base64url(last)
                && (looks_compressed(last) || compression::decompress(last).is_ok())
            {
                let prefix = segments[..n - 1].iter().map(|s| (*s).to_owned()).collect();
                return Ok(ParsedPath::Compressed(prefix, last));
            }
            // An AI with its value missing: `/01/{gtin}/10`.
            let key_before = (0..n - 1)
                .filter(|i| (n - 1 - i).is_multiple_of(2))
                .any(|i| is_primary_key_ai(segments[i]));
            if key_before && ai::lookup(last).is_some() {
                return Err(DigitalLinkError::MissingValue {
                    ai: (*last).to_owned(),
                });
            }
        }
        return Err(DigitalLinkError::NoPrimaryKey);
    };
    for seg in &segments[..start] {
        decode(seg, Component::PathSegment, "path prefix")?;
    }
    let prefix = segments[..start].iter().map(|s| (*s).to_owned()).collect();
    let key_ai = segments[start];
    let key_value = decode(
        segments[start + 1],
        Component::PathSegment,
        "primary key value",
    )?;
    let mut key = parse_primary_key(key_ai, &key_value)?;
    let order = PrimaryKey::qualifier_order(key_ai);
    let static_key_ai = key.ai();
    let mut last: Option<usize> = None;
    for pair in segments[start + 2..].chunks(2) {
        let [ai, raw] = pair else {
            return Err(DigitalLinkError::NoPrimaryKey);
        };
        let Some(position) = order.iter().position(|q| q == ai) else {
            return Err(misplaced_ai(ai, key_ai, static_key_ai));
        };
        match last {
            Some(l) if l == position => {
                return Err(DigitalLinkError::DuplicateAi {
                    ai: (*ai).to_owned(),
                });
            }
            Some(l) if position < l => {
                return Err(DigitalLinkError::QualifierOrder {
                    ai: (*ai).to_owned(),
                    after: order[l],
                });
            }
            _ => {}
        }
        last = Some(position);
        let value = decode(raw, Component::PathSegment, "key qualifier value")?;
        set_qualifier(&mut key, ai, &value)?;
    }
    Ok(ParsedPath::Uncompressed(prefix, key))
}

fn misplaced_ai(ai: &str, key_ai: &str, static_key_ai: &'static str) -> DigitalLinkError {
    if PrimaryKey::unsupported_qualifiers(key_ai).contains(&ai) {
        let name = ai::lookup(ai).map_or("key qualifier", |s| s.name);
        return DigitalLinkError::Unsupported {
            ai: ai.to_owned(),
            name,
        };
    }
    match ai::lookup(ai) {
        None => DigitalLinkError::UnknownAi { ai: ai.to_owned() },
        Some(spec) if spec.role == AiRole::Attribute => {
            DigitalLinkError::AttributeInPath { ai: ai.to_owned() }
        }
        Some(_) => DigitalLinkError::NotAQualifier {
            ai: ai.to_owned(),
            key: static_key_ai,
        },
    }
}

fn parse_primary_key(ai: &str, value: &str) -> Result<PrimaryKey, DigitalLinkError> {
    fn key<T: FromStr<Err = KeyError>>(ai: &'static str, v: &str) -> Result<T, DigitalLinkError> {
        v.parse()
            .map_err(|source| DigitalLinkError::Key { ai, source })
    }
    match ai {
        "01" => Ok(PrimaryKey::gtin(key("01", value)?)),
        "00" => Ok(PrimaryKey::Sscc(key("00", value)?)),
        "414" => Ok(PrimaryKey::Gln {
            gln: key("414", value)?,
            extension: None,
        }),
        "8003" => Ok(PrimaryKey::Grai(key("8003", value)?)),
        "8018" => Ok(PrimaryKey::Gsrn(key("8018", value)?)),
        other => Err(DigitalLinkError::Unsupported {
            ai: other.to_owned(),
            name: ai::lookup(other).map_or("primary key", |s| s.name),
        }),
    }
}

fn set_qualifier(key: &mut PrimaryKey, ai: &str, value: &str) -> Result<(), DigitalLinkError> {
    match (key, ai) {
        (PrimaryKey::Gtin { cpv, .. }, "22") => *cpv = Some(ConsumerProductVariant::new(value)?),
        (PrimaryKey::Gtin { lot, .. }, "10") => *lot = Some(Lot::new(value)?),
        (PrimaryKey::Gtin { serial, .. }, "21") => *serial = Some(Serial::new(value)?),
        (PrimaryKey::Gln { extension, .. }, "254") => {
            *extension = Some(GlnExtension::new(value)?);
        }
        (key, other) => {
            return Err(DigitalLinkError::NotAQualifier {
                ai: other.to_owned(),
                key: key.ai(),
            });
        }
    }
    Ok(())
}

impl FromStr for DigitalLink {
    type Err = DigitalLinkError;

    fn from_str(s: &str) -> Result<Self, DigitalLinkError> {
        Self::parse(s)
    }
}

impl fmt::Display for DigitalLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

super::serde_via_str!(DigitalLink);

#[cfg(test)]
mod tests {
    //! Known answers from the GS1 Digital Link standard 1.2 and its tools: the example keys
    //! 09520123456788 / 9520123456788 / 09521234543213 / 106141411234567897, the bwipp wiki's
    //! Digital Link examples (which follow the standard's), the GS1 Digital Link toolkit's
    //! `ABC%26%2B123?3103=000189&3923=2172` example, and the compressed example
    //! `https://id.gs1.org/ARHKVAdpQg` (= /01/09780345418913) from GS1's compression tools
    //! (more compressed vectors in `tests/digital_link_compression.rs`).

    use super::*;

    fn parse(uri: &str) -> DigitalLink {
        match DigitalLink::parse(uri) {
            Ok(link) => link,
            Err(e) => panic!("{uri}: {e}"),
        }
    }

    fn err(uri: &str) -> String {
        match DigitalLink::parse(uri) {
            Ok(link) => panic!("{uri} parsed as {link}"),
            Err(e) => e.to_string(),
        }
    }

    /// Parses `uri` and checks the canonical output under its own stem.
    fn round_trip(uri: &str, expected: &str) {
        assert_eq!(parse(uri).to_uri(), expected, "{uri}");
        assert_eq!(
            parse(expected).to_uri(),
            expected,
            "{expected} is canonical"
        );
    }

    #[test]
    fn standard_examples_parse_and_format_canonically() {
        round_trip(
            "https://id.gs1.org/01/09521234543213",
            "https://id.gs1.org/01/09521234543213",
        );
        round_trip(
            "https://id.gs1.org/01/09521234543213/10/ABC123/21/12345",
            "https://id.gs1.org/01/09521234543213/10/ABC123/21/12345",
        );
        round_trip(
            "https://id.gs1.org/01/09521234543213/10/ABC123?17=261231",
            "https://id.gs1.org/01/09521234543213/10/ABC123?17=261231",
        );
        round_trip(
            "https://id.gs1.org/00/106141411234567897",
            "https://id.gs1.org/00/106141411234567897",
        );
        round_trip(
            "https://example.com/products/01/09521234543213",
            "https://example.com/products/01/09521234543213",
        );
        round_trip(
            "https://example.com/01/09520123456788/22/2A/10/ABC123/21/456?17=201225",
            "https://example.com/01/09520123456788/22/2A/10/ABC123/21/456?17=201225",
        );
        round_trip(
            "https://id.gs1.org/414/9520123456788/254/32a%2Fb",
            "https://id.gs1.org/414/9520123456788/254/32a%2Fb",
        );
        round_trip(
            "http://example.org/01/05412345000013/10/ABC%26%2B123?3103=000189&3923=2172",
            "http://example.org/01/05412345000013/10/ABC%26%2B123?3103=000189&3923=2172",
        );
    }

    #[test]
    fn parsed_fields_are_decoded_and_typed() {
        let link = parse(
            "https://ID.GS1.org/01/9520123456788/10/ABC%26%2B123/21/x(1)?17=261231&11=250101&linkType=gs1:pip&x=1",
        );
        assert_eq!(
            link.gtin().map(|g| g.to_string()),
            Some("09520123456788".to_owned())
        );
        assert_eq!(link.lot().map(Lot::as_str), Some("ABC&+123"));
        assert_eq!(link.serial().map(Serial::as_str), Some("x(1)"));
        assert_eq!(
            link.date(DateAttribute::Expiration).map(|d| d.to_string()),
            Some("261231".to_owned())
        );
        assert_eq!(
            link.date(DateAttribute::Production)
                .map(|d| d.calendar(2025)),
            Some((2025, 1, 1))
        );
        assert_eq!(link.date(DateAttribute::Packaging), None);
        assert_eq!(link.link_type(), Some("gs1:pip"));
        assert_eq!(link.param("x"), Some("1"));
        assert_eq!(link.stem().map(UriStem::host), Some("id.gs1.org"));
        assert_eq!(
            link.to_uri(),
            "https://id.gs1.org/01/09520123456788/10/ABC%26%2B123/21/x%281%29?11=250101&17=261231&linkType=gs1%3Apip&x=1"
        );
        assert_eq!(
            link.to_canonical_uri(),
            "https://id.gs1.org/01/09520123456788/10/ABC%26%2B123/21/x%281%29?11=250101&17=261231"
        );
    }

    #[test]
    fn gtin_is_padded_to_fourteen_digits() {
        for short in ["9520123456788", "09520123456788"] {
            let link = parse(&format!("https://example.com/01/{short}"));
            assert_eq!(
                link.to_canonical_uri(),
                "https://id.gs1.org/01/09520123456788"
            );
        }
        let gtin8 = parse("https://example.com/01/73513537");
        assert_eq!(gtin8.path(), "/01/00000073513537");
    }

    #[test]
    fn resolver_paths_parse_without_a_host() {
        let link = DigitalLink::parse_path_and_query(
            "/01/09520123456788/10/LOT-7/21/0001",
            Some("linkType=all"),
        )
        .expect("valid");
        assert_eq!(link.stem(), None);
        assert_eq!(link.link_type(), Some("all"));
        assert_eq!(link.path(), "/01/09520123456788/10/LOT-7/21/0001");
        assert_eq!(
            link.to_uri(),
            "https://id.gs1.org/01/09520123456788/10/LOT-7/21/0001?linkType=all"
        );
        assert!(DigitalLink::parse_path_and_query("", None).is_err());
        assert!(DigitalLink::parse_path_and_query("/01/09520123456789", None).is_err());
    }

    #[test]
    fn bad_check_digits_and_lengths_are_refused() {
        assert_eq!(
            err("https://id.gs1.org/01/09520123456787"),
            "AI (01): GTIN check digit is 7, expected 8"
        );
        assert_eq!(
            err("https://id.gs1.org/00/106141411234567890"),
            "AI (00): SSCC check digit is 0, expected 7"
        );
        assert_eq!(
            err("https://id.gs1.org/414/9520123456789"),
            "AI (414): GLN check digit is 9, expected 8"
        );
        assert_eq!(
            err("https://id.gs1.org/01/952012345678"),
            "AI (01): GTIN check digit is 8, expected 2"
        );
        assert_eq!(
            err("https://id.gs1.org/01/0952012345678888"),
            "AI (01): GTIN must be 8, 12, 13 or 14 digits long, got 16"
        );
        assert_eq!(
            err("https://id.gs1.org/01/09520123456788/10/ABCDEFGHIJKLMNOPQRSTU"),
            "AI (10) batch/lot number is 21 characters long; at most 20 are allowed"
        );
        assert_eq!(
            err("https://id.gs1.org/01/09520123456788/21/a%23b"),
            "AI (21) serial number has '#' at position 2, which is not in the GS1 AI encodable character set 82"
        );
        assert_eq!(
            err("https://id.gs1.org/01/09520123456788?17=261331"),
            "AI (17) expiration date \"261331\" is not a date: month 13 is not 01-12"
        );
    }

    #[test]
    fn structure_errors_say_what_is_wrong() {
        let cases = [
            (
                "https://id.gs1.org/01/09520123456788/21/S1/10/L1",
                "AI (10) must come before AI (21) in the path",
            ),
            (
                "https://id.gs1.org/01/09520123456788/10/A/22/B",
                "AI (22) must come before AI (10) in the path",
            ),
            (
                "https://id.gs1.org/01/09520123456788/10/A/10/B",
                "AI (10) appears more than once",
            ),
            (
                "https://id.gs1.org/01/09520123456788/17/261231",
                "AI (17) is a data attribute; it belongs in the query string (?17=...)",
            ),
            (
                "https://id.gs1.org/01/09520123456788/99/X",
                "(99) is not a GS1 Application Identifier this resolver knows",
            ),
            (
                "https://id.gs1.org/01/09520123456788/254/X",
                "AI (254) is not a key qualifier of AI (01)",
            ),
            (
                "https://id.gs1.org/414/9520123456788/10/X",
                "AI (10) is not a key qualifier of AI (414)",
            ),
            (
                "https://id.gs1.org/01/09520123456788/235/X",
                "AI (235) third-party controlled serial extension is valid in a GS1 Digital Link but not served by this resolver",
            ),
            (
                "https://id.gs1.org/8004/ABC123",
                "AI (8004) GIAI is valid in a GS1 Digital Link but not served by this resolver",
            ),
            (
                "https://id.gs1.org/01/09520123456788?10=ABC",
                "AI (10) identifies the item; it belongs in the path, not the query string",
            ),
            (
                "https://id.gs1.org/01/09520123456788?17=261231&17=261230",
                "AI (17) appears more than once",
            ),
            (
                "https://id.gs1.org/01/09520123456788?98=1",
                "(98) is not a GS1 Application Identifier this resolver knows",
            ),
            (
                "https://id.gs1.org/01/09520123456788/10",
                "AI (10) at the end of the path has no value",
            ),
            (
                "https://id.gs1.org/01/09520123456788/",
                "the path has an empty segment ('//' or a trailing '/')",
            ),
            (
                "ftp://id.gs1.org/01/09520123456788",
                "a GS1 Digital Link URI starts with https:// or http://",
            ),
            (
                "https://user@id.gs1.org/01/09520123456788",
                "the host \"user@id.gs1.org\" is not a valid host name",
            ),
            (
                "https://id.gs1.org/products/shampoo",
                "no GS1 primary key in the path; expected e.g. /01/{gtin}[/10/{lot}][/21/{serial}]",
            ),
            (
                "https://id.gs1.org/gtin/09520123456788/lot/ABC",
                "alphabetic AI short names like \"gtin\" are not part of GS1 Digital Link 1.2; use the numeric AI (01)",
            ),
            (
                "https://id.gs1.org/01/09520123456788/10/A%2",
                "key qualifier value: malformed percent-escape at byte 2: '%' must be followed by two hex digits",
            ),
        ];
        for (uri, message) in cases {
            assert_eq!(err(uri), message, "{uri}");
        }
    }

    #[test]
    fn compressed_links_decompress_to_their_uncompressed_form() {
        let link = parse("https://example.com/some/prefix/ARHKVAdpQg?linkType=all");
        assert_eq!(
            link.stem().map(UriStem::prefix),
            Some(&["some".to_owned(), "prefix".to_owned()][..])
        );
        assert_eq!(
            link.to_uri(),
            "https://example.com/some/prefix/01/09780345418913?linkType=all"
        );
        assert_eq!(link.compressed_path().as_deref(), Ok("/ARHKVAdpQg"));
        assert_eq!(
            link.to_compressed_uri().as_deref(),
            Ok("https://example.com/some/prefix/ARHKVAdpQg?linkType=all")
        );
        // Found by fuzzing: a prefix in front of a compressed segment stays with the stem.
        let link = parse("https://id.gs1.org/Z/DgAUq3wwwwwwwAUA");
        let uri = link.to_compressed_uri().expect("compresses");
        assert!(uri.starts_with("https://id.gs1.org/Z/"), "{uri}");
        assert_eq!(parse(&uri), link);
        assert!(matches!(
            DigitalLink::parse("https://id.gs1.org/ARHKVAdpQh"),
            Err(DigitalLinkError::Compressed(_))
        ));
    }

    #[test]
    fn primary_key_is_found_behind_any_prefix() {
        let link = parse("https://example.com/00/x/01/09520123456788/10/01");
        assert_eq!(
            link.stem().map(UriStem::prefix),
            Some(&["00".to_owned(), "x".to_owned()][..])
        );
        assert_eq!(link.lot().map(Lot::as_str), Some("01"));
        let link = parse("https://example.com/a/b/c/8018/376104250021234569");
        assert!(matches!(link.key(), PrimaryKey::Gsrn(_)));
        let link = parse("https://example.com/8003/09520123456788ABC%2F1");
        match link.key() {
            PrimaryKey::Grai(grai) => assert_eq!(grai.serial(), Some("ABC/1")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn builder_validates_like_the_parser() {
        let lot = Lot::new("L 1").map_err(|e| e.to_string());
        assert!(lot.is_err());
        let key = PrimaryKey::Gtin {
            gtin: "9520123456788".parse().expect("gtin"),
            cpv: None,
            lot: Some(Lot::new("L/1").expect("lot")),
            serial: None,
        };
        let link = DigitalLink::new(key)
            .with_date(DateAttribute::Expiration, "261231".parse().expect("date"))
            .with_param("linkType", "gs1:traceability")
            .expect("param");
        assert_eq!(
            link.to_string(),
            "https://id.gs1.org/01/09520123456788/10/L%2F1?17=261231&linkType=gs1%3Atraceability"
        );
        assert_eq!(
            parse(&link.to_string()),
            link.clone()
                .with_stem(UriStem::https("id.gs1.org").expect("host"))
        );
        assert!(link.clone().with_attribute("17", "261231").is_err());
        assert!(link.with_attribute("01", "09520123456788").is_err());
    }

    #[test]
    fn serialises_as_its_uri() {
        let link = parse("https://id.gs1.org/01/09520123456788/10/ABC");
        let json = serde_json::to_string(&link).expect("serialise");
        assert_eq!(json, "\"https://id.gs1.org/01/09520123456788/10/ABC\"");
        assert_eq!(
            serde_json::from_str::<DigitalLink>(&json).expect("deserialise"),
            link
        );
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!(
            "https://id.gs1.org/01/09520123456788?x={}",
            "a".repeat(DIGITAL_LINK_BYTES_MAX)
        );
        assert!(matches!(
            DigitalLink::parse(&long),
            Err(DigitalLinkError::TooLong { .. })
        ));
        let many = (0..=QUERY_PARAMS_MAX)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            DigitalLink::parse(&format!("https://id.gs1.org/01/09520123456788?{many}")),
            Err(DigitalLinkError::TooManyParams {
                max: QUERY_PARAMS_MAX
            })
        );
    }
}
