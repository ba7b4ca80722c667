//! `agritrace-verify`: checks, with no network, that a sensor reading or a log entry is in the
//! agritrace log and that the log's checkpoint is signed by a trusted log key and cosigned by
//! enough witnesses.
//!
//! Two kinds of input:
//! - a reading proof (`--reading-proof`, the file the node serves at
//!   `/v1/devices/{id}/readings/{seq}/proof`, format in `reading_proof`): the signed reading
//!   is decoded and must be the one the file names, its device signature is checked if
//!   `--device-key` is given, its leaf hash and batch path must lead to the root that the
//!   `ReadingBatch` entry names, and the entry must be in the log (below);
//! - a log entry (`--entry` or `--leaf-hash`) with a C2SP tlog-proof file (`--proof`): index,
//!   inclusion proof and the cosigned checkpoint.
//!
//! The trust policy is a C2SP tlog-policy file, or the log key, witness keys and a threshold
//! given as flags. It prints one line per step and, on failure, names the step that failed
//! and exits with status 1 (status 2 for unusable input such as a missing file or a malformed
//! key).
//!
//! Depends only on the no_std cores of `ledger` and `protocol` and on clap.

use std::fmt::Display;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use agritrace_verify::steps::name;
use agritrace_verify::{
    Failure, Outcome, Steps, check_log_proof, check_reading_proof, parse_device_key,
    parse_reading_proof,
};
use clap::Parser;
use ledger::entry::Entry;
use ledger::merkle::{Hash, leaf_hash};
use ledger::note::{KeyType, NoteVerifier};
use ledger::policy::Policy;
use ledger::tlog_proof::TlogProof;

const EXAMPLES: &str = "\
Examples:
  A reading, with the device's key (from the device manifest):
    agritrace-verify --reading-proof reading.proof --policy agencies.policy --device-key <64 hex>
  A log entry, with its tlog-proof and the log key given as a flag:
    agritrace-verify --entry entry.bin --proof entry.tlog-proof --log-key <name+hash+key>

Exit status: 0 verified, 1 a step failed (the report names it), 2 unusable input.";

/// Verify an agritrace proof offline.
#[derive(Debug, Parser)]
#[command(name = "agritrace-verify", version, about, long_about = None, after_help = EXAMPLES)]
struct Args {
    /// A reading proof file (agritrace/reading-proof/v1): the signed reading, its batch path,
    /// the batch entry and the entry's tlog-proof.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["entry", "leaf_hash", "proof"])]
    reading_proof: Option<PathBuf>,
    /// With --reading-proof: the device's Ed25519 public key (64 hex digits); without it the
    /// device signature is not checked.
    #[arg(long, value_name = "HEX", requires = "reading_proof")]
    device_key: Option<String>,
    /// The entry as stored in the log (exact bytes).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["leaf_hash", "reading_proof"],
        conflicts_with = "leaf_hash"
    )]
    entry: Option<PathBuf>,
    /// Instead of the entry: its RFC 9162 leaf hash, SHA-256(0x00 || entry), in hex.
    #[arg(long, value_name = "HEX")]
    leaf_hash: Option<String>,
    /// The entry's proof file (C2SP tlog-proof: index, inclusion proof, cosigned checkpoint).
    #[arg(long, value_name = "FILE", required_unless_present = "reading_proof")]
    proof: Option<PathBuf>,
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

const LOAD_POLICY: &str = "load trust policy";
const LOAD_DEVICE_KEY: &str = "load device key";
const READ_ENTRY: &str = "read entry";
const READ_PROOF: &str = "read proof file";

fn read(step: &'static str, path: &PathBuf) -> Result<Vec<u8>, Failure> {
    fs::read(path)
        .map_err(|e| Failure::unusable(step, format!("cannot read {}: {e}", path.display())))
}

/// Builds the policy for --log-key/--witness/--quorum directly from the keys (no policy text
/// in between, so a name or key cannot inject policy lines).
fn policy_from_flags(args: &Args, log_key: &str) -> Result<Policy, Failure> {
    let log = NoteVerifier::parse_typed(log_key, KeyType::Ed25519)
        .map_err(|e| Failure::unusable(LOAD_POLICY, format!("--log-key: {e}")))?;
    let mut witnesses = Vec::new();
    for witness in &args.witnesses {
        let (name, vkey) = witness.split_once('=').ok_or_else(|| {
            Failure::unusable(
                LOAD_POLICY,
                format!("--witness {witness:?} is not NAME=VKEY"),
            )
        })?;
        let key = NoteVerifier::parse_typed(vkey, KeyType::CosignatureV1)
            .map_err(|e| Failure::unusable(LOAD_POLICY, format!("--witness {name}: {e}")))?;
        witnesses.push((name.to_owned(), key));
    }
    Policy::from_keys(log, witnesses, args.quorum).map_err(|e| Failure::unusable(LOAD_POLICY, e))
}

