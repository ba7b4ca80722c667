//! Command line of `agritrace-device`, written for the field engineer who runs it: every flag
//! says what it does, its unit, and its environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Largest number of simulated devices one process runs (each is its own MQTT connection and
/// holds an outbox in memory).
pub const DEVICES_MAX: u32 = 5_000;
/// Largest time scale: one real second replays at most about four months.
pub const TIME_SCALE_MAX: f64 = 10_000_000.0;

const ABOUT: &str = "Runs simulated agritrace cold-chain loggers and publishes their signed \
readings to an MQTT broker.";

const LONG_ABOUT: &str = "Runs simulated agritrace cold-chain loggers and publishes their signed \
readings to an MQTT broker.

Each simulated device is a reefer-container logger on a simulated board: every sampling period \
it measures temperature, humidity, position, door and shock, signs the reading with its own \
Ed25519 key and publishes it (MQTT QoS 1) to agritrace/v1/devices/<device-id>/readings. It keeps \
every reading in its outbox until the backend acknowledges it on \
agritrace/v1/devices/<device-id>/acks, so a broker or network outage loses nothing: readings \
wait in the outbox and are sent again after the device reconnects.

Keys live in the keys directory, one file per device (<device-id>.key, readable by its owner \
only), next to a sequence file per device (<device-id>.seq) that makes sure a restarted device \
never reuses a sequence number, and an outbox journal per device (<device-id>.outbox, up to \
192 KiB) that keeps every signed reading until the backend acknowledges it, so a restart, a \
crash or kill -9 loses none: they are sent after the restart. manifest.json in the same \
directory lists every device id with its public key: hand it to the backend to register the \
devices. Do not delete the .seq or .outbox files: a device whose key file is there but whose \
.seq file is missing (and whose journal is empty) refuses to start rather than risk reusing \
sequence numbers. One process at a time may use a keys directory: it holds a lock on \
<keys-dir>/.lock while it runs, and a second process is refused.

Every flag can also be set through the environment variable shown with it.";

const AFTER_HELP: &str = "Examples:
  Provision 20 devices and show the manifest the backend imports:
    agritrace-device --devices 20 --keys-dir ./keys --provision-only

  Run 20 devices against a broker, one reading per minute, until stopped (Ctrl-C):
    agritrace-device --broker mqtt.example.net:1883 --devices 20 --keys-dir ./keys

  Replay a 40-day voyage with 15-minute readings in about 7 minutes, then wait until the
  backend has acknowledged every reading and exit:
    agritrace-device --devices 5 --sample-period 15m --time-scale 8640 --readings 3840

Exit status: 0 when every device stopped with an empty outbox (every reading acknowledged),
1 on an error, 2 when --exit-timeout passed with readings still unacknowledged, 130 when
interrupted twice (Ctrl-C during the wait for the last acknowledgements).";

/// Simulated cold-chain loggers publishing signed readings over MQTT.
#[derive(Debug, Parser)]
#[command(
    name = "agritrace-device",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Args {
    /// MQTT broker to publish to, as host:port (plain TCP, MQTT 3.1.1).
    #[arg(
        long,
        env = "AGRITRACE_BROKER",
        default_value = "127.0.0.1:1883",
        value_name = "HOST:PORT"
    )]
    pub broker: String,

    /// Number of simulated devices to run, 1 to 5000 (each keeps up to 1024 unacknowledged
    /// readings, about 150 KiB of memory). Device i gets the id <fleet-prefix><i as 8 hex
    /// digits>, so a rerun finds the same keys again.
    #[arg(long, env = "AGRITRACE_DEVICES", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(DEVICES_MAX)))]
    pub devices: u32,

    /// First 8 hex digits of every device id of this fleet (lowercase). Use a different prefix
    /// for each fleet that shares a broker.
    #[arg(long, env = "AGRITRACE_FLEET_PREFIX", default_value = "a9000000", value_name = "HEX8",
          value_parser = crate::keys::parse_fleet_prefix)]
    pub fleet_prefix: [u8; 4],

    /// Time between two readings of a device, in simulated time: milliseconds (500) or a
    /// duration with a unit (500ms, 30s, 15m, 1h).
    #[arg(long, env = "AGRITRACE_SAMPLE_PERIOD", default_value = "1m", value_name = "DURATION",
          value_parser = parse_duration)]
    pub sample_period: Duration,

    /// Simulated seconds per real second. 1 runs in real time; 8640 replays a 40-day voyage in
    /// 400 seconds. The reconnect backoff, --resend-after and --exit-timeout stay in real time.
    #[arg(long, env = "AGRITRACE_TIME_SCALE", default_value_t = 1.0, value_name = "FACTOR",
          value_parser = parse_time_scale)]
    pub time_scale: f64,

    /// Stop taking readings after this many readings per device, then keep running until the
    /// backend has acknowledged every one of them and exit with status 0. Without it the
    /// devices run until Ctrl-C (or SIGTERM).
    #[arg(long, env = "AGRITRACE_READINGS", value_name = "K")]
    pub readings: Option<u64>,

    /// After sampling stops (--readings reached, or Ctrl-C), how long to wait for the last
    /// acknowledgements before giving up with exit status 2.
    #[arg(long, env = "AGRITRACE_EXIT_TIMEOUT", default_value = "60s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub exit_timeout: Duration,

    /// How long (real time) a device waits for the backend's acknowledgement of a published
    /// reading before it publishes it again.
    #[arg(long, env = "AGRITRACE_RESEND_AFTER", default_value = "10s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub resend_after: Duration,

    /// Directory holding the device keys, sequence files and manifest.json. Created if missing.
    /// Keep it: losing it means new keys that the backend does not know.
    #[arg(
        long,
        env = "AGRITRACE_KEYS_DIR",
        default_value = "agritrace-device-keys",
        value_name = "DIR"
    )]
    pub keys_dir: PathBuf,

    /// Makes the run reproducible: new keys are derived from this number instead of the
    /// operating system's random generator (NOT SECRET: for tests and demonstrations only),
    /// and the simulated voyages and reconnect jitter follow from it. Existing key files are
    /// always kept.
    #[arg(long, env = "AGRITRACE_SEED", value_name = "NUMBER")]
    pub seed: Option<u64>,

    /// Create the keys and manifest.json, print the manifest path, and exit without connecting.
    #[arg(long)]
    pub provision_only: bool,

    /// Print one line on standard output for every reading once it is durable in the
    /// device's outbox journal (`persisted <device-id> <sequence>`), and for every reading
    /// restored from it at start (`restored <device-id> <sequence>`). For audits and crash
    /// tests: a reading printed as persisted is never lost, not even to kill -9.
    #[arg(long, env = "AGRITRACE_PRINT_PERSISTED")]
    pub print_persisted: bool,

    /// Log filter, e.g. info, debug, or agritrace_device=debug,rumqttc=warn.
    #[arg(
        long,
        env = "AGRITRACE_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
}

