//! The in-process MQTT broker (rumqttd 0.20, MQTT 3.1.1 over plain TCP): the default of
//! `agritrace serve`, so a laptop needs no other program. rumqttd keeps messages in memory only;
//! that is enough here because every device keeps its readings until ingest acknowledges them
//! end to end (DESIGN.md, data flow step 1), so a broker restart loses nothing.
//!
//! rumqttd's `Broker::start` blocks its thread for the life of the process and has no stop;
//! the broker ends with the process.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

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
/// connections. Port 0 picks a free port.
///
/// # Errors
/// [`BrokerError`] if the address is unusable or the broker does not come up.
pub fn start(config: &BrokerConfig) -> Result<SocketAddr, BrokerError> {
    let ip: IpAddr = config
        .host
        .parse()
        .map_err(|_| BrokerError::Config(format!("{:?} is not an IP address", config.host)))?;
    let port = match config.port {
        0 => free_port(ip).map_err(BrokerError::FreePort)?,
        port => port,
    };
    let listen = SocketAddr::new(ip, port);
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
    let broker_config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| BrokerError::Config(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(broker_config);
            if let Err(error) = broker.start() {
                tracing::error!(%error, "the in-process MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    for _ in 0..LISTEN_CHECK_ATTEMPTS {
        if mqtt_handshake(listen).is_ok() {
            tracing::info!(%listen, "in-process MQTT broker listening");
            return Ok(listen);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(listen))
}

/// Connects as an MQTT 3.1.1 client, expects an accepting CONNACK, and disconnects: proves
/// the broker answers (a bare TCP probe would make it log a failed connection).
fn mqtt_handshake(listen: SocketAddr) -> std::io::Result<()> {
    const CLIENT_ID: &[u8] = b"agritrace-probe";
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&listen, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    // MQTT 3.1.1 §3.1: protocol name "MQTT", level 4, connect flags 0x02 (keep no state),
    // keep-alive 60 s.
    // The id is 15 bytes, so the remaining length is 10 + 2 + 15 = 27 (one byte).
    let mut connect = vec![
        0x10, 27, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 15,
    ];
    connect.extend_from_slice(CLIENT_ID);
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
