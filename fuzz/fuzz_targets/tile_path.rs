//! Fuzzes tile and bundle path parsing: never panics; one path per tile (canonical).
#![no_main]

use ledger::tile::{BundleId, TileId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(tile) = TileId::parse_path(path) {
        assert_eq!(tile.path(), path, "tile path is canonical");
    }
    if let Ok(bundle) = BundleId::parse_path(path) {
        assert_eq!(bundle.path(), path, "bundle path is canonical");
    }
});
