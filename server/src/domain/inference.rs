//! AI adapters as the rest of the server speaks of them: their health and circuit. Plain data.

/// The state of an adapter's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Circuit {
    Closed,
    /// Calls are refused until then.
    Open {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// One trial call at a time decides.
    HalfOpen,
}

/// Health of an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Health {
    /// Not probed yet.
    Unknown,
    Healthy,
    /// Answering, but its circuit is half-open.
    Degraded,
    /// Its health check fails, or its circuit is open.
    Unhealthy,
    Disabled,
}

impl Health {
    /// Name, as events and logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Disabled => "disabled",
        }
    }
}

/// A point of a frame, as fractions of its width and height (origin top-left).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// A region of interest: a closed polygon of at least three points.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Region {
    pub points: Vec<Point>,
}

/// Most regions of one binding, and most points of one region.
pub const MAX_REGIONS: usize = 16;
pub const MAX_REGION_POINTS: usize = 64;
/// Most labels a binding keeps.
pub const MAX_LABELS: usize = 64;

impl Region {
    /// Whether `p` is inside (even-odd rule; a point on an edge may fall either way).
    pub fn contains(&self, p: Point) -> bool {
        let pts = &self.points;
        let mut inside = false;
        let mut j = pts.len().wrapping_sub(1);
        for i in 0..pts.len() {
            let (a, b) = (pts[i], pts[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

/// Checks regions as a request gives them; the message names `field`.
pub fn check_regions(field: &'static str, regions: &[Region]) -> crate::error::Result<()> {
    use crate::error::Error;
    if regions.len() > MAX_REGIONS {
        return Err(Error::invalid(field, format!("{field}: at most {MAX_REGIONS} regions")));
    }
    for (i, r) in regions.iter().enumerate() {
        if r.points.len() < 3 || r.points.len() > MAX_REGION_POINTS {
            return Err(Error::invalid(
                field,
                format!("{field}[{i}] must have 3 to {MAX_REGION_POINTS} points (it has {})", r.points.len()),
            ));
        }
        let unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if let Some(p) = r.points.iter().find(|p| !unit(p.x) || !unit(p.y)) {
            return Err(Error::invalid(
                field,
                format!(
                    "{field}[{i}] has the point ({}, {}) outside the frame: coordinates are within [0, 1]",
                    p.x, p.y
                ),
            ));
        }
    }
    Ok(())
}

/// What a binding keeps of what its adapter finds: labels (empty = all, compared without case), a
/// minimum confidence, and regions the box centre must fall in (empty = the whole frame).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keep {
    pub labels: Vec<String>,
    pub min_confidence: f32,
    pub regions: Vec<Region>,
}

impl Keep {
    /// Whether `f` is kept.
    pub fn keeps(&self, f: &Finding) -> bool {
        if f.confidence < self.min_confidence {
            return false;
        }
        if !self.labels.is_empty() && !self.labels.iter().any(|l| l.eq_ignore_ascii_case(&f.label)) {
            return false;
        }
        let centre = Point { x: f.x + f.width / 2.0, y: f.y + f.height / 2.0 };
        self.regions.is_empty() || self.regions.iter().any(|r| r.contains(centre))
    }
}

/// One thing an adapter reported in a frame (checked: box and confidence within `[0, 1]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    pub label: String,
    pub confidence: f32,
    /// The box: top-left corner and size, as fractions of the frame.
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub track_id: String,
}

/// A finding of one adapter in one frame of a camera, as stored (with an id) or as returned on
/// demand (without).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    pub id: Option<uuid::Uuid>,
    pub camera_id: Option<uuid::Uuid>,
    pub adapter_id: uuid::Uuid,
    pub binding_id: Option<uuid::Uuid>,
    pub task: String,
    /// When the frame was taken (seek recordings there to see it).
    pub frame_time: Option<chrono::DateTime<chrono::Utc>>,
    pub found: Finding,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x0: f32, y0: f32, x1: f32, y1: f32) -> Region {
        Region {
            points: vec![
                Point { x: x0, y: y0 },
                Point { x: x1, y: y0 },
                Point { x: x1, y: y1 },
                Point { x: x0, y: y1 },
            ],
        }
    }

    #[test]
    fn polygon_contains_points_inside_only() {
        let tri = Region { points: vec![Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 0.0 }, Point { x: 0.0, y: 1.0 }] };
        assert!(tri.contains(Point { x: 0.2, y: 0.2 }));
        assert!(!tri.contains(Point { x: 0.8, y: 0.8 }));
        // A concave "L": the notch is outside.
        let l = Region {
            points: vec![
                Point { x: 0.0, y: 0.0 },
                Point { x: 0.5, y: 0.0 },
                Point { x: 0.5, y: 0.5 },
                Point { x: 1.0, y: 0.5 },
                Point { x: 1.0, y: 1.0 },
                Point { x: 0.0, y: 1.0 },
            ],
        };
        assert!(l.contains(Point { x: 0.25, y: 0.25 }));
        assert!(l.contains(Point { x: 0.75, y: 0.75 }));
        assert!(!l.contains(Point { x: 0.75, y: 0.25 }));
    }

    #[test]
    fn keep_filters_by_label_confidence_and_region() {
        let keep =
            Keep { labels: vec!["Person".into()], min_confidence: 0.5, regions: vec![square(0.0, 0.0, 0.5, 0.5)] };
        let f = |label: &str, confidence: f32, x: f32, y: f32, size: f32| Finding {
            label: label.into(),
            confidence,
            x,
            y,
            width: size,
            height: size,
            attributes: Default::default(),
            track_id: String::new(),
        };
        assert!(keep.keeps(&f("person", 0.9, 0.1, 0.1, 0.2)));
        assert!(!keep.keeps(&f("car", 0.9, 0.1, 0.1, 0.2)), "label not kept");
        assert!(!keep.keeps(&f("person", 0.4, 0.1, 0.1, 0.2)), "below min confidence");
        // Box overlaps the region but its centre (0.55, 0.55) is outside.
        assert!(!keep.keeps(&f("person", 0.9, 0.4, 0.4, 0.3)));
        assert!(Keep::default().keeps(&f("anything", 0.0, 0.9, 0.9, 0.1)));
    }

    #[test]
    fn regions_are_checked() {
        assert!(check_regions("regions", &[square(0.0, 0.0, 1.0, 1.0)]).is_ok());
        let two = Region { points: vec![Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 1.0 }] };
        let e = check_regions("binding.regions", &[two]).unwrap_err();
        assert!(e.message().contains("binding.regions[0]"), "{}", e.message());
        assert!(check_regions("regions", &[square(0.0, 0.0, 1.5, 1.0)]).is_err());
        assert!(check_regions("regions", &[square(0.0, 0.0, f32::NAN, 1.0)]).is_err());
        assert!(check_regions("regions", &vec![square(0.0, 0.0, 1.0, 1.0); MAX_REGIONS + 1]).is_err());
    }
}
