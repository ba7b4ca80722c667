//! FSMA 204 (issue "Traceability API", item 7): the electronic sortable spreadsheet the FDA's
//! Food Traceability Rule (21 CFR Part 1, Subpart S) asks a firm to hand over within 24 hours —
//! one row per critical tracking event (CTE) and traceability lot, with that event's key data
//! elements (KDEs, §§ 1.1325–1.1355) — built from the EPCIS events the node stores.
//!
//! Which CTE an EPCIS event records is decided here, from the event alone, as follows (CBV 2.0
//! has no harvesting or cooling step, so those two also accept this platform's own step URIs,
//! which its data-entry pages write):
//!
//! | event | CTE |
//! |---|---|
//! | `TransformationEvent` with bizStep `packing` | initial packing (§ 1.1335) |
//! | any other `TransformationEvent` | transformation (§ 1.1355) |
//! | bizStep `urn:agritrace:bizstep:harvesting`, or `commissioning` with action `ADD` and a harvest date in its ILMD (`cbvmda:harvestStartDate` / `harvestEndDate`) | harvesting (§ 1.1325) |
//! | bizStep `urn:agritrace:bizstep:cooling` | cooling (§ 1.1330) |
//! | bizStep `packing` in an `ObjectEvent` with action `ADD` | initial packing (§ 1.1335) |
//! | bizStep `shipping` | shipping (§ 1.1345) |
//! | bizStep `receiving` | receiving (§ 1.1350) |
//!
//! Other events (observations, sensor reports, inspections, and aggregations: putting cases on
//! a pallet is no CTE) are left out.
//! The traceability lot code (TLC) is a GTIN with its lot: an LGTIN class in a quantity list
//! (or its Digital Link form `…/01/{gtin}/10/{lot}`), or the lot of an SGTIN's ILMD-less
//! instance is unknown and such an EPC gives no row. Columns are fixed ([`COLUMNS`]); a value
//! the event does not carry is left empty rather than guessed, so the FDA sees what is
//! missing. Rows are sorted by event time, then TLC, and written as RFC 4180 CSV.

use std::fmt::Write as _;

use gs1::{EpcKey, Gtin, canonical_epc};
use serde_json::{Map, Value};

/// The spreadsheet's header, in column order.
pub const COLUMNS: [&str; 18] = [
    "Critical Tracking Event",
    "Event Date",
    "Event Time (UTC)",
    "Traceability Lot Code",
    "GTIN",
    "Lot",
    "Product Description",
    "Quantity",
    "Unit of Measure",
    "Location Description",
    "Immediate Previous Source",
    "Immediate Subsequent Recipient",
    "Traceability Lot Code Source",
    "Input Traceability Lot Codes",
    "Reference Document Type",
    "Reference Document Number",
    "EPCIS Event ID",
    "Log Entry Leaf Hash",
];

/// A critical tracking event of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cte {
    /// § 1.1325.
    Harvesting,
    /// § 1.1330.
    Cooling,
    /// § 1.1335.
    InitialPacking,
    /// § 1.1345.
    Shipping,
    /// § 1.1350.
    Receiving,
    /// § 1.1355.
    Transformation,
}

impl Cte {
    /// Its name as the rule writes it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Harvesting => "Harvesting",
            Self::Cooling => "Cooling",
            Self::InitialPacking => "Initial Packing",
            Self::Shipping => "Shipping",
            Self::Receiving => "Receiving",
            Self::Transformation => "Transformation",
        }
    }
}

/// What the spreadsheet says about products, locations and lots beyond the event itself.
pub trait Describe {
    /// A product's description (name, and whatever identifies it to a reader).
    fn product(&self, gtin: &Gtin) -> Option<String>;
    /// A location's description (name, address or country, GLN) from an identifier as
    /// events carry it (SGLN, Digital Link, or an organisation's own URI).
    fn location(&self, id: &str) -> Option<String>;
    /// The location description of where a lot's TLC was assigned.
    fn tlc_source(&self, gtin: &Gtin, lot: &str) -> Option<String>;
}

/// A stored event as the export reads it.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// The event's JSON (EPCIS 2.0 JSON-LD).
    pub event: &'a Map<String, Value>,
    /// Its eventID (the client's, or its canonical hash).
    pub event_id: &'a str,
    /// The leaf hash of its `TraceEvent` entry in the log (hex), once submitted.
    pub anchor: Option<&'a str>,
}