fn load_policy(args: &Args, steps: &mut Steps) -> Result<Policy, Failure> {
    let policy = match (&args.policy, &args.log_key) {
        (Some(path), _) => Policy::parse(&read(LOAD_POLICY, path)?)
            .map_err(|e| Failure::unusable(LOAD_POLICY, e))?,
        (None, Some(log_key)) => policy_from_flags(args, log_key)?,
        (None, None) => return Err(Failure::unusable(LOAD_POLICY, "give --policy or --log-key")),
    };
    steps.passed(
        LOAD_POLICY,
        format!(
            "{} log key(s), {} witness(es), quorum {}",
            policy.logs().len(),
            policy.witnesses().count(),
            policy.quorum_name()
        ),
    );
    Ok(policy)
}

/// Reading → batch → entry → log → checkpoint → policy.
fn run_reading_proof(args: &Args, path: &PathBuf, steps: &mut Steps) -> Result<(), Failure> {
    let policy = load_policy(args, steps)?;
    let device_key = match &args.device_key {
        Some(text) => {
            let key = parse_device_key(text.trim())
                .map_err(|e| Failure::unusable(LOAD_DEVICE_KEY, format!("--device-key: {e}")))?;
            steps.passed(LOAD_DEVICE_KEY, "Ed25519 public key");
            Some(key)
        }
        None => None,
    };
    let bytes = read(name::READ_READING_PROOF, path)?;
    let proof = parse_reading_proof(&bytes, steps)?;
    check_reading_proof(&proof, &policy, device_key.as_ref(), steps)?;
    Ok(())
}

/// Entry → log → checkpoint → policy.
fn run_log_proof(args: &Args, steps: &mut Steps) -> Result<(), Failure> {
    let policy = load_policy(args, steps)?;
    let leaf = match (&args.entry, &args.leaf_hash) {
        (Some(path), _) => {
            let bytes = read(READ_ENTRY, path)?;
            let entry = Entry::decode(&bytes).map_err(|e| {
                Failure::not_verified(READ_ENTRY, format!("not a valid log entry: {e}"))
            })?;
            let leaf = leaf_hash(&bytes);
            steps.passed(
                READ_ENTRY,
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
                .map_err(|e| Failure::unusable(READ_ENTRY, format!("--leaf-hash: {e}")))?;
            steps.passed(READ_ENTRY, format!("leaf hash given: {leaf}"));
            leaf
        }
        (None, None) => {
            return Err(Failure::unusable(
                READ_ENTRY,
                "give --entry, --leaf-hash or --reading-proof",
            ));
        }
    };
    let Some(proof_path) = &args.proof else {
        return Err(Failure::unusable(READ_PROOF, "give --proof"));
    };
    let proof = TlogProof::parse(&read(READ_PROOF, proof_path)?)
        .map_err(|e| Failure::not_verified(READ_PROOF, e))?;
    steps.passed(
        READ_PROOF,
        format!("index {}, {} proof hashes", proof.index, proof.path.len()),
    );
    check_log_proof(&leaf, &proof, &policy, steps)?;
    Ok(())
}

fn print_step(number: usize, step: &str, status: &str, detail: impl Display) {
    println!("step {number:>2}  {step:<34} {status:<6}{detail}");
}

fn main() -> ExitCode {
    let args = Args::parse();
    println!("agritrace-verify: offline verification (no network)");
    let mut steps = Steps::new();
    let result = match &args.reading_proof {
        Some(path) => run_reading_proof(&args, path, &mut steps),
        None => run_log_proof(&args, &mut steps),
    };
    for (number, step) in (1..).zip(steps.as_slice()) {
        let status = match step.outcome {
            Outcome::Passed => "ok",
            Outcome::Skipped => "skip",
        };
        print_step(number, step.name, status, &step.detail);
    }
    match result {
        Ok(()) => {
            println!("RESULT: VERIFIED");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            print_step(
                steps.as_slice().len() + 1,
                failure.step,
                "FAILED",
                format_args!(" {}", failure.reason),
            );
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
