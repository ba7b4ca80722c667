//! The EPCIS 2.0 simple event query over the REST binding (`GET /events`, EPCIS 2.0 §8.2.7.1
//! `SimpleEventQuery` parameters, REST binding paging with `perPage` and `nextPageToken`).
//!
//! Parameters taken: `eventType`, `GE_eventTime`, `LT_eventTime`, `GE_recordTime`,
//! `LT_recordTime`, `EQ_action`, `EQ_bizStep`, `EQ_disposition`, `EQ_bizLocation`,
//! `EQ_readPoint`, `EQ_eventID`, `MATCH_epc` (`epcList` and `childEPCs`), `MATCH_parentID`,
//! `MATCH_inputEPC`, `MATCH_outputEPC`, `MATCH_anyEPC` (every EPC field), `MATCH_epcClass`
//! (`quantityList` and `childQuantityList`), `MATCH_anyEPCClass` (every quantity list),
//! `perPage`, `nextPageToken`. A parameter takes several values separated by `|` (or
//! repeated): any of them matches. `MATCH_*` values are compared in canonical form (EPC URI or
//! Digital Link), and take a pattern: an EPC id pattern `urn:epc:idpat:sgtin:0614141.107346.*`
//! or any value ending in `*` (a prefix). An unknown parameter is refused (400).
//!
//! Execution: the most selective index among the single-valued exact parameters (and the
//! caller's own organisation, when that is all it may see) drives the scan — each candidate's
//! rows in the time range are counted up to a small bound and the fewest wins — and every
//! other parameter filters. Every index is ordered by (event time, hash digest), so results
//! come oldest first whichever index drives, and the page token is the last position read.
//! Work per request is bounded: at most [`SCAN_ROWS_MAX`] index rows; a page can come back
//! short with a `nextPageToken` when the budget ran out before it filled.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gs1::epcis::canon::parse_timestamp;
use gs1::epcis::canonical_epc;
use ingest::IngestStorage;
use sha2::{Digest, Sha256};

use super::store::{
    BIZ_STEP_PREFIX, DISPOSITION_PREFIX, EventCursor, EventStore, IndexKind, StoreError,
    StoredEvent, canonical_identifier, cbv_term,
};
use crate::auth::Visibility;

/// Events per page when `perPage` is not given (the REST binding's default).
pub const PER_PAGE_DEFAULT: usize = 30;
/// Most events per page.
pub const PER_PAGE_MAX: usize = 1_000;
/// Most index rows one request reads.
pub const SCAN_ROWS_MAX: usize = 10_000;
/// Most values one parameter takes.
pub const VALUES_MAX: usize = 100;
const SCAN_CHUNK: usize = 256;
const ESTIMATE_ROWS: usize = 128;
const TOKEN_VERSION: u8 = 1;

/// A `MATCH_*` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// One identifier, canonical.
    Exact(String),
    /// Every identifier starting with this.
    Prefix(String),
}

impl Pattern {
    fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with("urn:epc:idpat:") {
            let Some(stem) = value.strip_suffix(".*") else {
                return Err(format!(
                    "{value:?}: only EPC id patterns ending in one `.*` are taken"
                ));
            };
            if stem.contains('*') {
                return Err(format!(
                    "{value:?}: only EPC id patterns ending in one `.*` are taken"
                ));
            }
            let base = canonical_epc(value).map_err(|e| format!("{value:?}: {e}"))?;
            return Ok(Self::Prefix(format!("{base}/")));
        }
        match value.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => Ok(Self::Prefix(prefix.to_owned())),
            Some(_) => Err(format!("{value:?}: `*` is taken only at the end")),
            None => Ok(Self::Exact(canonical_identifier(value))),
        }
    }

    fn matches(&self, identifier: &str) -> bool {
        match self {
            Self::Exact(e) => e == identifier,
            Self::Prefix(p) => identifier.starts_with(p.as_str()),
        }
    }
}

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    event_types: Option<Vec<String>>,
    ge_event_ms: Option<u64>,
    lt_event_ms: Option<u64>,
    ge_record_ms: Option<u64>,
    lt_record_ms: Option<u64>,
    actions: Option<Vec<String>>,
    biz_steps: Option<Vec<String>>,
    dispositions: Option<Vec<String>>,
    biz_locations: Option<Vec<String>>,
    read_points: Option<Vec<String>>,
    event_ids: Option<Vec<String>>,
    match_epc: Option<Vec<Pattern>>,
    match_parent: Option<Vec<Pattern>>,
    match_input: Option<Vec<Pattern>>,
    match_output: Option<Vec<Pattern>>,
    match_any_epc: Option<Vec<Pattern>>,
    match_class: Option<Vec<Pattern>>,
    match_any_class: Option<Vec<Pattern>>,
    /// Events per page.
    pub per_page: usize,
    /// Continue after this position.
    pub after: Option<EventCursor>,
    fingerprint: [u8; 8],
}

