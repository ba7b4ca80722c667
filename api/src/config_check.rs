//! `agritrace config check FILE`: loads a configuration file the way the node does and
//! explains every problem, each with its line — not only the first one the node would stop at.
//!
//! There is no second parser and no second list of settings: the file is parsed once into a
//! spanned TOML table (`toml::de::DeTable`, the node's own TOML crate), and every setting is
//! handed on its own to the node's deserializer ([`NodeConfig`], with its
//! `deny_unknown_fields` and types) and validator ([`NodeConfig::validate`]). An unknown key's
//! "did you mean" comes from the names serde itself lists as expected. When every setting is
//! fine on its own, the whole file is loaded and validated as the node would (settings that
//! only conflict together), then what the node would do at start is tried without side
//! effects: whether the data directory can be created, whether an existing log key belongs to
//! the origin, whether the IP-to-country table parses.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde::de::IntoDeserializer as _;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::config::{CONFIG_BYTES_MAX, NodeConfig};

/// One problem of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem belongs to one setting.
    pub line: Option<usize>,
    /// What is wrong, and how to put it right where that is known.
    pub message: String,
}

/// Every problem of the configuration file at `path`; empty when the node would start with it.
#[must_use]
pub fn check_file(path: &Path) -> Vec<Problem> {
    let whole = |message: String| {
        vec![Problem {
            line: None,
            message,
        }]
    };
    let length = match std::fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(e) => return whole(format!("cannot read {}: {e}", path.display())),
    };
    if length > u64::try_from(CONFIG_BYTES_MAX).unwrap_or(u64::MAX) {
        return whole(format!("larger than {CONFIG_BYTES_MAX} bytes"));
    }
    match std::fs::read_to_string(path) {
        Ok(text) => check_text(&text),
        Err(e) => whole(format!("cannot read {}: {e}", path.display())),
    }
}

/// Every problem of configuration `text` (see the module documentation).
#[must_use]
pub fn check_text(text: &str) -> Vec<Problem> {
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            return vec![Problem {
                line: error.span().map(|span| line_of(text, &span)),
                message: format!("not valid TOML: {}", error.message()),
            }];
        }
    };
    let mut problems = Vec::new();
    for (key, value) in document.get_ref() {
        let line = line_of(text, &key.span());
        let name = key.get_ref().as_ref();
        // A table or array of tables the node knows: each setting in it on its own.
        match value.get_ref() {
            DeValue::Table(inner) if probe(&[name], empty_table()).is_ok() => {
                for (inner_key, inner_value) in inner {
                    let inner_name = inner_key.get_ref().as_ref();
                    if let Err(message) = probe(&[name], single(inner_key, inner_value)) {
                        problems.push(Problem {
                            line: Some(line_of(text, &inner_key.span())),
                            message: explain(
                                &format!("[{name}] {inner_name}"),
                                inner_name,
                                &message,
                            ),
                        });
                    }
                }
            }
            DeValue::Array(entries)
                if probe(&[name], DeValue::Array(DeArray::new())).is_ok()
                    && entries
                        .iter()
                        .all(|e| matches!(e.get_ref(), DeValue::Table(_))) =>
            {
                for (position, entry) in entries.iter().enumerate() {
                    if let Err(message) = probe(&[name], array_of(entry)) {
                        let field = unknown_field(&message).unwrap_or_default();
                        problems.push(Problem {
                            line: Some(line_of(text, &entry.span())),
                            message: explain(
                                &format!("[[{name}]] #{}", position + 1),
                                field,
                                &message,
                            ),
                        });
                    }
                }
            }
            _ => {
                if let Err(message) = probe(&[], single(key, value)) {
                    problems.push(Problem {
                        line: Some(line),
                        message: explain(name, name, &message),
                    });
                }
            }
        }
    }
    if !problems.is_empty() {
        // In the order of the file (the parsed table is sorted by key).
        problems.sort_by_key(|p| p.line);
        return problems;
    }
    // Each setting is fine on its own: the whole file as the node loads it.
    let config = match NodeConfig::deserialize(document.into_deserializer()) {
        Ok(config) => config,
        Err(error) => {
            return vec![Problem {
                line: error.span().map(|span| line_of(text, &span)),
                message: error.message().to_owned(),
            }];
        }
    };
    if let Err(error) = config.validate() {
        problems.push(Problem {
            line: None,
            message: error.to_string(),
        });
    }
    problems.extend(check_start(&config).into_iter().map(|message| Problem {
        line: None,
        message,
    }));
    problems
}

