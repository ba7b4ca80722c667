//! Parsing and validation of EPCIS 2.0 JSON-LD documents (EPCIS 2.0 §7 abstract model,
//! §9 JSON/JSON-LD binding): an `EPCISDocument`, an `EPCISQueryDocument`, a bare JSON array
//! of events or a single event.
//!
//! `serde_json::Value` carries the data so that user extensions (namespaced keys, EPCIS 2.0
//! §9.5) are kept verbatim; validation walks it with typed expectations per event type and
//! reports the first problem with its JSON path (`$.epcisBody.eventList[2].readPoint.id`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::canon::{is_time_zone_offset, parse_timestamp};
use super::vocab::Vocabulary;
use super::{DOCUMENT_BYTES_MAX, EVENTS_PER_DOCUMENT_MAX, EXTENSION_DEPTH_MAX, LIST_ITEMS_MAX};

/// A JSON path into the submitted document, `$`-rooted (`$.epcisBody.eventList[0].action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    fn root() -> Self {
        Self("$".to_owned())
    }

    fn key(&self, key: &str) -> Self {
        Self(format!("{}.{key}", self.0))
    }

    fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a submitted EPCIS document was refused. Every variant names where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The body is larger than [`DOCUMENT_BYTES_MAX`].
    #[error("document is {bytes} bytes, more than the {max} bytes accepted")]
    TooLarge {
        /// Size of the submitted body.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not JSON.
    #[error("document is not valid JSON: {reason}")]
    NotJson {
        /// The parser's message (line and column).
        reason: String,
    },
    /// The top level is neither an EPCIS document nor events.
    #[error(
        "{path}: expected an EPCISDocument, an EPCISQueryDocument, an event or a list of events"
    )]
    NotEpcis {
        /// Where.
        path: JsonPath,
    },
    /// More events than [`EVENTS_PER_DOCUMENT_MAX`].
    #[error("{path}: {count} events, more than the {max} accepted in one document")]
    TooManyEvents {
        /// Where the list is.
        path: JsonPath,
        /// How many were sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A list longer than [`LIST_ITEMS_MAX`].
    #[error("{path}: {count} items, more than the {max} accepted in one list")]
    ListTooLong {
        /// Where the list is.
        path: JsonPath,
        /// How many items.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A required field is absent.
    #[error("{path}: required field is missing")]
    Missing {
        /// The missing field's path.
        path: JsonPath,
    },
    /// A field has the wrong JSON type.
    #[error("{path}: expected {expected}")]
    WrongType {
        /// Where.
        path: JsonPath,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// An event `type` that is not one of the five EPCIS 2.0 event types.
    #[error("{path}: unknown event type {found:?}")]
    UnknownEventType {
        /// Where.
        path: JsonPath,
        /// The type given.
        found: String,
    },
    /// A field this event type does not have, without a namespace prefix.
    #[error("{path}: field not allowed here (a user extension needs a namespace prefix)")]
    UnknownField {
        /// Where.
        path: JsonPath,
    },
    /// An extension key whose prefix the `@context` does not declare.
    #[error("{path}: namespace prefix {prefix:?} is not declared in @context")]
    UndeclaredPrefix {
        /// Where.
        path: JsonPath,
        /// The prefix.
        prefix: String,
    },
    /// Not an `xsd:dateTimeStamp` with an offset.
    #[error(
        "{path}: {value:?} is not a date-time with a time zone (YYYY-MM-DDThh:mm:ss[.s]Z or ±hh:mm)"
    )]
    InvalidTimestamp {
        /// Where.
        path: JsonPath,
        /// The value given.
        value: String,
    },
    /// Not `+hh:mm` / `-hh:mm`.
    #[error("{path}: {value:?} is not a time zone offset (+hh:mm or -hh:mm)")]
    InvalidTimeZoneOffset {
        /// Where.
        path: JsonPath,
        /// The value given.
        value: String,
    },
    /// `action` is not `ADD`, `OBSERVE` or `DELETE`.
    #[error("{path}: {value:?} is not an action (ADD, OBSERVE or DELETE)")]
    InvalidAction {
        /// Where.
        path: JsonPath,
        /// The value given.
        value: String,
    },
    /// A value where a URI is required is not one.
    #[error("{path}: {value:?} is not a URI")]
    NotAUri {
        /// Where.
        path: JsonPath,
        /// The value given.
        value: String,
    },
    /// A bare word that is not a term of the CBV vocabulary the field takes.
    #[error("{path}: {value:?} is neither a CBV 2.0 term of this field nor a URI")]
    UnknownVocabularyTerm {
        /// Where.
        path: JsonPath,
        /// The value given.
        value: String,
    },
    /// A quantity below zero.
    #[error("{path}: quantity must not be negative")]
    NegativeQuantity {
        /// Where.
        path: JsonPath,
    },
    /// A unit of measure without a quantity (EPCIS 2.0 §7.3.3.3).
    #[error("{path}: uom is given without a quantity")]
    UomWithoutQuantity {
        /// Where.
        path: JsonPath,
    },
    /// A unit of measure that is not a UN/CEFACT Rec. 20 code.
    #[error("{path}: {value:?} is not a UN/CEFACT Rec. 20 unit code")]
    InvalidUom {
        /// Where.
        path: JsonPath,
        /// The value given.
        value: String,
    },
    /// An event without the objects its type needs (EPCIS 2.0 §7.4).
    #[error("{path}: {reason}")]
    MissingObjects {
        /// The event's path.
        path: JsonPath,
        /// Which rule, in words.
        reason: &'static str,
    },
    /// A field allowed for this event type only with another action.
    #[error("{path}: {reason}")]
    NotAllowedWithAction {
        /// Where.
        path: JsonPath,
        /// Which rule, in words.
        reason: &'static str,
    },
    /// A list that must not be empty.
    #[error("{path}: list must not be empty")]
    EmptyList {
        /// Where.
        path: JsonPath,
    },
    /// A user extension nested deeper than [`EXTENSION_DEPTH_MAX`].
    #[error("{path}: nested deeper than {max} levels")]
    TooDeep {
        /// Where.
        path: JsonPath,
        /// The limit.
        max: usize,
    },
}

