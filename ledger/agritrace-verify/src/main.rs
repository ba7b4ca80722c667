//! `agritrace-verify`: checks, with no network, that a log entry is in the agritrace log and
//! that the log's checkpoint is signed by a trusted log key and cosigned by enough witnesses.
//!
//! Inputs: the entry (its file, or its RFC 9162 leaf hash), a C2SP tlog-proof file (index,
//! inclusion proof and the cosigned checkpoint), and the trust policy (a C2SP tlog-policy file,
//! or the log key, witness keys and a threshold given as flags). It prints one line per step and,
//! on failure, names the step that failed and exits with status 1 (status 2 for unusable
//! input such as a missing file).
//!
//! Depends only on the no_std core of `ledger` and on clap.

use std::fmt::Display;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ledger::checkpoint::Checkpoint;
use ledger::entry::Entry;
use ledger::merkle::{Hash, leaf_hash};
use ledger::note::{KeyType, Note, NoteError, NoteVerifier};
use ledger::policy::{Policy, PolicyCheckError};
use ledger::tlog_proof::TlogProof;

/// Verify an agritrace log proof offline.
///
/// Example:
///   agritrace-verify --entry entry.bin --proof entry.tlog-proof --policy agencies.policy
#[derive(Debug, Parser)]
#[command(name = "agritrace-verify", version, about, long_about = None)]
struct Args {
    /// The entry as stored in the log (exact bytes).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "leaf_hash",
        conflicts_with = "leaf_hash"
    )]
    entry: Option<PathBuf>,
    /// Instead of the entry: its RFC 9162 leaf hash, SHA-256(0x00 || entry), in hex.
    #[arg(long, value_name = "HEX")]
    leaf_hash: Option<String>,
    /// The proof file (C2SP tlog-proof: index, inclusion proof, cosigned checkpoint).
    #[arg(long, value_name = "FILE")]
    proof: PathBuf,
    /// Trust policy in C2SP tlog-policy format (log and witness keys, quorum).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "log_key",
        conflicts_with = "log_key"
    )]
    policy: Option<PathBuf>,
    /// Instead of --policy: the log's verifier key (name+hash+base64 key).
    #[arg(long, value_name = "VKEY")]
    log_key: Option<String>,
    /// With --log-key: a witness as NAME=VKEY (cosignature/v1 key); repeat for each witness.
    #[arg(long = "witness", value_name = "NAME=VKEY", requires = "log_key")]
    witnesses: Vec<String>,
    /// With --log-key: how many of the witnesses must have cosigned (default: all listed).
    #[arg(long, value_name = "K", requires = "log_key")]
    quorum: Option<usize>,
}

/// A step failure: which step, and why.
struct Failure {
    step: &'static str,
    reason: String,
    /// Bad input (exit 2) rather than a failed verification (exit 1).
    unusable_input: bool,
}

struct Report {
    number: usize,
}

impl Report {
    fn ok(&mut self, step: &'static str, detail: impl Display) {
        self.number += 1;
        println!("step {:>2}  {step:<34} ok    {detail}", self.number);
    }

    fn fail(&mut self, failure: &Failure) {
        self.number += 1;
        println!(
            "step {:>2}  {:<34} FAILED {}",
            self.number, failure.step, failure.reason
        );
    }
}

fn verification_failed(step: &'static str, reason: impl Display) -> Failure {
    Failure {
        step,
        reason: reason.to_string(),
        unusable_input: false,
    }
}

fn unusable(step: &'static str, reason: impl Display) -> Failure {
    Failure {
        step,
        reason: reason.to_string(),
        unusable_input: true,
    }
}

fn read(step: &'static str, path: &PathBuf) -> Result<Vec<u8>, Failure> {
    fs::read(path).map_err(|e| unusable(step, format!("cannot read {}: {e}", path.display())))
}

/// Builds the policy for --log-key/--witness/--quorum directly from the keys (no policy text
/// in between, so a name or key cannot inject policy lines).
fn policy_from_flags(args: &Args, log_key: &str) -> Result<Policy, Failure> {
    const STEP: &str = "load trust policy";
    let log = NoteVerifier::parse_typed(log_key, KeyType::Ed25519)
        .map_err(|e| unusable(STEP, format!("--log-key: {e}")))?;
    let mut witnesses = Vec::new();
    for witness in &args.witnesses {
        let (name, vkey) = witness
            .split_once('=')
            .ok_or_else(|| unusable(STEP, format!("--witness {witness:?} is not NAME=VKEY")))?;
        let key = NoteVerifier::parse_typed(vkey, KeyType::CosignatureV1)
            .map_err(|e| unusable(STEP, format!("--witness {name}: {e}")))?;
        witnesses.push((name.to_owned(), key));
    }
    Policy::from_keys(log, witnesses, args.quorum).map_err(|e| unusable(STEP, e))
}

