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
//! A third kind, `agritrace-verify evidence FILE`, checks a whole evidence bundle (format and
//! checks in `evidence`): checkpoints and their consistency, every entry's inclusion, every
//! reading's device signature and batch, every event and document, and the seal; it prints a
//! report in English or Chinese (`--lang`), can write it as an HTML certificate (`--html`),
//! and shows a progress bar on a terminal.
//!
//! Depends only on the no_std cores of `ledger` and `protocol`, on `gs1` (EPCIS events) and
//! on clap.

use std::fmt::Display;
use std::fs;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agritrace_verify::evidence::EVIDENCE_BUNDLE_BYTES_MAX;
use agritrace_verify::evidence::report::{Lang, render_html, render_text};
use agritrace_verify::evidence::verify::{Phase, Progress, Trust, verify_file};
use agritrace_verify::steps::name;
use agritrace_verify::{
    Failure, Outcome, Steps, check_log_proof, check_reading_proof, parse_device_key,
    parse_reading_proof,
};
use clap::{Parser, Subcommand, ValueEnum};
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
  An evidence bundle, against the policy you trust, with an HTML certificate in Chinese:
    agritrace-verify evidence shipment.evidence --policy agencies.policy --lang zh --html cert.html

Exit status: 0 verified, 1 a step failed (the report names it), 2 unusable input.";

/// Verify an agritrace proof offline.
#[derive(Debug, Parser)]
#[command(
    name = "agritrace-verify",
    version,
    about,
    long_about = None,
    after_help = EXAMPLES,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify an evidence bundle (agritrace/evidence-bundle/v1) offline: checkpoints and their
    /// consistency, every entry's inclusion, every reading's device signature and batch, every
    /// EPCIS event and trade document, and the seal. Exit 0 verified, 1 a check failed (the
    /// report names the item), 2 unusable input.
    Evidence(EvidenceArgs),
}

#[derive(Debug, clap::Args)]
struct EvidenceArgs {
    /// The evidence bundle file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The trust policy you hold (C2SP tlog-policy); the bundle's policy must equal it byte for
    /// byte. Without it the bundle is checked against its own policy, and the report says so.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Language of the report.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    lang: LangArg,
    /// Also write the report as a self-contained HTML evidence certificate.
    #[arg(long, value_name = "OUT.html")]
    html: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LangArg {
    /// English.
    En,
    /// Chinese (simplified).
    Zh,
}

/// Bundles with at least this many readings get a progress bar (on a terminal).
const PROGRESS_READINGS_MIN: u64 = 20_000;

/// A one-line progress bar on stderr, redrawn when the percentage changes.
struct ProgressBar {
    last: Option<(Phase, u64)>,
}

impl ProgressBar {
    fn show(&mut self, progress: Progress, lang: Lang) {
        if progress.total < PROGRESS_READINGS_MIN && self.last.is_none() {
            return;
        }
        let percent = (progress.done.saturating_mul(100))
            .checked_div(progress.total)
            .unwrap_or(100)
            .min(100);
        if self.last == Some((progress.phase, percent)) {
            return;
        }
        self.last = Some((progress.phase, percent));
        let phase = match (progress.phase, lang) {
            (Phase::Log, Lang::En) => "log proofs",
            (Phase::Log, Lang::Zh) => "日志证明",
            (Phase::Readings, Lang::En) => "readings",
            (Phase::Readings, Lang::Zh) => "传感器读数",
            (Phase::Signatures, Lang::En) => "signatures",
            (Phase::Signatures, Lang::Zh) => "设备签名",
            (Phase::Records, Lang::En) => "seal",
            (Phase::Records, Lang::Zh) => "封印",
        };
        let filled = usize::try_from(percent / 5).unwrap_or(20);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r[{}{}] {percent:>3}% {phase} {}/{}\x1b[K",
            "#".repeat(filled),
            " ".repeat(20 - filled.min(20)),
            progress.done,
            progress.total
        );
        let _ = stderr.flush();
    }
}

fn evidence(args: &EvidenceArgs) -> ExitCode {
    let lang = match args.lang {
        LangArg::En => Lang::En,
        LangArg::Zh => Lang::Zh,
    };
    let unusable = |what: String| {
        eprintln!("agritrace-verify: {what}");
        ExitCode::from(2)
    };
    let trust = match &args.policy {
        Some(path) => match fs::read(path) {
            Ok(bytes) => match Policy::parse(&bytes) {
                Ok(_) => Trust::Pinned(bytes),
                Err(e) => return unusable(format!("--policy {}: {e}", path.display())),
            },
            Err(e) => return unusable(format!("cannot read {}: {e}", path.display())),
        },
        None => Trust::BundlePolicy,
    };
    let bytes = match read_bounded(&args.file) {
        Ok(bytes) => bytes,
        Err(what) => return unusable(what),
    };
    let terminal = std::io::stderr().is_terminal();
    let mut bar = ProgressBar { last: None };
    let report = verify_file(&bytes, &trust, &mut |progress| {
        if terminal {
            bar.show(progress, lang);
        }
    });
    if terminal && bar.last.is_some() {
        eprintln!();
    }
    print!("{}", render_text(&report, lang));
    if let Some(path) = &args.html
        && let Err(e) = fs::write(path, render_html(&report, lang))
    {
        return unusable(format!("cannot write {}: {e}", path.display()));
    }
    if report.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Reads a bundle, refusing one larger than the format allows before reading it.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let size = fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if usize::try_from(size).map_or(true, |s| s > EVIDENCE_BUNDLE_BYTES_MAX) {
        return Err(format!(
            "{} is {size} bytes, more than the {EVIDENCE_BUNDLE_BYTES_MAX} bytes an evidence bundle may have",
            path.display()
        ));
    }
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
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
    if let Some(Command::Evidence(evidence_args)) = &args.command {
        return evidence(evidence_args);
    }
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
