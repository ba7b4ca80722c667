//! The simulated world: a reefer container with its cargo air, its refrigeration unit, its door,
//! its logger's battery, and where it is on its route — advanced in fixed physics ticks.
//!
//! Physics (one explicit Euler step per [`TICK_S`] seconds of simulated time):
//!
//! - Heat leaks in through the insulated walls: `dT/dt += (T_amb - T) / tau_insulation`, with a
//!   time constant of a loaded, pre-cooled 40' reefer (about a day, so an unpowered container
//!   warms by under 1 °C/h in tropical air, as carriers' "power-off" guidance assumes).
//! - An open door exchanges air fast: `dT/dt += (T_amb - T) / tau_door` (half an hour).
//! - The unit's controller runs the compressor with hysteresis around the set point plus a slow
//!   controller drift (an Ornstein-Uhlenbeck process); cooling removes a fixed °C/h.
//! - The unit fails now and then (Poisson), stays off for a random 4-30 h, then is restored; it
//!   is also off while the container is unplugged between truck, yard and ship.
//! - Humidity: the cargo keeps the air near the set-point humidity (vapour pressure relaxes to
//!   `RH_set * e_sat(T)` within hours); an open door mixes in outside air. RH = e / e_sat(T),
//!   e_sat from the Magnus formula (WMO-No. 8, 2018, Annex 4.B).
//! - Ambient air: warmer nearer the equator, a daily cycle by local solar time.
//! - Battery: charge drawn at the logger's average current (see the crate README's power budget),
//!   voltage from a Li-ion open-circuit curve, a little lower in the cold.
//! - Shocks: Poisson closures of the shock switch, most on roads and in port yards.
//!
//! Every tick draws the same number of random numbers, from its own ChaCha8 stream, so the state
//! at time t depends only on the seed and t — not on how the caller slices time. Sensor noise
//! and GNSS output have their own streams and depend on the calls made.

use heapless::Deque;
use libm::{exp, log, sqrt};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::{
    SimError,
    nmea_out::{self, Epoch, EpochFix},
    route::{LegMode, Route, RoutePhase, RoutePlan, RouteState, YUNNAN_TO_ROTTERDAM},
};
use crate::sample::Position;

/// Simulated seconds per physics step.
pub const TICK_S: u64 = 10;
/// Bytes the simulated UART holds before it overruns (a DMA ring of this size on the MCU).
pub const UART_FIFO_BYTES: usize = 512;
/// Most receiver epochs (1 Hz) queued by one advance; older output is what a duty-cycled
/// receiver would not have sent.
pub const EPOCHS_PER_ADVANCE_MAX: u64 = 2;

/// 2025-07-01T00:00:00Z: mango season in the Yuanjiang valley.
pub const DEFAULT_START_UNIX_S: u64 = 1_751_328_000;

/// Everything that shapes a simulated voyage. [`VoyageProfile::default`] is mangoes from Yunnan
/// to Rotterdam.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoyageProfile {
    /// The route the container travels.
    pub route: Route,
    /// Wall-clock time the simulation starts at (only used for NMEA time and date and for the
    /// daily ambient cycle), Unix seconds.
    pub start_unix_s: u64,
    /// Reefer set point, °C.
    pub setpoint_c: f64,
    /// Relative humidity the cargo holds the air at, %.
    pub setpoint_rh_pct: f64,
    /// Air temperature at the start, °C.
    pub initial_air_c: f64,
    /// Width of the compressor's on/off hysteresis band, °C.
    pub thermostat_band_c: f64,
    /// Cooling rate with the compressor on, °C/h.
    pub cooling_c_per_h: f64,
    /// Time constant of heat leaking through the walls, hours.
    pub insulation_tau_h: f64,
    /// Time constant of air exchange through an open door, hours.
    pub door_tau_h: f64,
    /// Standard deviation of the controller's drift around the set point, °C.
    pub drift_sigma_c: f64,
    /// Correlation time of that drift, hours.
    pub drift_tau_h: f64,
    /// Expected unit failures per 1000 days of operation.
    pub unit_failures_per_1000_days: f64,
    /// Shortest failure, hours.
    pub unit_failure_h_min: f64,
    /// Longest failure, hours.
    pub unit_failure_h_max: f64,
    /// Relative humidity of outside air, %.
    pub ambient_rh_pct: f64,
    /// Usable battery capacity, mAh.
    pub battery_capacity_mah: f64,
    /// State of charge at the start, 0..=1.
    pub battery_initial_soc: f64,
    /// Average current the logger draws, µA.
    pub logger_avg_current_ua: f64,
    /// NMEA sentences (per thousand) garbled on the line: a flipped bit or injected noise.
    pub nmea_corruption_per_mille: u16,
}

