//! The simulated logger board: the SHT4x responder's bytes, determinism, physics bounds, door
//! and failure excursions, the route and its speeds, the battery, and fault injection.

use std::cell::RefCell;

use embedded_hal::{
    delay::DelayNs,
    i2c::{ErrorKind as I2cErrorKind, I2c, NoAcknowledgeSource},
};
use embedded_hal_nb::serial::{ErrorKind as SerialErrorKind, Read};
use hardware::{
    BoardError, GnssError, Sample,
    sensirion_crc::crc8,
    sim::{
        RoutePhase, SimClock, SimDelay, SimError, SimI2c, SimUart, SimWorld, SimulatedLogger,
        VoyageProfile, WorldAccess, YUNNAN_TO_ROTTERDAM, route::haversine_km,
    },
};

const FIVE_MIN_MS: u64 = 5 * 60 * 1000;
const HOUR_MS: u64 = 3600 * 1000;

fn world(seed: u64) -> RefCell<SimWorld> {
    RefCell::new(
        SimWorld::new(seed, VoyageProfile::default()).expect("the default profile is valid"),
    )
}

/// Checks both words of a 6-byte SHT4x answer against their CRC-8; returns the words.
fn check_words(bytes: &[u8; 6]) -> (u16, u16) {
    assert_eq!(
        crc8(&bytes[0..2]),
        bytes[2],
        "first word CRC in {bytes:02x?}"
    );
    assert_eq!(
        crc8(&bytes[3..5]),
        bytes[5],
        "second word CRC in {bytes:02x?}"
    );
    (
        u16::from_be_bytes([bytes[0], bytes[1]]),
        u16::from_be_bytes([bytes[3], bytes[4]]),
    )
}

#[test]
fn simulated_sht4x_answers_every_measure_command_with_correct_crcs() {
    let cell = world(7);
    cell.borrow_mut().advance_to(HOUR_MS).unwrap();
    let mut i2c = SimI2c::new(&cell);
    let mut delay = SimDelay::new(&cell);
    for (command, wait_us) in [(0xFD, 8_300), (0xF6, 4_500), (0xE0, 1_600), (0x15, 108_300)] {
        i2c.write(0x44, &[command]).unwrap();
        delay.delay_us(wait_us);
        let mut bytes = [0u8; 6];
        i2c.read(0x44, &mut bytes).unwrap();
        let (t_ticks, rh_ticks) = check_words(&bytes);
        let t = -45.0 + 175.0 * f64::from(t_ticks) / 65535.0;
        let rh = -6.0 + 125.0 * f64::from(rh_ticks) / 65535.0;
        assert!((5.0..30.0).contains(&t), "command {command:#04x}: {t} °C");
        assert!(
            (40.0..=100.0).contains(&rh),
            "command {command:#04x}: {rh} %RH"
        );
    }
    // Serial number: two CRC-protected words, stable for a seed.
    i2c.write(0x44, &[0x89]).unwrap();
    let mut bytes = [0u8; 6];
    i2c.read(0x44, &mut bytes).unwrap();
    check_words(&bytes);
}

#[test]
fn simulated_sht4x_nacks_like_the_real_part() {
    let cell = world(7);
    let mut i2c = SimI2c::new(&cell);
    let mut bytes = [0u8; 6];
    let nack_address = I2cErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    // Nothing asked yet.
    assert_eq!(i2c.read(0x44, &mut bytes), Err(nack_address));
    // Still converting: no delay has passed.
    i2c.write(0x44, &[0xFD]).unwrap();
    assert_eq!(i2c.read(0x44, &mut bytes), Err(nack_address));
    // Not an SHT4x command.
    assert_eq!(
        i2c.write(0x44, &[0x00]),
        Err(I2cErrorKind::NoAcknowledge(NoAcknowledgeSource::Data))
    );
    // Nobody at 0x45.
    assert_eq!(i2c.write(0x45, &[0xFD]), Err(nack_address));
    // Soft reset drops the pending measurement.
    i2c.write(0x44, &[0xFD]).unwrap();
    i2c.write(0x44, &[0x94]).unwrap();
    SimDelay::new(&cell).delay_ms(10);
    assert_eq!(i2c.read(0x44, &mut bytes), Err(nack_address));
}