/// One spreadsheet row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The CTE.
    pub cte: Cte,
    /// The event time (Unix ms), for sorting.
    pub time_ms: i64,
    /// The cells, in [`COLUMNS`] order.
    pub cells: [String; 18],
}

/// The CTE `event` records, if any.
#[must_use]
pub fn cte_of(event: &Map<String, Value>) -> Option<Cte> {
    let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
    let biz_step = event
        .get("bizStep")
        .and_then(Value::as_str)
        .map(bare_step)
        .unwrap_or_default();
    let action = event.get("action").and_then(Value::as_str).unwrap_or("");
    if event_type == "TransformationEvent" {
        return Some(if biz_step == "packing" {
            Cte::InitialPacking
        } else {
            Cte::Transformation
        });
    }
    match biz_step.as_str() {
        "harvesting" => Some(Cte::Harvesting),
        "commissioning" if action == "ADD" && has_harvest_date(event) => Some(Cte::Harvesting),
        "cooling" => Some(Cte::Cooling),
        "packing" if action == "ADD" && event_type == "ObjectEvent" => Some(Cte::InitialPacking),
        "shipping" => Some(Cte::Shipping),
        "receiving" => Some(Cte::Receiving),
        _ => None,
    }
}

/// `shipping` from `shipping`, `https://ref.gs1.org/cbv/BizStep-shipping`,
/// `urn:epcglobal:cbv:bizstep:shipping`; `harvesting`/`cooling` from this platform's URNs.
fn bare_step(step: &str) -> String {
    for prefix in [
        "https://ref.gs1.org/cbv/BizStep-",
        "http://ref.gs1.org/cbv/BizStep-",
        "urn:epcglobal:cbv:bizstep:",
        "gs1:BizStep-",
        "cbv:BizStep-",
    ] {
        if let Some(rest) = step.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    match step {
        "urn:agritrace:bizstep:harvesting" => "harvesting".to_owned(),
        "urn:agritrace:bizstep:cooling" => "cooling".to_owned(),
        // Custom step URIs other than ours are no CTE; keep bare CBV words as they are.
        other if other.contains(':') => String::new(),
        other => other.to_owned(),
    }
}

fn has_harvest_date(event: &Map<String, Value>) -> bool {
    event
        .get("ilmd")
        .and_then(Value::as_object)
        .is_some_and(|ilmd| {
            ilmd.keys().any(|k| {
                let local = k.rsplit([':', '#', '/']).next().unwrap_or(k);
                local == "harvestStartDate" || local == "harvestEndDate"
            })
        })
}

/// A quantity of one lot in an event.
struct LotQuantity {
    gtin: Gtin,
    lot: String,
    quantity: String,
    uom: String,
}

fn lot_quantities(list: Option<&Value>) -> Vec<LotQuantity> {
    let Some(items) = list.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let class = item.get("epcClass")?.as_str()?;
            let EpcKey::Lgtin { gtin, lot } = canonical_epc(class).ok()? else {
                return None;
            };
            Some(LotQuantity {
                gtin,
                lot: lot.as_str().to_owned(),
                quantity: item
                    .get("quantity")
                    .map(|q| match q {
                        Value::Number(n) => n.to_string(),
                        Value::String(s) => s.clone(),
                        _ => String::new(),
                    })
                    .unwrap_or_default(),
                uom: item
                    .get("uom")
                    .and_then(Value::as_str)
                    .unwrap_or("EA")
                    .to_owned(),
            })
        })
        .collect()
}

/// Lots named by instance-level EPCs whose lot is part of the identifier (Digital Links with
/// `/10/` and `/21/`): quantity one each.
fn lot_instances(list: Option<&Value>) -> Vec<LotQuantity> {
    let Some(items) = list.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let uri = item.as_str()?;
            let link = gs1::DigitalLink::parse(uri).ok()?;
            Some(LotQuantity {
                gtin: link.gtin()?,
                lot: link.lot()?.as_str().to_owned(),
                quantity: "1".to_owned(),
                uom: "EA".to_owned(),
            })
        })
        .collect()
}

fn tlc(gtin: &Gtin, lot: &str) -> String {
    format!("(01){}(10){lot}", gtin.digits())
}

