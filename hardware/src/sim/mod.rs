//! A simulated cold-chain logger board, deterministic from a seed (feature `sim`, no_std, no
//! alloc).
//!
//! One [`SimWorld`] holds the reefer physics, the route and the state of every simulated part.
//! The peripherals ([`SimI2c`], [`SimDelay`], [`SimUart`], [`SimDoorPin`], [`SimShockPin`],
//! [`SimBattery`]) and the [`SimClock`] are handles on it through [`WorldAccess`]:
//!
//! - without `std`, the world lives in a `RefCell` the caller owns (on a microcontroller, a local
//!   in `main`, which never returns) and handles are `&RefCell<SimWorld>`: see
//!   [`SimulatedLogger::on_world`];
//! - with `std`, [`SimulatedLogger::new`] puts it behind `Arc<Mutex<_>>` ([`SharedWorld`]).
//!
//! There is no wall clock: simulated time moves only when the caller calls
//! [`SimClock::advance_to`], and the board samples the world as it is at that time. The same
//! seed and the same calls give the same bytes on every bus.

mod nmea_out;
mod peripherals;
pub mod route;
mod world;

use core::cell::RefCell;

pub use nmea_out::{Epoch, EpochFix, civil_from_days, gga as gga_sentence, rmc as rmc_sentence};
pub use peripherals::{
    SIM_SHT4X_ADDRESS, SimBattery, SimDelay, SimDoorPin, SimI2c, SimShockPin, SimUart,
};
pub use route::{LegMode, Route, RoutePhase, RoutePlan, RouteState, Waypoint, YUNNAN_TO_ROTTERDAM};
pub use world::{
    DEFAULT_START_UNIX_S, EPOCHS_PER_ADVANCE_MAX, SimWorld, TICK_S, UART_FIFO_BYTES, VoyageProfile,
    WorldTruth, saturation_vapour_hpa,
};

use crate::board::{ColdChainLogger, LoggerConfig, LoggerPeripherals};

/// Why the simulation refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SimError {
    /// The route cannot be travelled.
    #[error("invalid route: {reason}")]
    InvalidRoute {
        /// What is wrong.
        reason: &'static str,
    },
    /// A profile value is out of range.
    #[error("invalid voyage profile: {reason}")]
    InvalidProfile {
        /// What is wrong.
        reason: &'static str,
    },
    /// Simulated time only moves forward.
    #[error("simulated time cannot go back from {now_ms} ms to {requested_ms} ms")]
    TimeWentBackwards {
        /// The current simulated time.
        now_ms: u64,
        /// The time asked for.
        requested_ms: u64,
    },
    /// The world was already borrowed (a call made from inside another world call).
    #[error("the simulated world is busy")]
    WorldBusy,
}

/// Shared access to one [`SimWorld`].
pub trait WorldAccess: Clone {
    /// Runs `f` on the world; `None` if the world is busy (already borrowed).
    fn with_world<R>(&self, f: impl FnOnce(&mut SimWorld) -> R) -> Option<R>;
}

impl WorldAccess for &RefCell<SimWorld> {
    fn with_world<R>(&self, f: impl FnOnce(&mut SimWorld) -> R) -> Option<R> {
        let mut world = self.try_borrow_mut().ok()?;
        Some(f(&mut world))
    }
}

/// A world shared between threads (feature `std`).
#[cfg(feature = "std")]
#[derive(Debug, Clone)]
pub struct SharedWorld(std::sync::Arc<std::sync::Mutex<SimWorld>>);

#[cfg(feature = "std")]
impl SharedWorld {
    /// Shares `world`.
    pub fn new(world: SimWorld) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(world)))
    }
}

#[cfg(feature = "std")]
impl WorldAccess for SharedWorld {
    fn with_world<R>(&self, f: impl FnOnce(&mut SimWorld) -> R) -> Option<R> {
        // A panic while holding the lock cannot leave the world half-updated in a way that
        // matters more than losing it, so a poisoned lock is used as is.
        let mut world = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut world))
    }
}