impl Default for VoyageProfile {
    fn default() -> Self {
        Self::mangoes_yunnan_to_rotterdam()
    }
}

impl VoyageProfile {
    /// Mature-green mangoes, Yuanjiang to Rotterdam.
    ///
    /// Set point 13 °C and 90 %RH: the USDA Agriculture Handbook 66 ("The Commercial Storage of
    /// Fruits, Vegetables, and Florist and Nursery Stocks", mango entry) recommends 13 °C at
    /// 85-90 %RH for mature-green mangoes; below about 10-12 °C they suffer chilling injury,
    /// above about 15 °C they ripen in transit. The average current is the crate README's power
    /// budget (500 µA, its worst case) and the battery two 18650 cells in parallel, derated to
    /// 5,300 mAh usable.
    pub fn mangoes_yunnan_to_rotterdam() -> Self {
        Self {
            route: YUNNAN_TO_ROTTERDAM,
            start_unix_s: DEFAULT_START_UNIX_S,
            setpoint_c: 13.0,
            setpoint_rh_pct: 90.0,
            initial_air_c: 14.0,
            thermostat_band_c: 0.6,
            cooling_c_per_h: 3.0,
            insulation_tau_h: 24.0,
            door_tau_h: 0.5,
            drift_sigma_c: 0.3,
            drift_tau_h: 12.0,
            unit_failures_per_1000_days: 15.0,
            unit_failure_h_min: 4.0,
            unit_failure_h_max: 30.0,
            ambient_rh_pct: 75.0,
            battery_capacity_mah: 5300.0,
            battery_initial_soc: 0.95,
            logger_avg_current_ua: 500.0,
            nmea_corruption_per_mille: 2,
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        let positive = [
            self.thermostat_band_c,
            self.cooling_c_per_h,
            self.insulation_tau_h,
            self.door_tau_h,
            self.drift_tau_h,
            self.unit_failure_h_min,
            self.battery_capacity_mah,
        ];
        if positive.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Err(SimError::InvalidProfile {
                reason: "rates, time constants and capacity must be positive",
            });
        }
        let in_range = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
        if !in_range(self.setpoint_c, -40.0, 40.0) || !in_range(self.initial_air_c, -40.0, 60.0) {
            return Err(SimError::InvalidProfile {
                reason: "temperatures must be within -40..=60 °C",
            });
        }
        if !in_range(self.setpoint_rh_pct, 0.0, 100.0) || !in_range(self.ambient_rh_pct, 0.0, 100.0)
        {
            return Err(SimError::InvalidProfile {
                reason: "humidities must be within 0..=100 %",
            });
        }
        if !in_range(self.drift_sigma_c, 0.0, 10.0)
            || !in_range(self.unit_failures_per_1000_days, 0.0, 1000.0)
            || !in_range(
                self.unit_failure_h_max,
                self.unit_failure_h_min,
                24.0 * 365.0,
            )
            || !in_range(self.battery_initial_soc, 0.0, 1.0)
            || !in_range(self.logger_avg_current_ua, 0.0, 1_000_000.0)
            || self.nmea_corruption_per_mille > 1000
        {
            return Err(SimError::InvalidProfile {
                reason: "a profile value is out of range",
            });
        }
        Ok(())
    }
}

