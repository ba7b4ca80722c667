//! What the resolver answers for one key, as pure functions of the node's base URL, the parsed
//! Digital Link and the product: the links this node serves (GS1-Conformant Resolver Standard
//! 1.1 link types), the RFC 9264 linkset (`application/linkset+json`), the `Link` header of a
//! redirect, and which answer a request asks for (`linkType`, `Accept`).
//!
//! Link types are written in the linkset as full URIs of the GS1 Web Vocabulary
//! (`https://gs1.org/voc/pip`): RFC 9264 §4.2.2 keys a link set by relation type, and a
//! relation type that is not registered with IANA must be a URI (RFC 8288 §2.1.2). Requests may
//! name them either way (`linkType=gs1:pip` or the full URI).

use gs1::{DigitalLink, EpcKey, percent};
use serde_json::{Map, Value, json};

use crate::master::Product;

/// The namespace of GS1 link types (GS1 Web Vocabulary).
pub const GS1_VOC: &str = "https://gs1.org/voc/";
/// The media type of a JSON linkset (RFC 9264 §4.2).
pub const LINKSET_JSON: &str = "application/linkset+json";

/// Why a base URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// Not `http://` or `https://` (or `https://` only where required).
    #[error("{0:?} must start with {1}")]
    Scheme(String, &'static str),
    /// Something after the host (a path, query, fragment or user information).
    #[error("{0:?} must be an origin: scheme and host (with an optional port), nothing after")]
    NotOrigin(String),
    /// The host has characters a host name cannot have.
    #[error("{0:?} has no valid host name")]
    BadHost(String),
}

/// An origin (`scheme://host[:port]`, no trailing slash) that Digital Links are written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

/// Longest base URL accepted, in bytes.
pub const BASE_URL_BYTES_MAX: usize = 255;

impl BaseUrl {
    /// Parses an `http` or `https` origin; a single trailing `/` is dropped.
    ///
    /// # Errors
    /// [`BaseUrlError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, BaseUrlError> {
        Self::parse_with(text, false)
    }

    /// Parses an `https` origin only (for a QR code's `?base=`: a label printed on a pack
    /// must not send people to a plain-text address).
    ///
    /// # Errors
    /// [`BaseUrlError`] naming what is wrong.
    pub fn parse_https(text: &str) -> Result<Self, BaseUrlError> {
        Self::parse_with(text, true)
    }

    fn parse_with(text: &str, https_only: bool) -> Result<Self, BaseUrlError> {
        let trimmed = text.strip_suffix('/').unwrap_or(text);
        let lower = trimmed.to_ascii_lowercase();
        let host = if let Some(host) = lower.strip_prefix("https://") {
            host
        } else if let (false, Some(host)) = (https_only, lower.strip_prefix("http://")) {
            host
        } else {
            let wanted = if https_only {
                "https://"
            } else {
                "http:// or https://"
            };
            return Err(BaseUrlError::Scheme(text.to_owned(), wanted));
        };
        if trimmed.len() > BASE_URL_BYTES_MAX
            || host.bytes().any(|b| matches!(b, b'/' | b'?' | b'#' | b'@'))
        {
            return Err(BaseUrlError::NotOrigin(text.to_owned()));
        }
        let host_ok = !host.is_empty()
            && !host.starts_with(':')
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
            });
        if !host_ok {
            return Err(BaseUrlError::BadHost(text.to_owned()));
        }
        Ok(Self(lower))
    }

    /// The origin, without a trailing slash.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link type this node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// `gs1:defaultLink`: where a request without `linkType` goes.
    DefaultLink,
    /// `gs1:pip`: product information.
    Pip,
    /// `gs1:traceability`: the trace of the item.
    Traceability,
    /// `gs1:epcis`: EPCIS events naming the item.
    Epcis,
}

impl LinkType {
    /// Every link type served, in linkset order.
    pub const ALL: [Self; 4] = [
        Self::DefaultLink,
        Self::Pip,
        Self::Traceability,
        Self::Epcis,
    ];

    /// The term in the GS1 Web Vocabulary.
    #[must_use]
    pub fn term(self) -> &'static str {
        match self {
            Self::DefaultLink => "defaultLink",
            Self::Pip => "pip",
            Self::Traceability => "traceability",
            Self::Epcis => "epcis",
        }
    }

    /// The relation type as the linkset writes it (`https://gs1.org/voc/pip`).
    #[must_use]
    pub fn uri(self) -> String {
        format!("{GS1_VOC}{}", self.term())
    }
}

