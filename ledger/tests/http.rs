//! The HTTP read side (`ledger::http::router`) over a log written by the real sequencer:
//! checkpoint, full and partial tiles and entry bundles, cache headers, 404 beyond the
//! checkpointed tree, 400 for malformed paths — and that a client can rebuild the checkpoint's
//! root from the served tiles alone.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{config, entry, log_key};
use ledger::checkpoint::open_checkpoint;
use ledger::http::{CACHE_IMMUTABLE, CACHE_SHORT, router};
use ledger::merkle::{TreeSize, empty_root, leaf_hash};
use ledger::sequencer;
use ledger::storage::memory::MemoryStorage;
use ledger::tile::{InMemoryTiles, TileAppender, TileId, parse_bundle};
use ledger::tree_root;
use ledger::witness_client::WitnessClient;
use tower::ServiceExt as _;

/// Content type of tiles and entry bundles.
const OCTETS: &str = "application/octet-stream";

struct Served {
    status: StatusCode,
    cache: String,
    content_type: String,
    body: Vec<u8>,
}

async fn get(app: &axum::Router, path: &str) -> Served {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let cache = response
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body")
        .to_vec();
    Served {
        status,
        cache,
        content_type,
        body,
    }
}

/// 600 entries: level 0 has tiles 000, 001 (full) and 002.p/88; level 1 has 000.p/2.
async fn log_of_600() -> (MemoryStorage, Vec<Vec<u8>>) {
    let storage = MemoryStorage::new(empty_root().0);
    let app = router(storage.clone());
    assert_eq!(
        get(&app, "/log/checkpoint").await.status,
        StatusCode::NOT_FOUND
    );
    let (handle, tasks) = sequencer::start(
        storage.clone(),
        log_key(),
        config(10),
        WitnessClient::none().expect("client"),
    )
    .await
    .expect("start");
    let entries: Vec<Vec<u8>> = (0..600).map(|n| entry(7, n)).collect();
    let pending: Vec<_> = entries
        .iter()
        .map(|e| handle.try_submit(e.clone(), Vec::new()).expect("submit"))
        .collect();
    for p in pending {
        p.wait().await.expect("index");
    }
    handle
        .wait_for_checkpoint(TreeSize(600))
        .await
        .expect("checkpoint");
    tasks.shutdown().await;
    (storage, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tiles_bundles_and_checkpoint_with_the_right_caching() {
    let (storage, entries) = log_of_600().await;
    let app = router(storage);

    let checkpoint = get(&app, "/log/checkpoint").await;
    assert_eq!(checkpoint.status, StatusCode::OK);
    assert_eq!(checkpoint.cache, CACHE_SHORT);
    assert_eq!(checkpoint.content_type, "text/plain; charset=utf-8");
    let opened = open_checkpoint(&checkpoint.body, &log_key().verifier(), &[]).expect("signed");
    assert_eq!(opened.checkpoint.size, TreeSize(600));

    let full = get(&app, "/log/tile/0/001").await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.cache, CACHE_IMMUTABLE);
    assert_eq!(full.content_type, OCTETS);
    assert_eq!(full.body.len(), 256 * 32);
    assert_eq!(&full.body[..32], &leaf_hash(&entries[256]).0);

    let partial = get(&app, "/log/tile/0/002.p/88").await;
    assert_eq!(
        (
            partial.status,
            partial.cache.as_str(),
            partial.content_type.as_str()
        ),
        (StatusCode::OK, CACHE_IMMUTABLE, OCTETS)
    );
    assert_eq!(partial.body.len(), 88 * 32);
    let narrower = get(&app, "/log/tile/0/002.p/50").await;
    assert_eq!(narrower.status, StatusCode::OK);
    assert_eq!(narrower.body, partial.body[..50 * 32]);
    let older_partial_of_full = get(&app, "/log/tile/0/000.p/3").await;
    assert_eq!(older_partial_of_full.status, StatusCode::OK);
    assert_eq!(older_partial_of_full.body.len(), 3 * 32);

    let upper = get(&app, "/log/tile/1/000.p/2").await;
    assert_eq!(upper.status, StatusCode::OK);
    assert_eq!(upper.body.len(), 64);
    assert_eq!(upper.cache, CACHE_IMMUTABLE);

    let bundle = get(&app, "/log/tile/entries/000").await;
    assert_eq!(
        (
            bundle.status,
            bundle.cache.as_str(),
            bundle.content_type.as_str()
        ),
        (StatusCode::OK, CACHE_IMMUTABLE, OCTETS)
    );
    let served: Vec<&[u8]> = parse_bundle(&bundle.body).expect("bundle");
    assert_eq!(served.len(), 256);
    assert_eq!(served[5], entries[5].as_slice());
    let last = get(&app, "/log/tile/entries/002.p/88").await;
    assert_eq!(
        (last.status, last.cache.as_str(), last.content_type.as_str()),
        (StatusCode::OK, CACHE_IMMUTABLE, OCTETS)
    );
    let served = parse_bundle(&last.body).expect("bundle");
    assert_eq!(served.len(), 88);
    assert_eq!(served[87], entries[599].as_slice());
    let first_ten = get(&app, "/log/tile/entries/002.p/10").await;
    assert_eq!(parse_bundle(&first_ten.body).expect("bundle").len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_the_checkpointed_tree_does_not_have() {
    let (storage, _) = log_of_600().await;
    let app = router(storage);
    for path in [
        "/log/tile/0/002",       // not full yet
        "/log/tile/0/002.p/89",  // wider than the tree
        "/log/tile/0/003.p/1",   // beyond the tree
        "/log/tile/1/000",       // level 1 has 2 hashes
        "/log/tile/2/000.p/1",   // level 2 is empty
        "/log/tile/entries/002", // bundle not full yet
        "/log/tile/entries/003.p/1",
    ] {
        assert_eq!(
            get(&app, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in [
        "/log/tile/0/2",
        "/log/tile/0/002.p/256",
        "/log/tile/0/002.p/0",
        "/log/tile/x/000",
        "/log/tile/0/x000/002",
        "/log/tile/entries/02",
    ] {
        assert_eq!(
            get(&app, path).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rebuilds_the_checkpoint_root_from_served_tiles() {
    let (storage, _) = log_of_600().await;
    let app = router(storage);
    let checkpoint = get(&app, "/log/checkpoint").await;
    let opened = open_checkpoint(&checkpoint.body, &log_key().verifier(), &[]).expect("signed");
    let size = opened.checkpoint.size;
    // Fetch exactly the tiles a tlog-tiles client would for this size.
    let mut tiles = InMemoryTiles::new();
    for level in 0..=2u8 {
        for index in 0..4u64 {
            let Some(id) = TileId::in_tree(level, index, size) else {
                continue;
            };
            let served = get(&app, &format!("/log/{}", id.path())).await;
            assert_eq!(served.status, StatusCode::OK, "{}", id.path());
            tiles.store(id, served.body);
        }
    }
    assert_eq!(
        tree_root(size, &tiles).expect("root"),
        opened.checkpoint.root
    );
    let edge: Vec<(TileId, Vec<u8>)> = TileAppender::right_edge_tiles(size)
        .into_iter()
        .map(|id| (id, tiles.read_tile_bytes(id)))
        .collect();
    assert_eq!(
        TileAppender::from_tiles(size, &edge).expect("edge").root(),
        opened.checkpoint.root
    );
}

trait ReadBytes {
    fn read_tile_bytes(&self, id: TileId) -> Vec<u8>;
}

impl ReadBytes for InMemoryTiles {
    fn read_tile_bytes(&self, id: TileId) -> Vec<u8> {
        use ledger::TileReader as _;
        self.read_tile(id.level, id.index)
            .expect("infallible")
            .expect("fetched")
    }
}