/// What is really going on, for tests and dashboards (the logger only sees it through sensors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorldTruth {
    /// Simulated time, ms since the start.
    pub t_ms: u64,
    /// Air temperature at the logger, °C.
    pub air_c: f64,
    /// Relative humidity at the logger, %.
    pub rh_pct: f64,
    /// Outside air temperature, °C.
    pub ambient_c: f64,
    /// True position (the receiver adds its own error).
    pub position: Option<Position>,
    /// Route phase.
    pub phase: RoutePhase,
    /// Door open.
    pub door_open: bool,
    /// The unit is powered and has not failed.
    pub unit_running: bool,
    /// The compressor is cooling.
    pub compressor_on: bool,
    /// Battery state of charge, 0..=1.
    pub battery_soc: f64,
    /// Battery open-circuit voltage, mV.
    pub battery_mv: u16,
    /// Door openings so far.
    pub door_openings: u32,
    /// Unit failures so far (route unplugging not included).
    pub unit_failures: u32,
    /// Shock closures generated so far.
    pub shocks: u32,
}

/// The state of the simulated SHT4x between its command and its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sht4xState {
    /// The 6 bytes (2 words with CRC) the next read returns.
    pub(crate) response: Option<[u8; 6]>,
    /// Bus time (ns of delay) at which the response is ready.
    pub(crate) ready_at_ns: u64,
}

/// A four-stream deterministic random source.
#[derive(Debug, Clone)]
struct Streams {
    physics: ChaCha8Rng,
    sensor: ChaCha8Rng,
    gnss: ChaCha8Rng,
    battery: ChaCha8Rng,
}

fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id);
    rng
}

/// Uniform in [0, 1).
pub(crate) fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "53 bits fit an f64 mantissa exactly"
    )]
    let mantissa = (rng.next_u64() >> 11) as f64;
    mantissa * (1.0 / 9_007_199_254_740_992.0)
}

/// Standard normal (Box-Muller); always draws two uniforms.
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = uniform(rng);
    let u2 = uniform(rng);
    sqrt(-2.0 * log(1.0 - u1)) * libm::cos(core::f64::consts::TAU * u2)
}

/// Saturation vapour pressure over water, hPa (Magnus, WMO-No. 8 (2018) Annex 4.B).
pub fn saturation_vapour_hpa(t_c: f64) -> f64 {
    6.112 * exp(17.62 * t_c / (243.12 + t_c))
}

/// Li-ion open-circuit voltage by state of charge (typical NMC 18650 curve, 25 °C).
const OCV_CURVE: [(f64, f64); 12] = [
    (0.00, 3000.0),
    (0.05, 3300.0),
    (0.10, 3450.0),
    (0.20, 3560.0),
    (0.30, 3620.0),
    (0.40, 3680.0),
    (0.50, 3730.0),
    (0.60, 3800.0),
    (0.70, 3880.0),
    (0.80, 3960.0),
    (0.90, 4060.0),
    (1.00, 4170.0),
];

fn ocv_mv(soc: f64) -> f64 {
    let soc = soc.clamp(0.0, 1.0);
    let mut previous = OCV_CURVE[0];
    for point in OCV_CURVE {
        if soc <= point.0 {
            let span = point.0 - previous.0;
            if span <= 0.0 {
                return point.1;
            }
            return previous.1 + (point.1 - previous.1) * (soc - previous.0) / span;
        }
        previous = point;
    }
    previous.1
}

/// f64 to u16, rounded, clamped to `0..=u16::MAX`.
pub(crate) fn to_u16(value: f64) -> u16 {
    if !value.is_finite() || value <= 0.0 {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "non-negative and finite; `as` saturates at u16::MAX"
    )]
    let rounded = libm::round(value) as u16;
    rounded
}

/// f64 to u64, rounded, clamped to `0..=u64::MAX`.
pub(crate) fn to_u64(value: f64) -> u64 {
    if !value.is_finite() || value <= 0.0 {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "non-negative and finite; `as` saturates at u64::MAX"
    )]
    let rounded = libm::round(value) as u64;
    rounded
}

