//! Routes the simulated GNSS receiver walks: waypoints, dwell times, legs and their speeds.
//!
//! A [`Route`] is a `'static` list of [`Waypoint`]s, so it needs no allocation. At each waypoint
//! the container may dwell (a packhouse, a port yard, a canal anchorage), during which the door
//! may be opened (loading, inspection) and the reefer may be unplugged (moved between truck,
//! yard and ship); then it travels a straight leg (linear in latitude/longitude) to the next
//! waypoint at the leg's speed. Times are derived from great-circle (haversine) distances.
//!
//! [`YUNNAN_TO_ROTTERDAM`] is the built-in voyage: mangoes packed in Yuanjiang (Yuxi, Yunnan), by
//! road through Mengzi, Wenshan, Baise and Nanning to the Beibu Gulf port of Qinzhou, transhipped
//! in Singapore, then through the Strait of Malacca, past Sri Lanka, the Gulf of Aden, the Red
//! Sea and the Suez Canal, across the Mediterranean and up the Atlantic coast to Rotterdam. Sea
//! legs run at 15-16 knots (slow steaming), the canal at 8 knots, roads at 55-70 km/h; the whole
//! voyage takes about 34 days (the power budget plans for 40). Coordinates are approximate and
//! chosen to stay off land.

use libm::{asin, atan2, cos, sin, sqrt};

use super::SimError;

/// Most waypoints a route may have.
pub const ROUTE_WAYPOINTS_MAX: usize = 48;
/// Fastest leg speed accepted, km/h.
pub const LEG_SPEED_KMH_MAX: f64 = 150.0;
/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// How the container travels on the leg leaving a waypoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegMode {
    /// On a truck (gen-set power, bumps).
    Road,
    /// On a ship.
    Sea,
    /// Through a canal (slow).
    Canal,
}

/// One point of a route, and the leg that leaves it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waypoint {
    /// Place name, for people.
    pub name: &'static str,
    /// Latitude in degrees, north positive.
    pub lat_deg: f64,
    /// Longitude in degrees, east positive.
    pub lon_deg: f64,
    /// Ellipsoidal height for GGA, metres.
    pub alt_m: f64,
    /// Time spent here before leaving, seconds.
    pub dwell_s: u32,
    /// Inside a building while dwelling: the receiver has no fix.
    pub indoor: bool,
    /// The door is open for this long from arrival (loading, inspection, unloading), seconds.
    pub door_open_s: u32,
    /// The reefer is unplugged for this long from arrival (moved between modes), seconds.
    pub unplugged_s: u32,
    /// Speed of the leg to the next waypoint, km/h (ignored on the last waypoint).
    pub leg_speed_kmh: f64,
    /// Mode of the leg to the next waypoint.
    pub leg_mode: LegMode,
}

impl Waypoint {
    /// A point passed without stopping.
    pub const fn pass(
        name: &'static str,
        lat_deg: f64,
        lon_deg: f64,
        leg_speed_kmh: f64,
        leg_mode: LegMode,
    ) -> Self {
        Self {
            name,
            lat_deg,
            lon_deg,
            alt_m: 0.0,
            dwell_s: 0,
            indoor: false,
            door_open_s: 0,
            unplugged_s: 0,
            leg_speed_kmh,
            leg_mode,
        }
    }

    /// The same point with a dwell time.
    pub const fn dwell(mut self, dwell_s: u32) -> Self {
        self.dwell_s = dwell_s;
        self
    }

    /// The same point with the door opened for `door_open_s` from arrival.
    pub const fn door_open(mut self, door_open_s: u32) -> Self {
        self.door_open_s = door_open_s;
        self
    }

    /// The same point with the reefer unplugged for `unplugged_s` from arrival.
    pub const fn unplugged(mut self, unplugged_s: u32) -> Self {
        self.unplugged_s = unplugged_s;
        self
    }

    /// The same point, indoors (no GNSS fix while dwelling).
    pub const fn indoor(mut self) -> Self {
        self.indoor = true;
        self
    }

    /// The same point at an altitude.
    pub const fn alt(mut self, alt_m: f64) -> Self {
        self.alt_m = alt_m;
        self
    }
}

/// A named list of waypoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Route {
    /// Route name, for people.
    pub name: &'static str,
    /// The waypoints, in order.
    pub waypoints: &'static [Waypoint],
}