/// The five EPCIS 2.0 event types (§7.4.2-§7.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// §7.4.2.
    ObjectEvent,
    /// §7.4.3.
    AggregationEvent,
    /// §7.4.4.
    TransactionEvent,
    /// §7.4.5.
    TransformationEvent,
    /// §7.4.6.
    AssociationEvent,
}

impl EventType {
    /// The JSON `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ObjectEvent => "ObjectEvent",
            Self::AggregationEvent => "AggregationEvent",
            Self::TransactionEvent => "TransactionEvent",
            Self::TransformationEvent => "TransformationEvent",
            Self::AssociationEvent => "AssociationEvent",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ObjectEvent" => Self::ObjectEvent,
            "AggregationEvent" => Self::AggregationEvent,
            "TransactionEvent" => Self::TransactionEvent,
            "TransformationEvent" => Self::TransformationEvent,
            "AssociationEvent" => Self::AssociationEvent,
            _ => return None,
        })
    }

    /// The standard (un-prefixed) fields of this event type, in the JSON binding.
    fn allows(self, field: &str) -> bool {
        const COMMON: &[&str] = &[
            "type",
            "eventTime",
            "eventTimeZoneOffset",
            "recordTime",
            "eventID",
            "errorDeclaration",
            "certificationInfo",
            "bizStep",
            "disposition",
            "persistentDisposition",
            "readPoint",
            "bizLocation",
            "bizTransactionList",
            "sourceList",
            "destinationList",
            "sensorElementList",
            "@context",
            "comment",
        ];
        if COMMON.contains(&field) {
            return true;
        }
        let specific: &[&str] = match self {
            Self::ObjectEvent => &["epcList", "quantityList", "action", "ilmd"],
            Self::AggregationEvent | Self::AssociationEvent => {
                &["parentID", "childEPCs", "childQuantityList", "action"]
            }
            Self::TransactionEvent => &["parentID", "epcList", "quantityList", "action"],
            Self::TransformationEvent => &[
                "inputEPCList",
                "inputQuantityList",
                "outputEPCList",
                "outputQuantityList",
                "transformationID",
                "ilmd",
            ],
        };
        specific.contains(&field)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shape the events arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// `{"type": "EPCISDocument", "epcisBody": {"eventList": [...]}}` (EPCIS 2.0 §9.3).
    Document,
    /// `{"type": "EPCISQueryDocument", "epcisBody": {"queryResults": {...}}}`.
    QueryDocument,
    /// A bare JSON array of events.
    EventList,
    /// A single event object.
    SingleEvent,
}

/// The namespace prefixes a document's `@context` declares (`"example":
/// "https://ns.example.com/epcis/"`), used to write user extension names as `{namespace}local`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    prefixes: BTreeMap<String, String>,
}

