//! The in-process MQTT broker (rumqttd 0.20, MQTT 3.1.1 over plain TCP): the default of
//! `agritrace serve`, so a laptop needs no other program. rumqttd keeps messages in memory only;
//! that is enough here because every device keeps its readings until ingest acknowledges them
//! end to end (DESIGN.md, data flow step 1), so a broker restart loses nothing.
//!
//! rumqttd's `Broker::start` blocks its thread for the life of the process and has no stop;
//! the broker ends with the process.
//!
//! With `broker.device_auth`, [`start_with_gateway`] puts `crate::broker_auth`'s gateway on
//! the configured address (it checks logins and topics, which rumqttd cannot) and rumqttd on a
//! loopback port that takes only the gateway's login.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ingest::IngestStorage;

use crate::broker_auth::{Authority, GatewaySettings, UpstreamLogin, serve_gateway};
use crate::config::BrokerConfig;

/// Attempts to connect to the new listener before giving up (20 ms apart).
const LISTEN_CHECK_ATTEMPTS: u32 = 250;

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No free port could be found.
    #[error("finding a free port for the MQTT broker failed")]
    FreePort(#[source] std::io::Error),
    /// The generated rumqttd configuration was refused.
    #[error("the MQTT broker configuration was refused: {0}")]
    Config(String),
    /// The broker thread could not be started.
    #[error("starting the MQTT broker thread failed")]
    Thread(#[source] std::io::Error),
    /// The port is taken by another program.
    #[error("the MQTT broker port {listen} is not free")]
    PortTaken {
        /// The address.
        listen: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The broker never accepted a connection.
    #[error("the MQTT broker is not listening on {0} (is the port taken?)")]
    NotListening(SocketAddr),
}

/// A port that was free a moment ago on `ip` (the listener is closed again).
///
/// # Errors
/// The error of binding port 0.
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// Starts the broker on its own thread and returns the address it listens on once it accepts
/// connections. Port 0 picks a free port. Anyone who reaches the address may connect and use
/// any topic: see [`start_with_gateway`].
///
/// # Errors
/// [`BrokerError`] if the address is unusable or the broker does not come up.
pub fn start(config: &BrokerConfig) -> Result<SocketAddr, BrokerError> {
    let listen = listen_address(config)?;
    start_rumqttd(config, listen, None)?;
    Ok(listen)
}

/// Starts rumqttd on a free loopback port taking only the gateway's login, and the gateway
/// (`crate::broker_auth::serve_gateway`, on a thread of its own) on the configured address,
/// which it returns once both accept connections.
///
/// # Errors
/// [`BrokerError`] if an address is unusable or a part does not come up.
pub fn start_with_gateway<S: IngestStorage + Send + Sync + 'static>(
    config: &BrokerConfig,
    authority: Authority<S>,
) -> Result<SocketAddr, BrokerError> {
    let listen = listen_address(config)?;
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let upstream = SocketAddr::new(
        loopback,
        free_port(loopback).map_err(BrokerError::FreePort)?,
    );
    let login = UpstreamLogin::new().map_err(|e| BrokerError::Config(e.to_string()))?;
    start_rumqttd(config, upstream, Some(login.pair()))?;
    let listener =
        TcpListener::bind(listen).map_err(|source| BrokerError::PortTaken { listen, source })?;
    listener
        .set_nonblocking(true)
        .map_err(BrokerError::Thread)?;
    let settings = GatewaySettings {
        upstream,
        login,
        connections_max: config.connections_max,
        payload_bytes_max: config.payload_bytes_max,
    };
    // Its own runtime, like rumqttd's: the gateway lives as long as the broker behind it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mqtt-gateway")
        .enable_all()
        .build()
        .map_err(BrokerError::Thread)?;
    std::thread::Builder::new()
        .name("mqtt-gateway".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => serve_gateway(listener, authority, settings).await,
                    Err(error) => tracing::error!(%error, "the MQTT gateway did not start"),
                }
            });
        })
        .map_err(BrokerError::Thread)?;
    tracing::info!(%listen, %upstream, "MQTT gateway checking logins and topics");
    Ok(listen)
}