const H: u32 = 3600;
const SEA_15_KN: f64 = 15.0 * 1.852;
const SEA_16_KN: f64 = 16.0 * 1.852;
const CANAL_8_KN: f64 = 8.0 * 1.852;

/// Yuanjiang (Yunnan) packhouse -> Qinzhou port by road -> Singapore -> Suez -> Rotterdam.
pub const YUNNAN_TO_ROTTERDAM: Route = Route {
    name: "Yuanjiang packhouse (Yunnan) to Rotterdam via Qinzhou, Singapore and Suez",
    waypoints: &[
        Waypoint::pass(
            "Yuanjiang packhouse, Yuxi, Yunnan",
            23.5960,
            101.9980,
            55.0,
            LegMode::Road,
        )
        .alt(420.0)
        .dwell(8 * H)
        .indoor()
        .door_open(3600),
        Waypoint::pass("Mengzi", 23.3630, 103.3810, 65.0, LegMode::Road).alt(1300.0),
        Waypoint::pass("Wenshan", 23.3690, 104.2440, 65.0, LegMode::Road).alt(1270.0),
        Waypoint::pass(
            "Baise, Guangxi (driver rest)",
            23.9020,
            106.6180,
            70.0,
            LegMode::Road,
        )
        .alt(140.0)
        .dwell(H / 2),
        Waypoint::pass("Nanning", 22.8170, 108.3660, 70.0, LegMode::Road).alt(80.0),
        Waypoint::pass(
            "Qinzhou port container terminal",
            21.6150,
            108.6490,
            SEA_15_KN,
            LegMode::Sea,
        )
        .alt(10.0)
        .dwell(3 * 24 * H)
        .unplugged(2 * H)
        .door_open(1800),
        Waypoint::pass(
            "Gulf of Tonkin, west of Hainan",
            19.0000,
            107.8000,
            SEA_15_KN,
            LegMode::Sea,
        ),
        Waypoint::pass("Off Da Nang", 17.0000, 108.5000, SEA_15_KN, LegMode::Sea),
        Waypoint::pass(
            "South China Sea, off Qui Nhon",
            14.0000,
            110.0000,
            SEA_15_KN,
            LegMode::Sea,
        ),
        Waypoint::pass("Off Phan Thiet", 10.0000, 109.0000, SEA_15_KN, LegMode::Sea),
        Waypoint::pass("South China Sea", 5.5000, 106.0000, SEA_15_KN, LegMode::Sea),
        Waypoint::pass(
            "Horsburgh, Singapore Strait",
            1.3300,
            104.4100,
            SEA_15_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "Singapore, Pasir Panjang terminal",
            1.2650,
            103.7600,
            SEA_16_KN,
            LegMode::Sea,
        )
        .dwell(2 * 24 * H)
        .unplugged(H + H / 2),
        Waypoint::pass(
            "Singapore Strait, west",
            1.1500,
            103.4500,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "Strait of Malacca, off Batu Pahat",
            1.9000,
            102.5000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "Strait of Malacca, off Port Klang",
            2.9000,
            100.9000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "Strait of Malacca, north",
            4.6000,
            99.4000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass("Off Aceh", 5.9000, 97.6000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass(
            "North of Weh island",
            6.2000,
            94.8000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "South of Sri Lanka",
            5.7500,
            80.6000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "North of Socotra",
            13.2000,
            54.0000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass("Gulf of Aden", 12.2000, 45.5000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass("Bab-el-Mandeb", 12.6000, 43.3500, SEA_16_KN, LegMode::Sea),
        Waypoint::pass("Red Sea", 20.0000, 38.7000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass("Gulf of Suez", 27.8000, 33.7500, SEA_16_KN, LegMode::Sea),
        Waypoint::pass(
            "Suez anchorage (convoy)",
            29.9000,
            32.5600,
            CANAL_8_KN,
            LegMode::Canal,
        )
        .dwell(10 * H),
        Waypoint::pass("Port Said", 31.2600, 32.3200, SEA_16_KN, LegMode::Sea),
        Waypoint::pass("South of Crete", 34.4000, 24.0000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass("Malta channel", 36.3000, 14.0000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass(
            "Strait of Sicily",
            37.4500,
            11.5000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass("Off Algeria", 37.6000, 5.0000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass(
            "Strait of Gibraltar",
            35.9500,
            -5.6000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "Off Cape St. Vincent",
            36.8000,
            -9.3000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass(
            "Off Cape Finisterre",
            43.2000,
            -9.8000,
            SEA_16_KN,
            LegMode::Sea,
        ),
        Waypoint::pass("Off Ushant", 48.6000, -5.8000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass("Dover Strait", 51.0000, 1.5000, SEA_16_KN, LegMode::Sea),
        Waypoint::pass(
            "Rotterdam, Maasvlakte",
            51.9600,
            4.0500,
            SEA_16_KN,
            LegMode::Sea,
        )
        .alt(5.0)
        .dwell(2 * 24 * H)
        .unplugged(2 * H)
        .door_open(3600),
    ],
};

/// Great-circle distance between two points, km (haversine).
pub fn haversine_km(lat1_deg: f64, lon1_deg: f64, lat2_deg: f64, lon2_deg: f64) -> f64 {
    let (lat1, lat2) = (lat1_deg.to_radians(), lat2_deg.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (lon2_deg - lon1_deg).to_radians();
    let a = sin(dlat / 2.0) * sin(dlat / 2.0)
        + cos(lat1) * cos(lat2) * sin(dlon / 2.0) * sin(dlon / 2.0);
    2.0 * EARTH_RADIUS_KM * asin(sqrt(a.clamp(0.0, 1.0)))
}

/// Initial bearing from the first point to the second, degrees clockwise from north, 0..360.
pub fn initial_bearing_deg(lat1_deg: f64, lon1_deg: f64, lat2_deg: f64, lon2_deg: f64) -> f64 {
    let (lat1, lat2) = (lat1_deg.to_radians(), lat2_deg.to_radians());
    let dlon = (lon2_deg - lon1_deg).to_radians();
    let y = sin(dlon) * cos(lat2);
    let x = cos(lat1) * sin(lat2) - sin(lat1) * cos(lat2) * cos(dlon);
    let bearing = atan2(y, x).to_degrees();
    if bearing < 0.0 {
        bearing + 360.0
    } else {
        bearing
    }
}

/// Where the route is at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutePhase {
    /// Dwelling at a waypoint.
    Dwell {
        /// Index of the waypoint.
        waypoint: usize,
        /// Seconds since arrival.
        elapsed_s: u64,
    },
    /// On the leg leaving a waypoint.
    Leg {
        /// Index of the waypoint the leg leaves.
        from: usize,
        /// How the leg travels.
        mode: LegMode,
    },
    /// Past the last waypoint's dwell: the voyage is over, the container stays there.
    Arrived,
}

/// The route's state at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteState {
    /// Latitude, degrees.
    pub lat_deg: f64,
    /// Longitude, degrees.
    pub lon_deg: f64,
    /// Altitude, metres.
    pub alt_m: f64,
    /// Speed over ground, km/h.
    pub speed_kmh: f64,
    /// Course over ground, degrees (meaningful only while moving).
    pub course_deg: f64,
    /// Dwell, leg or arrived.
    pub phase: RoutePhase,
    /// Inside a building (no GNSS fix).
    pub indoor: bool,
    /// The route wants the door open now.
    pub door_open: bool,
    /// The reefer is unplugged now.
    pub unplugged: bool,
}

/// A validated route with its timetable.
#[derive(Debug, Clone, Copy)]
pub struct RoutePlan {
    route: Route,
    /// Arrival time at each waypoint, seconds from the start.
    arrive_s: [u64; ROUTE_WAYPOINTS_MAX],
    /// Departure time from each waypoint, seconds from the start.
    depart_s: [u64; ROUTE_WAYPOINTS_MAX],
}

impl RoutePlan {
    /// Checks the route and computes its timetable.
    pub fn new(route: Route) -> Result<Self, SimError> {
        let points = route.waypoints;
        if points.len() < 2 {
            return Err(SimError::InvalidRoute {
                reason: "a route needs at least two waypoints",
            });
        }
        if points.len() > ROUTE_WAYPOINTS_MAX {
            return Err(SimError::InvalidRoute {
                reason: "a route has at most 48 waypoints",
            });
        }
        let mut arrive_s = [0; ROUTE_WAYPOINTS_MAX];
        let mut depart_s = [0; ROUTE_WAYPOINTS_MAX];
        let mut t: u64 = 0;
        for (i, point) in points.iter().enumerate() {
            let lat_ok = point.lat_deg.is_finite() && (-90.0..=90.0).contains(&point.lat_deg);
            let lon_ok = point.lon_deg.is_finite() && (-180.0..=180.0).contains(&point.lon_deg);
            if !lat_ok || !lon_ok || !point.alt_m.is_finite() {
                return Err(SimError::InvalidRoute {
                    reason: "waypoint coordinates out of range",
                });
            }
            arrive_s[i] = t;
            t += u64::from(point.dwell_s);
            depart_s[i] = t;
            if let Some(next) = points.get(i + 1) {
                let speed = point.leg_speed_kmh;
                if !speed.is_finite() || speed <= 0.0 || speed > LEG_SPEED_KMH_MAX {
                    return Err(SimError::InvalidRoute {
                        reason: "leg speed must be in 0..=150 km/h",
                    });
                }
                let km = haversine_km(point.lat_deg, point.lon_deg, next.lat_deg, next.lon_deg);
                t += seconds_ceil(km / speed * 3600.0);
            }
        }
        Ok(Self {
            route,
            arrive_s,
            depart_s,
        })
    }

    /// The route.
    pub fn route(&self) -> Route {
        self.route
    }

    /// Arrival time at waypoint `index`, seconds from the start.
    pub fn arrival_s(&self, index: usize) -> Option<u64> {
        (index < self.route.waypoints.len()).then(|| self.arrive_s[index])
    }

    /// When the last waypoint's dwell ends, seconds from the start.
    pub fn end_s(&self) -> u64 {
        self.depart_s[self.route.waypoints.len() - 1]
    }

    /// Where the route is `t_s` seconds after the start.
    pub fn state_at(&self, t_s: u64) -> RouteState {
        let points = self.route.waypoints;
        let last = points.len() - 1;
        // The waypoint most recently arrived at (arrive_s is non-decreasing, arrive_s[0] = 0).
        let index = (0..=last)
            .rev()
            .find(|&i| self.arrive_s[i] <= t_s)
            .unwrap_or(0);
        let point = &points[index];
        if t_s < self.depart_s[index] || index == last {
            let elapsed_s = t_s - self.arrive_s[index];
            let phase = if index == last && t_s >= self.depart_s[index] {
                RoutePhase::Arrived
            } else {
                RoutePhase::Dwell {
                    waypoint: index,
                    elapsed_s,
                }
            };
            return RouteState {
                lat_deg: point.lat_deg,
                lon_deg: point.lon_deg,
                alt_m: point.alt_m,
                speed_kmh: 0.0,
                course_deg: 0.0,
                phase,
                indoor: point.indoor && phase != RoutePhase::Arrived,
                door_open: elapsed_s < u64::from(point.door_open_s),
                unplugged: elapsed_s < u64::from(point.unplugged_s),
            };
        }
        let next = &points[index + 1];
        let leg_s = self.arrive_s[index + 1] - self.depart_s[index];
        #[allow(clippy::cast_precision_loss, reason = "leg times are far below 2^52 s")]
        let fraction = if leg_s == 0 {
            1.0
        } else {
            (t_s - self.depart_s[index]) as f64 / leg_s as f64
        };
        let fraction = fraction.clamp(0.0, 1.0);
        RouteState {
            lat_deg: point.lat_deg + (next.lat_deg - point.lat_deg) * fraction,
            lon_deg: point.lon_deg + (next.lon_deg - point.lon_deg) * fraction,
            alt_m: point.alt_m + (next.alt_m - point.alt_m) * fraction,
            speed_kmh: point.leg_speed_kmh,
            course_deg: initial_bearing_deg(
                point.lat_deg,
                point.lon_deg,
                next.lat_deg,
                next.lon_deg,
            ),
            phase: RoutePhase::Leg {
                from: index,
                mode: point.leg_mode,
            },
            indoor: false,
            door_open: false,
            unplugged: false,
        }
    }
}

/// Rounds a non-negative duration up to whole seconds.
fn seconds_ceil(seconds: f64) -> u64 {
    if !seconds.is_finite() || seconds <= 0.0 {
        return 0;
    }
    let ceil = libm::ceil(seconds);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "positive and finite; no leg on Earth at >= 1 km/h lasts 2^64 s"
    )]
    let whole = ceil as u64;
    whole
}