/// The whole simulated world.
#[derive(Debug, Clone)]
pub struct SimWorld {
    profile: VoyageProfile,
    plan: RoutePlan,
    streams: Streams,
    now_ms: u64,
    physics_s: u64,
    air_c: f64,
    vapour_hpa: f64,
    drift_c: f64,
    compressor_on: bool,
    failed_until_s: Option<u64>,
    forced_failure: bool,
    door_override: Option<bool>,
    door_open: bool,
    battery_used_mah: f64,
    door_openings: u32,
    unit_failures: u32,
    shocks: u32,
    /// Shock closures the simulated pin has still to show.
    pub(crate) shock_pending: u16,
    /// The simulated shock pin is showing a closure now.
    pub(crate) shock_pin_high: bool,
    /// Total delay the board has waited, ns: the SHT4x's notion of elapsed time.
    pub(crate) bus_ns: u64,
    pub(crate) sht4x: Sht4xState,
    /// Sensor calibration offsets drawn once from the seed (within SHT4x typical accuracy).
    pub(crate) sensor_offset_c: f64,
    pub(crate) sensor_offset_rh: f64,
    pub(crate) sensor_serial: u32,
    pub(crate) uart: Deque<u8, UART_FIFO_BYTES>,
    pub(crate) uart_overrun: bool,
    last_epoch_s: Option<u64>,
}

impl SimWorld {
    /// A world at time zero.
    pub fn new(seed: u64, profile: VoyageProfile) -> Result<Self, SimError> {
        profile.validate()?;
        let plan = RoutePlan::new(profile.route)?;
        let mut streams = Streams {
            physics: stream(seed, 1),
            sensor: stream(seed, 2),
            gnss: stream(seed, 3),
            battery: stream(seed, 4),
        };
        let sensor_offset_c = 0.1 * normal(&mut streams.sensor);
        let sensor_offset_rh = 1.0 * normal(&mut streams.sensor);
        let sensor_serial = u32::try_from(streams.sensor.next_u64() >> 32).unwrap_or(0x0BAD_F00D);
        let air_c = profile.initial_air_c;
        Ok(Self {
            vapour_hpa: profile.setpoint_rh_pct / 100.0 * saturation_vapour_hpa(air_c),
            air_c,
            profile,
            plan,
            streams,
            now_ms: 0,
            physics_s: 0,
            drift_c: 0.0,
            compressor_on: false,
            failed_until_s: None,
            forced_failure: false,
            door_override: None,
            door_open: false,
            battery_used_mah: 0.0,
            door_openings: 0,
            unit_failures: 0,
            shocks: 0,
            shock_pending: 0,
            shock_pin_high: false,
            bus_ns: 0,
            sht4x: Sht4xState {
                response: None,
                ready_at_ns: 0,
            },
            sensor_offset_c,
            sensor_offset_rh,
            sensor_serial,
            uart: Deque::new(),
            uart_overrun: false,
            last_epoch_s: None,
        })
    }

    /// The profile the world runs.
    pub fn profile(&self) -> &VoyageProfile {
        &self.profile
    }

    /// The route's timetable.
    pub fn plan(&self) -> &RoutePlan {
        &self.plan
    }

    /// Simulated time, ms since the start.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// End of the voyage (last waypoint's dwell), ms since the start.
    pub fn voyage_end_ms(&self) -> u64 {
        self.plan.end_s().saturating_mul(1000)
    }