/// Prefixes the EPCIS 2.0 JSON-LD context itself defines, with the namespace the event hash
/// writes for them (`cbvmda` in its XML namespace form, as the GS1 vectors show).
const STANDARD_PREFIXES: &[(&str, &str)] = &[
    ("cbvmda", "urn:epcglobal:cbv:mda"),
    ("gs1", "https://ref.gs1.org/voc/"),
    ("cbv", "https://ref.gs1.org/cbv/"),
    ("epcis", "https://ref.gs1.org/epcis/"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("owl", "http://www.w3.org/2002/07/owl#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("dcterms", "http://purl.org/dc/terms/"),
];

impl Context {
    /// Reads the prefixes an `@context` value declares (string entries are context URLs and
    /// declare nothing of their own).
    pub fn from_json(context: Option<&Value>) -> Self {
        let mut prefixes = BTreeMap::new();
        let mut add = |object: &Map<String, Value>| {
            for (k, v) in object {
                if let Value::String(iri) = v
                    && !k.starts_with('@')
                {
                    prefixes.insert(k.clone(), iri.clone());
                }
            }
        };
        match context {
            Some(Value::Object(o)) => add(o),
            Some(Value::Array(items)) => {
                for item in items {
                    if let Value::Object(o) = item {
                        add(o);
                    }
                }
            }
            _ => {}
        }
        Self { prefixes }
    }

    /// The namespace of a prefix declared by the document.
    pub fn declared(&self, prefix: &str) -> Option<&str> {
        self.prefixes.get(prefix).map(String::as_str)
    }

    /// The namespace of a prefix: the document's own declaration first, then the EPCIS
    /// context's standard prefixes.
    pub fn namespace(&self, prefix: &str) -> Option<&str> {
        self.declared(prefix).or_else(|| {
            STANDARD_PREFIXES
                .iter()
                .find(|(p, _)| *p == prefix)
                .map(|(_, ns)| *ns)
        })
    }

    fn knows(&self, prefix: &str) -> bool {
        self.namespace(prefix).is_some() || matches!(prefix, "http" | "https" | "urn")
    }
}

/// One validated event: its type, its JSON fields (user extensions verbatim) and its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    event_type: EventType,
    fields: Map<String, Value>,
    path: JsonPath,
}

impl Event {
    /// The event type.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }

    /// The event's JSON object as submitted.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// Where the event was in the document.
    pub fn path(&self) -> &JsonPath {
        &self.path
    }

    /// The `eventID` the client gave, if any.
    pub fn event_id(&self) -> Option<&str> {
        self.fields.get("eventID").and_then(Value::as_str)
    }

    /// The `eventTime` (validated as an `xsd:dateTimeStamp`).
    pub fn event_time(&self) -> &str {
        self.fields
            .get("eventTime")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Sets `eventID` (used to store the canonical event hash when the client gave none).
    pub fn set_event_id(&mut self, id: &str) {
        self.fields
            .insert("eventID".to_owned(), Value::String(id.to_owned()));
    }

    /// Consumes the event, returning its JSON object.
    pub fn into_fields(self) -> Map<String, Value> {
        self.fields
    }
}

/// A parsed and validated EPCIS document.
#[derive(Debug, Clone, PartialEq)]
pub struct EpcisDocument {
    kind: DocumentKind,
    context: Context,
    events: Vec<Event>,
}

impl EpcisDocument {
    /// How the events arrived.
    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// The document's `@context` prefixes.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The events in document order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events, mutable (to assign event IDs).
    pub fn events_mut(&mut self) -> &mut [Event] {
        &mut self.events
    }

    /// Consumes the document, returning its events.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

/// Parses and validates a document from its bytes, enforcing [`DOCUMENT_BYTES_MAX`].
pub fn parse_document(bytes: &[u8]) -> Result<EpcisDocument, DocumentError> {
    if bytes.len() > DOCUMENT_BYTES_MAX {
        return Err(DocumentError::TooLarge {
            bytes: bytes.len(),
            max: DOCUMENT_BYTES_MAX,
        });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| DocumentError::NotJson {
        reason: e.to_string(),
    })?;
    parse_document_value(value)
}

/// Validates an already-parsed JSON value (the size limit is the caller's).
pub fn parse_document_value(value: Value) -> Result<EpcisDocument, DocumentError> {
    let root = JsonPath::root();
    match value {
        Value::Array(items) => {
            let events = events_from_list(items, &root, &Context::default())?;
            Ok(EpcisDocument {
                kind: DocumentKind::EventList,
                context: Context::default(),
                events,
            })
        }
        Value::Object(mut object) => {
            let context = Context::from_json(object.get("@context"));
            let doc_type = object
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match doc_type.as_deref() {
                Some("EPCISDocument") => {
                    let body_path = root.key("epcisBody");
                    let mut body = take_object(&mut object, "epcisBody", &root)?;
                    let events = if body.contains_key("eventList") || !body.contains_key("event") {
                        let list = take_array(&mut body, "eventList", &body_path)?;
                        events_from_list(list, &body_path.key("eventList"), &context)?
                    } else {
                        let path = body_path.key("event");
                        let event = body.remove("event").unwrap_or(Value::Null);
                        vec![validate_event(event, path, &context)?]
                    };
                    Ok(EpcisDocument {
                        kind: DocumentKind::Document,
                        context,
                        events,
                    })
                }
                Some("EPCISQueryDocument") => {
                    let body_path = root.key("epcisBody");
                    let mut body = take_object(&mut object, "epcisBody", &root)?;
                    let results_path = body_path.key("queryResults");
                    let mut results = take_object(&mut body, "queryResults", &body_path)?;
                    let rb_path = results_path.key("resultsBody");
                    let mut results_body = take_object(&mut results, "resultsBody", &results_path)?;
                    let list = take_array(&mut results_body, "eventList", &rb_path)?;
                    let events = events_from_list(list, &rb_path.key("eventList"), &context)?;
                    Ok(EpcisDocument {
                        kind: DocumentKind::QueryDocument,
                        context,
                        events,
                    })
                }
                Some(t) if EventType::parse(t).is_some() => {
                    let event = validate_event(Value::Object(object), root, &context)?;
                    Ok(EpcisDocument {
                        kind: DocumentKind::SingleEvent,
                        context,
                        events: vec![event],
                    })
                }
                _ => Err(DocumentError::NotEpcis {
                    path: root.key("type"),
                }),
            }
        }
        _ => Err(DocumentError::NotEpcis { path: root }),
    }
}

fn take_object(
    parent: &mut Map<String, Value>,
    key: &str,
    path: &JsonPath,
) -> Result<Map<String, Value>, DocumentError> {
    match parent.remove(key) {
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(DocumentError::WrongType {
            path: path.key(key),
            expected: "an object",
        }),
        None => Err(DocumentError::Missing {
            path: path.key(key),
        }),
    }
}

fn take_array(
    parent: &mut Map<String, Value>,
    key: &str,
    path: &JsonPath,
) -> Result<Vec<Value>, DocumentError> {
    match parent.remove(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(DocumentError::WrongType {
            path: path.key(key),
            expected: "a list",
        }),
        None => Err(DocumentError::Missing {
            path: path.key(key),
        }),
    }
}

fn events_from_list(
    items: Vec<Value>,
    path: &JsonPath,
    context: &Context,
) -> Result<Vec<Event>, DocumentError> {
    if items.len() > EVENTS_PER_DOCUMENT_MAX {
        return Err(DocumentError::TooManyEvents {
            path: path.clone(),
            count: items.len(),
            max: EVENTS_PER_DOCUMENT_MAX,
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| validate_event(item, path.index(i), context))
        .collect()
}

/// Validates one event (EPCIS 2.0 §7.4) and returns it.
pub fn validate_event(
    value: Value,
    path: JsonPath,
    context: &Context,
) -> Result<Event, DocumentError> {
    let Value::Object(fields) = value else {
        return Err(DocumentError::WrongType {
            path,
            expected: "an event object",
        });
    };
    let event_type = match fields.get("type") {
        Some(Value::String(t)) => {
            EventType::parse(t).ok_or_else(|| DocumentError::UnknownEventType {
                path: path.key("type"),
                found: t.clone(),
            })?
        }
        Some(_) => {
            return Err(DocumentError::WrongType {
                path: path.key("type"),
                expected: "a string",
            });
        }
        None => {
            return Err(DocumentError::Missing {
                path: path.key("type"),
            });
        }
    };
    let event = Event {
        event_type,
        fields,
        path,
    };
    Checker {
        event: &event,
        context,
    }
    .check()?;
    Ok(event)
}

struct Checker<'a> {
    event: &'a Event,
    context: &'a Context,
}

impl Checker<'_> {
    fn path(&self, key: &str) -> JsonPath {
        self.event.path.key(key)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.event.fields.get(key)
    }

    fn check(&self) -> Result<(), DocumentError> {
        let t = self.event.event_type;
        for (key, value) in &self.event.fields {
            let path = self.path(key);
            if t.allows(key) {
                continue;
            }
            check_extension_key(key, &path, self.context)?;
            check_extension_value(value, &path, 1)?;
        }
        self.required_timestamp("eventTime")?;
        match self.get("eventTimeZoneOffset") {
            Some(Value::String(s)) if is_time_zone_offset(s) => {}
            Some(Value::String(s)) => {
                return Err(DocumentError::InvalidTimeZoneOffset {
                    path: self.path("eventTimeZoneOffset"),
                    value: s.clone(),
                });
            }
            Some(_) => return Err(self.wrong("eventTimeZoneOffset", "a string")),
            None => {
                return Err(DocumentError::Missing {
                    path: self.path("eventTimeZoneOffset"),
                });
            }
        }
        self.optional_timestamp(self.get("recordTime"), self.path("recordTime"))?;
        self.optional_uri("eventID")?;
        self.certification_info()?;
        self.error_declaration()?;
        self.vocabulary(
            self.get("bizStep"),
            self.path("bizStep"),
            Vocabulary::BizStep,
        )?;
        self.vocabulary(
            self.get("disposition"),
            self.path("disposition"),
            Vocabulary::Disposition,
        )?;
        self.persistent_disposition()?;
        self.location("readPoint")?;
        self.location("bizLocation")?;
        self.biz_transactions()?;
        self.source_destination("sourceList", "source")?;
        self.source_destination("destinationList", "destination")?;
        self.sensor_elements()?;
        if let Some(v) = self.get("ilmd") {
            let path = self.path("ilmd");
            let Value::Object(o) = v else {
                return Err(DocumentError::WrongType {
                    path,
                    expected: "an object",
                });
            };
            for (k, v) in o {
                check_extension_key(k, &path.key(k), self.context)?;
                check_extension_value(v, &path.key(k), 1)?;
            }
        }
        self.type_specific()
    }

    fn wrong(&self, key: &str, expected: &'static str) -> DocumentError {
        DocumentError::WrongType {
            path: self.path(key),
            expected,
        }
    }

    fn required_timestamp(&self, key: &str) -> Result<(), DocumentError> {
        match self.get(key) {
            None => Err(DocumentError::Missing {
                path: self.path(key),
            }),
            v => self.optional_timestamp(v, self.path(key)),
        }
    }

    fn optional_timestamp(
        &self,
        value: Option<&Value>,
        path: JsonPath,
    ) -> Result<(), DocumentError> {
        match value {
            None => Ok(()),
            Some(Value::String(s)) if parse_timestamp(s).is_some() => Ok(()),
            Some(Value::String(s)) => Err(DocumentError::InvalidTimestamp {
                path,
                value: s.clone(),
            }),
            Some(_) => Err(DocumentError::WrongType {
                path,
                expected: "a date-time string",
            }),
        }
    }

    fn optional_uri(&self, key: &str) -> Result<(), DocumentError> {
        match self.get(key) {
            None => Ok(()),
            Some(v) => uri(v, self.path(key)).map(|_| ()),
        }
    }

    fn certification_info(&self) -> Result<(), DocumentError> {
        let path = self.path("certificationInfo");
        match self.get("certificationInfo") {
            None => Ok(()),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    uri(item, path.index(i))?;
                }
                Ok(())
            }
            Some(v) => uri(v, path).map(|_| ()),
        }
    }

    fn error_declaration(&self) -> Result<(), DocumentError> {
        let path = self.path("errorDeclaration");
        let Some(v) = self.get("errorDeclaration") else {
            return Ok(());
        };
        let Value::Object(o) = v else {
            return Err(DocumentError::WrongType {
                path,
                expected: "an object",
            });
        };
        self.optional_timestamp(
            Some(required(o, "declarationTime", &path)?),
            path.key("declarationTime"),
        )?;
        self.vocabulary(o.get("reason"), path.key("reason"), Vocabulary::ErrorReason)?;
        if let Some(ids) = o.get("correctiveEventIDs") {
            uri_list(ids, &path.key("correctiveEventIDs"), false)?;
        }
        for (k, v) in o {
            if !matches!(
                k.as_str(),
                "declarationTime" | "reason" | "correctiveEventIDs"
            ) {
                check_extension_key(k, &path.key(k), self.context)?;
                check_extension_value(v, &path.key(k), 1)?;
            }
        }
        Ok(())
    }

    fn vocabulary(
        &self,
        value: Option<&Value>,
        path: JsonPath,
        vocab: Vocabulary,
    ) -> Result<(), DocumentError> {
        let Some(v) = value else { return Ok(()) };
        let Value::String(s) = v else {
            return Err(DocumentError::WrongType {
                path,
                expected: "a string",
            });
        };
        if vocab.contains(s) || is_uri(s) {
            Ok(())
        } else {
            Err(DocumentError::UnknownVocabularyTerm {
                path,
                value: s.clone(),
            })
        }
    }

    fn persistent_disposition(&self) -> Result<(), DocumentError> {
        let path = self.path("persistentDisposition");
        let Some(v) = self.get("persistentDisposition") else {
            return Ok(());
        };
        let Value::Object(o) = v else {
            return Err(DocumentError::WrongType {
                path,
                expected: "an object",
            });
        };
        if !o.contains_key("set") && !o.contains_key("unset") {
            return Err(DocumentError::Missing {
                path: path.key("set"),
            });
        }
        for (k, v) in o {
            let p = path.key(k);
            if !matches!(k.as_str(), "set" | "unset") {
                return Err(DocumentError::UnknownField { path: p });
            }
            let Value::Array(items) = v else {
                return Err(DocumentError::WrongType {
                    path: p,
                    expected: "a list",
                });
            };
            check_list_len(items, &p)?;
            for (i, item) in items.iter().enumerate() {
                self.vocabulary(Some(item), p.index(i), Vocabulary::Disposition)?;
            }
        }
        Ok(())
    }

    fn location(&self, key: &str) -> Result<(), DocumentError> {
        let path = self.path(key);
        let Some(v) = self.get(key) else {
            return Ok(());
        };
        let Value::Object(o) = v else {
            return Err(DocumentError::WrongType {
                path,
                expected: "an object with an id",
            });
        };
        uri(required(o, "id", &path)?, path.key("id"))?;
        for (k, v) in o {
            if k != "id" {
                check_extension_key(k, &path.key(k), self.context)?;
                check_extension_value(v, &path.key(k), 1)?;
            }
        }
        Ok(())
    }

    fn biz_transactions(&self) -> Result<(), DocumentError> {
        let path = self.path("bizTransactionList");
        let Some(v) = self.get("bizTransactionList") else {
            return Ok(());
        };
        let items = list(v, &path)?;
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Value::Object(o) = item else {
                return Err(DocumentError::WrongType {
                    path: p,
                    expected: "an object",
                });
            };
            uri(required(o, "bizTransaction", &p)?, p.key("bizTransaction"))?;
            self.vocabulary(o.get("type"), p.key("type"), Vocabulary::BizTransactionType)?;
            reject_unknown(o, &["bizTransaction", "type"], &p)?;
        }
        Ok(())
    }

    fn source_destination(&self, key: &str, item_key: &str) -> Result<(), DocumentError> {
        let path = self.path(key);
        let Some(v) = self.get(key) else {
            return Ok(());
        };
        let items = list(v, &path)?;
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Value::Object(o) = item else {
                return Err(DocumentError::WrongType {
                    path: p,
                    expected: "an object",
                });
            };
            uri(required(o, item_key, &p)?, p.key(item_key))?;
            self.vocabulary(
                Some(required(o, "type", &p)?),
                p.key("type"),
                Vocabulary::SourceDestinationType,
            )?;
            reject_unknown(o, &[item_key, "type"], &p)?;
        }
        Ok(())
    }

    fn sensor_elements(&self) -> Result<(), DocumentError> {
        let path = self.path("sensorElementList");
        let Some(v) = self.get("sensorElementList") else {
            return Ok(());
        };
        let items = list(v, &path)?;
        if items.is_empty() {
            return Err(DocumentError::EmptyList { path });
        }
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Value::Object(element) = item else {
                return Err(DocumentError::WrongType {
                    path: p,
                    expected: "a sensorElement object",
                });
            };
            let reports_path = p.key("sensorReport");
            let reports = match element.get("sensorReport") {
                None => return Err(DocumentError::Missing { path: reports_path }),
                Some(r) => list(r, &reports_path)?,
            };
            if reports.is_empty() {
                return Err(DocumentError::EmptyList { path: reports_path });
            }
            if let Some(m) = element.get("sensorMetadata") {
                self.sensor_metadata(m, &p.key("sensorMetadata"))?;
            }
            for (j, report) in reports.iter().enumerate() {
                self.sensor_report(report, &reports_path.index(j))?;
            }
            for (k, v) in element {
                if !matches!(k.as_str(), "sensorMetadata" | "sensorReport") {
                    check_extension_key(k, &p.key(k), self.context)?;
                    check_extension_value(v, &p.key(k), 1)?;
                }
            }
        }
        Ok(())
    }

    fn sensor_metadata(&self, value: &Value, path: &JsonPath) -> Result<(), DocumentError> {
        let Value::Object(o) = value else {
            return Err(DocumentError::WrongType {
                path: path.clone(),
                expected: "an object",
            });
        };
        for (k, v) in o {
            let p = path.key(k);
            match k.as_str() {
                "time" | "startTime" | "endTime" => self.optional_timestamp(Some(v), p)?,
                "deviceID" | "deviceMetadata" | "rawData" | "dataProcessingMethod" | "bizRules" => {
                    uri(v, p)?;
                }
                _ => {
                    check_extension_key(k, &p, self.context)?;
                    check_extension_value(v, &p, 1)?;
                }
            }
        }
        Ok(())
    }

    fn sensor_report(&self, value: &Value, path: &JsonPath) -> Result<(), DocumentError> {
        let Value::Object(o) = value else {
            return Err(DocumentError::WrongType {
                path: path.clone(),
                expected: "a sensorReport object",
            });
        };
        for (k, v) in o {
            let p = path.key(k);
            match k.as_str() {
                "type" => self.vocabulary(Some(v), p, Vocabulary::MeasurementType)?,
                "exception" => self.vocabulary(Some(v), p, Vocabulary::SensorAlertType)?,
                "component" => self.vocabulary(Some(v), p, Vocabulary::Component)?,
                "time" => self.optional_timestamp(Some(v), p)?,
                "deviceID"
                | "deviceMetadata"
                | "rawData"
                | "dataProcessingMethod"
                | "microorganism"
                | "chemicalSubstance"
                | "uriValue"
                | "coordinateReferenceSystem" => {
                    uri(v, p)?;
                }
                "value" | "minValue" | "maxValue" | "meanValue" | "sDev" | "percRank"
                | "percValue" => {
                    if !v.is_number() {
                        return Err(DocumentError::WrongType {
                            path: p,
                            expected: "a number",
                        });
                    }
                }
                "booleanValue" => {
                    if !v.is_boolean() {
                        return Err(DocumentError::WrongType {
                            path: p,
                            expected: "true or false",
                        });
                    }
                }
                "stringValue" => {
                    if !v.is_string() {
                        return Err(DocumentError::WrongType {
                            path: p,
                            expected: "a string",
                        });
                    }
                }
                "hexBinaryValue" => match v {
                    Value::String(s)
                        if s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                    _ => {
                        return Err(DocumentError::WrongType {
                            path: p,
                            expected: "hexadecimal text",
                        });
                    }
                },
                "uom" => uom(v, p)?,
                _ => {
                    check_extension_key(k, &p, self.context)?;
                    check_extension_value(v, &p, 1)?;
                }
            }
        }
        Ok(())
    }

    fn epc_list(&self, key: &str) -> Result<usize, DocumentError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => uri_list(v, &self.path(key), false),
        }
    }

    fn quantity_list(&self, key: &str) -> Result<usize, DocumentError> {
        let path = self.path(key);
        let Some(v) = self.get(key) else { return Ok(0) };
        let items = list(v, &path)?;
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Value::Object(o) = item else {
                return Err(DocumentError::WrongType {
                    path: p,
                    expected: "a quantity element object",
                });
            };
            uri(required(o, "epcClass", &p)?, p.key("epcClass"))?;
            match o.get("quantity") {
                None if o.contains_key("uom") => {
                    return Err(DocumentError::UomWithoutQuantity { path: p.key("uom") });
                }
                None => {}
                Some(Value::Number(n)) if n.as_f64().is_some_and(|q| q < 0.0) => {
                    return Err(DocumentError::NegativeQuantity {
                        path: p.key("quantity"),
                    });
                }
                Some(Value::Number(_)) => {}
                Some(_) => {
                    return Err(DocumentError::WrongType {
                        path: p.key("quantity"),
                        expected: "a number",
                    });
                }
            }
            if let Some(u) = o.get("uom") {
                uom(u, p.key("uom"))?;
            }
            reject_unknown(o, &["epcClass", "quantity", "uom"], &p)?;
        }
        Ok(items.len())
    }

    fn action(&self) -> Result<Option<&str>, DocumentError> {
        match self.get("action") {
            None => Err(DocumentError::Missing {
                path: self.path("action"),
            }),
            Some(Value::String(a)) if matches!(a.as_str(), "ADD" | "OBSERVE" | "DELETE") => {
                Ok(Some(a))
            }
            Some(Value::String(a)) => Err(DocumentError::InvalidAction {
                path: self.path("action"),
                value: a.clone(),
            }),
            Some(_) => Err(self.wrong("action", "a string")),
        }
    }

    fn type_specific(&self) -> Result<(), DocumentError> {
        let event_path = self.event.path.clone();
        match self.event.event_type {
            EventType::ObjectEvent => {
                let action = self.action()?;
                let n = self.epc_list("epcList")? + self.quantity_list("quantityList")?;
                if n == 0 {
                    return Err(DocumentError::MissingObjects {
                        path: event_path,
                        reason: "an ObjectEvent needs at least one EPC in epcList or one quantity element",
                    });
                }
                if self.get("ilmd").is_some() && action != Some("ADD") {
                    return Err(DocumentError::NotAllowedWithAction {
                        path: self.path("ilmd"),
                        reason: "ilmd is only allowed when action is ADD",
                    });
                }
            }
            EventType::AggregationEvent | EventType::AssociationEvent => {
                let action = self.action()?;
                self.optional_uri("parentID")?;
                let children =
                    self.epc_list("childEPCs")? + self.quantity_list("childQuantityList")?;
                if action != Some("OBSERVE") && self.get("parentID").is_none() {
                    return Err(DocumentError::Missing {
                        path: self.path("parentID"),
                    });
                }
                if action == Some("ADD") && children == 0 {
                    return Err(DocumentError::MissingObjects {
                        path: event_path,
                        reason: "an ADD needs at least one child in childEPCs or childQuantityList",
                    });
                }
            }
            EventType::TransactionEvent => {
                self.action()?;
                self.optional_uri("parentID")?;
                self.epc_list("epcList")?;
                self.quantity_list("quantityList")?;
                match self.get("bizTransactionList") {
                    Some(Value::Array(items)) if !items.is_empty() => {}
                    Some(_) => {
                        return Err(DocumentError::EmptyList {
                            path: self.path("bizTransactionList"),
                        });
                    }
                    None => {
                        return Err(DocumentError::Missing {
                            path: self.path("bizTransactionList"),
                        });
                    }
                }
            }
            EventType::TransformationEvent => {
                let inputs =
                    self.epc_list("inputEPCList")? + self.quantity_list("inputQuantityList")?;
                let outputs =
                    self.epc_list("outputEPCList")? + self.quantity_list("outputQuantityList")?;
                self.optional_uri("transformationID")?;
                if self.get("transformationID").is_none() && (inputs == 0 || outputs == 0) {
                    return Err(DocumentError::MissingObjects {
                        path: event_path,
                        reason: "a TransformationEvent without transformationID needs at least one input and one output",
                    });
                }
            }
        }
        Ok(())
    }
}

