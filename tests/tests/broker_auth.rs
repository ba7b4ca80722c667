//! Device authentication on a real Mosquitto (Debian's 2.0): devices provisioned by
//! `agritrace-device` (their manifest carries the PBKDF2 hashes of their MQTT passwords),
//! imported with `agritrace device import`, Mosquitto configured with the files of `agritrace
//! broker config` (our `$7$` hashes read by Mosquitto's own password check, our ACL by its
//! ACL check), and the node as a process logging in as ingest. What the broker does is
//! asserted byte by byte on MQTT 3.1.1 connections of the test's own: a wrong password gets
//! CONNACK 5; a subscription to another device's acks is granted (Mosquitto 2.0.11 answers
//! SUBACK 0x01) but none of that device's acks is ever sent; a publish on another device's
//! readings topic is acknowledged (MQTT 3.1.1 has no way to refuse one), dropped, and the
//! connection closed: the validly signed reading it carries is never anchored. The devices'
//! own readings are.

use std::path::Path;
use std::time::Duration;

use protocol::limits::{SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{
    DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, UplinkWriter,
    encode_signed_reading, topic,
};
use system_tests::fleet::Fleet;
use system_tests::node::{NodeProcess, NodeSettings};
use system_tests::process::{Process, binary};
use system_tests::{Mosquitto, free_port, wait_until};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const PREFIX: &str = "b0a7c0de";
const FORGED_SEQUENCE: u64 = 1_000_000;

fn device(index: u8) -> DeviceId {
    DeviceId([0xb0, 0xa7, 0xc0, 0xde, 0, 0, 0, index])
}

fn read_hex32(path: &Path) -> [u8; 32] {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let text = text.trim();
    assert_eq!(text.len(), 64, "{} holds 64 hex digits", path.display());
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// Runs `agritrace ARGS` on the node's data directory (no node running) and returns stdout.
async fn agritrace(dir: &Path, name: &str, args: &[&str]) -> String {
    let env = vec![
        (
            "AGRITRACE_DATA_DIR",
            dir.join("node-data").display().to_string(),
        ),
        // No node answers here, so `device import` registers in the data directory itself.
        (
            "AGRITRACE_HTTP_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ),
    ];
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    let mut process = Process::spawn(dir, name, &binary("agritrace"), &args, &env);
    let status = process.wait().await;
    assert!(
        status.success(),
        "agritrace {args:?} failed: {status}\n{}",
        process.stderr_tail(20)
    );
    process.stdout()
}

/// An MQTT 3.1.1 packet: fixed header byte, remaining length (one or two bytes), body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let length = body.len();
    assert!(length < 16_384, "test packets are small");
    let mut out = vec![first];
    if length < 128 {
        out.push(u8::try_from(length).expect("small"));
    } else {
        out.push(u8::try_from(length % 128).expect("small") | 0x80);
        out.push(u8::try_from(length / 128).expect("small"));
    }
    out.extend_from_slice(body);
    out
}

fn string(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&u16::try_from(value.len()).expect("short").to_be_bytes());
    out.extend_from_slice(value);
}

/// Reads one packet, or `None` if the broker closed the connection.
async fn read_packet(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let mut out = vec![stream.read_u8().await.ok()?];
        let mut length = 0usize;
        for shift in [0, 7, 14, 21] {
            let byte = stream.read_u8().await.ok()?;
            out.push(byte);
            length |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let start = out.len();
        out.resize(start + length, 0);
        stream.read_exact(&mut out[start..]).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the broker answers or closes within 10 s")
}

/// Packets that arrive until the connection has been quiet for `quiet`.
async fn drain(stream: &mut TcpStream, quiet: Duration) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    while let Ok(Some(packet)) = tokio::time::timeout(quiet, read_packet(stream)).await {
        packets.push(packet);
    }
    packets
}

/// The topic of a PUBLISH packet of fewer than 128 bytes.
fn publish_topic(packet: &[u8]) -> Option<String> {
    (packet.first()? >> 4 == 3).then_some(())?;
    let length = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    String::from_utf8(packet.get(4..4 + length)?.to_vec()).ok()
}

/// CONNECT as `client_id` with `username` and `password`; the stream and CONNACK code.
async fn connect(
    port: u16,
    client_id: &str,
    username: &str,
    password: &str,
) -> (TcpStream, Option<u8>) {
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.extend_from_slice(&[4, 0xc2, 0, 30]);
    string(&mut body, client_id.as_bytes());
    string(&mut body, username.as_bytes());
    string(&mut body, password.as_bytes());
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
    stream
        .write_all(&packet(0x10, &body))
        .await
        .expect("send CONNECT");
    let code = read_packet(&mut stream).await.map(|connack| {
        assert_eq!(&connack[..3], &[0x20, 2, 0], "a CONNACK: {connack:?}");
        connack[3]
    });
    (stream, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_refuses_what_a_device_may_not_do_and_carries_what_it_may() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path();
    let fleet = Fleet::provision(dir, 2, PREFIX, 91).await;
    let keys_dir = dir.join(format!("keys-{PREFIX}"));
    let (a, b) = (device(0), device(1));
    // The password files hold 64 hex digits; A's is the password itself.
    let password_a_file = keys_dir.join(format!("{a}.mqtt"));
    read_hex32(&password_a_file);
    let password_a = std::fs::read_to_string(&password_a_file)
        .expect("A's password file")
        .trim()
        .to_owned();
    let key_b = SigningKey::from_bytes(&read_hex32(&keys_dir.join(format!("{b}.key"))));

    agritrace(
        dir,
        "import",
        &["device", "import", &fleet.manifest().display().to_string()],
    )
    .await;
    let auth_dir = dir.join("mqtt-auth");
    let report = agritrace(
        dir,
        "broker-config",
        &["broker", "config", "--out", &auth_dir.display().to_string()],
    )
    .await;
    assert!(report.contains("\"devices\":2"), "{report}");
    let fragment =
        std::fs::read_to_string(auth_dir.join("agritrace.conf")).expect("the conf fragment");
    assert!(fragment.contains("allow_anonymous false"), "{fragment}");
    let passwords = std::fs::read_to_string(auth_dir.join("passwords")).expect("passwords");
    assert!(passwords.contains(&format!("{a}:$7$101$")), "{passwords}");
    let broker = Mosquitto::start_with(dir, Some(&fragment));
    let port = broker.port();
    let node = NodeProcess::start(
        dir,
        port,
        &NodeSettings {
            ingest_password_file: Some(auth_dir.join("ingest.password")),
            ..NodeSettings::default()
        },
    )
    .await;

    // A wrong password, another device's password, no such user: CONNACK 5 (MQTT 3.1.1
    // §3.2.2.3, "not authorised": Mosquitto 2.0's answer to a failed password check).
    let a_id = a.to_string();
    for (id, password) in [
        (a_id.as_str(), "wrong"),
        (a_id.as_str(), ""),
        ("b0a7c0de00000009", password_a.as_str()),
    ] {
        let (mut stream, code) = connect(port, id, id, password).await;
        assert_eq!(code, Some(5), "{id} with {password:?}");
        assert_eq!(
            read_packet(&mut stream).await,
            None,
            "closed after CONNACK 5"
        );
    }

    // A logs in (with a client id of its own, so the device process below, whose client id
    // is A's id, does not take its session over). Mosquitto 2.0.11 grants every subscription
    // (SUBACK 0x00 for the QoS 0 asked here) and applies the ACL when it delivers: A is sent
    // only what it may read, which is checked after the devices ran.
    let (mut stream, code) = connect(port, "a-observer", &a_id, &password_a).await;
    assert_eq!(code, Some(0));
    for (id, filter) in [
        (1u16, topic::acks_topic(b).to_string()),
        (2, "agritrace/v1/devices/+/acks".to_owned()),
        (3, topic::acks_topic(a).to_string()),
    ] {
        let mut body = id.to_be_bytes().to_vec();
        string(&mut body, filter.as_bytes());
        body.push(0);
        stream.write_all(&packet(0x82, &body)).await.expect("send");
        let suback = read_packet(&mut stream).await.expect("a SUBACK");
        assert_eq!(
            suback,
            vec![0x90, 3, 0, u8::try_from(id).expect("small"), 0],
            "{filter}"
        );
    }

    // A (on another connection) publishes a copy of B's validly signed reading on B's topic
    // (QoS 1). MQTT 3.1.1 has no refusal code for PUBLISH: Mosquitto acknowledges it, drops it
    // ...
    let reading = Reading {
        device: b,
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(FORGED_SEQUENCE),
        device_time_ms: u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_millis(),
        )
        .expect("fits"),
        temperature_centi_c: 450,
        humidity_centi_pct: 9_000,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_600,
        dropped_samples: 0,
    };
    let mut signed = [0u8; SIGNED_READING_BYTES_MAX];
    let len = encode_signed_reading(&reading, &key_b, &mut signed).expect("encode");
    let mut uplink = [0u8; UPLINK_BYTES_MAX];
    let payload = UplinkWriter::single(&mut uplink, &signed[..len]).expect("uplink");
    let mut body = Vec::new();
    string(&mut body, topic::readings_topic(b).as_str().as_bytes());
    body.extend_from_slice(&9u16.to_be_bytes());
    body.extend_from_slice(payload);
    let (mut forger, code) = connect(port, "a-forger", &a_id, &password_a).await;
    assert_eq!(code, Some(0));
    forger.write_all(&packet(0x32, &body)).await.expect("send");
    assert_eq!(
        read_packet(&mut forger).await,
        Some(vec![0x40, 2, 0, 9]),
        "Mosquitto acknowledges the refused publish"
    );
    // ... and then closes the connection (Mosquitto 2.0.11 ends a client's connection after
    // a PUBLISH its ACL denies).
    assert_eq!(
        read_packet(&mut forger).await,
        None,
        "the connection is closed"
    );

    // The devices themselves (agritrace-device, logging in with their own passwords) stream
    // readings; every one is acknowledged end to end, so ingest read and acked them through
    // its own login and the ACL.
    let mut devices = fleet.spawn(
        dir,
        "devices",
        port,
        &[
            "--readings",
            "5",
            "--sample-period",
            "1s",
            "--time-scale",
            "10",
        ],
    );
    let status = devices.wait().await;
    assert!(
        status.success(),
        "the devices ended with {status}\n{}\nnode:\n{}",
        devices.stderr_tail(30),
        node.log_tail(30)
    );
    for device in [a, b] {
        wait_until(&format!("reading 4 of {device} anchored"), || async {
            node.get(&format!("/v1/devices/{device}/readings/4/anchor"))
                .await
                .filter(|(status, _)| *status == 200)
        })
        .await;
    }
    // B's reading that A published never reached ingest: a validly signed reading that had
    // would be anchored by now (it went to the broker before any of the devices' readings).
    let (status, body) = node
        .get(&format!(
            "/v1/devices/{b}/readings/{FORGED_SEQUENCE}/anchor"
        ))
        .await
        .expect("the node answers");
    assert_eq!(status, 404, "{body}");
    // A's observer was sent A's acks (ingest publishes them under its own login) and none of
    // B's, although it subscribed to them by name and by wildcard.
    let topics: Vec<String> = drain(&mut stream, Duration::from_secs(2))
        .await
        .iter()
        .filter_map(|packet| publish_topic(packet))
        .collect();
    assert!(
        topics.contains(&topic::acks_topic(a).to_string()),
        "A's acks reach A: {topics:?}"
    );
    assert!(
        !topics.contains(&topic::acks_topic(b).to_string()),
        "B's acks never reach A: {topics:?}"
    );
    drop(broker);
}