    /// Moves simulated time forward to `t_ms` (ms since the start): steps the physics and queues
    /// the receiver's last epochs on the UART.
    pub fn advance_to(&mut self, t_ms: u64) -> Result<(), SimError> {
        if t_ms < self.now_ms {
            return Err(SimError::TimeWentBackwards {
                now_ms: self.now_ms,
                requested_ms: t_ms,
            });
        }
        let t_s = t_ms / 1000;
        while self.physics_s + TICK_S <= t_s {
            self.physics_s += TICK_S;
            self.step(self.physics_s);
        }
        let first_new = self.last_epoch_s.map_or(0, |s| s + 1);
        if t_s >= first_new {
            let from = first_new.max((t_s + 1).saturating_sub(EPOCHS_PER_ADVANCE_MAX));
            for epoch_s in from..=t_s {
                self.emit_epoch(epoch_s);
            }
            self.last_epoch_s = Some(t_s);
        }
        self.now_ms = t_ms;
        Ok(())
    }

    /// Holds the door open (`Some(true)`), closed (`Some(false)`), or lets the route decide.
    /// Takes effect from the next physics tick.
    pub fn set_door_override(&mut self, door: Option<bool>) {
        self.door_override = door;
    }

    /// Fails the refrigeration unit until [`Self::set_unit_failure`] is called with `false`.
    pub fn set_unit_failure(&mut self, failed: bool) {
        self.forced_failure = failed;
    }

    /// What is really going on.
    pub fn truth(&self) -> WorldTruth {
        let route = self.plan.state_at(self.physics_s);
        WorldTruth {
            t_ms: self.now_ms,
            air_c: self.air_c,
            rh_pct: self.rh_pct(),
            ambient_c: self.ambient_c(&route, self.physics_s),
            position: Position::from_degrees(route.lat_deg, route.lon_deg),
            phase: route.phase,
            door_open: self.door_open,
            unit_running: self.unit_running(&route),
            compressor_on: self.compressor_on,
            battery_soc: self.battery_soc(),
            battery_mv: to_u16(ocv_mv(self.battery_soc())),
            door_openings: self.door_openings,
            unit_failures: self.unit_failures,
            shocks: self.shocks,
        }
    }

    pub(crate) fn truth_door_open(&self) -> bool {
        self.door_open
    }

    fn rh_pct(&self) -> f64 {
        (100.0 * self.vapour_hpa / saturation_vapour_hpa(self.air_c)).clamp(0.0, 100.0)
    }

    fn battery_soc(&self) -> f64 {
        let used = self.battery_used_mah / self.profile.battery_capacity_mah;
        (self.profile.battery_initial_soc - used).clamp(0.0, 1.0)
    }

    fn unit_running(&self, route: &RouteState) -> bool {
        !route.unplugged && self.failed_until_s.is_none() && !self.forced_failure
    }