/// Runs a board for `steps` samples `step_ms` apart; returns samples and raw UART bytes seen.
fn run_board(seed: u64, step_ms: u64, steps: u64) -> Vec<Sample> {
    let (mut board, clock) =
        SimulatedLogger::new(seed, VoyageProfile::default()).expect("the default profile is valid");
    (1..=steps)
        .map(|i| {
            clock.advance_to(i * step_ms).expect("time moves forward");
            board.sample().expect("the simulated board samples")
        })
        .collect()
}

fn drain_uart<W: WorldAccess>(uart: &mut SimUart<W>) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Ok(byte) = uart.read() {
        bytes.push(byte);
    }
    bytes
}

#[test]
fn same_seed_and_same_steps_give_identical_bytes_and_samples() {
    let a = run_board(42, FIVE_MIN_MS, 400);
    let b = run_board(42, FIVE_MIN_MS, 400);
    assert_eq!(a, b);
    let c = run_board(43, FIVE_MIN_MS, 400);
    assert_ne!(a, c, "a different seed gives a different voyage");

    let uart_bytes = |seed| {
        let cell = world(seed);
        let mut uart = SimUart::new(&cell);
        let mut all = Vec::new();
        for i in 1..=50 {
            cell.borrow_mut().advance_to(i * 61_000).unwrap();
            all.extend(drain_uart(&mut uart));
        }
        all
    };
    let bytes = uart_bytes(5);
    assert!(
        bytes.len() > 50 * 100,
        "two epochs of GGA and RMC per advance"
    );
    assert_eq!(bytes, uart_bytes(5));
}

#[test]
fn physics_does_not_depend_on_how_time_is_sliced() {
    let fine = world(9);
    let coarse = world(9);
    let end_ms = 3 * 24 * HOUR_MS + 123_456;
    let mut t = 0;
    while t < end_ms {
        t = (t + 7 * 60 * 1000 + 333).min(end_ms);
        fine.borrow_mut().advance_to(t).unwrap();
    }
    coarse.borrow_mut().advance_to(end_ms).unwrap();
    assert_eq!(fine.borrow().truth(), coarse.borrow().truth());
}

#[test]
fn whole_voyage_stays_within_plausible_bounds() {
    for seed in [1, 2, 3] {
        let (mut board, clock) = SimulatedLogger::new(seed, VoyageProfile::default()).unwrap();
        let end_ms = clock.voyage_end_ms().unwrap();
        let days = end_ms as f64 / 86_400_000.0;
        assert!((34.0..=42.0).contains(&days), "voyage of {days:.1} days");
        let mut t = 0;
        let mut samples = Vec::new();
        let mut shocks_seen: u64 = 0;
        while t < end_ms {
            t += FIVE_MIN_MS;
            clock.advance_to(t).unwrap();
            let sample = board.sample().unwrap();
            shocks_seen += u64::from(sample.shock_events);
            samples.push((t, sample));
        }
        let truth = clock.truth().unwrap();
        assert_eq!(
            shocks_seen,
            u64::from(truth.shocks),
            "every shock closure is counted once"
        );
        for (t, s) in &samples {
            assert!(
                (-500..=4500).contains(&s.temperature_centi_c),
                "seed {seed} t {t}: {s:?}"
            );
            assert!(s.humidity_centi_pct <= 10_000);
            assert!(
                (3300..=4200).contains(&s.battery_mv),
                "seed {seed} t {t}: {s:?}"
            );
        }
        // Most of the time the cargo is within 1.5 °C of the 13 °C set point.
        let in_band = samples
            .iter()
            .filter(|(_, s)| (1150..=1450).contains(&s.temperature_centi_c))
            .count();
        let share = in_band as f64 / samples.len() as f64;
        assert!(
            share > 0.75,
            "seed {seed}: only {share:.2} of samples near the set point"
        );
        // Consecutive fixes never imply an implausible speed.
        let fixes: Vec<_> = samples
            .iter()
            .filter_map(|(t, s)| Some((*t, s.position?)))
            .collect();
        assert!(
            fixes.len() > samples.len() * 9 / 10,
            "the receiver has a fix most of the time"
        );
        for pair in fixes.windows(2) {
            let ((t0, p0), (t1, p1)) = (pair[0], pair[1]);
            let km = haversine_km(p0.lat_deg(), p0.lon_deg(), p1.lat_deg(), p1.lon_deg());
            let kmh = km / ((t1 - t0) as f64 / HOUR_MS as f64);
            assert!(
                kmh < 80.0,
                "seed {seed}: {kmh:.1} km/h between {t0} and {t1}"
            );
        }
        // The battery drains, but a 40-day voyage leaves plenty.
        let first = samples.first().unwrap().1.battery_mv;
        let last = samples.last().unwrap().1.battery_mv;
        assert!(last + 30 < first, "battery {first} mV -> {last} mV");
        assert!(
            truth.battery_soc > 0.5,
            "state of charge {}",
            truth.battery_soc
        );
        assert_eq!(truth.phase, RoutePhase::Arrived);
    }
}