fn party_list(
    event: &Map<String, Value>,
    field: &str,
    key: &str,
    describe: &dyn Describe,
) -> String {
    let Some(items) = event.get(field).and_then(Value::as_array) else {
        return String::new();
    };
    // Prefer the location; fall back to the owning or possessing party.
    let mut by_kind: Vec<(u8, String)> = items
        .iter()
        .filter_map(|item| {
            let kind = item.get("type").and_then(Value::as_str)?;
            let id = item.get(key).and_then(Value::as_str)?;
            let rank = if kind.ends_with("location") {
                0
            } else if kind.ends_with("owning_party") {
                1
            } else {
                2
            };
            Some((rank, describe.location(id).unwrap_or_else(|| id.to_owned())))
        })
        .collect();
    by_kind.sort();
    by_kind.dedup();
    by_kind.first().map(|(_, d)| d.clone()).unwrap_or_default()
}

fn reference_documents(event: &Map<String, Value>) -> (String, String) {
    let Some(items) = event.get("bizTransactionList").and_then(Value::as_array) else {
        return (String::new(), String::new());
    };
    let mut types = Vec::new();
    let mut numbers = Vec::new();
    for item in items {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        let bare = kind.rsplit(['-', ':']).next().unwrap_or(kind);
        types.push(
            match bare {
                "po" => "Purchase Order",
                "poc" => "Purchase Order Confirmation",
                "inv" => "Invoice",
                "bol" => "Bill of Lading",
                "desadv" => "Despatch Advice",
                "recadv" => "Receiving Advice",
                "prodorder" => "Production Order",
                "cert" => "Certificate",
                "rma" => "Return Merchandise Authorisation",
                "" => "Business Transaction",
                other => other,
            }
            .to_owned(),
        );
        let number = item
            .get("bizTransaction")
            .and_then(Value::as_str)
            .unwrap_or("");
        numbers.push(
            number
                .rsplit([':', '/'])
                .next()
                .unwrap_or(number)
                .to_owned(),
        );
    }
    (types.join("; "), numbers.join("; "))
}

/// The event's time in UTC and the local date at its recorded offset.
fn times(event: &Map<String, Value>) -> Option<(i64, String, String)> {
    let text = event.get("eventTime")?.as_str()?;
    let stamp = gs1::epcis::canon::parse_timestamp(text)?;
    let utc = stamp.to_utc_millis_string()?;
    let millis = stamp.unix_ms;
    let offset_minutes = event
        .get("eventTimeZoneOffset")
        .and_then(Value::as_str)
        .and_then(parse_offset)
        .unwrap_or(0);
    let local_date = date_of(millis + offset_minutes * 60_000);
    Some((millis, local_date, utc))
}

fn parse_offset(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    Some(sign * (hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?))
}