    /// Outside air: about 31 °C in the tropics, 0.35 °C cooler per degree of latitude beyond
    /// 12°, plus a daily cycle peaking mid-afternoon local solar time (smaller at sea).
    fn ambient_c(&self, route: &RouteState, t_s: u64) -> f64 {
        let abs_lat = if route.lat_deg < 0.0 {
            -route.lat_deg
        } else {
            route.lat_deg
        };
        let base = 31.0 - 0.35 * (abs_lat - 12.0).max(0.0);
        let unix_s = self.profile.start_unix_s.saturating_add(t_s);
        #[allow(
            clippy::cast_precision_loss,
            reason = "seconds of a day fit an f64 exactly"
        )]
        let utc_h = (unix_s % 86_400) as f64 / 3600.0;
        let local_h = utc_h + route.lon_deg / 15.0;
        let local_h = local_h - 24.0 * libm::floor(local_h / 24.0);
        let at_sea = matches!(
            route.phase,
            RoutePhase::Leg {
                mode: LegMode::Sea,
                ..
            }
        );
        let amplitude = if at_sea { 1.5 } else { 4.5 };
        base + amplitude * libm::sin(core::f64::consts::TAU * (local_h - 9.0) / 24.0)
    }

    fn step(&mut self, t_s: u64) {
        #[allow(clippy::cast_precision_loss, reason = "a small constant")]
        let dt_s = TICK_S as f64;
        let p = self.profile;
        let route = self.plan.state_at(t_s);
        // The same five draws every tick keep the physics stream aligned with time.
        let u_fail = uniform(&mut self.streams.physics);
        let u_fail_h = uniform(&mut self.streams.physics);
        let n_drift = normal(&mut self.streams.physics);
        let u_shock = uniform(&mut self.streams.physics);

        let door_open = self.door_override.unwrap_or(route.door_open);
        if door_open && !self.door_open {
            self.door_openings = self.door_openings.saturating_add(1);
        }
        self.door_open = door_open;

        match self.failed_until_s {
            Some(until) if t_s >= until => self.failed_until_s = None,
            Some(_) => {}
            None => {
                let per_tick = p.unit_failures_per_1000_days / 1000.0 * dt_s / 86_400.0;
                if u_fail < per_tick {
                    let hours = p.unit_failure_h_min
                        + (p.unit_failure_h_max - p.unit_failure_h_min) * u_fail_h;
                    self.failed_until_s = Some(t_s.saturating_add(to_u64(hours * 3600.0)));
                    self.unit_failures = self.unit_failures.saturating_add(1);
                }
            }
        }
        let running = self.unit_running(&route);

        let drift_tau_s = p.drift_tau_h * 3600.0;
        self.drift_c += -self.drift_c * dt_s / drift_tau_s
            + p.drift_sigma_c * sqrt(2.0 * dt_s / drift_tau_s) * n_drift;

        let target = p.setpoint_c + self.drift_c;
        let half_band = p.thermostat_band_c / 2.0;
        if !running {
            self.compressor_on = false;
        } else if self.air_c > target + half_band {
            self.compressor_on = true;
        } else if self.air_c < target - half_band {
            self.compressor_on = false;
        }

        let ambient = self.ambient_c(&route, t_s);
        let mut d_air = (ambient - self.air_c) * dt_s / (p.insulation_tau_h * 3600.0);
        if door_open {
            d_air += (ambient - self.air_c) * dt_s / (p.door_tau_h * 3600.0);
        }
        if self.compressor_on {
            d_air -= p.cooling_c_per_h * dt_s / 3600.0;
        }
        self.air_c = (self.air_c + d_air).clamp(-40.0, 70.0);

        // Vapour pressure: the cargo pulls it to the set-point humidity within hours.
        const CARGO_RH_TAU_S: f64 = 3.0 * 3600.0;
        let e_sat = saturation_vapour_hpa(self.air_c);
        let e_cargo = p.setpoint_rh_pct / 100.0 * e_sat;
        self.vapour_hpa += (e_cargo - self.vapour_hpa) * dt_s / CARGO_RH_TAU_S;
        if door_open {
            let e_outside = p.ambient_rh_pct / 100.0 * saturation_vapour_hpa(ambient);
            self.vapour_hpa += (e_outside - self.vapour_hpa) * dt_s / (p.door_tau_h * 3600.0);
        }
        self.vapour_hpa = self.vapour_hpa.clamp(0.0, e_sat);

        self.battery_used_mah += p.logger_avg_current_ua / 1000.0 * dt_s / 3600.0;

        let shocks_per_h = match route.phase {
            RoutePhase::Leg {
                mode: LegMode::Road,
                ..
            } => 4.0,
            RoutePhase::Leg {
                mode: LegMode::Sea, ..
            } => 0.3,
            RoutePhase::Leg {
                mode: LegMode::Canal,
                ..
            } => 0.1,
            // Lifts and yard moves while unplugged at a port.
            RoutePhase::Dwell { .. } if route.unplugged => 6.0,
            RoutePhase::Dwell { .. } | RoutePhase::Arrived => 0.05,
        };
        if u_shock < shocks_per_h * dt_s / 3600.0 {
            self.shock_pending = self.shock_pending.saturating_add(1);
            self.shocks = self.shocks.saturating_add(1);
        }
    }

    /// A measurement as the SHT4x would report it now: (temperature ticks, humidity ticks).
    /// `noise_scale` is the repeatability of the command (1 = high), `heat_c` a heater rise.
    pub(crate) fn measure_ticks(&mut self, noise_scale: f64, heat_c: f64) -> (u16, u16) {
        // SHT4x repeatability (datasheet table 1/2, high): 0.04 °C and 0.08 %RH; we use a bit
        // more to show on a dashboard.
        let n_t = normal(&mut self.streams.sensor);
        let n_rh = normal(&mut self.streams.sensor);
        let t = self.air_c + heat_c + self.sensor_offset_c + 0.05 * noise_scale * n_t;
        let e_sat_heated = saturation_vapour_hpa(self.air_c + heat_c);
        let rh = 100.0 * self.vapour_hpa / e_sat_heated
            + self.sensor_offset_rh
            + 0.3 * noise_scale * n_rh;
        let t_ticks = to_u16((t + 45.0) / 175.0 * 65_535.0);
        let rh_ticks = to_u16((rh + 6.0) / 125.0 * 65_535.0);
        (t_ticks, rh_ticks)
    }

    /// The battery voltage the ADC would see now, mV.
    pub(crate) fn measure_battery_mv(&mut self) -> u16 {
        let noise = 3.0 * normal(&mut self.streams.battery);
        // Internal resistance grows in the cold: about -1.5 mV/°C below 20 °C under load.
        let cold = (20.0 - self.air_c).max(0.0) * 1.5;
        to_u16(ocv_mv(self.battery_soc()) - cold + noise)
    }

    fn emit_epoch(&mut self, epoch_s: u64) {
        let route = self.plan.state_at(epoch_s);
        let unix_s = self.profile.start_unix_s.saturating_add(epoch_s);
        let rng = &mut self.streams.gnss;
        let (n_lat, n_lon, u_sats, u_hdop) = (normal(rng), normal(rng), uniform(rng), uniform(rng));
        let (u_corrupt, u_kind, u_pos) = (uniform(rng), uniform(rng), uniform(rng));
        let fix = (!route.indoor).then(|| {
            // About 2 m (1 sigma) horizontal error, as an open-sky u-blox M10 achieves.
            let metres_per_deg = 111_320.0;
            let cos_lat = libm::cos(route.lat_deg.to_radians()).max(0.01);
            let moving = route.speed_kmh > 0.0;
            EpochFix {
                lat_deg: route.lat_deg + 2.0 * n_lat / metres_per_deg,
                lon_deg: route.lon_deg + 2.0 * n_lon / (metres_per_deg * cos_lat),
                alt_m: route.alt_m,
                speed_kmh: route.speed_kmh,
                course_deg: moving.then_some(route.course_deg),
                satellites: 8 + u8::try_from(to_u16(u_sats * 6.0)).unwrap_or(0),
                hdop_centi: 80 + to_u16(u_hdop * 80.0),
            }
        });
        let epoch = Epoch { unix_s, fix };
        let corrupt = u_corrupt * 1000.0 < f64::from(self.profile.nmea_corruption_per_mille);
        for (index, sentence) in [nmea_out::gga(&epoch), nmea_out::rmc(&epoch)]
            .into_iter()
            .enumerate()
        {
            // Formatting cannot fail at these lengths; a failure would only drop the sentence.
            let Ok(sentence) = sentence else { continue };
            let mut bytes = [0u8; nmea_out::SENTENCE_CAPACITY];
            let len = sentence.len();
            bytes[..len].copy_from_slice(sentence.as_bytes());
            if corrupt && index == 0 && len > 8 {
                // Damage one byte between `$` and the checksum (never the line ending).
                let at = 1 + usize::from(to_u16(u_pos * 1000.0)) % (len - 8);
                if u_kind < 0.5 {
                    bytes[at] ^= 0x04;
                } else {
                    bytes[at] = 0xA5;
                }
            }
            for &byte in &bytes[..len] {
                if self.uart.is_full() {
                    let _ = self.uart.pop_front();
                    self.uart_overrun = true;
                }
                // Room was just made.
                let _ = self.uart.push_back(byte);
            }
        }
    }
}