/// What the node would find at start, tried without changing anything.
fn check_start(config: &NodeConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(reason) = creatable_dir(&config.data_dir) {
        problems.push(format!("data_dir {}: {reason}", config.data_dir.display()));
    }
    let key_path = config.log_key_path();
    if key_path.exists() {
        match std::fs::read_to_string(&key_path) {
            Ok(text) => match ledger::note::NoteSigner::parse(text.trim()) {
                Ok(signer) if signer.name() != config.origin => problems.push(format!(
                    "the log key {} is named {:?} but origin is {:?}: the node would refuse to start",
                    key_path.display(),
                    signer.name(),
                    config.origin
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!(
                    "the log key {} does not parse: {e}",
                    key_path.display()
                )),
            },
            Err(e) => problems.push(format!("the log key {}: {e}", key_path.display())),
        }
    }
    if let Err(error) = config.ip_country_table() {
        problems.push(error.to_string());
    }
    problems
}

/// Whether `dir` exists as a writable directory, or could be created (its nearest existing
/// ancestor is a writable directory).
fn creatable_dir(dir: &Path) -> Result<(), String> {
    let mut existing: PathBuf = dir.to_owned();
    loop {
        match std::fs::metadata(&existing) {
            Ok(metadata) if metadata.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", existing.display())),
            Err(_) => match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent.to_owned(),
                _ => {
                    existing = PathBuf::from(".");
                    break;
                }
            },
        }
    }
    let readonly = std::fs::metadata(&existing)
        .map(|m| m.permissions().readonly())
        .unwrap_or(true);
    if readonly {
        return Err(format!("{} is not writable", existing.display()));
    }
    #[cfg(unix)]
    {
        // Permission bits say little for another user; ask the system as this process.
        let probe = existing.join(format!(".agritrace-config-check-{}", std::process::id()));
        match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                return Err(format!(
                    "cannot create files in {}: {e}",
                    existing.display()
                ));
            }
        }
    }
    Ok(())
}

fn array_of<'i>(entry: &Spanned<DeValue<'i>>) -> DeValue<'i> {
    let mut array = DeArray::new();
    array.push(entry.clone());
    DeValue::Array(array)
}

fn empty_table() -> DeValue<'static> {
    DeValue::Table(DeTable::new())
}

fn single<'i>(key: &Spanned<toml::de::DeString<'i>>, value: &Spanned<DeValue<'i>>) -> DeValue<'i> {
    let mut table = DeTable::new();
    table.insert(key.clone(), value.clone());
    DeValue::Table(table)
}

/// Deserialises and validates a configuration holding only `value` under the tables `path`
/// (`single` already wraps a value in its own key), as the node would.
fn probe(path: &[&str], value: DeValue<'_>) -> Result<(), String> {
    let mut value = value;
    for name in path.iter().rev() {
        let mut table = DeTable::new();
        table.insert(
            Spanned::new(0..0, Cow::Owned((*name).to_owned())),
            Spanned::new(0..0, value),
        );
        value = DeValue::Table(table);
    }
    let DeValue::Table(table) = value else {
        return Err("not a table".to_owned());
    };
    let config = NodeConfig::deserialize(Spanned::new(0..0, table).into_deserializer())
        .map_err(|e| e.message().to_owned())?;
    config.validate().map_err(|e| e.to_string())
}

/// The field named by serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The names serde lists as expected in an unknown-field message.
fn expected_fields(message: &str) -> Vec<&str> {
    let Some((_, list)) = message.split_once("expected ") else {
        return Vec::new();
    };
    list.split('`').skip(1).step_by(2).collect()
}