const EVENT_TYPES: [&str; 5] = [
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
];

/// Most organisations whose owner indexes a query merges (partners sharing with the reader).
const OWNER_UNION_MAX: usize = 32;

fn time_ms(name: &str, value: &str) -> Result<i64, String> {
    parse_timestamp(value)
        .map(|t| t.unix_ms)
        .ok_or_else(|| format!("{name}: {value:?} is not a date-time with a time zone"))
}

/// A time bound in Unix ms: a time before 1970 is 0 (no event is before 1970, so `GE_` of it
/// is no bound and `LT_` of it matches nothing).
fn bound(name: &str, value: &str) -> Result<u64, String> {
    Ok(u64::try_from(time_ms(name, value)?).unwrap_or(0))
}

/// Adds `values` of parameter `name` to `slot`; a parameter may repeat, but its values
/// together stay within [`VALUES_MAX`] (each costs work on every examined event).
fn set<T>(name: &str, slot: &mut Option<Vec<T>>, values: Vec<T>) -> Result<(), String> {
    let all = slot.get_or_insert_with(Vec::new);
    all.extend(values);
    if all.len() > VALUES_MAX {
        return Err(format!(
            "{name}: at most {VALUES_MAX} values in all, whether separated by `|` or in repeated \
             parameters"
        ));
    }
    Ok(())
}

impl EventQuery {
    /// Parses the query parameters (400 text on error).
    ///
    /// # Errors
    /// A message naming the parameter.
    pub fn parse(params: &[(String, String)]) -> Result<Self, String> {
        let mut q = Self {
            per_page: PER_PAGE_DEFAULT,
            ..Self::default()
        };
        let mut token = None;
        let mut fingerprinted: Vec<(&str, &str)> = Vec::new();
        for (name, raw) in params {
            let values = || -> Result<Vec<String>, String> {
                let values: Vec<String> = raw.split('|').map(str::to_owned).collect();
                if values.len() > VALUES_MAX || values.iter().any(String::is_empty) {
                    return Err(format!(
                        "{name}: 1 to {VALUES_MAX} non-empty values separated by `|`"
                    ));
                }
                Ok(values)
            };
            let patterns = || -> Result<Vec<Pattern>, String> {
                values()?
                    .iter()
                    .map(|v| Pattern::parse(v).map_err(|e| format!("{name}: {e}")))
                    .collect()
            };
            if !matches!(name.as_str(), "perPage" | "nextPageToken") {
                fingerprinted.push((name, raw));
            }
            match name.as_str() {
                "eventType" => {
                    let types = values()?;
                    if let Some(bad) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
                        return Err(format!("eventType: {bad:?} is not an EPCIS event type"));
                    }
                    set(name, &mut q.event_types, types)?;
                }
                "GE_eventTime" => q.ge_event_ms = Some(bound(name, raw)?),
                "LT_eventTime" => q.lt_event_ms = Some(bound(name, raw)?),
                "GE_recordTime" => q.ge_record_ms = Some(bound(name, raw)?),
                "LT_recordTime" => q.lt_record_ms = Some(bound(name, raw)?),
                "EQ_action" => {
                    let actions = values()?;
                    if let Some(bad) = actions
                        .iter()
                        .find(|a| !matches!(a.as_str(), "ADD" | "OBSERVE" | "DELETE"))
                    {
                        return Err(format!("EQ_action: {bad:?} is not ADD, OBSERVE or DELETE"));
                    }
                    set(name, &mut q.actions, actions)?;
                }
                "EQ_bizStep" => {
                    let v = values()?;
                    set(
                        name,
                        &mut q.biz_steps,
                        v.iter().map(|s| cbv_term(s, BIZ_STEP_PREFIX)).collect(),
                    )?;
                }
                "EQ_disposition" => {
                    let v = values()?;
                    set(
                        name,
                        &mut q.dispositions,
                        v.iter().map(|s| cbv_term(s, DISPOSITION_PREFIX)).collect(),
                    )?;
                }
                "EQ_bizLocation" => set(name, &mut q.biz_locations, values()?)?,
                "EQ_readPoint" => set(name, &mut q.read_points, values()?)?,
                "EQ_eventID" => set(name, &mut q.event_ids, values()?)?,
                "MATCH_epc" => set(name, &mut q.match_epc, patterns()?)?,
                "MATCH_parentID" => set(name, &mut q.match_parent, patterns()?)?,
                "MATCH_inputEPC" => set(name, &mut q.match_input, patterns()?)?,
                "MATCH_outputEPC" => set(name, &mut q.match_output, patterns()?)?,
                "MATCH_anyEPC" => set(name, &mut q.match_any_epc, patterns()?)?,
                "MATCH_epcClass" => set(name, &mut q.match_class, patterns()?)?,
                "MATCH_anyEPCClass" => set(name, &mut q.match_any_class, patterns()?)?,
                "perPage" => {
                    q.per_page = raw
                        .parse()
                        .ok()
                        .filter(|n| (1..=PER_PAGE_MAX).contains(n))
                        .ok_or_else(|| format!("perPage: a number from 1 to {PER_PAGE_MAX}"))?;
                }
                "nextPageToken" => token = Some(raw.clone()),
                other => {
                    return Err(format!(
                        "{other}: not a query parameter this service takes (see the \
                         EPCIS module documentation)"
                    ));
                }
            }
        }
        fingerprinted.sort_unstable();
        let mut hasher = Sha256::new();
        for (name, value) in fingerprinted {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        q.fingerprint.copy_from_slice(&digest[..8]);
        if let Some(token) = token {
            q.after = Some(q.open_token(&token)?);
        }
        Ok(q)
    }