/// `YYYY-MM-DD` of a Unix time in ms (proleptic Gregorian).
pub(crate) fn date_of(millis: i64) -> String {
    let (year, month, day) = gs1::epcis::canon::civil_from_days(millis.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The rows of one stored event (none if it records no CTE or names no lot).
#[must_use]
pub fn rows_of(stored: StoredEvent<'_>, describe: &dyn Describe) -> Vec<Row> {
    let event = stored.event;
    let Some(cte) = cte_of(event) else {
        return Vec::new();
    };
    let Some((time_ms, date, utc)) = times(event) else {
        return Vec::new();
    };
    let (lots, inputs) = if event.get("type").and_then(Value::as_str) == Some("TransformationEvent")
    {
        let mut outputs = lot_quantities(event.get("outputQuantityList"));
        outputs.extend(lot_instances(event.get("outputEPCList")));
        let mut inputs = lot_quantities(event.get("inputQuantityList"));
        inputs.extend(lot_instances(event.get("inputEPCList")));
        (outputs, inputs)
    } else {
        let mut lots = lot_quantities(event.get("quantityList"));
        lots.extend(lot_quantities(event.get("childQuantityList")));
        lots.extend(lot_instances(event.get("epcList")));
        lots.extend(lot_instances(event.get("childEPCs")));
        (lots, Vec::new())
    };
    let location_id = event
        .get("bizLocation")
        .and_then(|l| l.get("id"))
        .or_else(|| event.get("readPoint").and_then(|l| l.get("id")))
        .and_then(Value::as_str)
        .unwrap_or("");
    let location = describe
        .location(location_id)
        .unwrap_or_else(|| location_id.to_owned());
    let previous = party_list(event, "sourceList", "source", describe);
    let next = party_list(event, "destinationList", "destination", describe);
    let (doc_types, doc_numbers) = reference_documents(event);
    let mut input_codes: Vec<String> = inputs.iter().map(|l| tlc(&l.gtin, &l.lot)).collect();
    input_codes.sort();
    input_codes.dedup();
    let input_codes = input_codes.join("; ");
    lots.into_iter()
        .map(|lot| Row {
            cte,
            time_ms,
            cells: [
                cte.name().to_owned(),
                date.clone(),
                utc.clone(),
                tlc(&lot.gtin, &lot.lot),
                lot.gtin.digits(),
                lot.lot.clone(),
                describe.product(&lot.gtin).unwrap_or_default(),
                lot.quantity,
                lot.uom,
                location.clone(),
                previous.clone(),
                next.clone(),
                describe.tlc_source(&lot.gtin, &lot.lot).unwrap_or_default(),
                input_codes.clone(),
                doc_types.clone(),
                doc_numbers.clone(),
                stored.event_id.to_owned(),
                stored.anchor.unwrap_or_default().to_owned(),
            ],
        })
        .collect()
}

/// Whether a row is about `gtin` (as a traceability lot or an input of a transformation).
#[must_use]
pub fn row_mentions(row: &Row, gtin: &Gtin) -> bool {
    row.cells[4] == gtin.digits() || row.cells[13].contains(&format!("(01){}", gtin.digits()))
}

/// Sorts rows by event time, then TLC, then CTE.
pub fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (a.time_ms, &a.cells[3], a.cte, &a.cells[16]).cmp(&(
            b.time_ms,
            &b.cells[3],
            b.cte,
            &b.cells[16],
        ))
    });
}

/// RFC 4180 CSV: the header, then the rows, CRLF line ends, fields quoted when they hold a
/// comma, quote, CR or LF. Cells starting with `=`, `+`, `-` or `@` are prefixed with `'` so
/// that a spreadsheet does not run them as formulas (CSV injection).
#[must_use]
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::new();
    write_line(&mut out, COLUMNS.iter().copied());
    for row in rows {
        write_line(&mut out, row.cells.iter().map(String::as_str));
    }
    out
}