#[test]
fn packhouse_is_indoors_so_there_is_no_fix_there() {
    let samples = run_board(11, FIVE_MIN_MS, 12 * 12);
    // Eight hours in the packhouse, then on the road.
    assert!(samples[..90].iter().all(|s| s.position.is_none()));
    assert!(samples[100..].iter().all(|s| s.position.is_some()));
    // Loading: the door is open during the first hour.
    assert!(samples[..11].iter().all(|s| s.door_open));
    assert!(samples[13..90].iter().all(|s| !s.door_open));
}

#[test]
fn route_passes_its_waypoints() {
    let (mut board, clock) = SimulatedLogger::new(21, VoyageProfile::default()).unwrap();
    let plan = hardware::sim::RoutePlan::new(YUNNAN_TO_ROTTERDAM).unwrap();
    for (index, waypoint) in YUNNAN_TO_ROTTERDAM.waypoints.iter().enumerate() {
        let arrival_ms = plan.arrival_s(index).unwrap() * 1000;
        clock.advance_to(arrival_ms.max(1000)).unwrap();
        let sample = board.sample().unwrap();
        match sample.position {
            None => assert!(waypoint.indoor, "no fix at {}", waypoint.name),
            Some(p) => {
                let km = haversine_km(p.lat_deg(), p.lon_deg(), waypoint.lat_deg, waypoint.lon_deg);
                // One second of travel plus receiver noise.
                assert!(km < 0.05, "{} km from {}", km, waypoint.name);
            }
        }
    }
}

/// Advances to `t_ms` and samples.
fn sample_at<W: WorldAccess>(
    board: &mut hardware::sim::SimBoard<W>,
    clock: &SimClock<W>,
    t_ms: u64,
) -> Sample {
    clock.advance_to(t_ms).expect("time moves forward");
    board.sample().expect("the simulated board samples")
}

#[test]
fn opening_the_door_raises_the_temperature_and_closing_it_recovers() {
    let (mut board, clock) = SimulatedLogger::new(3, VoyageProfile::default()).unwrap();
    // Ten days in: at sea, stable.
    let t0 = 10 * 24 * HOUR_MS;
    let before = sample_at(&mut board, &clock, t0);
    assert!(!before.door_open);
    let openings_before = clock.truth().unwrap().door_openings;
    clock.set_door_override(Some(true)).unwrap();
    let open = sample_at(&mut board, &clock, t0 + HOUR_MS / 2);
    assert!(open.door_open);
    assert!(
        open.temperature_centi_c >= before.temperature_centi_c + 300,
        "{before:?} -> {open:?}"
    );
    clock.set_door_override(Some(false)).unwrap();
    let closed = sample_at(&mut board, &clock, t0 + 8 * HOUR_MS);
    assert!(!closed.door_open);
    assert!(
        (1150..=1450).contains(&closed.temperature_centi_c),
        "{closed:?}"
    );
    assert_eq!(clock.truth().unwrap().door_openings, openings_before + 1);
}

