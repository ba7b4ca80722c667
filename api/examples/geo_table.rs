//! What a full IP-to-country table costs the node: writes a synthetic table the size of the
//! DB-IP "IP to Country Lite" file (600,000 ranges, IPv4 and IPv6 mixed as in that file) to a
//! temporary file, loads it the way `agritrace serve` does at start, and prints the load time,
//! the memory the ranges take, and the lookup rate. A measurement to quote as figures of this
//! machine, not a test: run `cargo run --release -p api --example geo_table`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use anyhow::{Context, Result};
use api::resolver::geo::GeoTable;

const RANGES: u32 = 600_000;
const LOOKUPS: u32 = 2_000_000;
const COUNTRIES: [&str; 8] = ["CN", "TH", "NL", "VN", "US", "DE", "JP", "BR"];

fn country(i: u32) -> &'static str {
    COUNTRIES[usize::try_from(i).unwrap_or(0) % COUNTRIES.len()]
}

/// The first address of the `i`-th IPv6 range: consecutive /48s in `2001::/16`.
fn v6_first(i: u32) -> u128 {
    (0x2001_u128 << 112) | (u128::from(i) << 80)
}

fn main() -> Result<()> {
    // 60 % IPv4 ranges of 4,096 addresses, 40 % IPv6 /48s, sorted as the published file is.
    let v4 = RANGES / 10 * 6;
    let mut csv = String::with_capacity(usize::try_from(RANGES).unwrap_or(0) * 48);
    for i in 0..v4 {
        let first = Ipv4Addr::from(i * 4_096);
        let last = Ipv4Addr::from(i * 4_096 + 4_095);
        writeln!(csv, "{first},{last},{}", country(i)).context("while writing the table")?;
    }
    for i in 0..RANGES - v4 {
        let first = Ipv6Addr::from(v6_first(i));
        let last = Ipv6Addr::from(v6_first(i) | ((1_u128 << 80) - 1));
        writeln!(csv, "{first},{last},{}", country(i)).context("while writing the table")?;
    }
    let dir = tempfile::tempdir().context("while creating a temporary directory")?;
    let path = dir.path().join("ip-country.csv");
    std::fs::write(&path, &csv).context("while writing the table file")?;

    let started = Instant::now();
    let table = GeoTable::load(&path).context("while loading the table")?;
    let load = started.elapsed();

    let started = Instant::now();
    let mut found = 0_u32;
    for i in 0..LOOKUPS {
        // Spread over the IPv4 ranges and the IPv6 ones.
        let address = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(2_654_435_761) % (v4 * 4_096)))
        } else {
            IpAddr::V6(Ipv6Addr::from(v6_first(i % (RANGES - v4)) | 1))
        };
        if black_box(table.lookup(black_box(address))).is_some() {
            found += 1;
        }
    }
    let lookups = started.elapsed();

    println!(
        "table: {} ranges ({} MB of CSV) loaded in {:.0} ms; ranges take {:.1} MB ({} bytes a range)",
        table.len(),
        csv.len() / 1_000_000,
        load.as_secs_f64() * 1e3,
        // Display only: the figure is far below 2^52.
        table.heap_bytes() as f64 / 1e6,
        table.heap_bytes() / table.len().max(1),
    );
    println!(
        "lookups: {LOOKUPS} in {:.0} ms = {:.0} ns each ({found} found)",
        lookups.as_secs_f64() * 1e3,
        lookups.as_secs_f64() * 1e9 / f64::from(LOOKUPS),
    );
    Ok(())
}
