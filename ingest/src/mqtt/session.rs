//! One MQTT 3.1.1 connection of ingest, driven directly over TCP with rumqttc's packet codec
//! (`rumqttc::mqttbytes::v4`), so that what leaves the connection is written in batches.
//!
//! Why not rumqttc's event loop: it takes one request per poll and writes and flushes each
//! on its own, so every `PUBACK` of a busy worker cost a `writev` system call and a wake-up of
//! the broker (measured with `perf`: the worker's writes were the largest item after
//! signature verification and the store's commit, at about 32,000 single-reading messages a
//! second). Here a connection is two tasks over the split socket:
//!
//! - the **reader** parses every complete packet in what one `read` returned and hands
//!   publishes, acknowledgements and subscription answers to its owner;
//! - the **writer** takes whatever is queued on its request channel at once (up to
//!   [`WRITE_BATCH_BYTES`]), encodes it into one buffer and writes it with one call, and sends
//!   `PINGREQ` when nothing else was written for half the keep-alive.
//!
//! A connection that fails (I/O error, a packet that does not parse, or no bytes from the
//! broker for a keep-alive and a half while a `PINGREQ` is due an answer) ends both tasks;
//! the owner reconnects. Requests queued for a connection outlive it (the channel belongs to
//! the owner), and each `PUBACK` carries the generation of the connection whose packet id it
//! names: one queued for a connection that is gone is dropped by the next one's writer, not
//! sent (its packet id means nothing there).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::Error as CodecError;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, Packet, PubAck, Publish, Subscribe};
use rumqttc::{ConnectReturnCode, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::time::Instant;

/// Most bytes the writer gathers before it writes (a few thousand acks).
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Bytes a connection's read buffer grows by.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Least free room in the read buffer before a read (below it, the buffer grows first).
const READ_ROOM_MIN: usize = 8 * 1024;
/// Longest wait for the TCP connection and for the broker's `CONNACK`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest packet ingest sends (acks, subscriptions, device acks are small).
const OUTGOING_PACKET_BYTES_MAX: usize = 16 * 1024;

/// Why a connection could not be opened or ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The socket failed.
    #[error("broker connection I/O failed")]
    Io(#[from] std::io::Error),
    /// The broker sent bytes that are not an MQTT 3.1.1 packet (or one above the size limit).
    #[error("the broker sent a packet that does not parse: {0}")]
    Codec(CodecError),
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    Closed,
    /// Nothing arrived from the broker for too long.
    #[error("no answer from the broker within {0:?}")]
    Silent(Duration),
    /// The broker refused the connection.
    #[error("the broker refused the connection: {0:?}")]
    Refused(ConnectReturnCode),
    /// The broker refused the subscription.
    #[error("the broker refused the subscription to {0}")]
    SubscriptionRefused(String),
    /// The broker answered `CONNECT` with something else.
    #[error("the broker answered CONNECT with {0}")]
    Unexpected(&'static str),
    /// Connecting took too long.
    #[error("connecting to the broker timed out")]
    Timeout,
}

/// Where and as whom a connection connects.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id.
    pub client_id: String,
    /// Keep-alive announced in `CONNECT`.
    pub keep_alive: Duration,
    /// Largest packet accepted from the broker.
    pub incoming_bytes_max: usize,
    /// User name and password, when the broker asks for them.
    pub credentials: Option<(String, String)>,
}

/// What a connection's writer is asked to send.
#[derive(Debug)]
pub enum Outbound {
    /// Acknowledge a message received on connection `generation`.
    PubAck {
        /// The packet id to acknowledge.
        pkid: u16,
        /// The connection that received it.
        generation: u64,
    },
    /// Publish at QoS 1 (the writer numbers it).
    Publish {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
}

/// How a writer ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterEnd {
    /// Asked to close: everything queued was written, then `DISCONNECT`.
    Closed,
}

/// An open connection: the two halves and the bytes already read past the `CONNACK`.
pub struct Session {
    reader: Reader,
    writer: OwnedWriteHalf,
}

impl Session {
    /// Connects, sends `CONNECT` (clean session) and waits for a successful `CONNACK`.
    ///
    /// # Errors
    /// [`SessionError`] if the broker cannot be reached or refuses.
    pub async fn open(options: &SessionOptions) -> Result<Self, SessionError> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::open_inner(options))
            .await
            .map_err(|_| SessionError::Timeout)?
    }

    async fn open_inner(options: &SessionOptions) -> Result<Self, SessionError> {
        let stream = TcpStream::connect((options.host.as_str(), options.port)).await?;
        stream.set_nodelay(true)?;
        let (read, mut writer) = stream.into_split();
        let mut connect = Connect::new(options.client_id.clone());
        connect.keep_alive = u16::try_from(options.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = true;
        if let Some((user, password)) = &options.credentials {
            connect.set_login(user.clone(), password.clone());
        }
        let mut buffer = BytesMut::new();
        Packet::Connect(connect)
            .write(&mut buffer, OUTGOING_PACKET_BYTES_MAX)
            .map_err(SessionError::Codec)?;
        writer.write_all(&buffer).await?;
        let mut reader = Reader {
            half: read,
            buffer: BytesMut::with_capacity(READ_BUFFER_BYTES),
            bytes_max: options.incoming_bytes_max,
            silence_max: options.keep_alive + options.keep_alive / 2,
        };
        match reader.next().await? {
            Packet::ConnAck(ConnAck {
                code: ConnectReturnCode::Success,
                ..
            }) => Ok(Self { reader, writer }),
            Packet::ConnAck(ConnAck { code, .. }) => Err(SessionError::Refused(code)),
            _ => Err(SessionError::Unexpected("another packet")),
        }
    }

    /// The two halves.
    #[must_use]
    pub fn split(self) -> (Reader, OwnedWriteHalf) {
        (self.reader, self.writer)
    }
}

