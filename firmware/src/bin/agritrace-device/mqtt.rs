//! One device's MQTT connection: a rumqttc client whose event loop is polled in its own task.
//!
//! rumqttc moves nothing unless `EventLoop::poll` is driven, has no reconnect backoff of its
//! own, and with a clean session forgets unacknowledged QoS 1 publishes when it reconnects
//! (REFERENCES.md, rumqttc 0.25 pitfalls). So this task:
//!
//! - sleeps an exponential, capped, jittered backoff after every connection error;
//! - subscribes to the device's acks topic after every ConnAck (a clean session has no
//!   subscriptions), and reports the link up only when the broker granted the subscription, so
//!   that no ack for a reading published afterwards can be missed. A refused subscription
//!   (SubAck failure: an ACL not yet updated for a new device, a broker restarting its
//!   authorisation plugin) is asked for again after the backoff delay, again and again while
//!   the connection lasts; until it is granted the link stays down and readings wait in the
//!   outbox (published without the subscription they could only be resent, never freed);
//! - forwards what the device needs as [`LinkEvent`]s over a bounded channel.
//!
//! Redelivery is not rumqttc's job here: the firmware's outbox keeps every reading until the
//! backend acknowledges it end to end and decides what to publish again after a reconnect.
//!
//! Deadlock freedom: this task awaits only the event channel, and the device task never awaits
//! the client's request channel (it uses `try_publish` and bounds its publishes in flight, see
//! [`REQUEST_CHANNEL_CAPACITY`]), so neither side can wait on the other in a cycle.

use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;

/// Uplink messages a device may have published and not yet seen the broker's PUBACK for.
pub const PUBLISH_WINDOW: usize = 8;

/// The client's request channel: the publish window twice over (publishes queued while a
/// disconnect was being reported stay in the channel across the reconnect), plus room for the
/// acks subscription and a disconnect.
pub const REQUEST_CHANNEL_CAPACITY: usize = 2 * PUBLISH_WINDOW + 4;

/// Events buffered between the event loop task and the device task.
const EVENT_CHANNEL_CAPACITY: usize = 64;

/// Largest MQTT packet in either direction: one uplink message plus topic and header.
const PACKET_BYTES_MAX: usize = protocol::limits::UPLINK_BYTES_MAX + 512;

/// What the connection tells its device.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected and subscribed to the acks topic: publishing may start.
    Up,
    /// The connection was lost (or never came up after `Up`); nothing published before this
    /// is known to have reached the broker.
    Down { reason: String },
    /// The broker acknowledged one QoS 1 publish (PUBACK).
    PublishAcked,
    /// A message on the acks topic.
    Ack(Vec<u8>),
}

/// Connection settings shared by every device of the run.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub host: String,
    pub port: u16,
    pub keep_alive: Duration,
}

/// The device side of a connection.
#[derive(Debug)]
pub struct Link {
    pub client: AsyncClient,
    pub events: mpsc::Receiver<LinkEvent>,
    task: JoinHandle<()>,
}

