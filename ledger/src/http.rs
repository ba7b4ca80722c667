//! The read side of the log over HTTP, as C2SP tlog-tiles lays it out: `/log/checkpoint`,
//! `/log/tile/<L>/<N>[.p/<W>]` and `/log/tile/entries/<N>[.p/<W>]`.
//!
//! Everything is served from storage against the latest stored checkpoint: a tile or bundle that
//! the checkpointed tree does not reach is 404, even if a later round already wrote it. A tile
//! URL names its content for good — a full tile never changes, and a partial path `.p/<W>` is
//! answered with the first `W` hashes (or entries) of the stored tile, which is the partial tile
//! as it was at every checkpointed size that had it (tiles only grow) — so every tile and bundle
//! is cached forever (`immutable`); only the checkpoint is cached briefly.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::merkle::{HASH_LEN, TreeSize};
use crate::storage::{LogStorage, ReadError, TileKey};
use crate::tile::{BundleId, TILE_WIDTH, TileId};

/// `Cache-Control` for tiles and bundles, full or partial: the content at a URL never changes.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` for the checkpoint.
pub const CACHE_SHORT: &str = "public, max-age=5";

/// The router the API mounts at its root: `GET /log/checkpoint`, `GET /log/tile/...`.
pub fn router<S: LogStorage + Clone>(storage: S) -> Router {
    Router::new()
        .route("/log/checkpoint", get(checkpoint::<S>))
        .route("/log/tile/{*path}", get(tile::<S>))
        .with_state(storage)
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn storage_failed(error: &ReadError) -> Response {
    tracing::error!(error = %error, "log read side: storage read failed");
    plain(StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable\n")
}

fn bytes(content_type: &'static str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn checkpoint<S: LogStorage>(State(storage): State<S>) -> Response {
    match storage.checkpoint().await {
        Ok(Some(stored)) => bytes("text/plain; charset=utf-8", CACHE_SHORT, stored.note),
        Ok(None) => not_found(),
        Err(e) => storage_failed(&e),
    }
}

async fn checkpointed_size<S: LogStorage>(storage: &S) -> Result<Option<TreeSize>, ReadError> {
    Ok(storage.checkpoint().await?.map(|c| TreeSize(c.size)))
}

async fn tile<S: LogStorage>(State(storage): State<S>, Path(path): Path<String>) -> Response {
    let full_path = format!("tile/{path}");
    let size = match checkpointed_size(&storage).await {
        Ok(Some(size)) => size,
        Ok(None) => return not_found(),
        Err(e) => return storage_failed(&e),
    };
    if path.starts_with("entries/") {
        let Ok(id) = BundleId::parse_path(&full_path) else {
            return plain(StatusCode::BAD_REQUEST, "malformed entry bundle path\n");
        };
        serve_bundle(&storage, id, size).await
    } else {
        let Ok(id) = TileId::parse_path(&full_path) else {
            return plain(StatusCode::BAD_REQUEST, "malformed tile path\n");
        };
        serve_tile(&storage, id, size).await
    }
}

/// Whether a tile of `requested_width` exists in a tree whose tile at that position is
/// `in_tree_width` wide: a full tile only once the tile is full, a partial one of any width up
/// to the current one (it existed at an earlier checkpointed size).
fn width_served(requested_width: u16, in_tree_width: u16) -> bool {
    if requested_width == TILE_WIDTH {
        in_tree_width == TILE_WIDTH
    } else {
        requested_width <= in_tree_width
    }
}

async fn serve_tile<S: LogStorage>(storage: &S, id: TileId, size: TreeSize) -> Response {
    let Some(in_tree) = TileId::in_tree(id.level, id.index, size) else {
        return not_found();
    };
    if !width_served(id.width, in_tree.width) {
        return not_found();
    }
    let key = TileKey {
        level: id.level,
        index: id.index,
    };
    let stored = match storage.tile(key).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(),
        Err(e) => return storage_failed(&e),
    };
    let wanted = usize::from(id.width) * HASH_LEN;
    match stored.get(..wanted) {
        Some(prefix) => bytes("application/octet-stream", CACHE_IMMUTABLE, prefix.to_vec()),
        None => not_found(),
    }
}

/// Byte length of the first `count` entries of an entry bundle, or `None` if the bundle has
/// fewer or is malformed.
fn bundle_prefix_len(bundle: &[u8], count: u16) -> Option<usize> {
    let mut offset = 0usize;
    for _ in 0..count {
        let prefix = bundle.get(offset..offset.checked_add(2)?)?;
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        offset = offset.checked_add(2)?.checked_add(len)?;
        if offset > bundle.len() {
            return None;
        }
    }
    Some(offset)
}

async fn serve_bundle<S: LogStorage>(storage: &S, id: BundleId, size: TreeSize) -> Response {
    let Some(in_tree) = BundleId::in_tree(id.index, size) else {
        return not_found();
    };
    if !width_served(id.width, in_tree.width) {
        return not_found();
    }
    let stored = match storage.bundle(id.index).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(),
        Err(e) => return storage_failed(&e),
    };
    match bundle_prefix_len(&stored, id.width).and_then(|len| stored.get(..len)) {
        Some(prefix) => bytes("application/octet-stream", CACHE_IMMUTABLE, prefix.to_vec()),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_served_follows_the_tree() {
        let check = |requested, in_tree, expected| {
            assert_eq!(
                width_served(requested, in_tree),
                expected,
                "{requested} in {in_tree}"
            );
        };
        check(256, 256, true);
        check(256, 255, false);
        check(7, 256, true);
        check(7, 7, true);
        check(8, 7, false);
    }

    #[test]
    fn bundle_prefix_len_walks_length_prefixes() {
        let bundle = [0, 1, 0xAA, 0, 2, 0xBB, 0xCC, 0, 0];
        let check = |count, expected| assert_eq!(bundle_prefix_len(&bundle, count), expected);
        check(0, Some(0));
        check(1, Some(3));
        check(2, Some(7));
        check(3, Some(9));
        check(4, None);
        assert_eq!(bundle_prefix_len(&[0, 5, 1], 1), None);
    }
}
