//! Shared by the API's HTTP tests: a node on a temporary data directory with free ports, a
//! client that speaks JSON with an optional token, and the bootstrap of an organisation with
//! one member per role through the node's local admin routes (as `agritrace admin` does).
#![allow(dead_code)] // Each test file uses a part.

use std::collections::BTreeMap;

use api::{Node, NodeConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

pub struct Api {
    pub base: String,
    pub http: Client,
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the node answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Bootstraps `org` with one member per role; returns each member's token by role name.
    pub async fn bootstrap(&self, org: &str, roles: &[&str]) -> BTreeMap<String, String> {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/admin/orgs",
                None,
                Some(json!({ "id": org, "name": format!("{org} 组织"), "country": "CN" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut tokens = BTreeMap::new();
        for role in roles {
            let member = format!("{role}-1");
            let (status, body) = self
                .call(
                    Method::POST,
                    &format!("/v1/admin/orgs/{org}/members"),
                    None,
                    Some(json!({ "id": member, "name": format!("The {role}"), "roles": [role] })),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let (status, body) = self
                .call(
                    Method::POST,
                    &format!("/v1/admin/orgs/{org}/members/{member}/tokens"),
                    None,
                    Some(json!({ "label": "test" })),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            tokens.insert(
                (*role).to_owned(),
                body["token"]
                    .as_str()
                    .expect("the token, shown once")
                    .to_owned(),
            );
        }
        tokens
    }
}

impl Api {
    /// Adds a member with `role` to an existing organisation through the node's local admin
    /// routes; returns its token.
    pub async fn bootstrap_member(&self, org: &str, role: &str) -> String {
        let member = format!("{role}-extra");
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/admin/orgs/{org}/members"),
                None,
                Some(json!({ "id": member, "name": format!("The {role}"), "roles": [role] })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/admin/orgs/{org}/members/{member}/tokens"),
                None,
                Some(json!({ "label": "test" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("the token").to_owned()
    }
}

pub const ROLES: [&str; 7] = [
    "admin",
    "producer",
    "exporter",
    "carrier",
    "inspector",
    "customs",
    "auditor",
];

/// The configuration of a test node on `data`: free HTTP and broker ports, defaults otherwise.
pub fn config_on(data: std::path::PathBuf) -> NodeConfig {
    NodeConfig {
        data_dir: data,
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        broker: api::BrokerConfig {
            port: 0,
            ..api::BrokerConfig::default()
        },
        ..NodeConfig::default()
    }
}

/// A node started with `config`, and a client for it.
pub async fn node_with(config: NodeConfig) -> (Node, Api) {
    let node = Node::start(config).await.expect("the node starts");
    let api = Api {
        base: format!("http://{}", node.http_addr()),
        http: Client::new(),
    };
    (node, api)
}

/// A node on `data` with free ports, and a client for it.
pub async fn node_on(data: std::path::PathBuf) -> (Node, Api) {
    node_with(config_on(data)).await
}

/// A node on a temporary directory that batches and commits quickly (readings published in a
/// test are anchored within a few tens of milliseconds).
pub async fn start_streaming() -> (tempfile::TempDir, Node, Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api) = node_with(NodeConfig {
        batch_window_ms: 50,
        round_period_ms: 20,
        ..config_on(dir.path().join("data"))
    })
    .await;
    (dir, node, api)
}

pub async fn start() -> (tempfile::TempDir, Node, Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api) = node_on(dir.path().join("data")).await;
    (dir, node, api)
}

/// Now, in Unix ms.
pub fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// `ms` as an RFC 3339 UTC date-time with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    gs1::epcis::canon::Timestamp {
        unix_ms: i64::try_from(ms).expect("fits"),
    }
    .to_utc_millis_string()
    .expect("in range")
}

/// A single-reading uplink: `reading` signed with `key`.
pub fn uplink(reading: &protocol::Reading, key: &protocol::SigningKey) -> Vec<u8> {
    use protocol::limits::{SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
    let mut signed = [0u8; SIGNED_READING_BYTES_MAX];
    let len = protocol::encode_signed_reading(reading, key, &mut signed).expect("encode");
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    protocol::UplinkWriter::single(&mut buf, &signed[..len])
        .expect("uplink")
        .to_vec()
}

/// Waits until ingest has committed reading `sequence` of `device` (polls 50 ms apart, gives
/// up after about two minutes: a guard against hanging, not a timing assertion).
pub async fn committed(node: &Node, device: protocol::DeviceId, sequence: u64) {
    for _ in 0..2_400 {
        if node
            .ingest()
            .reading(device, protocol::SequenceNumber(sequence))
            .expect("storage")
            .is_some()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("reading {sequence} of {device} was never committed");
}

/// A `multipart/form-data` body (RFC 7578) and its content type: a part named `file` carries
/// a file name and `Content-Type: application/octet-stream`.
pub fn multipart_form(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "agritrace-test-boundary-7d3c";
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if *name == "file" {
            body.extend_from_slice(
                b"Content-Disposition: form-data; name=\"file\"; filename=\"document\"\r\n\
                  Content-Type: application/octet-stream\r\n\r\n",
            );
        } else {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// An MQTT client of the node's broker (keep-alive 30 s, room for 64 requests) whose event
/// loop a task polls until the returned handle is aborted (retrying 100 ms after an error).
/// `login` is the `(username, password)` presented at CONNECT.
pub fn mqtt_client(
    node: &Node,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> (rumqttc::AsyncClient, tokio::task::JoinHandle<()>) {
    let broker = node.broker_addr();
    let mut options = rumqttc::MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(std::time::Duration::from_secs(30));
    if let Some((username, password)) = login {
        options.set_credentials(username, password);
    }
    let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
    let poller = tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    });
    (client, poller)
}

/// A reading of `device` (key epoch 1) at `device_time_ms` with ordinary values: 11.5 °C, 90%
/// humidity, no position, door closed, 3.6 V, nothing dropped. Tests change the fields they
/// care about with struct update syntax.
pub fn reading_at(
    device: protocol::DeviceId,
    sequence: u64,
    device_time_ms: u64,
) -> protocol::Reading {
    protocol::Reading {
        device,
        key_epoch: protocol::KeyEpoch(1),
        sequence: protocol::SequenceNumber(sequence),
        device_time_ms,
        temperature_centi_c: 1_150,
        humidity_centi_pct: 9_000,
        position: None,
        door: protocol::DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_600,
        dropped_samples: 0,
    }
}

/// Publishes `reading`, signed by `key`, on its device's readings topic at QoS 1.
pub async fn publish_reading(
    client: &rumqttc::AsyncClient,
    reading: &protocol::Reading,
    key: &protocol::SigningKey,
) {
    client
        .publish(
            protocol::topic::readings_topic(reading.device).as_str(),
            rumqttc::QoS::AtLeastOnce,
            false,
            uplink(reading, key),
        )
        .await
        .expect("publish");
}