/// The simulated logger board: [`ColdChainLogger`] over the simulated peripherals.
pub type SimBoard<W> = ColdChainLogger<
    SimI2c<W>,
    SimDelay<W>,
    SimUart<W>,
    SimDoorPin<W>,
    SimShockPin<W>,
    SimBattery<W>,
>;

/// The handle that moves simulated time and looks at (or meddles with) the world.
#[derive(Debug, Clone)]
pub struct SimClock<W> {
    world: W,
}

impl<W: WorldAccess> SimClock<W> {
    /// A clock on `world`.
    pub fn new(world: W) -> Self {
        Self { world }
    }

    fn with<R>(&self, f: impl FnOnce(&mut SimWorld) -> R) -> Result<R, SimError> {
        self.world.with_world(f).ok_or(SimError::WorldBusy)
    }

    /// Moves simulated time forward to `t_ms` (ms since the start of the voyage).
    pub fn advance_to(&self, t_ms: u64) -> Result<(), SimError> {
        self.with(|world| world.advance_to(t_ms))?
    }

    /// Moves simulated time forward by `dt_ms`; returns the new time.
    pub fn advance_by(&self, dt_ms: u64) -> Result<u64, SimError> {
        self.with(|world| {
            let t_ms = world.now_ms().saturating_add(dt_ms);
            world.advance_to(t_ms).map(|()| t_ms)
        })?
    }

    /// Simulated time, ms since the start.
    pub fn now_ms(&self) -> Result<u64, SimError> {
        self.with(|world| world.now_ms())
    }

    /// Unix time of the current simulated instant, seconds (for the device's timestamps).
    pub fn now_unix_s(&self) -> Result<u64, SimError> {
        self.with(|world| {
            world
                .profile()
                .start_unix_s
                .saturating_add(world.now_ms() / 1000)
        })
    }

    /// When the voyage ends (the last waypoint's dwell is over), ms since the start.
    pub fn voyage_end_ms(&self) -> Result<u64, SimError> {
        self.with(|world| world.voyage_end_ms())
    }

    /// What is really going on.
    pub fn truth(&self) -> Result<WorldTruth, SimError> {
        self.with(|world| world.truth())
    }

    /// Holds the door open or closed, or (`None`) lets the route decide.
    pub fn set_door_override(&self, door: Option<bool>) -> Result<(), SimError> {
        self.with(|world| world.set_door_override(door))
    }

    /// Fails the refrigeration unit (`true`) until restored (`false`).
    pub fn set_unit_failure(&self, failed: bool) -> Result<(), SimError> {
        self.with(|world| world.set_unit_failure(failed))
    }
}

/// Builds a simulated logger board.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedLogger;

impl SimulatedLogger {
    /// The wiring of the simulated board (SHT4x at 0x44, door open = low, shock = high).
    pub fn config() -> LoggerConfig {
        LoggerConfig::default()
    }

    /// A board and its clock on a world the caller shares (no_std: `&RefCell<SimWorld>`).
    pub fn on_world<W: WorldAccess>(world: W) -> (SimBoard<W>, SimClock<W>) {
        let peripherals = LoggerPeripherals {
            i2c: SimI2c::new(world.clone()),
            delay: SimDelay::new(world.clone()),
            gnss_uart: SimUart::new(world.clone()),
            door: SimDoorPin::new(world.clone()),
            shock: SimShockPin::new(world.clone()),
            battery: SimBattery::new(world.clone()),
        };
        (
            ColdChainLogger::new(peripherals, Self::config()),
            SimClock::new(world),
        )
    }

    /// A board and its clock on a new world from `seed` and `profile` (feature `std`).
    #[cfg(feature = "std")]
    #[allow(
        clippy::new_ret_no_self,
        reason = "the simulated logger is the board and its clock; `new` is the obvious name"
    )]
    pub fn new(
        seed: u64,
        profile: VoyageProfile,
    ) -> Result<(SimBoard<SharedWorld>, SimClock<SharedWorld>), SimError> {
        let world = SharedWorld::new(SimWorld::new(seed, profile)?);
        Ok(Self::on_world(world))
    }
}
