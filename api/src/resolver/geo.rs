//! The IP-to-country table the operator provides (`ip_country_csv` in the configuration), so
//! that the resolver can say in which countries a serialised code was scanned without asking
//! any service on the internet (many packhouses and some nodes have none).
//!
//! The file is the widely used "ip-to-country" CSV layout (RFC 4180: comma separated, fields
//! may be double-quoted, `""` is a quote inside a quoted field), one inclusive range per line:
//!
//! ```text
//! first_address,last_address,country[,anything else...]
//! ```
//!
//! Accepted exactly as these free files are published:
//! - DB-IP "IP to Country Lite" CSV: `8.8.8.0,8.8.8.255,US` and IPv6 ranges in the same file
//!   (`2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP`);
//! - IP2Location LITE DB1 (IPv4) and DB1 IPv6 CSV: quoted decimal numbers and a fourth column
//!   with the country name, `"16777216","16777471","AU","Australia"`; the IPv6 edition writes
//!   IPv4 ranges in the IPv4-mapped block `::ffff:0:0/96`, which is exactly how this table keys
//!   IPv4, so both editions load unchanged;
//! - the `ip-location-db` country files (`-ipv4`, `-ipv6`, `-ipv4-num`, `-ipv6-num`).
//!
//! An address is text (`1.0.0.0`, `2001:200::`) or a decimal number. A pair of numbers both at
//! most `u32::MAX` is an IPv4 range; a larger number is a 128-bit IPv6 address (so a range
//! wholly inside `::/96`, the long-deprecated IPv4-compatible block, cannot be written in
//! numbers; the published files give it no country). The country is an ISO 3166-1 alpha-2
//! code (upper-cased here); `-` and `ZZ` (what the files write for unassigned or reserved
//! space) mean "no country" and the line is skipped and counted in [`GeoTable::unassigned`].
//! Empty lines and lines starting with `#` are skipped; a first record whose first field is a
//! column name (`ip_start`, `ip_from`...) is a header and skipped.
//!
//! Anything else is refused, and the node does not start: a malformed line is an error naming
//! the file's line and what is wrong with it, and two ranges that overlap are an error naming
//! both lines. Skipping bad lines would silently give wrong countries to a warning shoppers
//! read; the operator is better told at start-up.
//!
//! Keys are `u128`: an IPv6 address as its 128-bit number, an IPv4 address as its IPv4-mapped
//! IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), so one sorted array serves both families
//! and a client reaching a dual-stack socket over IPv4 finds its country. Ranges are kept
//! sorted by first address in three parallel arrays (34 bytes a range) and looked up by binary
//! search ([`GeoTable::lookup`]).

use std::fmt;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Most ranges a table holds (the full DB-IP Lite file has about 600,000).
pub const RANGES_MAX: usize = 4_000_000;
/// Longest line read, in bytes (IP2Location's longest country name is well below).
pub const LINE_BYTES_MAX: usize = 1_024;

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Two ASCII letters, any case.
    ///
    /// # Errors
    /// What is wrong with `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(format!(
                "country {text:?} is not an ISO 3166-1 alpha-2 code (two letters)"
            )),
        }
    }

    /// The code, e.g. `CN`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("reading the IP-to-country table {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a range.
    #[error("the IP-to-country table, line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Two ranges share addresses.
    #[error("the IP-to-country table: the ranges of lines {first} and {second} overlap")]
    Overlap {
        /// The line of the range that starts first.
        first: u64,
        /// The line of the other one.
        second: u64,
    },
    /// More ranges than [`RANGES_MAX`].
    #[error("the IP-to-country table has more than {RANGES_MAX} ranges")]
    TooLarge,
}

/// Sorted, disjoint address ranges and their countries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoTable {
    firsts: Vec<u128>,
    lasts: Vec<u128>,
    countries: Vec<CountryCode>,
    unassigned: u64,
}

