//! Plot geolocation as the EU Deforestation Regulation (EU) 2023/1115 asks for it (Art. 2(28),
//! Art. 9(1)(d)): WGS84 latitude and longitude with six decimal digits; a plot of more than
//! 4 hectares is described by a polygon, a smaller one may be a single point. Input is GeoJSON
//! (RFC 7946: positions are `[longitude, latitude]`), as the EU information system takes it.
//!
//! Coordinates are kept as whole microdegrees (six decimals exactly: about 0.11 m), so a
//! stored plot has one spelling. A polygon is one closed outer ring without holes: at least
//! three distinct corners, no repeated consecutive corner, no two edges crossing or touching
//! except neighbours at their shared corner, and a non-zero area. Its area is computed on the
//! authalic sphere (radius 6,371,007.2 m) with the line-integral form of the spherical excess,
//! well within 0.5 % for farm plots.

use std::f64::consts::PI;

use serde_json::{Value, json};

/// Area above which a plot must be a polygon, in square metres (4 ha).
pub const POINT_PLOT_AREA_MAX_M2: f64 = 40_000.0;
/// Most corners of one polygon.
pub const POLYGON_CORNERS_MAX: usize = 5_000;
/// Radius of the sphere with the WGS84 ellipsoid's area, in metres.
const AUTHALIC_RADIUS_M: f64 = 6_371_007.2;

/// A WGS84 position in whole microdegrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Longitude × 10⁶, −180,000,000..=180,000,000.
    pub lon_e6: i32,
    /// Latitude × 10⁶, −90,000,000..=90,000,000.
    pub lat_e6: i32,
}

/// A plot's geolocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlotGeometry {
    /// One point (plots of at most 4 ha).
    Point(Position),
    /// The corners of the outer ring, without repeating the first at the end.
    Polygon(Vec<Position>),
}

/// Why a geometry is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// Not GeoJSON of a kind taken here.
    #[error("{0}")]
    Shape(String),
    /// A coordinate is not a number in range.
    #[error("position {index}: {reason}")]
    Coordinate {
        /// Which position (0-based, in the ring).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The ring is not closed (first and last positions differ).
    #[error("the polygon's ring is not closed: its last position must repeat its first")]
    NotClosed,
    /// Fewer than three distinct corners, or too many.
    #[error("a polygon has 3 to {POLYGON_CORNERS_MAX} distinct corners; this one has {0}")]
    Corners(usize),
    /// The same corner twice in a row.
    #[error("corner {0} repeats the corner before it")]
    RepeatedCorner(usize),
    /// Two edges cross or touch.
    #[error("edges {0} and {1} cross or touch: the polygon intersects itself")]
    SelfIntersection(usize, usize),
    /// The corners enclose no area.
    #[error("the polygon encloses no area")]
    NoArea,
    /// A point was given for a plot that must be a polygon.
    #[error(
        "a plot of {area_ha} ha must be described by a polygon (plots over 4 ha, \
         Regulation (EU) 2023/1115 Art. 9(1)(d))"
    )]
    PolygonRequired {
        /// The declared area.
        area_ha: f64,
    },
}

