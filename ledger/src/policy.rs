//! Witness policy in the C2SP tlog-policy text format: which logs are trusted, which witnesses
//! exist, k-of-n groups of witnesses (and of groups), and the quorum a checkpoint needs.
//!
//! ```text
//! log agritrace.example/log+1a2b3c4d+AQ...
//! witness customs-A customs-a.example/w+5e6f7a8b+BA...
//! witness customs-B customs-b.example/w+...
//! witness agriculture agri.example/w+...
//! witness court court.example/w+...
//! group agencies 3 customs-A customs-B agriculture court
//! quorum agencies
//! ```
//!
//! Syntax (c2sp.org/tlog-policy): one item per line, items separated by spaces or tabs, blank
//! and `#` comment lines ignored; `log <vkey> [<url>]`, `witness <name> <vkey> [<url>]`,
//! `group <name> all|any|<k> <member>...` (members defined on earlier lines, each at most once,
//! `1 <= k <= n`), exactly one `quorum <name>` (`none` for no witnesses). Names share one
//! namespace. Log vkeys have type `0x01`, witness vkeys type `0x04`; two entries with the same
//! public key are rejected. Deviation: the file must be UTF-8 (the spec allows arbitrary bytes
//! above 0x7F and recommends UTF-8).

use alloc::string::String;
use alloc::vec::Vec;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::note::{
    KeyError, KeyType, Note, NoteError, NoteVerifier, OpenedNote, VerifiedSignature,
};

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Most logs, witnesses and groups each (the spec recommends supporting at least 32).
pub const MAX_POLICY_ITEMS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// A parsed, validated witness policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<NoteVerifier>,
    witnesses: Vec<(String, NoteVerifier)>,
    groups: Vec<Group>,
    /// `None` is the `quorum none` policy.
    quorum: Option<Member>,
}

/// Why a policy file was rejected (with its one-based line number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Larger than `MAX_POLICY_BYTES`, or not UTF-8, or a forbidden control character.
    #[error("policy must be UTF-8 text of at most 64 KiB without control characters but tab")]
    Text,
    /// A line does not have the shape of its keyword.
    #[error("line {line}: malformed {what} line")]
    Malformed {
        /// Line number.
        line: usize,
        /// Keyword.
        what: &'static str,
    },
    /// A key did not parse or has the wrong type.
    #[error("line {line}: {source}")]
    Key {
        /// Line number.
        line: usize,
        /// Key problem.
        source: KeyError,
    },
    /// The same public key appears twice.
    #[error("line {line}: duplicate public key")]
    DuplicateKey {
        /// Line number.
        line: usize,
    },
    /// A name is defined twice, or `none` is defined.
    #[error("line {line}: name {name} is already defined or reserved")]
    DuplicateName {
        /// Line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// A name is used before it is defined, or listed twice in a group.
    #[error("line {line}: {name} is not defined above or is listed twice")]
    UnknownName {
        /// Line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// A threshold outside `1..=n`.
    #[error("line {line}: threshold must be between 1 and the number of members")]
    Threshold {
        /// Line number.
        line: usize,
    },
    /// No quorum line, or more than one.
    #[error("policy must have exactly one quorum line")]
    Quorum,
    /// More than `MAX_POLICY_ITEMS` logs, witnesses or groups.
    #[error("policy has too many logs, witnesses or groups")]
    TooLarge,
    /// A policy built from keys ([`Policy::from_keys`]) has a bad part (reason given).
    #[error("{0}")]
    Built(String),
}

/// Why a checkpoint did not satisfy a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyCheckError {
    /// The note is malformed, or a signature by a known key failed.
    #[error("signed note: {0}")]
    Note(#[from] NoteError),
    /// The note text is not a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// No valid signature by a policy log whose key name is the origin.
    #[error("no valid signature by a trusted log for origin {0}")]
    NoLogSignature(String),
    /// Too few witnesses cosigned.
    #[error("witness quorum not met: cosigned by {} ({} needed by the policy)", .cosigned.join(", "), .needed)]
    QuorumNotMet {
        /// Witnesses (policy names) whose cosignatures verified.
        cosigned: Vec<String>,
        /// The quorum's name.
        needed: String,
    },
}

/// A checkpoint accepted under a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVerdict {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The exact signed note text.
    pub text: String,
    /// Name of the log key that signed.
    pub log: String,
    /// Witnesses (policy names) whose cosignatures verified, with their timestamps.
    pub cosigned: Vec<(String, u64)>,
}