fn write_line<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guarded;
        let cell = if cell.starts_with(['=', '+', '-', '@']) && cell.parse::<f64>().is_err() {
            guarded = format!("'{cell}");
            guarded.as_str()
        } else {
            cell
        };
        if cell.contains([',', '"', '\r', '\n']) {
            let _ = write!(out, "\"{}\"", cell.replace('"', "\"\""));
        } else {
            out.push_str(cell);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Names;

    impl Describe for Names {
        fn product(&self, gtin: &Gtin) -> Option<String> {
            (gtin.digits() == "09506000134352").then(|| "Mangoes, Keitt, 10 kg".to_owned())
        }
        fn location(&self, id: &str) -> Option<String> {
            (id == "urn:epc:id:sgln:9506000.13435.0").then(|| "Packhouse A, Sanya, CN".to_owned())
        }
        fn tlc_source(&self, _: &Gtin, lot: &str) -> Option<String> {
            (lot == "L1").then(|| "Farm 7, Ledong, CN".to_owned())
        }
    }

    fn event(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    fn rows(value: Value) -> Vec<Row> {
        let event = event(value);
        rows_of(
            StoredEvent {
                event: &event,
                event_id: "ni:///sha-256;ab?ver=CBV2.0",
                anchor: Some("42ab"),
            },
            &Names,
        )
    }

    #[test]
    fn a_shipping_event_gives_one_row_per_lot_with_its_key_data_elements() {
        let rows = rows(json!({
            "type": "ObjectEvent",
            "action": "OBSERVE",
            "bizStep": "shipping",
            "eventTime": "2026-06-01T23:30:00.000+08:00",
            "eventTimeZoneOffset": "+08:00",
            "bizLocation": {"id": "urn:epc:id:sgln:9506000.13435.0"},
            "quantityList": [
                {"epcClass": "urn:epc:class:lgtin:9506000.013435.L1", "quantity": 120, "uom": "KGM"},
                {"epcClass": "https://id.gs1.org/01/09506000134352/10/L2", "quantity": 80.5, "uom": "KGM"}
            ],
            "destinationList": [{"type": "location", "destination": "urn:epc:id:sgln:9506000.99999.0"}],
            "bizTransactionList": [{"type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:9506000134352:BOL-77"}]
        }));
        assert_eq!(rows.len(), 2);
        let first = &rows[0].cells;
        assert_eq!(first[0], "Shipping");
        assert_eq!(first[1], "2026-06-01", "the local date at +08:00");
        assert_eq!(first[2], "2026-06-01T15:30:00.000Z");
        assert_eq!(first[3], "(01)09506000134352(10)L1");
        assert_eq!(first[6], "Mangoes, Keitt, 10 kg");
        assert_eq!((first[7].as_str(), first[8].as_str()), ("120", "KGM"));
        assert_eq!(first[9], "Packhouse A, Sanya, CN");
        assert_eq!(first[11], "urn:epc:id:sgln:9506000.99999.0");
        assert_eq!(first[12], "Farm 7, Ledong, CN");
        assert_eq!(
            (first[14].as_str(), first[15].as_str()),
            ("Bill of Lading", "BOL-77")
        );
        assert_eq!(first[17], "42ab");
        assert_eq!(rows[1].cells[5], "L2");
        assert_eq!(rows[1].cells[7], "80.5");
    }

    #[test]
    fn transformations_list_their_inputs_and_other_events_are_no_cte() {
        let rows = rows(json!({
            "type": "TransformationEvent",
            "bizStep": "commissioning",
            "eventTime": "2026-06-02T08:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "inputQuantityList": [
                {"epcClass": "urn:epc:class:lgtin:9506000.013435.L1", "quantity": 100, "uom": "KGM"},
                {"epcClass": "urn:epc:class:lgtin:9506000.013435.L2", "quantity": 100, "uom": "KGM"}
            ],
            "outputQuantityList": [
                {"epcClass": "urn:epc:class:lgtin:9506000.013435.P9", "quantity": 190, "uom": "KGM"}
            ]
        }));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cte, Cte::Transformation);
        assert_eq!(
            rows[0].cells[13],
            "(01)09506000134352(10)L1; (01)09506000134352(10)L2"
        );
        let gtin: Gtin = "09506000134352".parse().expect("gtin");
        assert!(row_mentions(&rows[0], &gtin));
        assert!(
            self::rows(json!({
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "inspecting",
                "eventTime": "2026-06-02T08:00:00Z", "eventTimeZoneOffset": "+00:00",
                "quantityList": [{"epcClass": "urn:epc:class:lgtin:9506000.013435.L1", "quantity": 1}]
            }))
            .is_empty()
        );
    }

    #[test]
    fn harvesting_and_cooling_are_recognised_by_their_steps() {
        let harvest = event(json!({
            "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
            "ilmd": {"cbvmda:harvestStartDate": "2026-05-30"}
        }));
        assert_eq!(cte_of(&harvest), Some(Cte::Harvesting));
        let commissioning =
            event(json!({"type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning"}));
        assert_eq!(cte_of(&commissioning), None);
        let cooling = event(
            json!({"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "urn:agritrace:bizstep:cooling"}),
        );
        assert_eq!(cte_of(&cooling), Some(Cte::Cooling));
        let receiving = event(
            json!({"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "https://ref.gs1.org/cbv/BizStep-receiving"}),
        );
        assert_eq!(cte_of(&receiving), Some(Cte::Receiving));
        let foreign = event(
            json!({"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "urn:example:shipping"}),
        );
        assert_eq!(cte_of(&foreign), None);
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let mut cells: [String; 18] = Default::default();
        cells[0] = "Shipping".to_owned();
        cells[6] = "Mangoes, \"Keitt\"".to_owned();
        cells[9] = "=HYPERLINK(\"x\")".to_owned();
        cells[7] = "-5".to_owned();
        let csv = to_csv(&[Row {
            cte: Cte::Shipping,
            time_ms: 0,
            cells,
        }]);
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
        let line = lines.next().expect("row");
        assert!(line.contains(",\"Mangoes, \"\"Keitt\"\"\","), "{line}");
        assert!(line.contains(",-5,"), "numbers stay numbers: {line}");
        assert!(line.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{line}");
        assert_eq!(lines.next(), Some(""));
    }

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400_000), "2000-02-29");
        assert_eq!(date_of(-86_400_000), "1969-12-31");
    }
}