/// What a request asks the resolver for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The default link (a 307 to it).
    Default,
    /// The linkset (`linkType=linkset`, the older `linkType=all`, or `Accept:
    /// application/linkset+json`).
    Linkset,
    /// One served link type (a 307 to it).
    One(LinkType),
    /// A well-formed GS1 link type this node has no link for (404).
    NotServed(String),
}

/// Longest `linkType` value looked at, in bytes.
const LINK_TYPE_BYTES_MAX: usize = 128;

/// Decides what a request asks for from its `linkType` parameter and `Accept` header.
///
/// # Errors
/// A message for a 400 when `linkType` is not a GS1 link type (`gs1:term` or
/// `https://gs1.org/voc/term`, or `linkset`/`all`).
pub fn wanted(link_type: Option<&str>, accept: Option<&str>) -> Result<Wanted, String> {
    let Some(link_type) = link_type else {
        let asks_linkset = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                range
                    .split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(LINKSET_JSON))
            })
        });
        return Ok(if asks_linkset {
            Wanted::Linkset
        } else {
            Wanted::Default
        });
    };
    if link_type == "linkset" || link_type == "all" {
        return Ok(Wanted::Linkset);
    }
    let term = link_type
        .strip_prefix("gs1:")
        .or_else(|| link_type.strip_prefix(GS1_VOC))
        .or_else(|| link_type.strip_prefix("http://gs1.org/voc/"))
        .filter(|t| {
            !t.is_empty()
                && link_type.len() <= LINK_TYPE_BYTES_MAX
                && t.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .ok_or_else(|| {
            format!(
                "linkType {link_type:?} is not a GS1 link type: use linkset, all, gs1:<term> \
                 (e.g. gs1:pip) or {GS1_VOC}<term>"
            )
        })?;
    Ok(LinkType::ALL
        .into_iter()
        .find(|t| t.term() == term)
        .map_or_else(|| Wanted::NotServed(format!("gs1:{term}")), Wanted::One))
}

/// One link of the linkset: target and attributes (RFC 9264 §4.2.4).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Its type.
    pub link_type: LinkType,
    /// The target.
    pub href: String,
    /// The title in English (`title`).
    pub title_en: String,
    /// The title in Chinese (`title*` with language `zh`).
    pub title_zh: String,
    /// The target's media type.
    pub media_type: &'static str,
    /// The languages of the target, where it has any.
    pub hreflang: &'static [&'static str],
}

/// The routes of the node the links point at (relative to the base URL).
pub mod paths {
    /// The public JSON summary of a key: `/v1/public` + the Digital Link path.
    pub const PUBLIC: &str = "/v1/public";
    /// The trace of a key: `/trace` + the Digital Link path.
    pub const TRACE: &str = "/trace";
    /// EPCIS events.
    pub const EPCIS_EVENTS: &str = "/epcis/events";
    /// QR codes: `/qr` + the Digital Link path.
    pub const QR: &str = "/qr";
}

/// The Digital Link of `link`'s key on `base`: primary key and qualifiers only.
#[must_use]
pub fn anchor(base: &BaseUrl, link: &DigitalLink) -> String {
    format!("{base}{}", link.path())
}

/// The data attributes of `link` as a query string (`?17=...`), or empty: a resolver passes
/// them on to the target.
#[must_use]
pub fn attribute_query(link: &DigitalLink) -> String {
    let query: Vec<String> = link
        .attributes()
        .map(|(ai, value)| format!("{ai}={}", percent::encode(value)))
        .collect();
    if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    }
}