#[test]
fn a_failed_unit_lets_the_cargo_warm_towards_ambient_until_restored() {
    let (mut board, clock) = SimulatedLogger::new(4, VoyageProfile::default()).unwrap();
    let t0 = 12 * 24 * HOUR_MS;
    let before = sample_at(&mut board, &clock, t0);
    clock.set_unit_failure(true).unwrap();
    let warm = sample_at(&mut board, &clock, t0 + 12 * HOUR_MS);
    let truth = clock.truth().unwrap();
    assert!(!truth.unit_running);
    assert!(
        warm.temperature_centi_c > before.temperature_centi_c + 300,
        "{before:?} -> {warm:?}"
    );
    assert!(
        truth.air_c < truth.ambient_c,
        "warms towards ambient, not past it"
    );
    // Warmer air holds more water: relative humidity drops while the unit is off.
    assert!(warm.humidity_centi_pct < before.humidity_centi_pct);
    clock.set_unit_failure(false).unwrap();
    let restored = sample_at(&mut board, &clock, t0 + 24 * HOUR_MS);
    assert!(
        (1150..=1450).contains(&restored.temperature_centi_c),
        "{restored:?}"
    );
}

#[test]
fn garbled_nmea_is_rejected_and_the_fix_comes_from_the_clean_sentence() {
    let profile = VoyageProfile {
        nmea_corruption_per_mille: 1000,
        ..VoyageProfile::default()
    };
    let (mut board, clock) = SimulatedLogger::new(8, profile).unwrap();
    let sample = sample_at(&mut board, &clock, 20 * HOUR_MS);
    // Every GGA is damaged; the RMC of the same epoch still gives the position.
    assert!(sample.position.is_some());
    let gnss = board.diagnostics().gnss;
    assert!(gnss.sentences_rejected >= 1, "{gnss:?}");
}

#[test]
fn unread_uart_bytes_overrun_and_the_board_says_so() {
    let (mut board, clock) = SimulatedLogger::new(8, VoyageProfile::default()).unwrap();
    for i in 1..=4 {
        clock.advance_to(20 * HOUR_MS + i * 1000).unwrap();
    }
    assert_eq!(
        board.poll(),
        Err(BoardError::Gnss(GnssError::Uart(SerialErrorKind::Overrun)))
    );
    // The sample still works and finds a fix after resynchronising.
    clock.advance_to(20 * HOUR_MS + 10_000).unwrap();
    assert!(board.sample().unwrap().position.is_some());
}

#[test]
fn simulated_time_only_moves_forward() {
    let (_board, clock) = SimulatedLogger::new(1, VoyageProfile::default()).unwrap();
    clock.advance_to(10_000).unwrap();
    assert_eq!(
        clock.advance_to(9_999),
        Err(SimError::TimeWentBackwards {
            now_ms: 10_000,
            requested_ms: 9_999
        })
    );
    assert_eq!(clock.advance_by(5_000), Ok(15_000));
    assert_eq!(
        clock.now_unix_s(),
        Ok(hardware::sim::DEFAULT_START_UNIX_S + 15)
    );
}

#[test]
fn invalid_profiles_and_routes_are_refused() {
    let bad = [
        VoyageProfile {
            setpoint_c: f64::NAN,
            ..VoyageProfile::default()
        },
        VoyageProfile {
            insulation_tau_h: 0.0,
            ..VoyageProfile::default()
        },
        VoyageProfile {
            setpoint_rh_pct: 120.0,
            ..VoyageProfile::default()
        },
        VoyageProfile {
            nmea_corruption_per_mille: 1001,
            ..VoyageProfile::default()
        },
    ];
    for profile in bad {
        assert!(matches!(
            SimWorld::new(1, profile),
            Err(SimError::InvalidProfile { .. })
        ));
    }
    let one_point = hardware::sim::Route {
        name: "nowhere",
        waypoints: &YUNNAN_TO_ROTTERDAM.waypoints[..1],
    };
    let profile = VoyageProfile {
        route: one_point,
        ..VoyageProfile::default()
    };
    assert!(matches!(
        SimWorld::new(1, profile),
        Err(SimError::InvalidRoute { .. })
    ));
}

#[test]
fn a_world_in_a_refcell_drives_the_board_without_std_sharing() {
    let cell = world(99);
    let (mut board, clock) = SimulatedLogger::on_world(&cell);
    let sample = sample_at(&mut board, &clock, 9 * HOUR_MS);
    assert!(sample.position.is_some());
    // The same seed behind Arc<Mutex<_>> gives the same sample.
    let (mut shared_board, shared_clock) =
        SimulatedLogger::new(99, VoyageProfile::default()).unwrap();
    assert_eq!(
        sample_at(&mut shared_board, &shared_clock, 9 * HOUR_MS),
        sample
    );
}