fn split_items(line: &str) -> Vec<&str> {
    line.split([' ', '\t']).filter(|s| !s.is_empty()).collect()
}

impl Policy {
    /// Parses and validates a policy file.
    pub fn parse(bytes: &[u8]) -> Result<Self, PolicyError> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::Text);
        }
        let text = core::str::from_utf8(bytes).map_err(|_| PolicyError::Text)?;
        if text
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\n')
        {
            return Err(PolicyError::Text);
        }
        let mut policy = Self {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        let mut quorum_seen = false;
        for (number, line) in text.split('\n').enumerate() {
            let line_no = number + 1;
            let items = split_items(line);
            let Some(&keyword) = items.first() else {
                continue;
            };
            if keyword.starts_with('#') {
                continue;
            }
            match keyword {
                "log" => {
                    if !(2..=3).contains(&items.len()) {
                        return Err(PolicyError::Malformed {
                            line: line_no,
                            what: "log",
                        });
                    }
                    let key = NoteVerifier::parse_typed(items[1], KeyType::Ed25519).map_err(
                        |source| PolicyError::Key {
                            line: line_no,
                            source,
                        },
                    )?;
                    policy.check_new_key(&key, line_no)?;
                    policy.logs.push(key);
                }
                "witness" => {
                    if !(3..=4).contains(&items.len()) {
                        return Err(PolicyError::Malformed {
                            line: line_no,
                            what: "witness",
                        });
                    }
                    policy.check_new_name(items[1], line_no)?;
                    let key = NoteVerifier::parse_typed(items[2], KeyType::CosignatureV1).map_err(
                        |source| PolicyError::Key {
                            line: line_no,
                            source,
                        },
                    )?;
                    policy.check_new_key(&key, line_no)?;
                    policy.witnesses.push((String::from(items[1]), key));
                }
                "group" => {
                    if items.len() < 4 {
                        return Err(PolicyError::Malformed {
                            line: line_no,
                            what: "group",
                        });
                    }
                    policy.check_new_name(items[1], line_no)?;
                    let mut members: Vec<Member> = Vec::new();
                    for name in &items[3..] {
                        let member = policy
                            .lookup(name)
                            .filter(|m| !members.contains(m))
                            .ok_or_else(|| PolicyError::UnknownName {
                                line: line_no,
                                name: String::from(*name),
                            })?;
                        members.push(member);
                    }
                    let n = members.len();
                    let threshold = match items[2] {
                        "all" => n,
                        "any" => 1,
                        k => parse_threshold(k).ok_or(PolicyError::Threshold { line: line_no })?,
                    };
                    if threshold == 0 || threshold > n {
                        return Err(PolicyError::Threshold { line: line_no });
                    }
                    policy.groups.push(Group {
                        name: String::from(items[1]),
                        threshold,
                        members,
                    });
                }
                "quorum" => {
                    if items.len() != 2 {
                        return Err(PolicyError::Malformed {
                            line: line_no,
                            what: "quorum",
                        });
                    }
                    if quorum_seen {
                        return Err(PolicyError::Quorum);
                    }
                    quorum_seen = true;
                    policy.quorum =
                        if items[1] == "none" {
                            None
                        } else {
                            Some(policy.lookup(items[1]).ok_or_else(|| {
                                PolicyError::UnknownName {
                                    line: line_no,
                                    name: String::from(items[1]),
                                }
                            })?)
                        };
                }
                _ => {
                    return Err(PolicyError::Malformed {
                        line: line_no,
                        what: "unknown keyword",
                    });
                }
            }
            if policy.logs.len() > MAX_POLICY_ITEMS
                || policy.witnesses.len() > MAX_POLICY_ITEMS
                || policy.groups.len() > MAX_POLICY_ITEMS
            {
                return Err(PolicyError::TooLarge);
            }
        }
        if !quorum_seen {
            return Err(PolicyError::Quorum);
        }
        Ok(policy)
    }

    fn lookup(&self, name: &str) -> Option<Member> {
        if let Some(i) = self.witnesses.iter().position(|(n, _)| n == name) {
            return Some(Member::Witness(i));
        }
        self.groups
            .iter()
            .position(|g| g.name == name)
            .map(Member::Group)
    }

    fn check_new_name(&self, name: &str, line: usize) -> Result<(), PolicyError> {
        if name == "none" || self.lookup(name).is_some() {
            return Err(PolicyError::DuplicateName {
                line,
                name: String::from(name),
            });
        }
        Ok(())
    }

    fn check_new_key(&self, key: &NoteVerifier, line: usize) -> Result<(), PolicyError> {
        let same = |other: &NoteVerifier| other.public_key() == key.public_key();
        if self.logs.iter().any(same) || self.witnesses.iter().any(|(_, w)| same(w)) {
            return Err(PolicyError::DuplicateKey { line });
        }
        Ok(())
    }

    /// A policy built directly from keys, with no text in between (so no name or key can
    /// smuggle in policy lines): trust `log`, know `witnesses` (policy name, `cosignature/v1`
    /// key), and require `quorum` of them (`None`: all of them; no witnesses: `quorum none`).
    /// Names follow the text format's rules: non-empty, no whitespace or control characters,
    /// not `none`, unique.
    ///
    /// # Errors
    /// [`PolicyError`] naming the bad part.
    pub fn from_keys(
        log: NoteVerifier,
        witnesses: Vec<(String, NoteVerifier)>,
        quorum: Option<usize>,
    ) -> Result<Self, PolicyError> {
        let built = |why: String| PolicyError::Built(why);
        if log.key_type() != KeyType::Ed25519 {
            return Err(built(alloc::format!(
                "log key {} is not an Ed25519 (type 0x01) key",
                log.name()
            )));
        }
        if witnesses.len() > MAX_POLICY_ITEMS {
            return Err(PolicyError::TooLarge);
        }
        let mut policy = Policy {
            logs: alloc::vec![log],
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        for (name, key) in witnesses {
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(built(alloc::format!(
                    "witness name {name:?} must be non-empty, without spaces or control characters"
                )));
            }
            if key.key_type() != KeyType::CosignatureV1 {
                return Err(built(alloc::format!(
                    "witness key for {name} is not a cosignature/v1 (type 0x04) key"
                )));
            }
            policy.check_new_name(&name, 0)?;
            policy.check_new_key(&key, 0)?;
            policy.witnesses.push((name, key));
        }
        let n = policy.witnesses.len();
        if n > 0 {
            let threshold = quorum.unwrap_or(n);
            if !(1..=n).contains(&threshold) {
                return Err(built(alloc::format!(
                    "quorum must be between 1 and the {n} witnesses"
                )));
            }
            policy.groups.push(Group {
                name: String::from("witnesses"),
                threshold,
                members: (0..n).map(Member::Witness).collect(),
            });
            policy.quorum = Some(Member::Group(0));
        } else if quorum.is_some_and(|k| k > 0) {
            return Err(built(String::from("a quorum needs witnesses")));
        }
        Ok(policy)
    }

    /// The trusted log keys.
    pub fn logs(&self) -> &[NoteVerifier] {
        &self.logs
    }

    /// The witnesses: (policy name, cosigner key).
    pub fn witnesses(&self) -> impl Iterator<Item = (&str, &NoteVerifier)> {
        self.witnesses.iter().map(|(n, k)| (n.as_str(), k))
    }

    /// The quorum's name (`none` if no cosignature is needed).
    pub fn quorum_name(&self) -> &str {
        match self.quorum {
            None => "none",
            Some(Member::Witness(i)) => self.witnesses.get(i).map_or("none", |(n, _)| n.as_str()),
            Some(Member::Group(i)) => self.groups.get(i).map_or("none", |g| g.name.as_str()),
        }
    }

    /// Policy names of the witnesses whose verified cosignatures are in `verified`.
    pub fn cosigned_witnesses(&self, verified: &[VerifiedSignature]) -> Vec<(String, u64)> {
        self.witnesses
            .iter()
            .filter_map(|(name, key)| {
                verified
                    .iter()
                    .find(|v| {
                        v.key_type == KeyType::CosignatureV1
                            && v.name == key.name()
                            && v.key_id == key.key_id()
                    })
                    .map(|v| (name.clone(), v.timestamp.unwrap_or(0)))
            })
            .collect()
    }

    /// Whether the witnesses named (policy names) satisfy the quorum.
    pub fn quorum_met(&self, cosigned: &[&str]) -> bool {
        let witness_ok: Vec<bool> = self
            .witnesses
            .iter()
            .map(|(name, _)| cosigned.contains(&name.as_str()))
            .collect();
        // Groups only refer to earlier groups, so one pass in order evaluates them all.
        let mut group_ok: Vec<bool> = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let count = group
                .members
                .iter()
                .filter(|m| match m {
                    Member::Witness(i) => witness_ok.get(*i).copied().unwrap_or(false),
                    Member::Group(i) => group_ok.get(*i).copied().unwrap_or(false),
                })
                .count();
            group_ok.push(count >= group.threshold);
        }
        match self.quorum {
            None => true,
            Some(Member::Witness(i)) => witness_ok.get(i).copied().unwrap_or(false),
            Some(Member::Group(i)) => group_ok.get(i).copied().unwrap_or(false),
        }
    }

    /// All verifiers of the policy (logs and witnesses), to open a note with.
    pub fn verifiers(&self) -> Vec<NoteVerifier> {
        self.logs
            .iter()
            .cloned()
            .chain(self.witnesses.iter().map(|(_, k)| k.clone()))
            .collect()
    }

    /// Step 1 of [`verify_checkpoint`](Self::verify_checkpoint): checks every signature by a
    /// key of the policy (unknown keys are ignored; a failing known one rejects the note).
    ///
    /// # Errors
    /// [`PolicyCheckError::NoLogSignature`] if no key of the policy signed, or
    /// [`PolicyCheckError::Note`] for a bad signature by a known key.
    pub fn open_note(
        &self,
        note: &Note,
        checkpoint: &Checkpoint,
    ) -> Result<OpenedNote, PolicyCheckError> {
        match note.open(&self.verifiers()) {
            Ok(opened) => Ok(opened),
            Err(NoteError::NoKnownSignature) => {
                Err(PolicyCheckError::NoLogSignature(checkpoint.origin.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Step 2: the trusted log whose key name is the checkpoint's origin and whose signature
    /// verified.
    ///
    /// # Errors
    /// [`PolicyCheckError::NoLogSignature`].
    pub fn log_signer(
        &self,
        checkpoint: &Checkpoint,
        opened: &OpenedNote,
    ) -> Result<&NoteVerifier, PolicyCheckError> {
        self.logs
            .iter()
            .find(|log| {
                log.name() == checkpoint.origin
                    && opened.verified.iter().any(|v| {
                        v.key_type == KeyType::Ed25519
                            && v.name == log.name()
                            && v.key_id == log.key_id()
                    })
            })
            .ok_or_else(|| PolicyCheckError::NoLogSignature(checkpoint.origin.clone()))
    }

    /// Step 3: the witnesses (policy names, timestamps) whose cosignatures verified, if they
    /// meet the quorum.
    ///
    /// # Errors
    /// [`PolicyCheckError::QuorumNotMet`] listing who did cosign.
    pub fn check_quorum(
        &self,
        opened: &OpenedNote,
    ) -> Result<Vec<(String, u64)>, PolicyCheckError> {
        let cosigned = self.cosigned_witnesses(&opened.verified);
        let names: Vec<&str> = cosigned.iter().map(|(n, _)| n.as_str()).collect();
        if !self.quorum_met(&names) {
            return Err(PolicyCheckError::QuorumNotMet {
                cosigned: cosigned.iter().map(|(n, _)| n.clone()).collect(),
                needed: String::from(self.quorum_name()),
            });
        }
        Ok(cosigned)
    }

    /// Verifies a signed checkpoint under the policy: a trusted log whose key name is the
    /// origin signed it, every signature by a known key verifies, and the cosigning witnesses
    /// meet the quorum. The steps are public ([`open_note`](Self::open_note),
    /// [`log_signer`](Self::log_signer), [`check_quorum`](Self::check_quorum)) so a verifier
    /// can report each one without re-implementing it.
    pub fn verify_checkpoint(&self, signed_note: &[u8]) -> Result<PolicyVerdict, PolicyCheckError> {
        let note = Note::parse(signed_note)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        let opened = self.open_note(&note, &checkpoint)?;
        let log = String::from(self.log_signer(&checkpoint, &opened)?.name());
        let cosigned = self.check_quorum(&opened)?;
        Ok(PolicyVerdict {
            checkpoint,
            text: opened.text,
            log,
            cosigned,
        })
    }
}

fn parse_threshold(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 4 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes[0] == b'0' {
        return None;
    }
    text.parse().ok()
}