/// Every link this node serves for `link`'s key, in [`LinkType::ALL`] order.
#[must_use]
pub fn links_for(base: &BaseUrl, link: &DigitalLink) -> Vec<Link> {
    let path = link.path();
    let summary = format!("{base}{}{path}{}", paths::PUBLIC, attribute_query(link));
    let what = match (link.lot().is_some(), link.serial().is_some()) {
        (_, true) => ("this item", "此件商品"),
        (true, false) => ("this lot", "此批次"),
        (false, false) => ("this product", "此产品"),
    };
    // The EPC an EPCIS query matches: the canonical Digital Link at EPCIS granularity (a
    // serial makes it an SGTIN, a lot an LGTIN, else the product class).
    let epcis = EpcKey::from_digital_link(link).map_or_else(
        |_| format!("{base}{}", paths::EPCIS_EVENTS),
        |epc| {
            format!(
                "{base}{}?MATCH_anyEPC={}",
                paths::EPCIS_EVENTS,
                percent::encode(&epc.to_string())
            )
        },
    );
    vec![
        Link {
            link_type: LinkType::DefaultLink,
            href: summary.clone(),
            title_en: format!("About {}: product, owner and storage", what.0),
            title_zh: format!("{}的信息：产品、所有者和储存条件", what.1),
            media_type: "application/json",
            hreflang: &["en", "zh"],
        },
        Link {
            link_type: LinkType::Pip,
            href: summary,
            title_en: "Product information".to_owned(),
            title_zh: "产品信息".to_owned(),
            media_type: "application/json",
            hreflang: &["en", "zh"],
        },
        Link {
            link_type: LinkType::Traceability,
            href: format!("{base}{}{path}", paths::TRACE),
            title_en: format!("Where {} came from and where it went", what.0),
            title_zh: format!("{}的来源与去向", what.1),
            media_type: "application/json",
            hreflang: &["en", "zh"],
        },
        Link {
            link_type: LinkType::Epcis,
            href: epcis,
            title_en: format!("EPCIS events of {}", what.0),
            title_zh: format!("{}的 EPCIS 事件", what.1),
            media_type: "application/ld+json",
            hreflang: &[],
        },
    ]
}

/// The RFC 9264 JSON linkset of `link`'s key: one context object anchored at the key's Digital
/// Link on `base`, with `itemDescription` (GS1-Conformant Resolver Standard) and one array of
/// target objects per link type.
#[must_use]
pub fn linkset(base: &BaseUrl, link: &DigitalLink, product: &Product) -> Value {
    let mut context = Map::new();
    context.insert("anchor".to_owned(), json!(anchor(base, link)));
    context.insert(
        "itemDescription".to_owned(),
        json!(format!("{} / {}", product.name_en, product.name_zh)),
    );
    for target in links_for(base, link) {
        let mut object = Map::new();
        object.insert("href".to_owned(), json!(target.href));
        object.insert("title".to_owned(), json!(target.title_en));
        // RFC 9264 §4.2.4.2: internationalised target attributes carry a language.
        object.insert(
            "title*".to_owned(),
            json!([{ "value": target.title_zh, "language": "zh" }]),
        );
        object.insert("type".to_owned(), json!(target.media_type));
        if !target.hreflang.is_empty() {
            object.insert("hreflang".to_owned(), json!(target.hreflang));
        }
        context.insert(target.link_type.uri(), json!([object]));
    }
    json!({ "linkset": [Value::Object(context)] })
}

