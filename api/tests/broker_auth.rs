//! Device authentication on the in-process broker (`broker.device_auth = true`): a node over
//! real TCP, two devices imported from a manifest that carries the hashes of their MQTT
//! passwords, and clients that speak MQTT 3.1.1 byte by byte where the test asserts exactly
//! what the broker answers (CONNACK return codes, SUBACK return codes, a closed connection).
//! The good device's readings still travel through rumqttc and are anchored.

mod common;

use std::time::Duration;

use api::broker_auth::{PBKDF2_ITERATIONS, PasswordHash};
use api::{Node, NodeConfig};
use protocol::{DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, topic};
use rumqttc::QoS;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const A: DeviceId = DeviceId([0xa9, 0xb0, 0, 0, 0, 0, 0, 1]);
const B: DeviceId = DeviceId([0xa9, 0xb0, 0, 0, 0, 0, 0, 2]);
const PASSWORD_A: &str = "password-of-device-a";
const PASSWORD_B: &str = "password-of-device-b";

fn key(device: DeviceId) -> SigningKey {
    SigningKey::from_bytes(&[device.0[7]; 32])
}

/// A node with device authentication on, and A and B imported with their password hashes.
async fn start() -> (tempfile::TempDir, Node, common::Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = common::config_on(dir.path().join("data"));
    config.broker.device_auth = true;
    let (node, api) = common::node_with(NodeConfig {
        batch_window_ms: 50,
        round_period_ms: 20,
        ..config
    })
    .await;
    let entry = |device: DeviceId, password: &str| {
        json!({
            "device_id": device.to_string(),
            "key_epoch": 1,
            "algorithm": "ed25519",
            "public_key": key(device).verifying_key().as_bytes().iter()
                .map(|b| format!("{b:02x}")).collect::<String>(),
            "mqtt_password_hash": PasswordHash::with_salt(
                password.as_bytes(), &device.0[..], PBKDF2_ITERATIONS).to_string(),
        })
    };
    let manifest = json!({
        "format": "agritrace-device-manifest/v1",
        "devices": [entry(A, PASSWORD_A), entry(B, PASSWORD_B)],
    });
    let response = api
        .http
        .post(format!("{}/v1/devices/import", api.base))
        .body(manifest.to_string())
        .send()
        .await
        .expect("import");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    (dir, node, api)
}

/// An MQTT 3.1.1 packet: fixed header byte, remaining length (one or two bytes), body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let length = body.len();
    assert!(length < 16_384, "test packets are small");
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

/// CONNECT (MQTT 3.1.1 §3.1) with a clean session and keep-alive 30 s.
fn connect_packet(client_id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.push(4);
    body.push(if login.is_some() { 0xc2 } else { 0x02 });
    body.extend_from_slice(&30u16.to_be_bytes());
    string(&mut body, client_id.as_bytes());
    if let Some((username, password)) = login {
        string(&mut body, username.as_bytes());
        string(&mut body, password.as_bytes());
    }
    packet(0x10, &body)
}

/// Reads one packet whole, or `None` when the broker closed the connection (EOF or reset)
/// within 10 s.
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