impl Link {
    /// Creates the client (id and username = the device id, `password` its MQTT password) and
    /// starts its event loop task.
    pub fn spawn(
        client_id: String,
        password: String,
        acks_topic: String,
        config: &LinkConfig,
        backoff: Backoff,
    ) -> Self {
        let mut options = MqttOptions::new(client_id.clone(), config.host.clone(), config.port);
        // Username = the device id (also the client id); a broker without authentication
        // ignores the login.
        options
            .set_credentials(client_id.clone(), password)
            .set_keep_alive(config.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(PACKET_BYTES_MAX, PACKET_BYTES_MAX)
            .set_request_channel_capacity(REQUEST_CHANNEL_CAPACITY);
        let (client, event_loop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
        let (events_tx, events) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let task = tokio::spawn(drive(
            event_loop,
            client.clone(),
            client_id,
            acks_topic,
            backoff,
            events_tx,
        ));
        Self {
            client,
            events,
            task,
        }
    }

    /// Sends DISCONNECT and waits up to `grace` for it to go out, then stops the event loop.
    pub async fn close(self, grace: Duration) {
        let Self {
            client,
            events,
            task,
        } = self;
        // Dropping the receiver ends the task at its next event; the DISCONNECT ends it sooner.
        drop(events);
        if client.try_disconnect().is_ok() {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                abort.abort();
            }
        } else {
            task.abort();
        }
    }
}

/// A retry of the acks subscription that waits out its delay in a task of its own (the event
/// loop must keep being polled meanwhile, for keep-alive pings and incoming packets). At most
/// one is pending; it is cancelled when the connection changes and when the link ends.
#[derive(Debug, Default)]
struct SubscribeRetry(Option<AbortHandle>);

impl SubscribeRetry {
    /// Asks for `topic` again after `delay`, replacing any retry still waiting.
    fn schedule(&mut self, client: &AsyncClient, topic: &str, delay: Duration) {
        self.cancel();
        let client = client.clone();
        let topic = topic.to_owned();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // This task is not the event loop, so waiting for room in the request channel
            // cannot deadlock; an error means the client is gone, and the link with it.
            if let Err(error) = client.subscribe(topic, QoS::AtLeastOnce).await {
                debug!(%error, "acks subscription retry not queued: the client is closed");
            }
        });
        self.0 = Some(task.abort_handle());
    }

    fn cancel(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl Drop for SubscribeRetry {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The event loop task. Returns when the device side is gone or the client disconnected.
async fn drive(
    mut event_loop: EventLoop,
    client: AsyncClient,
    client_id: String,
    acks_topic: String,
    mut backoff: Backoff,
    events: mpsc::Sender<LinkEvent>,
) {
    // Whether the device was told `Up` and not yet `Down`.
    let mut up = false;
    let mut retry = SubscribeRetry::default();
    loop {
        let forward = match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                debug!(
                    device_id = %client_id,
                    session_present = connack.session_present,
                    "connected"
                );
                backoff.reset();
                // A retry left from the last connection would only subscribe twice.
                retry.cancel();
                // A clean session has no subscriptions. try_subscribe never waits; the channel
                // has room reserved for it (REQUEST_CHANNEL_CAPACITY).
                if let Err(error) = client.try_subscribe(acks_topic.clone(), QoS::AtLeastOnce) {
                    warn!(
                        device_id = %client_id,
                        %error,
                        "cannot queue the acks subscription; reconnecting"
                    );
                    event_loop.clean();
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                None
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                let granted = !suback.return_codes.is_empty()
                    && suback
                        .return_codes
                        .iter()
                        .all(|code| matches!(code, SubscribeReasonCode::Success(_)));
                if !granted {
                    // No ack could come back: publishing now would only make the outbox
                    // resend. Stay down and ask again, the connection itself is fine.
                    let delay = backoff.next_delay();
                    warn!(
                        device_id = %client_id,
                        topic = %acks_topic,
                        retry_in_ms = delay.as_millis(),
                        "the broker refused the acks subscription; asking again"
                    );
                    retry.schedule(&client, &acks_topic, delay);
                    None
                } else if up {
                    None
                } else {
                    up = true;
                    info!(device_id = %client_id, "link up");
                    Some(LinkEvent::Up)
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => Some(LinkEvent::PublishAcked),
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if publish.topic == acks_topic {
                    Some(LinkEvent::Ack(publish.payload.to_vec()))
                } else {
                    debug!(
                        device_id = %client_id,
                        topic = %publish.topic,
                        "ignored a message on another topic"
                    );
                    None
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => None,
            Err(ConnectionError::RequestsDone) => return,
            Err(error) => {
                retry.cancel();
                let delay = backoff.next_delay();
                if up {
                    up = false;
                    warn!(
                        device_id = %client_id,
                        %error,
                        retry_in_ms = delay.as_millis(),
                        "link down"
                    );
                    if events
                        .send(LinkEvent::Down {
                            reason: error.to_string(),
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                } else {
                    debug!(
                        device_id = %client_id,
                        %error,
                        retry_in_ms = delay.as_millis(),
                        "connection attempt failed"
                    );
                }
                tokio::time::sleep(delay).await;
                None
            }
        };
        if let Some(event) = forward
            && events.send(event).await.is_err()
        {
            return;
        }
    }
}