/// The `Link` header of a redirect: where the linkset is (RFC 9264 §6, relation `linkset`).
#[must_use]
pub fn linkset_header(base: &BaseUrl, link: &DigitalLink) -> String {
    format!(
        "<{}?linkType=linkset>; rel=\"linkset\"; type=\"{LINKSET_JSON}\"",
        anchor(base, link)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(path: &str) -> DigitalLink {
        let (path, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        DigitalLink::parse_path_and_query(path, query).expect("a valid link")
    }

    fn base() -> BaseUrl {
        BaseUrl::parse("https://trace.example.cn").expect("base")
    }

    #[test]
    fn base_urls_are_origins() {
        let check = |text: &str, https_only: bool, ok: Option<&str>| {
            let got = BaseUrl::parse_with(text, https_only).map(|b| b.0);
            assert_eq!(got.ok().as_deref(), ok, "{text}");
        };
        check(
            "https://Trace.Example.cn/",
            false,
            Some("https://trace.example.cn"),
        );
        check(
            "http://127.0.0.1:8080",
            false,
            Some("http://127.0.0.1:8080"),
        );
        check("http://127.0.0.1:8080", true, None);
        check("https://[::1]:8443", true, Some("https://[::1]:8443"));
        check("https://example.cn/dl", false, None);
        check("https://user@example.cn", false, None);
        check("https://example.cn?x=1", false, None);
        check("https://exa mple.cn", false, None);
        check("https://", false, None);
        check("ftp://example.cn", false, None);
        check("javascript:alert(1)", false, None);
    }

    #[test]
    fn link_types_come_from_link_type_or_accept() {
        let check =
            |link_type: Option<&str>, accept: Option<&str>, expected: Result<Wanted, ()>| {
                assert_eq!(
                    wanted(link_type, accept).map_err(|_| ()),
                    expected,
                    "{link_type:?} {accept:?}"
                );
            };
        check(None, None, Ok(Wanted::Default));
        check(None, Some("text/html,*/*;q=0.8"), Ok(Wanted::Default));
        check(
            None,
            Some("text/html, application/linkset+json;q=0.9"),
            Ok(Wanted::Linkset),
        );
        check(Some("linkset"), None, Ok(Wanted::Linkset));
        check(Some("all"), Some("text/html"), Ok(Wanted::Linkset));
        check(Some("gs1:pip"), None, Ok(Wanted::One(LinkType::Pip)));
        check(
            Some("https://gs1.org/voc/traceability"),
            None,
            Ok(Wanted::One(LinkType::Traceability)),
        );
        check(Some("gs1:epcis"), None, Ok(Wanted::One(LinkType::Epcis)));
        check(
            Some("gs1:certificationInfo"),
            None,
            Ok(Wanted::NotServed("gs1:certificationInfo".to_owned())),
        );
        check(Some("pip"), None, Err(()));
        check(Some("gs1:"), None, Err(()));
        check(Some("gs1:pip<script>"), None, Err(()));
        check(Some("schema:offers"), None, Err(()));
    }

    #[test]
    fn links_point_at_the_node_and_carry_the_canonical_epc() {
        let links = links_for(
            &base(),
            &link("/01/9520123456788/10/ABC%2F1/21/12345?17=261231"),
        );
        let by = |t: LinkType| {
            links
                .iter()
                .find(|l| l.link_type == t)
                .map(|l| l.href.clone())
                .expect("served")
        };
        assert_eq!(
            by(LinkType::DefaultLink),
            "https://trace.example.cn/v1/public/01/09520123456788/10/ABC%2F1/21/12345?17=261231"
        );
        assert_eq!(
            by(LinkType::Traceability),
            "https://trace.example.cn/trace/01/09520123456788/10/ABC%2F1/21/12345"
        );
        // A serial makes it an SGTIN: the lot is an attribute of the instance.
        assert_eq!(
            by(LinkType::Epcis),
            "https://trace.example.cn/epcis/events?MATCH_anyEPC=\
             https%3A%2F%2Fid.gs1.org%2F01%2F09520123456788%2F21%2F12345"
        );
        let lot = links_for(&base(), &link("/01/09520123456788/10/ABC"));
        assert!(
            lot.iter().any(|l| l.href.ends_with(
                "MATCH_anyEPC=https%3A%2F%2Fid.gs1.org%2F01%2F09520123456788%2F10%2FABC"
            ))
        );
    }

    #[test]
    fn the_linkset_follows_rfc_9264() {
        let product = Product {
            org: "coop".parse().expect("org"),
            gtin: "09520123456788".parse().expect("gtin"),
            name_en: "Mango".to_owned(),
            name_zh: "芒果".to_owned(),
            storage_min_centi_c: 1_000,
            storage_max_centi_c: 1_300,
            created_ms: 0,
        };
        let set = linkset(&base(), &link("/01/09520123456788/10/ABC"), &product);
        let contexts = set["linkset"]
            .as_array()
            .expect("an array of link contexts");
        assert_eq!(contexts.len(), 1);
        let context = &contexts[0];
        assert_eq!(
            context["anchor"],
            "https://trace.example.cn/01/09520123456788/10/ABC"
        );
        for t in LinkType::ALL {
            let targets = context[t.uri()].as_array().expect("targets are arrays");
            assert_eq!(targets.len(), 1);
            assert!(targets[0]["href"].is_string() && targets[0]["title"].is_string());
            assert_eq!(targets[0]["title*"][0]["language"], "zh");
        }
        assert_eq!(
            context["https://gs1.org/voc/pip"][0]["hreflang"],
            json!(["en", "zh"])
        );
        assert_eq!(
            linkset_header(&base(), &link("/01/09520123456788")),
            "<https://trace.example.cn/01/09520123456788?linkType=linkset>; rel=\"linkset\"; \
             type=\"application/linkset+json\""
        );
    }
}
