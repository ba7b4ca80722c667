//! How `agritrace-device` starts: what it refuses and when it reports its link up.
//!
//! - One process per keys directory: a second process on the same keys would continue every
//!   device's sequence from the same mark and sign different readings under the same numbers,
//!   so it must refuse to start while the first one runs (an flock on `<keys-dir>/.lock`), and
//!   start once the first one is gone (killed with SIGKILL: the lock dies with it).
//! - A device whose key exists but whose sequence mark is missing and whose journal is empty
//!   does not know where its sequence stopped: it must refuse to start rather than sign again
//!   from 0, and start once the operator restored a mark.
//! - A refused acks subscription (SUBACK failure) must be asked for again, and nothing may be
//!   published before it is granted (the backend's acks could not come back). Mosquitto
//!   2.0.11 with an `acl_file` grants every subscription and filters deliveries instead, so the
//!   broker side of this test is a scripted MQTT 3.1.1 peer that refuses the first SUBSCRIBE.
//!
//! No broker is needed for the first two (the devices never get to connect). Timeouts only
//! guard against hangs; nothing asserts on timing.

#[allow(
    dead_code,
    reason = "the harness is shared with broker_restart.rs, which uses the rest"
)]
mod broker_harness;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use broker_harness::{read_manifest, spawn_device};
use protocol::topic;
use test_support::{free_port, wait_until};

const SEED: &str = "20250301";

fn args(port: u16, keys_dir: &Path, readings: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--broker",
        &format!("127.0.0.1:{port}"),
        "--devices",
        "2",
        "--readings",
        &readings.to_string(),
        "--keys-dir",
        &keys_dir.display().to_string(),
        "--seed",
        SEED,
        "--sample-period",
        "50ms",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Runs the binary to completion and returns whether it succeeded and its log.
fn run(dir: &Path, name: &str, args: &[String]) -> (bool, String) {
    let mut process = spawn_device(dir, name, args).with_patience(Duration::from_secs(60));
    let status = process.wait_blocking();
    (status.success(), process.stderr_tail(60))
}

#[test]
fn a_second_process_on_the_same_keys_directory_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys_dir = dir.path().join("keys");
    // Nothing listens on this port: the first process keeps trying to connect, and runs.
    let port = free_port();
    let mut first = spawn_device(dir.path(), "first", &args(port, &keys_dir, 1_000, &[]));
    wait_until(
        "the first process to start its devices",
        Duration::from_secs(60),
        || {
            assert!(
                first.try_wait().is_none(),
                "the first process exited:\n{}",
                first.stderr_tail(60)
            );
            first.stderr_tail(60).contains("device started")
        },
    );

    let provision = args(port, &keys_dir, 1, &["--provision-only"]);
    let (ok, log) = run(dir.path(), "second", &provision);
    assert!(!ok, "a second process ran on locked keys:\n{log}");
    assert!(
        log.contains("is in use by another agritrace-device process"),
        "the refusal does not say why:\n{log}"
    );

    first.kill9();
    let (ok, log) = run(dir.path(), "third", &provision);
    assert!(ok, "the lock outlived the killed process:\n{log}");
}

#[test]
fn a_device_that_lost_its_sequence_mark_and_has_an_empty_journal_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys_dir = dir.path().join("keys");
    let port = free_port();
    let (ok, log) = run(
        dir.path(),
        "provision",
        &args(port, &keys_dir, 1, &["--provision-only"]),
    );
    assert!(ok, "provisioning failed:\n{log}");
    let device = read_manifest(&keys_dir)[1].device;
    // A new key comes with its mark: the fleet starts (no reading to take, so it stops at
    // once without needing a broker).
    let (ok, log) = run(dir.path(), "fresh", &args(port, &keys_dir, 0, &[]));
    assert!(ok, "a freshly provisioned fleet did not start:\n{log}");

    let mark = keys_dir.join(format!("{device}.seq"));
    std::fs::remove_file(&mark).expect("remove the sequence mark");
    let (ok, log) = run(dir.path(), "lost", &args(port, &keys_dir, 0, &[]));
    assert!(!ok, "a device without its sequence mark started:\n{log}");
    assert!(
        log.contains(&format!("device {device} cannot start"))
            && log.contains("is missing")
            && log.contains("echo 0 >"),
        "the refusal does not say what is wrong and how to recover:\n{log}"
    );

    // The operator restores a mark (here: the device never signed a reading).
    std::fs::write(&mark, "0\n").expect("restore the sequence mark");
    let (ok, log) = run(dir.path(), "restored", &args(port, &keys_dir, 0, &[]));
    assert!(
        ok,
        "the device did not start with its mark restored:\n{log}"
    );
}