impl Position {
    /// A position from degrees, rounded to six decimals.
    ///
    /// # Errors
    /// [`GeoError::Coordinate`] for a non-finite or out-of-range value.
    pub fn from_degrees(index: usize, lon: f64, lat: f64) -> Result<Self, GeoError> {
        let bad = |reason: String| GeoError::Coordinate { index, reason };
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(bad(format!("longitude {lon} is not within -180..=180")));
        }
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(bad(format!("latitude {lat} is not within -90..=90")));
        }
        let micro = |degrees: f64| {
            // In range and rounded: the conversion is exact.
            #[allow(clippy::cast_possible_truncation)]
            let value = (degrees * 1e6).round() as i32;
            value
        };
        Ok(Self {
            lon_e6: micro(lon),
            lat_e6: micro(lat),
        })
    }

    fn radians(self) -> (f64, f64) {
        (
            f64::from(self.lon_e6) * 1e-6 * PI / 180.0,
            f64::from(self.lat_e6) * 1e-6 * PI / 180.0,
        )
    }

    fn degrees_json(self) -> Value {
        // Six decimals exactly, as numbers.
        let text = format!(
            "[{}.{:06},{}.{:06}]",
            signed_whole(self.lon_e6),
            self.lon_e6.unsigned_abs() % 1_000_000,
            signed_whole(self.lat_e6),
            self.lat_e6.unsigned_abs() % 1_000_000
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// The whole-degree part of microdegrees with its sign (`-0` for −0.5°).
fn signed_whole(e6: i32) -> String {
    let whole = e6.unsigned_abs() / 1_000_000;
    if e6 < 0 {
        format!("-{whole}")
    } else {
        whole.to_string()
    }
}

fn position(index: usize, value: &Value) -> Result<Position, GeoError> {
    let pair = value.as_array().filter(|a| a.len() == 2 || a.len() == 3);
    let numbers = pair.and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
    let Some((lon, lat)) = numbers else {
        return Err(GeoError::Coordinate {
            index,
            reason: "a position is [longitude, latitude] in decimal degrees".to_owned(),
        });
    };
    Position::from_degrees(index, lon, lat)
}

/// Whether segments p1-p2 and p3-p4 intersect (touching included), in the plane of
/// microdegrees (exact integer arithmetic).
fn segments_intersect(p1: Position, p2: Position, p3: Position, p4: Position) -> bool {
    fn orient(a: Position, b: Position, c: Position) -> i128 {
        let (ax, ay) = (i128::from(a.lon_e6), i128::from(a.lat_e6));
        let (bx, by) = (i128::from(b.lon_e6), i128::from(b.lat_e6));
        let (cx, cy) = (i128::from(c.lon_e6), i128::from(c.lat_e6));
        ((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)).signum()
    }
    fn on_segment(a: Position, b: Position, c: Position) -> bool {
        c.lon_e6 >= a.lon_e6.min(b.lon_e6)
            && c.lon_e6 <= a.lon_e6.max(b.lon_e6)
            && c.lat_e6 >= a.lat_e6.min(b.lat_e6)
            && c.lat_e6 <= a.lat_e6.max(b.lat_e6)
    }
    let (d1, d2) = (orient(p3, p4, p1), orient(p3, p4, p2));
    let (d3, d4) = (orient(p1, p2, p3), orient(p1, p2, p4));
    if d1 * d2 < 0 && d3 * d4 < 0 {
        return true;
    }
    (d1 == 0 && on_segment(p3, p4, p1))
        || (d2 == 0 && on_segment(p3, p4, p2))
        || (d3 == 0 && on_segment(p1, p2, p3))
        || (d4 == 0 && on_segment(p1, p2, p4))
}

impl PlotGeometry {
    /// Reads a GeoJSON `Point` or `Polygon` geometry (a `Feature` is unwrapped).
    ///
    /// # Errors
    /// [`GeoError`] saying what is wrong.
    pub fn from_geojson(value: &Value) -> Result<Self, GeoError> {
        let geometry = if value["type"] == "Feature" {
            &value["geometry"]
        } else {
            value
        };
        let coordinates = &geometry["coordinates"];
        match geometry["type"].as_str() {
            Some("Point") => Ok(Self::Point(position(0, coordinates)?)),
            Some("Polygon") => {
                let rings = coordinates.as_array().ok_or_else(|| {
                    GeoError::Shape("a Polygon's coordinates are a list of rings".to_owned())
                })?;
                match rings.len() {
                    1 => {}
                    0 => return Err(GeoError::Shape("the Polygon has no ring".to_owned())),
                    _ => {
                        return Err(GeoError::Shape(
                            "holes are not taken: describe the plot by its outer ring".to_owned(),
                        ));
                    }
                }
                let ring = rings[0]
                    .as_array()
                    .ok_or_else(|| GeoError::Shape("a ring is a list of positions".to_owned()))?;
                if ring.len() > POLYGON_CORNERS_MAX + 1 {
                    return Err(GeoError::Corners(ring.len() - 1));
                }
                let mut corners = ring
                    .iter()
                    .enumerate()
                    .map(|(i, p)| position(i, p))
                    .collect::<Result<Vec<_>, _>>()?;
                if corners.len() < 2 || corners.first() != corners.last() {
                    return Err(GeoError::NotClosed);
                }
                corners.pop();
                Self::polygon(corners)
            }
            Some(other) => Err(GeoError::Shape(format!(
                "a plot is a GeoJSON Point or Polygon, not {other}"
            ))),
            None => Err(GeoError::Shape(
                "not a GeoJSON geometry: no \"type\"".to_owned(),
            )),
        }
    }

    /// A polygon from its corners (the ring without its closing repeat), checked.
    ///
    /// # Errors
    /// [`GeoError`] for too few or too many corners, a repeated corner, a self-intersection or
    /// no area.
    pub fn polygon(corners: Vec<Position>) -> Result<Self, GeoError> {
        let n = corners.len();
        if !(3..=POLYGON_CORNERS_MAX).contains(&n) {
            return Err(GeoError::Corners(n));
        }
        for i in 0..n {
            if corners[i] == corners[(i + 1) % n] {
                return Err(GeoError::RepeatedCorner((i + 1) % n));
            }
        }
        // Edge i runs from corner i to corner i+1. Neighbouring edges share a corner and are
        // not compared; every other pair must be disjoint.
        for i in 0..n {
            for j in (i + 2)..n {
                if i == 0 && j == n - 1 {
                    continue;
                }
                if segments_intersect(
                    corners[i],
                    corners[(i + 1) % n],
                    corners[j],
                    corners[(j + 1) % n],
                ) {
                    return Err(GeoError::SelfIntersection(i, j));
                }
            }
        }
        let polygon = Self::Polygon(corners);
        if polygon.area_m2() <= 0.0 {
            return Err(GeoError::NoArea);
        }
        Ok(polygon)
    }

    /// The enclosed area in square metres (0 for a point).
    #[must_use]
    pub fn area_m2(&self) -> f64 {
        let Self::Polygon(corners) = self else {
            return 0.0;
        };
        let n = corners.len();
        let mut sum = 0.0;
        for i in 0..n {
            let (lon1, lat1) = corners[i].radians();
            let (lon2, lat2) = corners[(i + 1) % n].radians();
            let mut dlon = lon2 - lon1;
            // Edges never span more than half the globe: take the short way round.
            if dlon > PI {
                dlon -= 2.0 * PI;
            } else if dlon < -PI {
                dlon += 2.0 * PI;
            }
            sum += dlon * (2.0 + lat1.sin() + lat2.sin());
        }
        (sum * AUTHALIC_RADIUS_M * AUTHALIC_RADIUS_M / 2.0).abs()
    }

    /// Checks the regulation's rule for a plot of `declared_area_ha` hectares: over 4 ha, a
    /// polygon.
    ///
    /// # Errors
    /// [`GeoError::PolygonRequired`] for a point describing a larger plot.
    pub fn check_plot_area(&self, declared_area_ha: f64) -> Result<(), GeoError> {
        if matches!(self, Self::Point(_)) && declared_area_ha * 10_000.0 > POINT_PLOT_AREA_MAX_M2 {
            return Err(GeoError::PolygonRequired {
                area_ha: declared_area_ha,
            });
        }
        Ok(())
    }

    /// The geometry as GeoJSON, six decimals per coordinate, the ring closed.
    #[must_use]
    pub fn to_geojson(&self) -> Value {
        match self {
            Self::Point(p) => json!({ "type": "Point", "coordinates": p.degrees_json() }),
            Self::Polygon(corners) => {
                let mut ring: Vec<Value> = corners.iter().map(|p| p.degrees_json()).collect();
                if let Some(first) = corners.first() {
                    ring.push(first.degrees_json());
                }
                json!({ "type": "Polygon", "coordinates": [ring] })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polygon(ring: &[[f64; 2]]) -> Result<PlotGeometry, GeoError> {
        PlotGeometry::from_geojson(&json!({ "type": "Polygon", "coordinates": [ring] }))
    }

    #[test]
    fn a_square_kilometre_at_the_equator_is_about_100_hectares() {
        // 0.008983° of longitude and latitude ≈ 1 km at the equator on the authalic sphere.
        let side = 1_000.0 / (AUTHALIC_RADIUS_M * PI / 180.0);
        let plot = polygon(&[
            [0.0, 0.0],
            [side, 0.0],
            [side, side],
            [0.0, side],
            [0.0, 0.0],
        ])
        .expect("a square");
        let area = plot.area_m2();
        assert!((area - 1_000_000.0).abs() < 1_000.0, "{area}");
        // The same square at 60° north covers half the longitude span per metre.
        let north = polygon(&[
            [10.0, 60.0],
            [10.0 + 2.0 * side, 60.0],
            [10.0 + 2.0 * side, 60.0 + side],
            [10.0, 60.0 + side],
            [10.0, 60.0],
        ])
        .expect("a square");
        assert!(
            (north.area_m2() - 1_000_000.0).abs() < 10_000.0,
            "{}",
            north.area_m2()
        );
    }

    #[test]
    fn a_mango_orchard_in_yunnan_round_trips_with_six_decimals() {
        let ring = [
            [100.451234, 21.957801],
            [100.453999, 21.957812],
            [100.4540004, 21.960004],
            [100.451201, 21.959990],
            [100.451234, 21.957801],
        ];
        let plot = polygon(&ring).expect("an orchard");
        let hectares = plot.area_m2() / 10_000.0;
        assert!((6.0..8.0).contains(&hectares), "{hectares} ha");
        let json = plot.to_geojson();
        assert_eq!(
            json["coordinates"][0][2][0].to_string(),
            "100.454",
            "rounded to 6 decimals"
        );
        assert_eq!(PlotGeometry::from_geojson(&json).expect("reads back"), plot);
        plot.check_plot_area(hectares)
            .expect("a polygon may be any size");
    }

    #[test]
    fn bad_geometries_are_refused_with_the_reason() {
        type Expect = fn(&GeoError) -> bool;
        let cases: Vec<(Value, Expect)> = vec![
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1]]]}),
                |e| *e == GeoError::NotClosed,
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[0,0]]]}),
                |e| matches!(e, GeoError::Corners(2)),
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,1],[1,0],[0,1],[0,0]]]}),
                |e| matches!(e, GeoError::SelfIntersection(..)),
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,0],[0,1],[0,0]]]}),
                |e| matches!(e, GeoError::RepeatedCorner(2)),
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[2,0],[0,0]]]}),
                |e| matches!(e, GeoError::SelfIntersection(..) | GeoError::NoArea),
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]], [[0.1,0.1],[0.2,0.1],[0.2,0.2],[0.1,0.1]]]}),
                |e| matches!(e, GeoError::Shape(_)),
            ),
            (json!({"type": "Point", "coordinates": [181.0, 0.0]}), |e| {
                matches!(e, GeoError::Coordinate { .. })
            }),
            (json!({"type": "Point", "coordinates": [0.0, -90.5]}), |e| {
                matches!(e, GeoError::Coordinate { .. })
            }),
            (json!({"type": "Point", "coordinates": ["0", "0"]}), |e| {
                matches!(e, GeoError::Coordinate { .. })
            }),
            (
                json!({"type": "LineString", "coordinates": [[0,0],[1,1]]}),
                |e| matches!(e, GeoError::Shape(_)),
            ),
            (json!({"coordinates": [0, 0]}), |e| {
                matches!(e, GeoError::Shape(_))
            }),
        ];
        for (value, expected) in cases {
            let error = PlotGeometry::from_geojson(&value).expect_err(&value.to_string());
            assert!(expected(&error), "{value}: {error}");
        }
    }

    #[test]
    fn a_point_describes_plots_of_at_most_four_hectares() {
        let point = PlotGeometry::from_geojson(&json!({
            "type": "Feature",
            "geometry": { "type": "Point", "coordinates": [100.451234, 21.957801] }
        }))
        .expect("a point");
        point.check_plot_area(4.0).expect("4 ha may be a point");
        assert!(matches!(
            point.check_plot_area(4.01),
            Err(GeoError::PolygonRequired { .. })
        ));
        assert_eq!(
            point.to_geojson(),
            json!({ "type": "Point", "coordinates": [100.451234, 21.957801] })
        );
        let south_west = Position::from_degrees(0, -0.5, -0.000001).expect("in range");
        assert_eq!(
            PlotGeometry::Point(south_west).to_geojson()["coordinates"].to_string(),
            "[-0.5,-1e-6]"
        );
    }
}