/// Connects with `login` and returns the stream and the CONNACK's return code (`None` if the
/// connection was closed without one).
async fn connect(
    node: &Node,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> (TcpStream, Option<u8>) {
    let mut stream = TcpStream::connect(node.broker_addr()).await.expect("tcp");
    stream
        .write_all(&connect_packet(client_id, login))
        .await
        .expect("send CONNECT");
    let code = read_packet(&mut stream).await.map(|connack| {
        assert_eq!(&connack[..3], &[0x20, 2, 0], "a CONNACK: {connack:?}");
        connack[3]
    });
    (stream, code)
}

fn reading(device: DeviceId, sequence: u64) -> Reading {
    Reading {
        device,
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(sequence),
        device_time_ms: common::now_ms(),
        temperature_centi_c: 450,
        humidity_centi_pct: 9_000,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_600,
        dropped_samples: 0,
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_at_connect() {
    let (_dir, node, _api) = start().await;
    let a = A.to_string();
    // MQTT 3.1.1 §3.2.2.3: return code 5, "not authorised"; the connection closes after it.
    let check = |client_id: String, login: Option<(String, String)>| {
        let node = &node;
        async move {
            let login = login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
            let (mut stream, code) = connect(node, &client_id, login).await;
            assert_eq!(code, Some(5), "{client_id} {login:?}");
            assert_eq!(
                read_packet(&mut stream).await,
                None,
                "closed after CONNACK 5"
            );
        }
    };
    check(a.clone(), Some((a.clone(), "wrong".to_owned()))).await;
    check(a.clone(), Some((a.clone(), PASSWORD_B.to_owned()))).await;
    check(a.clone(), None).await;
    // Unknown device, ingest's name with a device's password, a client id other than the
    // device's own (it could take over another client's session).
    check(
        "a9b0000000000009".to_owned(),
        Some(("a9b0000000000009".to_owned(), PASSWORD_A.to_owned())),
    )
    .await;
    check(
        a.clone(),
        Some(("agritrace-ingest".to_owned(), PASSWORD_A.to_owned())),
    )
    .await;
    check(
        "agritrace-ingest-0".to_owned(),
        Some((a.clone(), PASSWORD_A.to_owned())),
    )
    .await;
    // The right password is accepted.
    let (_stream, code) = connect(&node, &a, Some((&a, PASSWORD_A))).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_device_cannot_subscribe_to_another_devices_acks() {
    let (_dir, node, _api) = start().await;
    let a = A.to_string();
    let (mut stream, code) = connect(&node, &a, Some((&a, PASSWORD_A))).await;
    assert_eq!(code, Some(0));
    let subscribe = |packet_id: u16, filter: &str| {
        let mut body = packet_id.to_be_bytes().to_vec();
        string(&mut body, filter.as_bytes());
        body.push(1);
        packet(0x82, &body)
    };
    // MQTT 3.1.1 §3.9.3: SUBACK return code 0x80 is a failure; 0x01 grants QoS 1.
    for (id, filter, expected) in [
        (1u16, topic::acks_topic(B).to_string(), 0x80u8),
        (2, "agritrace/v1/devices/+/acks".to_owned(), 0x80),
        (3, "#".to_owned(), 0x80),
        (4, topic::READINGS_SHARED_FILTER.to_owned(), 0x80),
        (5, topic::acks_topic(A).to_string(), 0x01),
    ] {
        stream
            .write_all(&subscribe(id, &filter))
            .await
            .expect("send");
        let suback = read_packet(&mut stream).await.expect("a SUBACK");
        let mut expected_packet = vec![0x90, 3];
        expected_packet.extend_from_slice(&id.to_be_bytes());
        expected_packet.push(expected);
        assert_eq!(suback, expected_packet, "{filter}");
    }
}

#[tokio::test]
async fn a_publish_on_another_devices_topic_closes_the_connection_and_never_reaches_ingest() {
    let (_dir, node, _api) = start().await;
    let a = A.to_string();
    let (mut stream, code) = connect(&node, &a, Some((&a, PASSWORD_A))).await;
    assert_eq!(code, Some(0));
    // A holds a copy of B's validly signed reading and publishes it on B's topic (QoS 1).
    let mut body = Vec::new();
    string(&mut body, topic::readings_topic(B).as_str().as_bytes());
    body.extend_from_slice(&7u16.to_be_bytes());
    body.extend_from_slice(&common::uplink(&reading(B, 0), &key(B)));
    stream.write_all(&packet(0x32, &body)).await.expect("send");
    // No PUBACK: the gateway closes the connection.
    assert_eq!(
        read_packet(&mut stream).await,
        None,
        "the connection is closed"
    );

    // The good device's readings on its own topic are anchored as before, and it receives its
    // ack from ingest (which logs in with its own identity).
    let (client, poller) = common::mqtt_client(&node, &a, Some((&a, PASSWORD_A)));
    client
        .subscribe(topic::acks_topic(A).as_str(), QoS::AtLeastOnce)
        .await
        .expect("queue");
    for sequence in 0..3 {
        client
            .publish(
                topic::readings_topic(A).as_str(),
                QoS::AtLeastOnce,
                false,
                common::uplink(&reading(A, sequence), &key(A)),
            )
            .await
            .expect("queue");
    }
    common::committed(&node, A, 2).await;
    for _ in 0..600 {
        if node.ingest().metrics().mqtt_acks >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    poller.abort();
    let metrics = node.ingest().metrics();
    assert_eq!(
        metrics.mqtt_acks, 3,
        "ingest received A's three messages only"
    );
    assert_eq!(metrics.readings_committed, 3);
    assert!(
        node.ingest()
            .reading(B, SequenceNumber(0))
            .expect("storage")
            .is_none(),
        "B's reading published by A was not committed"
    );
}

#[tokio::test]
async fn a_device_whose_keys_are_all_revoked_cannot_log_in() {
    let (_dir, node, _api) = start().await;
    let b = B.to_string();
    let (_stream, code) = connect(&node, &b, Some((&b, PASSWORD_B))).await;
    assert_eq!(code, Some(0));
    node.ingest()
        .registry()
        .revoke_key(B, KeyEpoch(1), common::now_ms())
        .await
        .expect("revoke");
    let (_stream, code) = connect(&node, &b, Some((&b, PASSWORD_B))).await;
    assert_eq!(code, Some(5));
}

#[tokio::test]
async fn a_device_registered_through_the_api_logs_in_with_the_hash_given_there() {
    let (_dir, node, api) = start().await;
    let tokens = api.bootstrap("coop", &["producer"]).await;
    let c = DeviceId([0xa9, 0xb0, 0, 0, 0, 0, 0, 3]);
    let c_id = c.to_string();
    let register = |hash: String| {
        json!({
            "device_id": c_id,
            "public_key": key(c).verifying_key().as_bytes().iter()
                .map(|b| format!("{b:02x}")).collect::<String>(),
            "mqtt_password_hash": hash,
        })
    };
    // A malformed hash is refused and registers nothing.
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/v1/orgs/coop/devices",
            Some(&tokens["producer"]),
            Some(register("$7$101$nope".to_owned())),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    let hash = PasswordHash::with_salt(b"password-of-c", &[9; 12], PBKDF2_ITERATIONS);
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/v1/orgs/coop/devices",
            Some(&tokens["producer"]),
            Some(register(hash.to_string())),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let (_stream, code) = connect(&node, &c_id, Some((&c_id, "password-of-c"))).await;
    assert_eq!(code, Some(0));
    let (_stream, code) = connect(&node, &c_id, Some((&c_id, "password-of-a"))).await;
    assert_eq!(code, Some(5));
}
