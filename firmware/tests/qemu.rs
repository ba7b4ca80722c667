//! The firmware on a microcontroller: builds the `lm3s6965evb` image (Cortex-M3,
//! `thumbv7m-none-eabi`), runs it in `qemu-system-arm`, and verifies every signed reading it
//! prints with `protocol` on the host. Then runs the same logger, the same simulated board
//! and the same key on the host and checks that both architectures produced the same bytes.
//!
//! Needs `qemu-system-arm` (Debian/Ubuntu package `qemu-system-arm`) and the Rust target
//! (`rustup target add thumbv7m-none-eabi`); fails with a message naming what is missing.
//! The image is built with its committed `Cargo.lock` (`--locked`) into
//! `firmware/lm3s6965evb/target/` (git-ignored).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use firmware::{DeviceConfig, Logger, MemorySequenceStore, SampleOutcome, Uplink, step};
use hardware::sim::{SimulatedLogger, VoyageProfile};
use protocol::limits::{SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{AckBuilder, DeviceId, KeyEpoch, SigningKey, VerifyingKey, verify_signed_reading};
use test_support::Process;

// The image's constants (firmware/lm3s6965evb/src/main.rs); the test checks the public key the
// image prints against KEY_SEED, so a drift shows up as a clear failure.
const READINGS: usize = 20;
const SIM_SEED: u64 = 0x5eed_a9e1;
const KEY_SEED: [u8; 32] = *b"agritrace lm3s6965evb test key!!";
const DEVICE: DeviceId = DeviceId([0x65, 0x69, 0x65, 0x76, 0x62, 0x00, 0x00, 0x01]);
const CONFIG: DeviceConfig = DeviceConfig {
    device: DEVICE,
    key_epoch: KeyEpoch(1),
    sample_period_ms: 30 * 60 * 1000,
    resend_after_ms: 60 * 60 * 1000,
};
const OUTBOX: usize = 16;

const TARGET: &str = "thumbv7m-none-eabi";
const QEMU: &str = "qemu-system-arm";
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

fn image_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lm3s6965evb")
}

fn require_tools() {
    let qemu = Command::new(QEMU).arg("--version").output();
    assert!(
        qemu.as_ref().is_ok_and(|out| out.status.success()),
        "`{QEMU}` is needed to run the Cortex-M image (apt-get install qemu-system-arm): {qemu:?}"
    );
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let sysroot = String::from_utf8(sysroot.stdout).expect("the sysroot is UTF-8");
    let target_lib = Path::new(sysroot.trim()).join("lib/rustlib").join(TARGET);
    assert!(
        target_lib.is_dir(),
        "the Rust target {TARGET} is not installed (rustup target add {TARGET}); looked in {}",
        target_lib.display()
    );
}

fn build_image() -> PathBuf {
    let dir = image_dir();
    let target_dir = dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // Host flags (e.g. -C target-cpu=native) must not leak into the cross build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "building the {TARGET} image failed (if Cargo.lock is out of date, run `cargo update -w` \
         in {}):\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join(TARGET).join("release/lm3s6965evb")
}

/// Runs the image in QEMU and returns its semihosting output.
fn run_in_qemu(image: &Path) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut args = [
        "-cpu",
        "cortex-m3",
        "-machine",
        "lm3s6965evb",
        "-nographic",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
    ]
    .map(OsStr::new)
    .to_vec();
    args.push(image.as_os_str());
    let mut qemu =
        Process::spawn(dir.path(), "qemu", Path::new(QEMU), &args, &[]).with_patience(QEMU_TIMEOUT);
    let status = qemu.wait_blocking();
    let text = qemu.stdout();
    assert!(
        status.success(),
        "the image exited with {status}:\n{text}\n{}",
        qemu.stderr_tail(60)
    );
    text
}