fn list<'v>(value: &'v Value, path: &JsonPath) -> Result<&'v Vec<Value>, DocumentError> {
    match value {
        Value::Array(items) => {
            check_list_len(items, path)?;
            Ok(items)
        }
        _ => Err(DocumentError::WrongType {
            path: path.clone(),
            expected: "a list",
        }),
    }
}

fn check_list_len(items: &[Value], path: &JsonPath) -> Result<(), DocumentError> {
    if items.len() > LIST_ITEMS_MAX {
        return Err(DocumentError::ListTooLong {
            path: path.clone(),
            count: items.len(),
            max: LIST_ITEMS_MAX,
        });
    }
    Ok(())
}

fn uri_list(value: &Value, path: &JsonPath, allow_empty: bool) -> Result<usize, DocumentError> {
    let items = list(value, path)?;
    if items.is_empty() && !allow_empty {
        return Ok(0);
    }
    for (i, item) in items.iter().enumerate() {
        uri(item, path.index(i))?;
    }
    Ok(items.len())
}

fn reject_unknown(
    object: &Map<String, Value>,
    known: &[&str],
    path: &JsonPath,
) -> Result<(), DocumentError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(DocumentError::UnknownField { path: path.key(k) }),
        None => Ok(()),
    }
}

/// A URI in the EPCIS sense (RFC 3986 absolute URI, §7.2): a scheme, a colon, no spaces.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The value of a required member `key` of object `o` at `path`.
fn required<'v>(
    o: &'v Map<String, Value>,
    key: &str,
    path: &JsonPath,
) -> Result<&'v Value, DocumentError> {
    o.get(key).ok_or_else(|| DocumentError::Missing {
        path: path.key(key),
    })
}