    /// The opaque token that continues this query after `cursor`.
    #[must_use]
    pub fn token(&self, cursor: &EventCursor) -> String {
        let mut bytes = Vec::with_capacity(49);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&self.fingerprint);
        bytes.extend_from_slice(&cursor.to_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn open_token(&self, token: &str) -> Result<EventCursor, String> {
        let bad = || "nextPageToken: not a token of this query".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        if bytes.len() != 49 || bytes[0] != TOKEN_VERSION || bytes[1..9] != self.fingerprint {
            return Err(bad());
        }
        EventCursor::from_bytes(&bytes[9..]).ok_or_else(bad)
    }

    /// Whether `event` passes every filter and `visibility`.
    #[must_use]
    pub fn matches(&self, e: &StoredEvent, visibility: &Visibility) -> bool {
        fn any_of(list: Option<&Vec<String>>, value: Option<&String>) -> bool {
            list.is_none_or(|l| value.is_some_and(|v| l.contains(v)))
        }
        fn pattern<'a>(
            list: Option<&Vec<Pattern>>,
            mut ids: impl Iterator<Item = &'a String>,
        ) -> bool {
            list.is_none_or(|l| ids.any(|id| l.iter().any(|p| p.matches(id))))
        }
        let t = &e.terms;
        let epc_and_children = || t.epc_list.iter().chain(&t.child_epcs);
        let any_epc = || {
            epc_and_children()
                .chain(&t.parent_id)
                .chain(&t.input_epcs)
                .chain(&t.output_epcs)
        };
        visibility.sees(&e.owner, &[])
            && any_of(self.event_types.as_ref(), Some(&e.event_type))
            && self.ge_event_ms.is_none_or(|g| e.event_time_ms >= g)
            && self.lt_event_ms.is_none_or(|l| e.event_time_ms < l)
            && self.ge_record_ms.is_none_or(|g| e.record_time_ms >= g)
            && self.lt_record_ms.is_none_or(|l| e.record_time_ms < l)
            && any_of(self.actions.as_ref(), t.action.as_ref())
            && any_of(self.biz_steps.as_ref(), t.biz_step.as_ref())
            && any_of(self.dispositions.as_ref(), t.disposition.as_ref())
            && any_of(self.biz_locations.as_ref(), t.biz_location.as_ref())
            && any_of(self.read_points.as_ref(), t.read_point.as_ref())
            && any_of(self.event_ids.as_ref(), Some(&e.event_id))
            && pattern(self.match_epc.as_ref(), epc_and_children())
            && pattern(self.match_parent.as_ref(), t.parent_id.iter())
            && pattern(self.match_input.as_ref(), t.input_epcs.iter())
            && pattern(self.match_output.as_ref(), t.output_epcs.iter())
            && pattern(self.match_any_epc.as_ref(), any_epc())
            && pattern(self.match_class.as_ref(), t.classes.iter())
            && pattern(
                self.match_any_class.as_ref(),
                t.classes
                    .iter()
                    .chain(&t.input_classes)
                    .chain(&t.output_classes),
            )
    }