/// One MQTT control packet: the first header byte and the body after the remaining length.
fn read_packet(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).expect("a packet header");
    let header = byte[0];
    let mut length = 0usize;
    for shift in (0..4).map(|i| 7 * i) {
        stream
            .read_exact(&mut byte)
            .expect("a remaining length byte");
        length |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("a packet body");
    (header, body)
}

/// The next packet other than a PINGREQ (answered).
fn next_packet(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    loop {
        let (header, body) = read_packet(stream);
        if header >> 4 == 12 {
            stream.write_all(&[0xd0, 0x00]).expect("send PINGRESP");
            continue;
        }
        return (header, body);
    }
}

/// The topic at the start of a SUBSCRIBE payload (after the packet id) or a PUBLISH body.
fn topic_at(bytes: &[u8]) -> String {
    let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    String::from_utf8(bytes[2..2 + len].to_vec()).expect("a UTF-8 topic")
}

#[test]
fn a_refused_acks_subscription_is_asked_for_again_and_nothing_is_published_before_it_is_granted() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys_dir = dir.path().join("keys");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the scripted broker");
    let port = listener.local_addr().expect("its address").port();
    let mut device = spawn_device(
        dir.path(),
        "device",
        &[
            "--broker",
            &format!("127.0.0.1:{port}"),
            "--devices",
            "1",
            "--readings",
            "1000",
            "--keys-dir",
            &keys_dir.display().to_string(),
            "--seed",
            SEED,
            "--sample-period",
            "20ms",
        ]
        .map(str::to_owned),
    );
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let mut accepted = None;
    wait_until("the device to connect", Duration::from_secs(60), || {
        assert!(
            device.try_wait().is_none(),
            "the device exited:\n{}",
            device.stderr_tail(60)
        );
        accepted = listener.accept().ok();
        accepted.is_some()
    });
    let (mut stream, _) = accepted.expect("accepted above");
    stream.set_nonblocking(false).expect("a blocking stream");
    // A guard against a hang, not a timing assertion.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    let device_id = read_manifest(&keys_dir)[0].device;
    let acks_topic = topic::acks_topic(device_id).to_string();
    let readings_topic = topic::readings_topic(device_id).to_string();

    let (header, _) = next_packet(&mut stream);
    assert_eq!(header >> 4, 1, "CONNECT first");
    stream
        .write_all(&[0x20, 0x02, 0x00, 0x00])
        .expect("send CONNACK");

    // Two SUBSCRIBEs to the acks topic: the first refused, the second granted. Nothing else
    // comes in between: the device must not publish while no ack can reach it.
    for (attempt, return_code) in [(1, 0x80u8), (2, 0x01)] {
        let (header, body) = next_packet(&mut stream);
        assert_eq!(
            header,
            0x82,
            "packet type {} came instead of SUBSCRIBE attempt {attempt}: a device must not \
             publish before its acks subscription is granted",
            header >> 4
        );
        assert_eq!(topic_at(&body[2..]), acks_topic);
        stream
            .write_all(&[0x90, 0x03, body[0], body[1], return_code])
            .expect("send SUBACK");
    }

    // Granted: the link is up and the readings go out.
    let (header, body) = next_packet(&mut stream);
    assert_eq!(header >> 4, 3, "PUBLISH after the subscription was granted");
    assert_eq!(header & 0x06, 0x02, "readings go out with QoS 1");
    assert_eq!(topic_at(&body), readings_topic);
    let log = device.stderr_tail(60);
    assert!(
        log.contains("refused the acks subscription"),
        "the refusal was not logged:\n{log}"
    );
    device.kill9();
}
