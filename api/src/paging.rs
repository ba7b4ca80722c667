//! Pages of the lists that can grow (devices, lots, shipments): `?limit=` (1 to
//! [`PAGE_MAX`], [`PAGE_DEFAULT`] when absent) and an opaque `next` cursor the previous page
//! answered. A cursor is the hex of the last store key the previous page covered; the next page
//! starts just after it, so records created meanwhile are neither repeated nor skipped when
//! they sort after the cursor.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use serde::Deserialize;

use crate::http::{ApiError, hex};

/// Records in a page when the caller names no limit.
pub const PAGE_DEFAULT: usize = 100;
/// Most records in one page.
pub const PAGE_MAX: usize = 1_000;
/// Longest cursor accepted, in hex digits (store keys are short).
pub const CURSOR_CHARS_MAX: usize = 1_024;

/// The paging part of a query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Records in the page.
    #[serde(default)]
    pub limit: Option<usize>,
    /// The cursor from the previous page.
    #[serde(default)]
    pub next: Option<String>,
}

/// The query string as `T`, or a 400 problem naming what is wrong (axum's own rejection is
/// plain text).
///
/// # Errors
/// 400 when the query string does not parse as `T`.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|e| ApiError::BadRequest(format!("the query string is not as expected: {e}")))
}

/// A checked page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Records in the page (1 to [`PAGE_MAX`]).
    pub limit: usize,
    /// The last key the previous page covered.
    pub after: Option<Vec<u8>>,
}

impl Page {
    /// The page a query string asks for.
    ///
    /// # Errors
    /// 400 for a limit out of range or a cursor that is not one of ours.
    pub fn of(limit: Option<usize>, next: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be 1 to {PAGE_MAX}"
            )));
        }
        let after = next.map(decode_cursor).transpose()?;
        Ok(Self { limit, after })
    }

    /// The first key of the range `[prefix, …)` this page reads: just after the cursor, or the
    /// prefix itself.
    #[must_use]
    pub fn start(&self, prefix: &[u8]) -> Vec<u8> {
        match &self.after {
            Some(after) if after.as_slice() >= prefix => successor(after),
            _ => prefix.to_vec(),
        }
    }
}

/// The smallest key after `key`.
#[must_use]
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// `prefix` followed by 0xff: the end of every key that starts with `prefix` (the keys here
/// are built from ASCII identifiers and 0x00 separators).
#[must_use]
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xff);
    end
}

/// The cursor of a page that ended at `last_key`.
#[must_use]
pub fn cursor(last_key: &[u8]) -> String {
    hex(last_key)
}

fn decode_cursor(text: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::BadRequest("next is not a cursor this API answered".to_owned());
    if text.is_empty() || text.len() > CURSOR_CHARS_MAX || !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(limit: Option<usize>, next: Option<&str>, expected: Result<Page, &str>) {
        match (Page::of(limit, next), expected) {
            (Ok(page), Ok(want)) => assert_eq!(page, want),
            (Err(ApiError::BadRequest(detail)), Err(part)) => {
                assert!(detail.contains(part), "{detail:?} mentions {part:?}");
            }
            (got, want) => panic!("{got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn pages_take_a_bounded_limit_and_only_hex_cursors() {
        check(
            None,
            None,
            Ok(Page {
                limit: PAGE_DEFAULT,
                after: None,
            }),
        );
        check(
            Some(5),
            Some("61006200"),
            Ok(Page {
                limit: 5,
                after: Some(b"a\0b\0".to_vec()),
            }),
        );
        check(Some(0), None, Err("limit"));
        check(Some(PAGE_MAX + 1), None, Err("limit"));
        check(None, Some("6"), Err("cursor"));
        check(None, Some("6G"), Err("cursor"));
        check(None, Some("6A"), Err("cursor"));
        check(None, Some(""), Err("cursor"));
        check(None, Some(&"0".repeat(CURSOR_CHARS_MAX + 2)), Err("cursor"));
    }

    #[test]
    fn a_page_starts_after_its_cursor_but_never_before_its_prefix() {
        let page = |after: Option<&[u8]>| Page {
            limit: 1,
            after: after.map(<[u8]>::to_vec),
        };
        assert_eq!(page(None).start(b"org\0"), b"org\0");
        assert_eq!(page(Some(b"org\0x")).start(b"org\0"), b"org\0x\0");
        assert_eq!(page(Some(b"abc")).start(b"org\0"), b"org\0");
        assert_eq!(cursor(b"org\0x"), "6f72670078");
        assert_eq!(prefix_end(b"a\0"), b"a\0\xff");
    }
}