    /// The index candidates: single-valued exact parameters (and the only organisation the
    /// caller sees).
    fn candidates(&self, visibility: &Visibility) -> Vec<(IndexKind, String)> {
        fn single<T: Clone>(list: Option<&Vec<T>>) -> Option<T> {
            match list.map(Vec::as_slice) {
                Some([one]) => Some(one.clone()),
                _ => None,
            }
        }
        let mut out = Vec::new();
        let mut add = |kind, value: Option<String>| {
            if let Some(value) = value {
                out.push((kind, value));
            }
        };
        add(IndexKind::BizStep, single(self.biz_steps.as_ref()));
        add(IndexKind::Disposition, single(self.dispositions.as_ref()));
        add(IndexKind::BizLocation, single(self.biz_locations.as_ref()));
        add(IndexKind::ReadPoint, single(self.read_points.as_ref()));
        add(IndexKind::EventType, single(self.event_types.as_ref()));
        for list in [
            &self.match_epc,
            &self.match_parent,
            &self.match_input,
            &self.match_output,
            &self.match_any_epc,
            &self.match_class,
            &self.match_any_class,
        ] {
            if let Some(Pattern::Exact(id)) = single(list.as_ref()) {
                add(IndexKind::Epc, Some(id));
            }
        }
        // Events are visible by owner alone (a declaration to an authority concerns shipments).
        if let Visibility::Scoped { orgs, .. } = visibility
            && orgs.len() == 1
        {
            add(
                IndexKind::Owner,
                orgs.iter().next().map(|o| o.as_str().to_owned()),
            );
        }
        out
    }

    /// Runs the query: one page of matching events, oldest first, and where the next page
    /// starts (`None`: no more).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a record is corrupt.
    pub fn run<S: IngestStorage>(
        &self,
        store: &EventStore<S>,
        visibility: &Visibility,
    ) -> Result<(Vec<StoredEvent>, Option<EventCursor>), StoreError> {
        if let Some(ids) = &self.event_ids {
            return self.run_by_ids(store, ids, visibility);
        }
        let estimate = |kind: IndexKind, value: &str| -> Result<usize, StoreError> {
            Ok(store
                .index_rows(
                    kind,
                    value,
                    self.after.as_ref(),
                    self.lt_event_ms,
                    self.ge_event_ms,
                    ESTIMATE_ROWS,
                )?
                .len())
        };
        let mut drivers = vec![(IndexKind::Time, String::new())];
        let mut fewest = usize::MAX;
        for (kind, value) in self.candidates(visibility) {
            let count = estimate(kind, &value)?;
            if count < fewest {
                fewest = count;
                drivers = vec![(kind, value)];
            }
        }
        // A reader who sees a few organisations' events: the union of their owner indexes,
        // when that is no larger than the best single index.
        if let Visibility::Scoped { orgs, .. } = visibility
            && orgs.len() > 1
            && orgs.len() <= OWNER_UNION_MAX
        {
            let mut total = 0;
            for org in orgs {
                total += estimate(IndexKind::Owner, org.as_str())?;
            }
            if total <= fewest {
                drivers = orgs
                    .iter()
                    .map(|o| (IndexKind::Owner, o.as_str().to_owned()))
                    .collect();
            }
        }
        let mut after = self.after;
        let mut scanned = 0;
        let mut page = Vec::new();
        loop {
            let want = SCAN_CHUNK.min(SCAN_ROWS_MAX - scanned);
            if want == 0 {
                return Ok((page, after));
            }
            // Each driver's next rows, merged in (time, digest) order: the first `want` of the
            // union are the union's next `want` rows.
            let mut rows = Vec::new();
            for (kind, value) in &drivers {
                rows.extend(store.index_rows(
                    *kind,
                    value,
                    after.as_ref(),
                    self.lt_event_ms,
                    self.ge_event_ms,
                    want,
                )?);
            }
            rows.sort_unstable();
            rows.dedup();
            let exhausted = rows.len() < want;
            rows.truncate(want);
            scanned += rows.len();
            let digests: Vec<[u8; 32]> = rows.iter().map(|r| r.digest).collect();
            for (row, event) in rows.iter().zip(store.read_events(&digests)?) {
                after = Some(*row);
                if let Some(event) = event
                    && self.matches(&event, visibility)
                {
                    page.push(event);
                    if page.len() == self.per_page {
                        return Ok((page, after));
                    }
                }
            }
            if exhausted {
                return Ok((page, None));
            }
        }
    }