fn run(args: &Args, report: &mut Report) -> Result<(), Failure> {
    // Trust policy.
    const POLICY: &str = "load trust policy";
    let policy = match (&args.policy, &args.log_key) {
        (Some(path), _) => Policy::parse(&read(POLICY, path)?).map_err(|e| unusable(POLICY, e))?,
        (None, Some(log_key)) => policy_from_flags(args, log_key)?,
        (None, None) => return Err(unusable(POLICY, "give --policy or --log-key")),
    };
    report.ok(
        POLICY,
        format!(
            "{} log key(s), {} witness(es), quorum {}",
            policy.logs().len(),
            policy.witnesses().count(),
            policy.quorum_name()
        ),
    );

    // The entry, or its leaf hash.
    const ENTRY: &str = "read entry";
    let leaf = match (&args.entry, &args.leaf_hash) {
        (Some(path), _) => {
            let bytes = read(ENTRY, path)?;
            let entry = Entry::decode(&bytes)
                .map_err(|e| verification_failed(ENTRY, format!("not a valid log entry: {e}")))?;
            let leaf = leaf_hash(&bytes);
            report.ok(
                ENTRY,
                format!(
                    "{} entry, {} bytes, leaf hash {leaf}",
                    entry.kind_name(),
                    bytes.len()
                ),
            );
            leaf
        }
        (None, Some(hex)) => {
            let leaf = Hash::from_hex(hex.trim())
                .map_err(|e| unusable(ENTRY, format!("--leaf-hash: {e}")))?;
            report.ok(ENTRY, format!("leaf hash given: {leaf}"));
            leaf
        }
        (None, None) => return Err(unusable(ENTRY, "give --entry or --leaf-hash")),
    };

    // The proof file.
    const PROOF: &str = "read proof file";
    let proof =
        TlogProof::parse(&read(PROOF, &args.proof)?).map_err(|e| verification_failed(PROOF, e))?;
    report.ok(
        PROOF,
        format!("index {}, {} proof hashes", proof.index, proof.path.len()),
    );

    // The checkpoint and its log signature.
    const CHECKPOINT: &str = "parse checkpoint";
    let note =
        Note::parse(proof.checkpoint.as_bytes()).map_err(|e| verification_failed(CHECKPOINT, e))?;
    let checkpoint =
        Checkpoint::parse(&note.text).map_err(|e| verification_failed(CHECKPOINT, e))?;
    report.ok(
        CHECKPOINT,
        format!(
            "origin {}, size {}, root {}",
            checkpoint.origin, checkpoint.size, checkpoint.root
        ),
    );

    // The policy's own steps (the ones `Policy::verify_checkpoint` runs), one report line each.
    const SIGNATURES: &str = "check signatures";
    let opened = policy.open_note(&note, &checkpoint).map_err(|e| match e {
        PolicyCheckError::Note(NoteError::BadSignature { name }) => verification_failed(
            SIGNATURES,
            format!("signature by trusted key {name} is invalid"),
        ),
        PolicyCheckError::NoLogSignature(_) => {
            verification_failed(SIGNATURES, "no signature by any trusted key")
        }
        other => verification_failed(SIGNATURES, other),
    })?;
    report.ok(
        SIGNATURES,
        format!(
            "{} by trusted keys valid, {} by unknown keys ignored",
            opened.verified.len(),
            opened.unknown.len()
        ),
    );

    const LOG_SIGNATURE: &str = "log signature";
    let log = policy.log_signer(&checkpoint, &opened).map_err(|_| {
        verification_failed(
            LOG_SIGNATURE,
            format!(
                "no valid signature by a trusted log key named {}",
                checkpoint.origin
            ),
        )
    })?;
    report.ok(LOG_SIGNATURE, format!("signed by {}", log.to_vkey()));

    const QUORUM: &str = "witness quorum";
    let listing = |cosigned: &[(String, u64)]| {
        if cosigned.is_empty() {
            String::from("no witness cosigned")
        } else {
            cosigned
                .iter()
                .map(|(n, t)| format!("{n} (time {t})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let cosigned = policy.check_quorum(&opened).map_err(|_| {
        let cosigned = policy.cosigned_witnesses(&opened.verified);
        verification_failed(
            QUORUM,
            format!(
                "quorum {} not met: {}",
                policy.quorum_name(),
                listing(&cosigned)
            ),
        )
    })?;
    report.ok(
        QUORUM,
        format!(
            "quorum {} met: {}",
            policy.quorum_name(),
            listing(&cosigned)
        ),
    );

    const INCLUSION: &str = "inclusion proof";
    proof
        .inclusion_proof(&checkpoint)
        .verify(&leaf, &checkpoint.root)
        .map_err(|e| {
            verification_failed(
                INCLUSION,
                format!("entry is not proven at index {}: {e}", proof.index),
            )
        })?;
    report.ok(
        INCLUSION,
        format!(
            "entry is leaf {} of the {}-entry tree",
            proof.index, checkpoint.size
        ),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    println!("agritrace-verify: offline verification (no network)");
    let mut report = Report { number: 0 };
    match run(&args, &mut report) {
        Ok(()) => {
            println!("RESULT: VERIFIED");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            report.fail(&failure);
            println!("RESULT: NOT VERIFIED (step \"{}\" failed)", failure.step);
            eprintln!("agritrace-verify: {}: {}", failure.step, failure.reason);
            if failure.unusable_input {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