impl Args {
    /// The broker's host and port.
    pub fn broker_address(&self) -> anyhow::Result<(String, u16)> {
        parse_broker(&self.broker).map_err(anyhow::Error::msg)
    }
}

/// `host:port`, with `[v6]:port` for IPv6 literals.
pub fn parse_broker(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("the broker address {text:?} needs a port, e.g. 127.0.0.1:1883"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(format!("the broker address {text:?} has no host"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| format!("the broker port in {text:?} is not a number from 1 to 65535"))?;
    Ok((host.to_owned(), port))
}

/// Milliseconds as a bare number, or a number with one of the units ms, s, m, h, d.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write e.g. 500ms, 30s, 15m, 2h or 1d"))?;
    let unit_ms: u64 = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m, h or d"
            ));
        }
    };
    let ms = value
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("the duration {text:?} is too long"))?;
    if ms == 0 {
        return Err("a duration must be longer than zero".to_owned());
    }
    Ok(Duration::from_millis(ms))
}

fn parse_time_scale(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number (simulated seconds per real second)"))?;
    if !(value.is_finite() && value > 0.0 && value <= TIME_SCALE_MAX) {
        return Err(format!(
            "the time scale must be above 0 and at most {TIME_SCALE_MAX}"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn check_duration(text: &str, expected: Option<u64>) {
        assert_eq!(
            parse_duration(text)
                .ok()
                .map(|d| u64::try_from(d.as_millis()).unwrap()),
            expected,
            "{text:?}"
        );
    }

    #[test]
    fn durations_take_bare_milliseconds_or_a_unit() {
        check_duration("250", Some(250));
        check_duration("250ms", Some(250));
        check_duration("30s", Some(30_000));
        check_duration("15m", Some(900_000));
        check_duration("2h", Some(7_200_000));
        check_duration("1d", Some(86_400_000));
        check_duration("0", None);
        check_duration("1.5s", None);
        check_duration("s", None);
        check_duration("5 weeks", None);
        check_duration("-5s", None);
        check_duration("99999999999999999999d", None);
    }

    #[test]
    fn broker_addresses_need_a_host_and_a_port() {
        assert_eq!(
            parse_broker("127.0.0.1:1883"),
            Ok(("127.0.0.1".into(), 1883))
        );
        assert_eq!(
            parse_broker("mqtt.example.net:8883"),
            Ok(("mqtt.example.net".into(), 8883))
        );
        assert_eq!(parse_broker("[::1]:1883"), Ok(("::1".into(), 1883)));
        assert!(parse_broker("localhost").is_err());
        assert!(parse_broker(":1883").is_err());
        assert!(parse_broker("localhost:0").is_err());
        assert!(parse_broker("localhost:70000").is_err());
    }

    #[test]
    fn the_command_line_definition_is_consistent_and_documents_every_flag() {
        Args::command().debug_assert();
        for arg in Args::command().get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    #[test]
    fn defaults_work_without_any_flag() {
        let args = Args::try_parse_from(["agritrace-device"]).unwrap();
        assert_eq!(args.broker_address().unwrap(), ("127.0.0.1".into(), 1883));
        assert_eq!(args.devices, 1);
        assert_eq!(args.sample_period, Duration::from_secs(60));
        assert!(Args::try_parse_from(["agritrace-device", "--devices", "0"]).is_err());
        assert!(Args::try_parse_from(["agritrace-device", "--time-scale", "0"]).is_err());
    }
}
