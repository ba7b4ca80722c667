//! The drivers against scripted bus transactions (embedded-hal-mock), every mock `.done()`.
//!
//! SHT4x answers are built with the datasheet's CRC-8 (the 0xBEEF -> 0x92 example is checked in
//! `sensirion_crc`); NMEA lines are the gpsd "NMEA Revealed" examples.

use embedded_hal::i2c::{ErrorKind as I2cErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::{
    MockError,
    delay::{CheckedDelay, Transaction as DelayTransaction},
    digital::{Mock as PinMock, State, Transaction as PinTransaction},
    i2c::{Mock as I2cMock, Transaction as I2cTransaction},
    serial::{Mock as SerialMock, Transaction as SerialTransaction},
};
use embedded_hal_nb::{nb, serial::ErrorKind as SerialErrorKind};
use hardware::{
    ActiveLevel, BatteryError, BatteryMonitor, BoardError, ClimateReading, ClimateSensor,
    ColdChainLogger, DoorSensor, GnssError, GnssReceiver, InputError, LoggerConfig,
    LoggerPeripherals, NmeaError, Position, Sample, SensorError, ShockCounter, Sht4xAddress,
    Sht4xPrecision, sensirion_crc::word_with_crc,
};

const ADDRESS: u8 = 0x44;
const GGA: &[u8] = b"$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76\r\n";
const POSITION: Position = Position {
    lat_e7: 533_613_367,
    lon_e7: -65_056_200,
};

fn answer(t_ticks: u16, rh_ticks: u16) -> Vec<u8> {
    let mut bytes = word_with_crc(t_ticks).to_vec();
    bytes.extend_from_slice(&word_with_crc(rh_ticks));
    bytes
}

/// 0x6666 ticks = 25.00 °C; 29360 ticks = 50.00 %RH.
fn measure_transactions(response: Vec<u8>) -> Vec<I2cTransaction> {
    vec![
        I2cTransaction::write(ADDRESS, vec![0xFD]),
        I2cTransaction::read(ADDRESS, response),
    ]
}

#[test]
fn sht4x_measures_with_the_high_repeatability_command() {
    let expectations = measure_transactions(answer(0x6666, 29_360));
    let mut i2c = I2cMock::new(&expectations);
    let mut delay = CheckedDelay::new(&[DelayTransaction::delay_ms(9)]);
    let mut sensor = ClimateSensor::new(
        &mut i2c,
        &mut delay,
        Sht4xAddress::Address0x44,
        Sht4xPrecision::High,
    );
    assert_eq!(
        sensor.measure(),
        Ok(ClimateReading {
            temperature_centi_c: 2500,
            humidity_centi_pct: 5000
        })
    );
    let _ = sensor.release();
    i2c.done();
    delay.done();
}

#[test]
fn sht4x_rejects_an_answer_with_a_bad_crc() {
    let mut response = answer(0x6666, 29_360);
    response[5] ^= 0x01;
    let expectations = measure_transactions(response);
    let mut i2c = I2cMock::new(&expectations);
    let mut delay = CheckedDelay::new(&[DelayTransaction::delay_ms(9)]);
    let mut sensor = ClimateSensor::new(
        &mut i2c,
        &mut delay,
        Sht4xAddress::Address0x44,
        Sht4xPrecision::High,
    );
    assert_eq!(sensor.measure(), Err(SensorError::Crc));
    let _ = sensor.release();
    i2c.done();
    delay.done();
}

#[test]
fn sht4x_reports_a_nack_as_a_bus_error() {
    let nack = I2cErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let expectations = [I2cTransaction::write(ADDRESS, vec![0xFD]).with_error(nack)];
    let mut i2c = I2cMock::new(&expectations);
    let mut delay = CheckedDelay::new(&[]);
    let mut sensor = ClimateSensor::new(
        &mut i2c,
        &mut delay,
        Sht4xAddress::Address0x44,
        Sht4xPrecision::High,
    );
    assert_eq!(sensor.measure(), Err(SensorError::Bus(nack)));
    let _ = sensor.release();
    i2c.done();
    delay.done();
}

#[test]
fn sht4x_reads_its_serial_number_and_uses_low_repeatability_when_asked() {
    let mut serial_answer = word_with_crc(0x1234).to_vec();
    serial_answer.extend_from_slice(&word_with_crc(0x5678));
    let expectations = [
        I2cTransaction::write(ADDRESS, vec![0x89]),
        I2cTransaction::read(ADDRESS, serial_answer),
        I2cTransaction::write(ADDRESS, vec![0xE0]),
        I2cTransaction::read(ADDRESS, answer(0, 0xFFFF)),
    ];
    let mut i2c = I2cMock::new(&expectations);
    let mut delay =
        CheckedDelay::new(&[DelayTransaction::delay_ms(1), DelayTransaction::delay_ms(2)]);
    let mut sensor = ClimateSensor::new(
        &mut i2c,
        &mut delay,
        Sht4xAddress::Address0x44,
        Sht4xPrecision::Low,
    );
    assert_eq!(sensor.serial_number(), Ok(0x1234_5678));
    assert_eq!(
        sensor.measure(),
        Ok(ClimateReading {
            temperature_centi_c: -4500,
            humidity_centi_pct: 10_000
        })
    );
    let _ = sensor.release();
    i2c.done();
    delay.done();
}

#[test]
fn gnss_poll_decodes_a_fix_and_stops_at_would_block() {
    let expectations = [
        SerialTransaction::read_many(GGA),
        SerialTransaction::read_error(nb::Error::WouldBlock),
    ];
    let mut uart = SerialMock::new(&expectations);
    let mut gnss = GnssReceiver::new(&mut uart);
    let poll = gnss.poll().unwrap();
    assert_eq!(usize::from(poll.bytes), GGA.len());
    assert_eq!((poll.sentences_accepted, poll.sentences_rejected), (1, 0));
    assert_eq!(gnss.take_fix(), Some(POSITION));
    // Taken once: the next sample has no fresh fix until the receiver says something new.
    assert_eq!(gnss.take_fix(), None);
    assert_eq!(gnss.last_fix(), Some(POSITION));
    drop(gnss);
    uart.done();
}

#[test]
fn gnss_poll_counts_bad_sentences_and_keeps_draining() {
    let mut bad = GGA.to_vec();
    bad[20] = b'9';
    let expectations = [
        SerialTransaction::read_many(&bad),
        SerialTransaction::read_many(b"\xff\x00garbage\r\n"),
        SerialTransaction::read_many(GGA),
        SerialTransaction::read_error(nb::Error::WouldBlock),
    ];
    let mut uart = SerialMock::new(&expectations);
    let mut gnss = GnssReceiver::new(&mut uart);
    let poll = gnss.poll().unwrap();
    assert_eq!((poll.sentences_accepted, poll.sentences_rejected), (1, 1));
    assert!(matches!(
        poll.last_rejection,
        Some(NmeaError::ChecksumMismatch { .. })
    ));
    assert_eq!(gnss.take_fix(), Some(POSITION));
    drop(gnss);
    uart.done();
}

#[test]
fn gnss_uart_error_drops_the_partial_sentence_and_the_next_poll_resumes() {
    let expectations = [
        SerialTransaction::read_many(&GGA[..30]),
        SerialTransaction::read_error(nb::Error::Other(SerialErrorKind::Overrun)),
        SerialTransaction::read_many(&GGA[30..]),
        SerialTransaction::read_many(GGA),
        SerialTransaction::read_error(nb::Error::WouldBlock),
    ];
    let mut uart = SerialMock::new(&expectations);
    let mut gnss = GnssReceiver::new(&mut uart);
    assert_eq!(gnss.poll(), Err(GnssError::Uart(SerialErrorKind::Overrun)));
    let poll = gnss.poll().unwrap();
    // The tail of the broken sentence is skipped silently; the whole one after it decodes.
    assert_eq!((poll.sentences_accepted, poll.sentences_rejected), (1, 0));
    assert_eq!(gnss.take_fix(), Some(POSITION));
    assert_eq!(gnss.stats().uart_errors, 1);
    drop(gnss);
    uart.done();
}

#[test]
fn door_sensor_honours_its_open_level() {
    let expectations = [
        PinTransaction::get(State::Low),
        PinTransaction::get(State::High),
    ];
    let mut pin = PinMock::new(&expectations);
    let mut door = DoorSensor::new(pin.clone(), ActiveLevel::Low);
    assert_eq!(door.is_open(), Ok(true));
    assert_eq!(door.is_open(), Ok(false));
    pin.done();
}

#[test]
fn door_sensor_reports_a_failed_read() {
    let failure = MockError::Io(std::io::ErrorKind::NotConnected);
    let expectations = [PinTransaction::get(State::Low).with_error(failure)];
    let mut pin = PinMock::new(&expectations);
    let mut door = DoorSensor::new(pin.clone(), ActiveLevel::Low);
    assert!(matches!(door.is_open(), Err(InputError::Pin(_))));
    pin.done();
}

#[test]
fn shock_counter_counts_rising_edges_until_the_line_is_quiet() {
    use State::{High, Low};
    let levels = [High, Low, High, High, Low, Low];
    let expectations: Vec<_> = levels.iter().map(|&s| PinTransaction::get(s)).collect();
    let mut pin = PinMock::new(&expectations);
    let mut shock = ShockCounter::new(pin.clone(), ActiveLevel::High);
    assert_eq!(shock.poll(), Ok(2));
    assert_eq!(shock.take(), 2);
    assert_eq!(shock.take(), 0);
    pin.done();
}

#[test]
fn shock_counter_on_an_idle_line_reads_twice() {
    let expectations = [
        PinTransaction::get(State::Low),
        PinTransaction::get(State::Low),
    ];
    let mut pin = PinMock::new(&expectations);
    let mut shock = ShockCounter::new(pin.clone(), ActiveLevel::High);
    assert_eq!(shock.poll(), Ok(0));
    pin.done();
}

/// A battery monitor returning scripted readings.
struct ScriptedBattery(Vec<Result<u16, BatteryError>>);

impl BatteryMonitor for ScriptedBattery {
    fn battery_mv(&mut self) -> Result<u16, BatteryError> {
        self.0.remove(0)
    }
}

#[test]
fn board_sample_reads_every_sensor_in_order() {
    let i2c_expectations = measure_transactions(answer(0x6666, 29_360));
    let mut i2c = I2cMock::new(&i2c_expectations);
    let mut delay = CheckedDelay::new(&[DelayTransaction::delay_ms(9)]);
    let uart_expectations = [
        SerialTransaction::read_many(GGA),
        SerialTransaction::read_error(nb::Error::WouldBlock),
    ];
    let mut uart = SerialMock::new(&uart_expectations);
    // Shock: one closure then quiet; door: closed (high with the NC reed switch).
    let shock_expectations = [
        PinTransaction::get(State::High),
        PinTransaction::get(State::Low),
        PinTransaction::get(State::Low),
    ];
    let mut shock = PinMock::new(&shock_expectations);
    let mut door = PinMock::new(&[PinTransaction::get(State::High)]);
    let mut battery = ScriptedBattery(vec![Ok(3987)]);
    let mut board = ColdChainLogger::new(
        LoggerPeripherals {
            i2c: &mut i2c,
            delay: &mut delay,
            gnss_uart: &mut uart,
            door: door.clone(),
            shock: shock.clone(),
            battery: &mut battery,
        },
        LoggerConfig::default(),
    );
    assert_eq!(
        board.sample(),
        Ok(Sample {
            temperature_centi_c: 2500,
            humidity_centi_pct: 5000,
            position: Some(POSITION),
            door_open: false,
            shock_events: 1,
            battery_mv: 3987,
        })
    );
    assert_eq!(board.diagnostics().samples, 1);
    drop(board);
    i2c.done();
    delay.done();
    uart.done();
    shock.done();
    door.done();
}

#[test]
fn board_sample_that_fails_keeps_the_fix_and_shock_count_for_the_next_one() {
    let i2c_expectations = [
        I2cTransaction::write(ADDRESS, vec![0xFD]),
        I2cTransaction::read(ADDRESS, answer(0x6666, 29_360)),
        I2cTransaction::write(ADDRESS, vec![0xFD]),
        I2cTransaction::read(ADDRESS, answer(0x6666, 29_360)),
    ];
    let mut i2c = I2cMock::new(&i2c_expectations);
    let mut delay =
        CheckedDelay::new(&[DelayTransaction::delay_ms(9), DelayTransaction::delay_ms(9)]);
    let uart_expectations = [
        SerialTransaction::read_many(GGA),
        SerialTransaction::read_error(nb::Error::WouldBlock),
        SerialTransaction::read_error(nb::Error::WouldBlock),
    ];
    let mut uart = SerialMock::new(&uart_expectations);
    use State::{High, Low};
    let shock_expectations: Vec<_> = [High, Low, Low, Low, Low]
        .iter()
        .map(|&s| PinTransaction::get(s))
        .collect();
    let mut shock = PinMock::new(&shock_expectations);
    let mut door = PinMock::new(&[PinTransaction::get(Low), PinTransaction::get(Low)]);
    let mut battery = ScriptedBattery(vec![Err(BatteryError::Conversion), Ok(3700)]);
    let mut board = ColdChainLogger::new(
        LoggerPeripherals {
            i2c: &mut i2c,
            delay: &mut delay,
            gnss_uart: &mut uart,
            door: door.clone(),
            shock: shock.clone(),
            battery: &mut battery,
        },
        LoggerConfig::default(),
    );
    assert_eq!(
        board.sample(),
        Err(BoardError::Battery(BatteryError::Conversion))
    );
    let sample = board.sample().unwrap();
    assert_eq!(sample.position, Some(POSITION));
    assert_eq!(sample.shock_events, 1);
    assert!(sample.door_open);
    assert_eq!(sample.battery_mv, 3700);
    let diagnostics = board.diagnostics();
    assert_eq!((diagnostics.samples, diagnostics.sample_failures), (1, 1));
    drop(board);
    i2c.done();
    delay.done();
    uart.done();
    shock.done();
    door.done();
}

#[test]
fn board_sample_fails_with_a_typed_error_on_a_sensor_nack() {
    let nack = I2cErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let i2c_expectations = [
        I2cTransaction::write(ADDRESS, vec![0xFD]),
        I2cTransaction::read(ADDRESS, vec![0; 6]).with_error(nack),
    ];
    let mut i2c = I2cMock::new(&i2c_expectations);
    let mut delay = CheckedDelay::new(&[DelayTransaction::delay_ms(9)]);
    let mut uart = SerialMock::new(&[SerialTransaction::read_error(nb::Error::WouldBlock)]);
    let mut shock = PinMock::new(&[
        PinTransaction::get(State::Low),
        PinTransaction::get(State::Low),
    ]);
    let mut door = PinMock::new(&[]);
    let mut battery = ScriptedBattery(vec![]);
    let mut board = ColdChainLogger::new(
        LoggerPeripherals {
            i2c: &mut i2c,
            delay: &mut delay,
            gnss_uart: &mut uart,
            door: door.clone(),
            shock: shock.clone(),
            battery: &mut battery,
        },
        LoggerConfig::default(),
    );
    assert_eq!(
        board.sample(),
        Err(BoardError::Sensor(SensorError::Bus(nack)))
    );
    drop(board);
    i2c.done();
    delay.done();
    uart.done();
    shock.done();
    door.done();
}