/// The table key of an address: IPv6 as is, IPv4 (and IPv4-mapped IPv6) as `::ffff:a.b.c.d`.
#[must_use]
pub fn address_key(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Splits one RFC 4180 record into its fields (quotes removed, `""` unescaped).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else {
            match c {
                ',' => {
                    out.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '"' if field.is_empty() && !was_quoted => {
                    quoted = true;
                    was_quoted = true;
                }
                '"' => return Err("a quote inside an unquoted field".to_owned()),
                c if was_quoted && !quoted => {
                    return Err(format!("{c:?} after a closing quote"));
                }
                c => field.push(c),
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    out.push(field);
    Ok(out)
}

/// One end of a range: an address as text, or a decimal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Address(u128),
    Number(u128),
}

fn end(text: &str, which: &str) -> Result<End, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u128>()
            .map(End::Number)
            .map_err(|_| format!("{which} address {text:?} is larger than 128 bits"));
    }
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Ok(End::Address(address_key(IpAddr::V4(v4))));
    }
    text.parse::<Ipv6Addr>()
        .map(|v6| End::Address(address_key(IpAddr::V6(v6))))
        .map_err(|_| format!("{which} address {text:?} is neither an IP address nor a number"))
}

/// The range of one line (`None`: no country), keys as in [`address_key`].
fn range(fields: &[String]) -> Result<Option<(u128, u128, CountryCode)>, String> {
    let [first, last, country, ..] = fields else {
        return Err(format!(
            "{} field(s); a range is first_address,last_address,country",
            fields.len()
        ));
    };
    let (first, last) = match (end(first, "first")?, end(last, "last")?) {
        (End::Address(a), End::Address(b)) => (a, b),
        (End::Number(a), End::Number(b)) => match (u32::try_from(a), u32::try_from(b)) {
            (Ok(a), Ok(b)) => (
                address_key(IpAddr::V4(a.into())),
                address_key(IpAddr::V4(b.into())),
            ),
            _ => (a, b),
        },
        _ => {
            return Err("one address is text and the other a number".to_owned());
        }
    };
    if first > last {
        return Err("the first address is after the last".to_owned());
    }
    let country = country.trim();
    if country == "-" || country.eq_ignore_ascii_case("ZZ") {
        return Ok(None);
    }
    CountryCode::parse(country).map(|c| Some((first, last, c)))
}

/// Whether a first line is a row of column names (`ip_start`, `ip_from`, `start_ip`...).
fn is_header(fields: &[String]) -> bool {
    fields.first().is_some_and(|f| {
        let f = f.trim();
        !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    })
}

impl GeoTable {
    /// Reads the table from a file.
    ///
    /// # Errors
    /// [`GeoError`]: the file cannot be read, a line is malformed (named by number), two
    /// ranges overlap, or there are more than [`RANGES_MAX`].
    pub fn load(path: &Path) -> Result<Self, GeoError> {
        let read = |source| GeoError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        Self::from_reader(std::io::BufReader::new(file)).map_err(|error| match error {
            GeoError::Read { source, .. } => read(source),
            other => other,
        })
    }