fn uri(value: &Value, path: JsonPath) -> Result<&str, DocumentError> {
    match value {
        Value::String(s) if is_uri(s) => Ok(s),
        Value::String(s) => Err(DocumentError::NotAUri {
            path,
            value: s.clone(),
        }),
        _ => Err(DocumentError::WrongType {
            path,
            expected: "a URI string",
        }),
    }
}

/// UN/CEFACT Recommendation 20 codes are 2-3 upper-case letters or digits.
fn uom(value: &Value, path: JsonPath) -> Result<(), DocumentError> {
    match value {
        Value::String(s)
            if (2..=3).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            Ok(())
        }
        Value::String(s) => Err(DocumentError::InvalidUom {
            path,
            value: s.clone(),
        }),
        _ => Err(DocumentError::WrongType {
            path,
            expected: "a unit code string",
        }),
    }
}

fn check_extension_key(key: &str, path: &JsonPath, context: &Context) -> Result<(), DocumentError> {
    match key.split_once(':') {
        Some((prefix, local)) if !prefix.is_empty() && !local.is_empty() => {
            if context.knows(prefix) {
                Ok(())
            } else {
                Err(DocumentError::UndeclaredPrefix {
                    path: path.clone(),
                    prefix: prefix.to_owned(),
                })
            }
        }
        _ => Err(DocumentError::UnknownField { path: path.clone() }),
    }
}

