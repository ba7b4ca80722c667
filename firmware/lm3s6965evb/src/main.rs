//! The agritrace logger firmware on QEMU's `lm3s6965evb` (a Cortex-M3 with 256 KiB flash and
//! 64 KiB RAM).
//!
//! Boots a [`firmware::Logger`] with a fixed test key and its outbox journal (the same flash
//! ring code as on a real board, over [`firmware::MemoryFlash`]: QEMU's board has no flash
//! driver here), samples the simulated board of
//! `hardware::sim` through the real drivers (the SHT4x driver's command bytes are answered by
//! the simulated sensor), signs [`READINGS`] readings and publishes them through
//! [`firmware::step`] to an uplink that writes each signed reading as a hex line over
//! semihosting and acknowledges it, then exits with success. The host test
//! `firmware/tests/qemu.rs` runs it and verifies every line with `protocol`.
//!
//! Output, one item per line:
//!
//! ```text
//! key <hex of the Ed25519 public key>
//! reading <hex of one signed reading>      (READINGS times, in sequence order)
//! done readings=<n> dropped=<n> outbox=<n>
//! ```
#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;

use firmware::{
    DeviceConfig, FlashJournal, Logger, MemoryFlash, MemorySequenceStore, SampleOutcome, Uplink,
    step,
};
use hardware::sim::{SimWorld, SimulatedLogger, VoyageProfile};
use protocol::limits::{ACK_BYTES_MAX, SIGNED_READING_BYTES_MAX};
use protocol::{AckBuilder, DeviceId, KeyEpoch, SequenceNumber, SigningKey};

/// Readings to sign before exiting.
const READINGS: u64 = 20;
/// Seed of the simulated world.
const SIM_SEED: u64 = 0x5eed_a9e1;
/// The test device key's secret seed: never a real key.
const KEY_SEED: [u8; 32] = *b"agritrace lm3s6965evb test key!!";
/// The test device.
const DEVICE: DeviceId = DeviceId([0x65, 0x69, 0x65, 0x76, 0x62, 0x00, 0x00, 0x01]);
/// The device configuration: one sample every half hour of simulated time, so the 20
/// readings cover the first ten hours of the voyage: the door open at the packhouse, eight
/// hours indoors without a GNSS fix, then on the road with one.
const CONFIG: DeviceConfig = DeviceConfig {
    device: DEVICE,
    key_epoch: KeyEpoch(1),
    sample_period_ms: 30 * 60 * 1000,
    resend_after_ms: 60 * 60 * 1000,
};
/// Outbox slots (about 150 bytes each).
const OUTBOX: usize = 16;
/// The journal's flash: 4 sectors of 1 KiB (6 records each), 4-byte writes, in RAM.
type JournalFlash = MemoryFlash<4096, 4, 1024>;
/// Uplink buffer: a backlog of the whole outbox fits.
const UPLINK_BUFFER_BYTES: usize = 2 + OUTBOX * (2 + SIGNED_READING_BYTES_MAX);

/// Writes every published reading as a hex line over semihosting and stands in for the
/// backend: it acknowledges every reading it wrote, so the ack path runs on the target too.
#[derive(Debug)]
struct SemihostingUplink {
    written: AckBuilder,
}

/// The only way the semihosting uplink fails: a message that is not a well-formed uplink.
#[derive(Debug)]
struct BadMessage;

impl Uplink for SemihostingUplink {
    type Error = BadMessage;

    fn publish(&mut self, _topic: &str, payload: &[u8]) -> Result<(), BadMessage> {
        let message = protocol::Uplink::decode(payload).map_err(|_| BadMessage)?;
        for signed in message.readings() {
            let decoded = protocol::SignedReading::decode(signed).map_err(|_| BadMessage)?;
            let mut hex = [0u8; 2 * SIGNED_READING_BYTES_MAX];
            hprintln!("reading {}", to_hex(signed, &mut hex));
            // Readings go out oldest first and all are acked, so the numbers only grow.
            self.written
                .push(decoded.reading().sequence)
                .map_err(|_| BadMessage)?;
        }
        Ok(())
    }

    fn receive_ack(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BadMessage> {
        let builder = core::mem::replace(&mut self.written, AckBuilder::new(DEVICE));
        match builder.finish() {
            None => Ok(None),
            Some(ack) => Ok(Some(ack.encode(buf).map_err(|_| BadMessage)?.len())),
        }
    }
}

/// Lowercase hex of `bytes` in `out`.
fn to_hex<'o>(bytes: &[u8], out: &'o mut [u8]) -> &'o str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let len = (2 * bytes.len()).min(out.len());
    for (pair, byte) in out[..len].chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    core::str::from_utf8(&out[..len]).unwrap_or("")
}

/// Reports `what` and exits QEMU with a failure status.
fn fail(what: &str) -> ! {
    hprintln!("error {}", what);
    debug::exit(debug::EXIT_FAILURE);
    // `exit` returns only without a debugger attached.
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    let profile = VoyageProfile::mangoes_yunnan_to_rotterdam();
    let start_unix_ms = profile.start_unix_s.saturating_mul(1000);
    let world = match SimWorld::new(SIM_SEED, profile) {
        Ok(world) => RefCell::new(world),
        Err(_) => fail("the simulated world refused its profile"),
    };
    let (mut board, clock) = SimulatedLogger::on_world(&world);

    let key = SigningKey::from_bytes(&KEY_SEED);
    let mut store = MemorySequenceStore::new();
    let Ok(journal) = FlashJournal::open(JournalFlash::new(), 0..4096) else {
        fail("the journal region is unusable");
    };
    let Ok(mut logger) = Logger::<OUTBOX, _>::boot_with_journal(CONFIG, key, &mut store, journal)
    else {
        fail("boot failed");
    };
    let mut hex = [0u8; 64];
    hprintln!(
        "key {}",
        to_hex(logger.verifying_key().as_bytes(), &mut hex)
    );

    let mut uplink = SemihostingUplink {
        written: AckBuilder::new(DEVICE),
    };
    let mut buf = [0u8; UPLINK_BUFFER_BYTES];
    let mut recorded = 0u64;
    let mut now_ms = 0u64;
    while recorded < READINGS {
        if clock.advance_to(now_ms).is_err() {
            fail("simulated time did not advance");
        }
        let report = step(
            &mut logger,
            &mut uplink,
            &mut store,
            now_ms,
            start_unix_ms.saturating_add(now_ms),
            || board.sample(),
            &mut buf,
        );
        match report.sample {
            SampleOutcome::Recorded(SequenceNumber(_)) => recorded += 1,
            SampleOutcome::NotDue => {}
            SampleOutcome::SensorFailed(_) => fail("the simulated sensors failed"),
            SampleOutcome::RecordFailed(_) => fail("a sample could not be recorded"),
        }
        if report.uplink_error.is_some() {
            fail("a published message was malformed");
        }
        if report.acks_refused > 0 {
            fail("an ack was refused");
        }
        now_ms = logger.next_sample_at_ms();
    }
    // The acks of the last message are waiting in the uplink: apply them.
    let mut ack = [0u8; ACK_BYTES_MAX];
    while let Ok(Some(len)) = uplink.receive_ack(&mut ack) {
        let applied = ack.get(..len).map(|payload| logger.on_ack(payload));
        if !matches!(applied, Some(Ok(_))) {
            fail("an ack was refused");
        }
    }
    hprintln!(
        "done readings={} dropped={} outbox={}",
        recorded,
        logger.dropped_total(),
        logger.outbox_len()
    );
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}