fn from_hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// The same firmware loop as the image's `main`, on the host: the logger, the simulated board
/// from the same seed, the same key; returns the signed readings in publishing order.
fn run_on_host() -> Vec<Vec<u8>> {
    #[derive(Debug, Default)]
    struct Recorder {
        readings: Vec<Vec<u8>>,
        sequences: Vec<protocol::SequenceNumber>,
    }
    impl Uplink for Recorder {
        type Error = std::convert::Infallible;
        fn publish(&mut self, _topic: &str, payload: &[u8]) -> Result<(), Self::Error> {
            let message = protocol::Uplink::decode(payload).expect("a well-formed uplink");
            for signed in message.readings() {
                let decoded = protocol::SignedReading::decode(signed).expect("a signed reading");
                self.sequences.push(decoded.reading().sequence);
                self.readings.push(signed.to_vec());
            }
            Ok(())
        }
        fn receive_ack(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error> {
            let mut builder = AckBuilder::new(DEVICE);
            for sequence in self.sequences.drain(..) {
                builder.push(sequence).expect("increasing sequence numbers");
            }
            Ok(builder
                .finish()
                .map(|ack| ack.encode(buf).expect("ack fits").len()))
        }
    }

    let profile = VoyageProfile::mangoes_yunnan_to_rotterdam();
    let start_unix_ms = profile.start_unix_s * 1000;
    let (mut board, clock) = SimulatedLogger::new(SIM_SEED, profile).expect("a valid profile");
    let mut store = MemorySequenceStore::new();
    let mut logger: Logger<OUTBOX> =
        Logger::boot(CONFIG, SigningKey::from_bytes(&KEY_SEED), &mut store).expect("boots");
    let mut uplink = Recorder::default();
    let mut buf = vec![0u8; UPLINK_BYTES_MAX];
    let mut now_ms = 0;
    let mut recorded = 0;
    while recorded < READINGS {
        clock.advance_to(now_ms).expect("time moves forward");
        let report = step(
            &mut logger,
            &mut uplink,
            &mut store,
            now_ms,
            start_unix_ms + now_ms,
            || board.sample(),
            &mut buf,
        );
        assert!(
            matches!(
                report.sample,
                SampleOutcome::Recorded(_) | SampleOutcome::NotDue
            ),
            "{report:?}"
        );
        if matches!(report.sample, SampleOutcome::Recorded(_)) {
            recorded += 1;
        }
        now_ms = logger.next_sample_at_ms();
    }
    uplink.readings
}

#[test]
fn the_cortex_m_image_signs_readings_that_verify_on_the_host_byte_for_byte() {
    require_tools();
    let image = build_image();
    let output = run_in_qemu(&image);

    let mut key: Option<VerifyingKey> = None;
    let mut readings = Vec::new();
    let mut done = None;
    for line in output.lines() {
        match line.split_once(' ') {
            Some(("key", hex)) => {
                let bytes: [u8; 32] = from_hex(hex).try_into().expect("a 32-byte key");
                key = Some(VerifyingKey::from_bytes(&bytes).expect("a valid public key"));
            }
            Some(("reading", hex)) => readings.push(from_hex(hex)),
            Some(("done", summary)) => done = Some(summary.to_owned()),
            Some(("error", what)) => panic!("the image reported an error: {what}"),
            _ => {}
        }
    }
    let key = key.unwrap_or_else(|| panic!("no key line in the output:\n{output}"));
    assert_eq!(
        key,
        SigningKey::from_bytes(&KEY_SEED).verifying_key(),
        "the image's key seed differs from this test's"
    );
    assert_eq!(
        done.as_deref(),
        Some("readings=20 dropped=0 outbox=0"),
        "{output}"
    );
    assert_eq!(readings.len(), READINGS, "{output}");

    let start_unix_ms = VoyageProfile::mangoes_yunnan_to_rotterdam().start_unix_s * 1000;
    for (i, bytes) in readings.iter().enumerate() {
        assert!(bytes.len() <= SIGNED_READING_BYTES_MAX);
        let reading = verify_signed_reading(bytes, &key)
            .unwrap_or_else(|e| panic!("reading {i} from the image does not verify: {e}"));
        let i = u64::try_from(i).unwrap();
        assert_eq!(reading.device, DEVICE);
        assert_eq!(reading.key_epoch, KeyEpoch(1));
        assert_eq!(reading.sequence.0, i);
        assert_eq!(
            reading.device_time_ms,
            start_unix_ms + i * u64::from(CONFIG.sample_period_ms)
        );
        assert_eq!(reading.dropped_samples, 0);
        // Mangoes travel at 13 °C / 90 %RH: the simulated sensor must say something close.
        assert!(
            (500..=2_500).contains(&reading.temperature_centi_c),
            "{reading:?}"
        );
        assert!(
            (5_000..=10_000).contains(&reading.humidity_centi_pct),
            "{reading:?}"
        );
    }

    // The simulated voyage reached the image through the drivers: the door opens at the
    // packhouse, the GNSS receiver has no fix indoors and one on the road.
    let decoded: Vec<protocol::Reading> = readings
        .iter()
        .map(|b| verify_signed_reading(b, &key).unwrap())
        .collect();
    assert!(
        decoded.iter().any(|r| r.door == protocol::DoorState::Open),
        "{decoded:?}"
    );
    assert!(decoded.iter().any(|r| r.position.is_none()), "{decoded:?}");
    assert!(decoded.iter().any(|r| r.position.is_some()), "{decoded:?}");

    let on_host = run_on_host();
    assert_eq!(
        on_host, readings,
        "the host and the Cortex-M3 signed different bytes for the same inputs"
    );
}