/// The reading half of a connection, with its parse buffer.
pub struct Reader {
    half: OwnedReadHalf,
    buffer: BytesMut,
    bytes_max: usize,
    silence_max: Duration,
}

impl Reader {
    /// The next packet from the broker. Cancel-safe: bytes read stay in the buffer.
    ///
    /// # Errors
    /// [`SessionError`] if the connection fails, the broker closes it or stays silent, or a
    /// packet does not parse.
    pub async fn next(&mut self) -> Result<Packet, SessionError> {
        loop {
            match Packet::read(&mut self.buffer, self.bytes_max) {
                Ok(packet) => return Ok(packet),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(error) => return Err(SessionError::Codec(error)),
            }
            // Room for a large read (a message's payload keeps its part of the buffer alive
            // until the message is decided, so this may take a fresh block).
            if self.buffer.capacity() - self.buffer.len() < READ_ROOM_MIN {
                self.buffer.reserve(READ_BUFFER_BYTES);
            }
            let read = tokio::time::timeout(self.silence_max, self.half.read_buf(&mut self.buffer))
                .await
                .map_err(|_| SessionError::Silent(self.silence_max))??;
            if read == 0 {
                return Err(SessionError::Closed);
            }
        }
    }
}

/// The subscription packet (packet id 1: the first the connection sends).
#[must_use]
pub fn subscription(filter: &str) -> Packet {
    let mut subscribe = Subscribe::new(filter, QoS::AtLeastOnce);
    subscribe.pkid = 1;
    Packet::Subscribe(subscribe)
}

/// Whether a `SUBACK` granted every filter.
#[must_use]
pub fn granted(suback: &rumqttc::mqttbytes::v4::SubAck) -> bool {
    suback
        .return_codes
        .iter()
        .all(|code| !matches!(code, rumqttc::mqttbytes::v4::SubscribeReasonCode::Failure))
}

/// A connection's writer: see the module documentation.
pub struct Writer {
    /// The connection's generation (`PUBACK`s of another are dropped).
    pub generation: u64,
    /// Half the keep-alive: the longest time without a write.
    pub ping_every: Duration,
    /// Counts `PUBACK`s dropped for naming another connection's packet.
    pub on_stale: Box<dyn Fn() + Send>,
}