    /// Reads the table from CSV text (see the module documentation for the layout).
    ///
    /// # Errors
    /// As [`load`](Self::load); a read error names no path.
    pub fn from_reader(mut reader: impl BufRead) -> Result<Self, GeoError> {
        let mut rows: Vec<(u128, u128, CountryCode, u64)> = Vec::new();
        let mut unassigned = 0_u64;
        let mut line_number = 0_u64;
        let mut seen_record = false;
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            let read = std::io::Read::take(
                &mut reader,
                u64::try_from(LINE_BYTES_MAX + 2).unwrap_or(u64::MAX),
            )
            .read_until(b'\n', &mut buffer)
            .map_err(|source| GeoError::Read {
                path: PathBuf::new(),
                source,
            })?;
            if read == 0 {
                break;
            }
            line_number += 1;
            let bad = |reason: String| GeoError::Line {
                line: line_number,
                reason,
            };
            if buffer.last() != Some(&b'\n') && buffer.len() > LINE_BYTES_MAX {
                return Err(bad(format!("longer than {LINE_BYTES_MAX} bytes")));
            }
            let text = std::str::from_utf8(&buffer).map_err(|_| bad("not UTF-8".to_owned()))?;
            let text = text.trim_end_matches(['\n', '\r']);
            // A UTF-8 byte order mark on the first line is not part of the data.
            let text = if line_number == 1 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            if text.trim().is_empty() || text.starts_with('#') {
                continue;
            }
            let fields = fields(text).map_err(bad)?;
            let first_record = !seen_record;
            seen_record = true;
            if first_record && is_header(&fields) {
                continue;
            }
            match range(&fields).map_err(bad)? {
                Some((first, last, country)) => {
                    if rows.len() == RANGES_MAX {
                        return Err(GeoError::TooLarge);
                    }
                    rows.push((first, last, country, line_number));
                }
                None => unassigned += 1,
            }
        }
        // The published files are sorted already; sorting costs little and accepts any order.
        rows.sort_unstable_by_key(|&(first, ..)| first);
        for pair in rows.windows(2) {
            if let [(_, last, _, line), (first, _, _, next_line)] = pair
                && first <= last
            {
                let (first, second) = ((*line).min(*next_line), (*line).max(*next_line));
                return Err(GeoError::Overlap { first, second });
            }
        }
        Ok(Self {
            firsts: rows.iter().map(|r| r.0).collect(),
            lasts: rows.iter().map(|r| r.1).collect(),
            countries: rows.iter().map(|r| r.2).collect(),
            unassigned,
        })
    }

    /// The country of `address`, if a range holds it.
    #[must_use]
    pub fn lookup(&self, address: IpAddr) -> Option<CountryCode> {
        let key = address_key(address);
        // The ranges are disjoint and sorted: the candidate is the last one starting at or
        // before `key`.
        let index = self.firsts.partition_point(|&first| first <= key);
        let index = index.checked_sub(1)?;
        (key <= *self.lasts.get(index)?)
            .then(|| self.countries.get(index).copied())
            .flatten()
    }

    /// Ranges with a country.
    #[must_use]
    pub fn len(&self) -> usize {
        self.firsts.len()
    }

    /// Whether no range has a country.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.firsts.is_empty()
    }

    /// Lines skipped because their range has no country (`-`, `ZZ`).
    #[must_use]
    pub fn unassigned(&self) -> u64 {
        self.unassigned
    }

    /// Bytes the ranges take in memory (the arrays' capacity).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.firsts.capacity() * std::mem::size_of::<u128>()
            + self.lasts.capacity() * std::mem::size_of::<u128>()
            + self.countries.capacity() * std::mem::size_of::<CountryCode>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> Result<GeoTable, GeoError> {
        GeoTable::from_reader(csv.as_bytes())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn country(t: &GeoTable, address: &str) -> Option<String> {
        t.lookup(ip(address)).map(|c| c.to_string())
    }

    /// A load that fails naming `needle` (and the line, for a line error).
    fn refused(csv: &str, needle: &str) {
        match table(csv) {
            Ok(t) => panic!("{csv:?} loaded: {t:?}"),
            Err(error) => {
                let message = error.to_string();
                assert!(message.contains(needle), "{message:?} names {needle:?}");
            }
        }
    }

    #[test]
    fn fields_follow_rfc_4180_quoting() {
        let check = |line: &str, expected: Result<&[&str], ()>| {
            let got = fields(line);
            match expected {
                Ok(want) => assert_eq!(
                    got.as_deref(),
                    Ok(want
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect::<Vec<_>>()
                        .as_slice()),
                    "{line}"
                ),
                Err(()) => assert!(got.is_err(), "{line}: {got:?}"),
            }
        };
        check("1.0.0.0,1.0.0.255,AU", Ok(&["1.0.0.0", "1.0.0.255", "AU"]));
        check(
            "\"16777216\",\"16777471\",\"AU\",\"Australia\"",
            Ok(&["16777216", "16777471", "AU", "Australia"]),
        );
        check(
            "\"1\",\"2\",\"BQ\",\"Bonaire, Sint Eustatius and Saba\"",
            Ok(&["1", "2", "BQ", "Bonaire, Sint Eustatius and Saba"]),
        );
        check("a,\"say \"\"hi\"\"\",c", Ok(&["a", "say \"hi\"", "c"]));
        check("a,,c", Ok(&["a", "", "c"]));
        check("\"open,1,2", Err(()));
        check("ab\"c,1,2", Err(()));
        check("\"a\"b,1,2", Err(()));
    }

    #[test]
    fn db_ip_lite_lines_with_ipv4_and_ipv6_ranges_load() {
        let t = table(
            "1.0.0.0,1.0.0.255,AU\n\
             8.8.8.0,8.8.8.255,us\n\
             2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP\r\n\
             \n\
             # a comment\n",
        )
        .expect("loads");
        assert_eq!(t.len(), 3);
        assert_eq!(country(&t, "8.8.8.8").as_deref(), Some("US"), "upper-cased");
        assert_eq!(country(&t, "2001:200:1::7").as_deref(), Some("JP"));
        assert_eq!(
            country(&t, "::ffff:1.0.0.9").as_deref(),
            Some("AU"),
            "an IPv4-mapped client address is its IPv4 address"
        );
        assert_eq!(country(&t, "9.9.9.9"), None);
        assert_eq!(country(&t, "2001:201::1"), None);
    }

    #[test]
    fn ip2location_lines_quoted_numbers_with_names_load() {
        // DB1 (IPv4): numbers are IPv4 addresses; `-` is unassigned space.
        let v4 = table(
            "\"0\",\"16777215\",\"-\",\"-\"\n\
             \"16777216\",\"16777471\",\"AU\",\"Australia\"\n\
             \"16777472\",\"16778239\",\"CN\",\"China\"\n",
        )
        .expect("loads");
        assert_eq!((v4.len(), v4.unassigned()), (2, 1));
        assert_eq!(country(&v4, "1.0.0.0").as_deref(), Some("AU"));
        assert_eq!(country(&v4, "1.0.1.0").as_deref(), Some("CN"));
        assert_eq!(country(&v4, "0.0.0.1"), None);
        // DB1 IPv6: IPv4 ranges written IPv4-mapped (::ffff:1.0.0.0 = 281470698520576).
        let v6 = table(
            "\"0\",\"281470681743359\",\"-\",\"-\"\n\
             \"281470698520576\",\"281470698520831\",\"AU\",\"Australia\"\n\
             \"42540528726795050063891204319802818560\",\"42540528806023212578155541913346768895\",\"JP\",\"Japan\"\n",
        )
        .expect("loads");
        assert_eq!(country(&v6, "1.0.0.200").as_deref(), Some("AU"));
        assert_eq!(country(&v6, "2001:200::1").as_deref(), Some("JP"));
    }

    #[test]
    fn lookups_at_the_edges_of_ranges() {
        let t = table(
            "10.0.0.0,10.0.0.255,CN\n\
             10.0.1.0,10.0.1.0,TH\n\
             10.0.1.2,10.0.2.255,NL\n\
             ::,::ffff,AQ\n\
             ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,FJ\n",
        )
        .expect("loads");
        let check = |address: &str, expected: Option<&str>| {
            assert_eq!(country(&t, address).as_deref(), expected, "{address}");
        };
        check("9.255.255.255", None);
        check("10.0.0.0", Some("CN"));
        check("10.0.0.255", Some("CN"));
        check("10.0.1.0", Some("TH"));
        check("10.0.1.1", None);
        check("10.0.1.2", Some("NL"));
        check("10.0.2.255", Some("NL"));
        check("10.0.3.0", None);
        check("::", Some("AQ"));
        check("::ffff", Some("AQ"));
        check("::1:0", None);
        check("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("FJ"));
        check("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffef", None);
        assert_eq!(GeoTable::default().lookup(ip("1.2.3.4")), None);
    }

    #[test]
    fn a_malformed_line_is_refused_naming_its_number() {
        refused("1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255\n", "line 2");
        refused("1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255\n", "field");
        refused("1.0.0.0,1.0.0.x,AU\n", "line 1: last address \"1.0.0.x\"");
        refused("1.0.0.9,1.0.0.1,AU\n", "first address is after the last");
        refused("1.0.0.0,1.0.0.255,AUS\n", "alpha-2");
        refused("1.0.0.0,1.0.0.255,A1\n", "alpha-2");
        refused("16777216,1.0.0.255,AU\n", "text and the other a number");
        refused(
            "1,340282366920938463463374607431768211456,AU\n",
            "larger than 128 bits",
        );
        refused("\n\n\"1.0.0.0,1.0.0.255,AU\n", "line 3: a quoted field");
        refused(
            &format!("1.0.0.0,1.0.0.255,AU,{}\n", "x".repeat(2_000)),
            "longer than",
        );
        let not_utf8: &[u8] = b"1.0.0.0,1.0.0.255,\xff\xfe\n";
        assert!(matches!(
            GeoTable::from_reader(not_utf8),
            Err(GeoError::Line { line: 1, .. })
        ));
    }

    #[test]
    fn a_header_line_is_skipped_only_first() {
        let t = table("ip_start,ip_end,country\n1.0.0.0,1.0.0.255,AU\n").expect("loads");
        assert_eq!(t.len(), 1);
        let t = table("# exported today\n\nip_start,ip_end,country\n1.0.0.0,1.0.0.255,AU\n")
            .expect("a header after comments");
        assert_eq!(t.len(), 1);
        let t = table("\u{feff}\"ip_from\",\"ip_to\",\"country_code\",\"country_name\"\n")
            .expect("loads");
        assert!(t.is_empty());
        refused("1.0.0.0,1.0.0.255,AU\nip_start,ip_end,country\n", "line 2");
    }

    #[test]
    fn overlapping_ranges_are_refused_naming_both_lines() {
        refused(
            "1.0.0.0,1.0.0.255,AU\n2.0.0.0,2.0.0.9,FR\n1.0.0.255,1.0.1.0,CN\n",
            "lines 1 and 3 overlap",
        );
        refused(
            "1.0.0.0,1.0.0.255,AU\n1.0.0.7,1.0.0.7,AU\n",
            "lines 1 and 2",
        );
        // The IPv4 and the IPv4-mapped spelling of one address are the same key.
        refused(
            "1.0.0.0,1.0.0.0,AU\n::ffff:1.0.0.0,::ffff:1.0.0.0,AU\n",
            "overlap",
        );
        // Adjacent ranges do not overlap, and unassigned lines take no part.
        let t = table("1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255,CN\n1.0.0.0,1.0.1.255,ZZ\n")
            .expect("adjacent ranges load");
        assert_eq!((t.len(), t.unassigned()), (2, 1));
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error = GeoTable::load(Path::new("no-such-dir/ip-country.csv")).expect_err("missing");
        assert!(
            error.to_string().contains("no-such-dir/ip-country.csv"),
            "{error}"
        );
    }

    /// A full-size table (600,000 ranges, as the DB-IP Lite file): built and queried once to
    /// show it loads; what it costs is measured by `cargo run --release --example geo_table`
    /// (no timed assertion here).
    #[test]
    fn a_full_size_table_loads_and_answers() {
        let mut csv = String::with_capacity(600_000 * 32);
        for i in 0_u32..600_000 {
            let first = Ipv4Addr::from(i * 4096);
            let last = Ipv4Addr::from(i * 4096 + 4095);
            let _ = std::fmt::Write::write_fmt(
                &mut csv,
                format_args!(
                    "{first},{last},{}\n",
                    ["CN", "TH", "NL"][usize::try_from(i % 3).expect("small")]
                ),
            );
        }
        let t = table(&csv).expect("loads");
        assert_eq!(t.len(), 600_000);
        assert_eq!(country(&t, "0.0.16.1").as_deref(), Some("TH"));
        assert!(t.heap_bytes() >= 600_000 * 34);
    }
}