/// A sentence for `message` about setting `shown` (user key `key`).
fn explain(shown: &str, key: &str, message: &str) -> String {
    let Some(unknown) = unknown_field(message) else {
        return format!("{shown}: {message}");
    };
    let candidates = expected_fields(message);
    let known = candidates.join(", ");
    let unknown = if unknown.is_empty() { key } else { unknown };
    match closest(unknown, &candidates) {
        Some(near) => {
            format!("{shown}: unknown key `{unknown}`; did you mean `{near}`? (known: {known})")
        }
        None => format!("{shown}: unknown key `{unknown}` (known: {known})"),
    }
}

/// The candidate nearest to `word` in edit distance, if it is near enough to be a typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let (distance, best) = candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .min_by_key(|(d, _)| *d)?;
    let allowed = (word.chars().count() / 3).max(2);
    (distance <= allowed).then_some(best)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// 1-based line of the byte offset where `span` starts.
fn line_of(text: &str, span: &Range<usize>) -> usize {
    let end = span.start.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` has exactly the problems `expected` (line, a piece of the message), in order.
    fn check(text: &str, expected: &[(Option<usize>, &str)]) {
        let problems = check_text(text);
        assert_eq!(
            problems.len(),
            expected.len(),
            "{text:?} gave {problems:#?}"
        );
        for (problem, (line, needle)) in problems.iter().zip(expected) {
            assert_eq!(problem.line, *line, "{problem:?}");
            assert!(
                problem.message.contains(needle),
                "{:?} names {needle:?}",
                problem.message
            );
        }
    }

    #[test]
    fn every_problem_is_explained_with_its_line() {
        check("", &[]);
        check(
            "batch_window_ms = 0\nround_period_ms = 5\n",
            &[(Some(1), "batch_window_ms"), (Some(2), "round_period_ms")],
        );
        check(
            "data_dri = \"x\"\n[broker]\nprot = 1883\nembedded = \"yes\"\n",
            &[
                (Some(1), "did you mean `data_dir`?"),
                (
                    Some(3),
                    "[broker] prot: unknown key `prot`; did you mean `port`?",
                ),
                (Some(4), "[broker] embedded"),
            ],
        );
        check(
            "[brokr]\nport = 1\n",
            &[(Some(1), "did you mean `broker`?")],
        );
        check("zzzzzz = 1", &[(Some(1), "unknown key `zzzzzz` (known:")]);
        check("http_listen = \"127.0.0.1\"", &[(Some(1), "http_listen")]);
        check("ingest_workers = \"two\"", &[(Some(1), "ingest_workers")]);
        check("origin = \"a b\"", &[(Some(1), "origin")]);
        check("port = \n", &[(Some(1), "not valid TOML")]);
        check(
            "[[witnesses]]\nurl = \"http://w\"\nkey = \"nope\"\n[[witnesses]]\nurll = \"x\"\n",
            &[
                (
                    Some(1),
                    "[[witnesses]] #1: invalid configuration: witness http://w: bad key",
                ),
                (Some(4), "did you mean `url`?"),
            ],
        );
        // Only together: an external broker on port 0.
        check(
            "[broker]\nembedded = false\nport = 0\n",
            &[(None, "broker.port 0")],
        );
    }

    #[test]
    fn the_data_directory_must_be_creatable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let text = format!("data_dir = {:?}", file.join("data").display().to_string());
        check(&text, &[(None, "is not a directory")]);
        let fine = format!(
            "data_dir = {:?}",
            dir.path().join("new/data").display().to_string()
        );
        check(&fine, &[]);
    }

    #[test]
    fn typos_are_near_and_strangers_are_not() {
        assert_eq!(closest("prot", &["port", "host"]), Some("port"));
        assert_eq!(
            closest("batch_windw_ms", &["batch_window_ms"]),
            Some("batch_window_ms")
        );
        assert_eq!(closest("zzzzzz", &["port", "host"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