fn check_extension_value(
    value: &Value,
    path: &JsonPath,
    depth: usize,
) -> Result<(), DocumentError> {
    if depth > EXTENSION_DEPTH_MAX {
        return Err(DocumentError::TooDeep {
            path: path.clone(),
            max: EXTENSION_DEPTH_MAX,
        });
    }
    match value {
        Value::Array(items) => {
            check_list_len(items, path)?;
            for (i, item) in items.iter().enumerate() {
                check_extension_value(item, &path.index(i), depth + 1)?;
            }
            Ok(())
        }
        Value::Object(o) => {
            for (k, v) in o {
                check_extension_value(v, &path.key(k), depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_EVENT: &str = r#"{"type":"ObjectEvent","eventTime":"2020-01-01T00:00:00Z","eventTimeZoneOffset":"+00:00","epcList":["urn:epc:id:sgtin:4012345.011111.1"],"action":"OBSERVE"}"#;

    /// Applies `edit` to a valid event, wraps it in a document and returns the error.
    fn error_after(edit: impl FnOnce(&mut Map<String, Value>)) -> DocumentError {
        let mut event: Map<String, Value> = serde_json::from_str(OK_EVENT).unwrap();
        edit(&mut event);
        let doc = serde_json::json!({
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": "https://ex.example/"}],
            "type": "EPCISDocument",
            "epcisBody": {"eventList": [Value::Object(event)]}
        });
        parse_document(doc.to_string().as_bytes()).unwrap_err()
    }

    fn check(
        edit: impl FnOnce(&mut Map<String, Value>),
        expected_path: &str,
        matches: fn(&DocumentError) -> bool,
    ) {
        let err = error_after(edit);
        assert!(matches(&err), "unexpected error {err:?}");
        assert!(
            err.to_string().starts_with(expected_path),
            "{err} does not name {expected_path}"
        );
    }

    fn set(key: &'static str, value: Value) -> impl FnOnce(&mut Map<String, Value>) {
        move |e| {
            e.insert(key.to_owned(), value);
        }
    }

    const EV: &str = "$.epcisBody.eventList[0]";

    #[test]
    fn a_valid_event_is_accepted_in_every_document_shape() {
        let doc = parse_document(OK_EVENT.as_bytes()).unwrap();
        assert_eq!(doc.kind(), DocumentKind::SingleEvent);
        let list = format!("[{OK_EVENT},{OK_EVENT}]");
        let doc = parse_document(list.as_bytes()).unwrap();
        assert_eq!(
            (doc.kind(), doc.events().len()),
            (DocumentKind::EventList, 2)
        );
        let query = format!(
            r#"{{"type":"EPCISQueryDocument","epcisBody":{{"queryResults":{{"resultsBody":{{"eventList":[{OK_EVENT}]}}}}}}}}"#
        );
        let doc = parse_document(query.as_bytes()).unwrap();
        assert_eq!(doc.kind(), DocumentKind::QueryDocument);
        assert_eq!(doc.events()[0].event_type(), EventType::ObjectEvent);
    }

    #[test]
    fn document_level_errors() {
        assert!(matches!(
            parse_document(b"{"),
            Err(DocumentError::NotJson { .. })
        ));
        assert!(matches!(
            parse_document(b"42"),
            Err(DocumentError::NotEpcis { .. })
        ));
        assert!(matches!(
            parse_document(br#"{"type":"Other"}"#),
            Err(DocumentError::NotEpcis { .. })
        ));
        let big = vec![b' '; DOCUMENT_BYTES_MAX + 1];
        assert!(matches!(
            parse_document(&big),
            Err(DocumentError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_document(br#"{"type":"EPCISDocument"}"#),
            Err(DocumentError::Missing { path }) if path.as_str() == "$.epcisBody"
        ));
        assert!(matches!(
            parse_document(br#"{"type":"EPCISDocument","epcisBody":{"eventList":{}}}"#),
            Err(DocumentError::WrongType { .. })
        ));
        let many = format!(
            "[{}]",
            vec![OK_EVENT; EVENTS_PER_DOCUMENT_MAX + 1].join(",")
        );
        assert!(matches!(
            parse_document(many.as_bytes()),
            Err(DocumentError::TooManyEvents { .. })
        ));
    }

    #[test]
    fn event_type_errors() {
        check(set("type", Value::from("ThingEvent")), EV, |e| {
            matches!(e, DocumentError::UnknownEventType { .. })
        });
        check(
            |e| {
                e.remove("type");
            },
            EV,
            |e| matches!(e, DocumentError::Missing { .. }),
        );
        check(set("type", Value::from(1)), EV, |e| {
            matches!(e, DocumentError::WrongType { .. })
        });
    }

    #[test]
    fn time_errors() {
        check(
            |e| {
                e.remove("eventTime");
            },
            "$.epcisBody.eventList[0].eventTime",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
        check(
            set("eventTime", Value::from("2020-01-01T00:00:00")),
            "$.epcisBody.eventList[0].eventTime",
            |e| matches!(e, DocumentError::InvalidTimestamp { .. }),
        );
        check(
            set("recordTime", Value::from(5)),
            "$.epcisBody.eventList[0].recordTime",
            |e| matches!(e, DocumentError::WrongType { .. }),
        );
        check(
            set("eventTimeZoneOffset", Value::from("+1:00")),
            "$.epcisBody.eventList[0].eventTimeZoneOffset",
            |e| matches!(e, DocumentError::InvalidTimeZoneOffset { .. }),
        );
        check(
            |e| {
                e.remove("eventTimeZoneOffset");
            },
            "$.epcisBody.eventList[0].eventTimeZoneOffset",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
    }

    #[test]
    fn action_errors() {
        check(
            set("action", Value::from("UPDATE")),
            "$.epcisBody.eventList[0].action",
            |e| matches!(e, DocumentError::InvalidAction { .. }),
        );
        check(
            |e| {
                e.remove("action");
            },
            "$.epcisBody.eventList[0].action",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
        check(
            set("ilmd", serde_json::json!({"ex:lot": "1"})),
            "$.epcisBody.eventList[0].ilmd",
            |e| matches!(e, DocumentError::NotAllowedWithAction { .. }),
        );
    }

    #[test]
    fn field_errors() {
        check(
            set("readPoint", serde_json::json!({})),
            "$.epcisBody.eventList[0].readPoint.id",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
        check(
            set("readPoint", serde_json::json!({"id": "not a uri"})),
            "$.epcisBody.eventList[0].readPoint.id",
            |e| matches!(e, DocumentError::NotAUri { .. }),
        );
        check(
            set("bizStep", Value::from("harvesting")),
            "$.epcisBody.eventList[0].bizStep",
            |e| matches!(e, DocumentError::UnknownVocabularyTerm { .. }),
        );
        check(
            set("epcList", serde_json::json!(["urn:x:1", 7])),
            "$.epcisBody.eventList[0].epcList[1]",
            |e| matches!(e, DocumentError::WrongType { .. }),
        );
        check(
            set("parentID", Value::from("urn:x:1")),
            "$.epcisBody.eventList[0].parentID",
            |e| matches!(e, DocumentError::UnknownField { .. }),
        );
        check(
            set("myField", Value::from("x")),
            "$.epcisBody.eventList[0].myField",
            |e| matches!(e, DocumentError::UnknownField { .. }),
        );
        check(
            set("nope:myField", Value::from("x")),
            "$.epcisBody.eventList[0].nope:myField",
            |e| matches!(e, DocumentError::UndeclaredPrefix { .. }),
        );
        check(
            set("sourceList", serde_json::json!([{"source": "urn:x:1"}])),
            "$.epcisBody.eventList[0].sourceList[0].type",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
        check(
            set(
                "persistentDisposition",
                serde_json::json!({"set": ["bad word"]}),
            ),
            "$.epcisBody.eventList[0].persistentDisposition.set[0]",
            |e| matches!(e, DocumentError::UnknownVocabularyTerm { .. }),
        );
        check(
            set(
                "errorDeclaration",
                serde_json::json!({"reason": "incorrect_data"}),
            ),
            "$.epcisBody.eventList[0].errorDeclaration.declarationTime",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
    }

    #[test]
    fn quantity_errors() {
        let q = |v: Value| set("quantityList", v);
        check(
            q(serde_json::json!([{"epcClass": "urn:x:1", "quantity": -1}])),
            "$.epcisBody.eventList[0].quantityList[0].quantity",
            |e| matches!(e, DocumentError::NegativeQuantity { .. }),
        );
        check(
            q(serde_json::json!([{"epcClass": "urn:x:1", "uom": "KGM"}])),
            "$.epcisBody.eventList[0].quantityList[0].uom",
            |e| matches!(e, DocumentError::UomWithoutQuantity { .. }),
        );
        check(
            q(serde_json::json!([{"epcClass": "urn:x:1", "quantity": 1, "uom": "kilogram"}])),
            "$.epcisBody.eventList[0].quantityList[0].uom",
            |e| matches!(e, DocumentError::InvalidUom { .. }),
        );
        check(
            q(serde_json::json!([{"quantity": 1}])),
            "$.epcisBody.eventList[0].quantityList[0].epcClass",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
        check(set("epcList", serde_json::json!([])), EV, |e| {
            matches!(e, DocumentError::MissingObjects { .. })
        });
        let long: Vec<Value> = (0..=LIST_ITEMS_MAX)
            .map(|_| Value::from("urn:x:1"))
            .collect();
        check(
            set("epcList", Value::Array(long)),
            "$.epcisBody.eventList[0].epcList",
            |e| matches!(e, DocumentError::ListTooLong { .. }),
        );
    }

    #[test]
    fn sensor_errors() {
        check(
            set("sensorElementList", serde_json::json!([])),
            "$.epcisBody.eventList[0].sensorElementList",
            |e| matches!(e, DocumentError::EmptyList { .. }),
        );
        check(
            set(
                "sensorElementList",
                serde_json::json!([{"sensorMetadata": {}}]),
            ),
            "$.epcisBody.eventList[0].sensorElementList[0].sensorReport",
            |e| matches!(e, DocumentError::Missing { .. }),
        );
        check(
            set(
                "sensorElementList",
                serde_json::json!([{"sensorReport": [{"value": "hot"}]}]),
            ),
            "$.epcisBody.eventList[0].sensorElementList[0].sensorReport[0].value",
            |e| matches!(e, DocumentError::WrongType { .. }),
        );
        check(
            set(
                "sensorElementList",
                serde_json::json!([{"sensorReport": [{"type": "Hotness"}]}]),
            ),
            "$.epcisBody.eventList[0].sensorElementList[0].sensorReport[0].type",
            |e| matches!(e, DocumentError::UnknownVocabularyTerm { .. }),
        );
    }

    #[test]
    fn type_specific_errors() {
        let agg = |e: &mut Map<String, Value>| {
            e.insert("type".into(), Value::from("AggregationEvent"));
            e.remove("epcList");
            e.insert("action".into(), Value::from("ADD"));
            e.insert("childEPCs".into(), serde_json::json!(["urn:x:1"]));
        };
        check(agg, "$.epcisBody.eventList[0].parentID", |e| {
            matches!(e, DocumentError::Missing { .. })
        });
        let tx = |e: &mut Map<String, Value>| {
            e.insert("type".into(), Value::from("TransactionEvent"));
        };
        check(tx, "$.epcisBody.eventList[0].bizTransactionList", |e| {
            matches!(e, DocumentError::Missing { .. })
        });
        let tf = |e: &mut Map<String, Value>| {
            e.insert("type".into(), Value::from("TransformationEvent"));
            e.remove("epcList");
            e.remove("action");
            e.insert("inputEPCList".into(), serde_json::json!(["urn:x:1"]));
        };
        check(tf, EV, |e| {
            matches!(e, DocumentError::MissingObjects { .. })
        });
        let tf_action = |e: &mut Map<String, Value>| {
            e.insert("type".into(), Value::from("TransformationEvent"));
        };
        check(tf_action, "$.epcisBody.eventList[0].action", |e| {
            matches!(e, DocumentError::UnknownField { .. })
        });
    }

    #[test]
    fn deep_extensions_are_refused() {
        let mut v = Value::from("leaf");
        for _ in 0..=EXTENSION_DEPTH_MAX {
            v = Value::Array(vec![v]);
        }
        check(set("ex:deep", v), "$.epcisBody.eventList[0].ex:deep", |e| {
            matches!(e, DocumentError::TooDeep { .. })
        });
    }
}