fn listen_address(config: &BrokerConfig) -> Result<SocketAddr, BrokerError> {
    let ip: IpAddr = config
        .host
        .parse()
        .map_err(|_| BrokerError::Config(format!("{:?} is not an IP address", config.host)))?;
    let port = match config.port {
        0 => free_port(ip).map_err(BrokerError::FreePort)?,
        port => port,
    };
    Ok(SocketAddr::new(ip, port))
}

/// rumqttd on `listen`, taking only `login` when given (its static `auth` map).
fn start_rumqttd(
    config: &BrokerConfig,
    listen: SocketAddr,
    login: Option<(String, String)>,
) -> Result<(), BrokerError> {
    // Connecting below would also succeed against another program on the port: make sure it
    // is free first.
    drop(TcpListener::bind(listen).map_err(|source| BrokerError::PortTaken { listen, source })?);
    // rumqttd's own configuration structure, written as the TOML its documentation uses.
    let text = format!(
        "id = 0\n\
         [router]\n\
         max_connections = {connections}\n\
         max_outgoing_packet_count = 200\n\
         max_segment_size = 10485760\n\
         max_segment_count = 10\n\
         [v4.1]\n\
         name = \"agritrace-v4\"\n\
         listen = \"{listen}\"\n\
         next_connection_delay_ms = 1\n\
         [v4.1.connections]\n\
         connection_timeout_ms = 60000\n\
         max_payload_size = {payload}\n\
         max_inflight_count = {inflight}\n\
         dynamic_filters = true\n",
        connections = config.connections_max,
        payload = config.payload_bytes_max,
        inflight = config.inflight_max,
    );
    let mut broker_config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| BrokerError::Config(e.to_string()))?;
    if let Some((username, password)) = &login {
        for server in broker_config
            .v4
            .iter_mut()
            .flat_map(|servers| servers.values_mut())
        {
            server.connections.auth =
                Some(std::iter::once((username.clone(), password.clone())).collect());
        }
    }
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(broker_config);
            if let Err(error) = broker.start() {
                tracing::error!(%error, "the in-process MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    let probe_login = login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    for _ in 0..LISTEN_CHECK_ATTEMPTS {
        if mqtt_handshake(listen, probe_login).is_ok() {
            tracing::info!(%listen, "in-process MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(listen))
}

/// Connects as an MQTT 3.1.1 client (with `login` when given), expects an accepting CONNACK,
/// and disconnects: proves the broker answers (a bare TCP probe would make it log a failed
/// connection).
fn mqtt_handshake(listen: SocketAddr, login: Option<(&str, &str)>) -> std::io::Result<()> {
    const CLIENT_ID: &[u8] = b"agritrace-probe";
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&listen, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    // MQTT 3.1.1 §3.1: protocol name "MQTT", level 4, connect flags 0x02 (keep no state; 0xc2
    // with username and password), keep-alive 60 s, then the payload's length-prefixed strings.
    let flags = if login.is_some() { 0xc2 } else { 0x02 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60];
    let mut fields: Vec<&[u8]> = vec![CLIENT_ID];
    if let Some((username, password)) = login {
        fields.push(username.as_bytes());
        fields.push(password.as_bytes());
    }
    for field in fields {
        let length = u16::try_from(field.len()).map_err(std::io::Error::other)?;
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(field);
    }
    // The body stays under 128 bytes (the login is the gateway's own 64-hex password), so
    // the remaining length is one byte (§2.2.3).
    let length = u8::try_from(body.len())
        .ok()
        .filter(|l| *l < 128)
        .ok_or_else(|| std::io::Error::other("probe CONNECT too long"))?;
    let mut connect = vec![0x10, length];
    connect.extend_from_slice(&body);
    stream.write_all(&connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    // §3.2: CONNACK, remaining length 2, return code 0 (accepted).
    if connack[0] != 0x20 || connack[1] != 2 || connack[3] != 0 {
        return Err(std::io::Error::other("not an accepting MQTT broker"));
    }
    // §3.14: DISCONNECT.
    stream.write_all(&[0xe0, 0])
}