impl Writer {
    /// Writes `first` (the subscription, if any), then whatever is queued, in batches, until
    /// the connection fails or `close` is notified (then everything queued is written,
    /// followed by `DISCONNECT`).
    ///
    /// # Errors
    /// [`SessionError`] if the socket fails.
    pub async fn run(
        self,
        mut half: OwnedWriteHalf,
        requests: Arc<Mutex<mpsc::Receiver<Outbound>>>,
        first: Option<Packet>,
        close: Arc<Notify>,
    ) -> Result<WriterEnd, SessionError> {
        // The previous connection's writer has ended (its task is aborted before a new one
        // starts), so this lock is free or about to be.
        let mut requests = requests.lock().await;
        let mut buffer = BytesMut::with_capacity(WRITE_BATCH_BYTES);
        let mut next_pkid: u16 = 1;
        if let Some(packet) = first {
            packet
                .write(&mut buffer, OUTGOING_PACKET_BYTES_MAX)
                .map_err(SessionError::Codec)?;
            half.write_all(&buffer).await?;
            buffer.clear();
            // The subscription used packet id 1.
            next_pkid = 2;
        }
        let mut ping_at = Instant::now() + self.ping_every;
        loop {
            tokio::select! {
                biased;
                () = close.notified() => {
                    while let Ok(request) = requests.try_recv() {
                        self.encode(request, &mut buffer, &mut next_pkid)?;
                        if buffer.len() >= WRITE_BATCH_BYTES {
                            half.write_all(&buffer).await?;
                            buffer.clear();
                        }
                    }
                    Packet::Disconnect
                        .write(&mut buffer, OUTGOING_PACKET_BYTES_MAX)
                        .map_err(SessionError::Codec)?;
                    half.write_all(&buffer).await?;
                    let _ = half.shutdown().await;
                    return Ok(WriterEnd::Closed);
                }
                request = requests.recv() => {
                    let Some(request) = request else {
                        // Every sender is gone: nothing more will be asked.
                        let _ = half.shutdown().await;
                        return Ok(WriterEnd::Closed);
                    };
                    self.encode(request, &mut buffer, &mut next_pkid)?;
                    while buffer.len() < WRITE_BATCH_BYTES {
                        match requests.try_recv() {
                            Ok(request) => self.encode(request, &mut buffer, &mut next_pkid)?,
                            Err(_) => break,
                        }
                    }
                    if !buffer.is_empty() {
                        half.write_all(&buffer).await?;
                        buffer.clear();
                        ping_at = Instant::now() + self.ping_every;
                    }
                }
                () = tokio::time::sleep_until(ping_at) => {
                    Packet::PingReq
                        .write(&mut buffer, OUTGOING_PACKET_BYTES_MAX)
                        .map_err(SessionError::Codec)?;
                    half.write_all(&buffer).await?;
                    buffer.clear();
                    ping_at = Instant::now() + self.ping_every;
                }
            }
        }
    }

    fn encode(
        &self,
        request: Outbound,
        buffer: &mut BytesMut,
        next_pkid: &mut u16,
    ) -> Result<(), SessionError> {
        let packet = match request {
            Outbound::PubAck { pkid, generation } => {
                if pkid == 0 {
                    // A QoS 0 delivery: nothing to acknowledge.
                    return Ok(());
                }
                if generation != self.generation {
                    (self.on_stale)();
                    return Ok(());
                }
                Packet::PubAck(PubAck::new(pkid))
            }
            Outbound::Publish { topic, payload } => {
                let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
                publish.pkid = *next_pkid;
                // Packet ids 1..=65535, in turn: far more than ever outstanding at once.
                *next_pkid = next_pkid.checked_add(1).unwrap_or(1);
                Packet::Publish(publish)
            }
        };
        packet
            .write(buffer, OUTGOING_PACKET_BYTES_MAX)
            .map_err(SessionError::Codec)?;
        Ok(())
    }
}