    fn run_by_ids<S: IngestStorage>(
        &self,
        store: &EventStore<S>,
        ids: &[String],
        visibility: &Visibility,
    ) -> Result<(Vec<StoredEvent>, Option<EventCursor>), StoreError> {
        let mut found = Vec::new();
        for id in ids {
            if let Some(event) = store.event(id)?
                && self.matches(&event, visibility)
            {
                let cursor = event.cursor()?;
                if self.after.is_none_or(|a| cursor > a) {
                    found.push((cursor, event));
                }
            }
        }
        found.sort_by_key(|(cursor, _)| *cursor);
        found.dedup_by(|a, b| a.0 == b.0);
        let more = found.len() > self.per_page;
        found.truncate(self.per_page);
        let next = if more {
            found.last().map(|(c, _)| *c)
        } else {
            None
        };
        Ok((found.into_iter().map(|(_, e)| e).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn refused(pairs: &[(&str, &str)], naming: &str) {
        let err = EventQuery::parse(&params(pairs)).expect_err("refused");
        assert!(err.contains(naming), "{err} does not name {naming}");
    }

    #[test]
    fn bad_parameters_are_named() {
        refused(&[("EQ_colour", "red")], "EQ_colour");
        refused(&[("eventType", "ThingEvent")], "eventType");
        refused(&[("GE_eventTime", "yesterday")], "GE_eventTime");
        refused(&[("perPage", "0")], "perPage");
        refused(&[("perPage", "1001")], "perPage");
        refused(&[("EQ_action", "UPDATE")], "EQ_action");
        refused(
            &[("MATCH_epc", "urn:epc:idpat:sgtin:0614141.*.*")],
            "MATCH_epc",
        );
        refused(&[("MATCH_epc", "a*b*")], "MATCH_epc");
        refused(&[("EQ_bizStep", "shipping||receiving")], "EQ_bizStep");
        refused(&[("nextPageToken", "abc")], "nextPageToken");
    }

    #[test]
    fn a_token_continues_only_its_own_query() {
        let q = EventQuery::parse(&params(&[("EQ_bizStep", "shipping")])).expect("query");
        let cursor = EventCursor {
            time_ms: 7,
            digest: [3; 32],
        };
        let token = q.token(&cursor);
        let next = EventQuery::parse(&params(&[
            ("EQ_bizStep", "shipping"),
            ("nextPageToken", &token),
            ("perPage", "5"),
        ]))
        .expect("same query");
        assert_eq!(next.after, Some(cursor));
        assert_eq!(next.per_page, 5);
        refused(
            &[("EQ_bizStep", "receiving"), ("nextPageToken", &token)],
            "nextPageToken",
        );
    }

    #[test]
    fn patterns_are_canonical_or_prefixes() {
        assert_eq!(
            Pattern::parse("urn:epc:id:sgtin:0614141.107346.2017"),
            Ok(Pattern::Exact(
                "https://id.gs1.org/01/10614141073464/21/2017".to_owned()
            ))
        );
        let pattern = Pattern::parse("urn:epc:idpat:sgtin:0614141.107346.*").expect("pattern");
        assert!(pattern.matches("https://id.gs1.org/01/10614141073464/21/2017"));
        assert!(!pattern.matches("https://id.gs1.org/01/00614141073467/21/2017"));
        let prefix = Pattern::parse("https://id.gs1.org/01/00614141073467/*").expect("prefix");
        assert!(prefix.matches("https://id.gs1.org/01/00614141073467/10/LOT"));
    }
}
