//! Motion detection on decoded frames: each frame becomes a small grey grid (luma only, averaged over
//! blocks, which also smooths sensor noise); a cell changed when it differs from the previous frame
//! by more than the pixel threshold; a frame moves when the changed share of the unmasked cells
//! reaches the minimum area. An episode starts after `start_frames` moving frames in a row and ends
//! after `end_quiet` without one (or at [`MAX_EPISODE`], when the next begins at once); it keeps its
//! start, end, peak area and where the peak was. Plain data and arithmetic: no I/O.
use super::inference::{Point, Region, check_regions};
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Widest grid frames are reduced to (a narrower frame keeps its width).
pub const GRID_WIDTH: usize = 160;
/// An episode longer than this is closed and a new one begins: an event's footage window stays
/// bounded, and a scene that never settles still yields events.
pub const MAX_EPISODE: Duration = Duration::from_secs(600);

/// A camera's motion detector settings (stored as JSON on the camera).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MotionSettings {
    /// Time between analysed frames.
    pub frame_interval_ms: u32,
    /// Grey levels (1–255) a cell must change by to count as changed.
    pub pixel_threshold: u8,
    /// Share of the unmasked frame (0–1] that must change for a frame to move.
    pub min_area: f32,
    /// Moving frames in a row that start an episode.
    pub start_frames: u32,
    /// Time without a moving frame that ends an episode.
    pub end_quiet_ms: u32,
    /// Areas ignored (a tree in the wind, a clock), as polygons in fractions of the frame.
    pub masks: Vec<Region>,
}

impl Default for MotionSettings {
    fn default() -> MotionSettings {
        MotionSettings {
            frame_interval_ms: 1000,
            pixel_threshold: 25,
            min_area: 0.005,
            start_frames: 2,
            end_quiet_ms: 5000,
            masks: Vec::new(),
        }
    }
}

impl MotionSettings {
    /// Checks every field (names as `field.<name>`) and fills unset ones (0) with the defaults.
    pub fn checked(mut self, field: &'static str) -> Result<MotionSettings> {
        let d = MotionSettings::default();
        let bad = |name: &str, why: &str| Error::invalid(field, format!("{field}.{name} {why}"));
        if self.frame_interval_ms == 0 {
            self.frame_interval_ms = d.frame_interval_ms;
        }
        if !(100..=10_000).contains(&self.frame_interval_ms) {
            return Err(bad("frame_interval", "must be between 100 ms and 10 s"));
        }
        if self.pixel_threshold == 0 {
            self.pixel_threshold = d.pixel_threshold;
        }
        if self.min_area == 0.0 {
            self.min_area = d.min_area;
        }
        if !(self.min_area > 0.0 && self.min_area <= 1.0) {
            return Err(bad("min_area", "must be a share of the frame above 0 and at most 1"));
        }
        if self.start_frames == 0 {
            self.start_frames = d.start_frames;
        }
        if self.start_frames > 100 {
            return Err(bad("start_frames", "must be between 1 and 100"));
        }
        if self.end_quiet_ms == 0 {
            self.end_quiet_ms = d.end_quiet_ms;
        }
        if !(500..=300_000).contains(&self.end_quiet_ms) {
            return Err(bad("end_quiet", "must be between 0.5 s and 5 min"));
        }
        check_regions(field, &self.masks)?;
        Ok(self)
    }
}

/// A frame reduced to a grey grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grey {
    pub width: usize,
    pub height: usize,
    pub cells: Vec<u8>,
}

impl Grey {
    /// The grid of a JPEG image: its luma, averaged over square blocks so that it is at most
    /// [`GRID_WIDTH`] wide.
    pub fn from_jpeg(jpeg: &[u8]) -> Result<Grey> {
        use zune_core::colorspace::ColorSpace;
        use zune_core::options::DecoderOptions;
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::Luma)
            .set_max_width(8192)
            .set_max_height(8192);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(jpeg, options);
        let luma = decoder
            .decode()
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("not a decodable JPEG frame: {e:?}")))?;
        let (w, h) = decoder.dimensions().ok_or_else(|| Error::internal("a decoded JPEG without dimensions"))?;
        if w == 0 || h == 0 || luma.len() < w * h {
            return Err(Error::new(ErrorKind::InvalidArgument, "a JPEG frame without pixels"));
        }
        Ok(Grey::reduce(&luma, w, h))
    }

    /// `luma` (`w` × `h`, row by row) averaged over square blocks to at most [`GRID_WIDTH`] wide.
    pub fn reduce(luma: &[u8], w: usize, h: usize) -> Grey {
        let block = w.div_ceil(GRID_WIDTH).max(1);
        let (gw, gh) = (w / block, h / block);
        let (gw, gh) = (gw.max(1), gh.max(1));
        let mut sums = vec![0u32; gw * gh];
        for y in 0..(gh * block).min(h) {
            let row = &luma[y * w..y * w + (gw * block).min(w)];
            let out = &mut sums[(y / block) * gw..(y / block + 1) * gw];
            for (x, v) in row.iter().enumerate() {
                out[x / block] += u32::from(*v);
            }
        }
        let n = (block * block) as u32;
        Grey { width: gw, height: gh, cells: sums.into_iter().map(|s| (s / n) as u8).collect() }
    }
}

/// A box as fractions of the frame: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct FrameBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// A motion episode.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    /// The first moving frame of the run that started it.
    pub start: DateTime<Utc>,
    /// The last moving frame.
    pub end: DateTime<Utc>,
    /// The largest changed share of the frame, when, and the box around the changed cells then.
    pub peak_area: f32,
    pub peak_time: DateTime<Utc>,
    pub peak_box: FrameBox,
}

/// What one frame did to the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// No episode under way.
    Still,
    /// An episode started with this frame (at `since`, its first moving frame).
    Started { since: DateTime<Utc> },
    /// An episode is under way; `peak`: this frame is its largest change so far.
    Moving { peak: bool },
    /// The episode ended (quiet long enough, or at its longest).
    Ended(Episode),
}

/// One camera's detector.
#[derive(Debug)]
pub struct Detector {
    settings: MotionSettings,
    /// Per cell: whether it counts (outside every mask), for the grid size it was built for.
    counted: Vec<bool>,
    previous: Option<Grey>,
    /// Moving frames in a row, and the first of them with its change, before an episode starts.
    run: u32,
    run_first: Option<(DateTime<Utc>, f32, FrameBox)>,
    episode: Option<Episode>,
}

impl Detector {
    /// A detector with `settings` (already checked).
    pub fn new(settings: MotionSettings) -> Detector {
        Detector { settings, counted: Vec::new(), previous: None, run: 0, run_first: None, episode: None }
    }

    /// Whether an episode is under way.
    pub fn moving(&self) -> bool {
        self.episode.is_some()
    }

    /// Per cell of a grid like `g`: whether it counts (outside every mask); built once per size.
    fn counted_cells(&mut self, g: &Grey) {
        if self.counted.len() != g.cells.len() {
            let (w, h) = (g.width as f32, g.height as f32);
            self.counted = (0..g.cells.len())
                .map(|i| {
                    let p = Point { x: ((i % g.width) as f32 + 0.5) / w, y: ((i / g.width) as f32 + 0.5) / h };
                    !self.settings.masks.iter().any(|m| m.contains(p))
                })
                .collect();
        }
    }

    /// The changed share of the counted cells between `a` and `b`, and the box around them.
    fn change(&self, a: &Grey, b: &Grey) -> (f32, FrameBox) {
        let threshold = self.settings.pixel_threshold;
        let (mut changed, mut total) = (0u32, 0u32);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for (i, (p, q)) in a.cells.iter().zip(&b.cells).enumerate() {
            if !self.counted[i] {
                continue;
            }
            total += 1;
            if p.abs_diff(*q) > threshold {
                changed += 1;
                let (x, y) = (i % b.width, i / b.width);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
        if changed == 0 || total == 0 {
            return (0.0, FrameBox::default());
        }
        let (w, h) = (b.width as f32, b.height as f32);
        let area = changed as f32 / total as f32;
        (
            area,
            FrameBox {
                x: x0 as f32 / w,
                y: y0 as f32 / h,
                width: (x1 - x0 + 1) as f32 / w,
                height: (y1 - y0 + 1) as f32 / h,
            },
        )
    }

    /// Takes the frame `grey` taken at `time`.
    pub fn feed(&mut self, grey: Grey, time: DateTime<Utc>) -> Step {
        self.counted_cells(&grey);
        let (area, frame_box) = match &self.previous {
            Some(a) if a.cells.len() == grey.cells.len() => self.change(a, &grey),
            // The first frame, or the stream changed size: nothing to compare with yet.
            _ => (0.0, FrameBox::default()),
        };
        self.previous = Some(grey);
        let moved = area >= self.settings.min_area;
        let quiet = Duration::from_millis(u64::from(self.settings.end_quiet_ms));
        if let Some(ep) = self.episode.as_mut() {
            let mut peak = false;
            if moved {
                ep.end = time;
                if area > ep.peak_area {
                    (ep.peak_area, ep.peak_time, ep.peak_box, peak) = (area, time, frame_box, true);
                }
            }
            let since_motion = (time - ep.end).to_std().unwrap_or_default();
            let length = (time - ep.start).to_std().unwrap_or_default();
            if since_motion >= quiet || length >= MAX_EPISODE {
                let done = *ep;
                self.episode = None;
                self.run = 0;
                self.run_first = None;
                if length >= MAX_EPISODE && moved {
                    // Still moving: the next episode begins with this frame.
                    self.episode =
                        Some(Episode { start: time, end: time, peak_area: area, peak_time: time, peak_box: frame_box });
                }
                return Step::Ended(done);
            }
            return Step::Moving { peak };
        }
        if !moved {
            self.run = 0;
            self.run_first = None;
            return Step::Still;
        }
        self.run += 1;
        let first = *self.run_first.get_or_insert((time, area, frame_box));
        if self.run < self.settings.start_frames {
            return Step::Still;
        }
        let (since, first_area, first_box) = first;
        let (peak_area, peak_time, peak_box) =
            if area >= first_area { (area, time, frame_box) } else { (first_area, since, first_box) };
        self.episode = Some(Episode { start: since, end: time, peak_area, peak_time, peak_box });
        Step::Started { since }
    }

    /// Ends the episode under way, if any (the detector stops).
    pub fn finish(&mut self) -> Option<Episode> {
        self.run = 0;
        self.run_first = None;
        self.previous = None;
        self.episode.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    /// A 20×10 grid of `base` with the cells of columns `x0..x1` set to `v`.
    fn frame(base: u8, x0: usize, x1: usize, v: u8) -> Grey {
        let mut cells = vec![base; 200];
        for y in 0..10 {
            for x in x0..x1 {
                cells[y * 20 + x] = v;
            }
        }
        Grey { width: 20, height: 10, cells }
    }

    fn settings() -> MotionSettings {
        MotionSettings { min_area: 0.05, start_frames: 2, end_quiet_ms: 3000, ..MotionSettings::default() }
    }

    #[test]
    fn reducing_averages_blocks_to_the_grid_width() {
        let w = 640;
        let h = 360;
        let luma: Vec<u8> = (0..w * h).map(|i| if (i % w) < 320 { 0 } else { 200 }).collect();
        let g = Grey::reduce(&luma, w, h);
        assert_eq!((g.width, g.height), (160, 90));
        assert_eq!(g.cells[0], 0);
        assert_eq!(g.cells[159], 200);
    }

    #[test]
    fn a_still_scene_and_sensor_noise_start_nothing() {
        let mut d = Detector::new(settings());
        for s in 0..20 {
            // Noise of a few grey levels everywhere, under the threshold.
            let base = if s % 2 == 0 { 100 } else { 104 };
            assert_eq!(d.feed(frame(base, 0, 0, 0), at(s)), Step::Still);
        }
    }

    #[test]
    fn an_episode_starts_after_n_moving_frames_and_ends_after_the_quiet_time() {
        let mut d = Detector::new(settings());
        assert_eq!(d.feed(frame(100, 0, 0, 0), at(0)), Step::Still);
        // An object moving across columns 2..6, 4..8, ...
        assert_eq!(d.feed(frame(100, 2, 4, 250), at(1)), Step::Still);
        assert_eq!(d.feed(frame(100, 4, 8, 250), at(2)), Step::Started { since: at(1) });
        assert!(d.moving());
        assert_eq!(d.feed(frame(100, 10, 16, 250), at(3)), Step::Moving { peak: true });
        // Still from now on: the episode ends once 3 s passed since the last moving frame.
        assert_eq!(d.feed(frame(100, 10, 16, 250), at(4)), Step::Moving { peak: false });
        assert_eq!(d.feed(frame(100, 10, 16, 250), at(5)), Step::Moving { peak: false });
        match d.feed(frame(100, 10, 16, 250), at(6)) {
            Step::Ended(ep) => {
                assert_eq!((ep.start, ep.end, ep.peak_time), (at(1), at(3), at(3)));
                // At the peak, columns 4..8 (left) and 10..16 (entered) changed: 10 of 20 columns,
                // boxed from column 4 to 15.
                assert!((ep.peak_area - 0.5).abs() < 1e-6, "{}", ep.peak_area);
                assert!((ep.peak_box.x - 0.2).abs() < 1e-6 && (ep.peak_box.width - 0.6).abs() < 1e-6);
            }
            other => panic!("expected the end, got {other:?}"),
        }
        assert!(!d.moving());
    }

    #[test]
    fn one_moving_frame_below_the_start_count_is_ignored() {
        let mut d = Detector::new(settings());
        d.feed(frame(100, 0, 0, 0), at(0));
        assert_eq!(d.feed(frame(100, 2, 6, 250), at(1)), Step::Still);
        assert_eq!(d.feed(frame(100, 2, 6, 250), at(2)), Step::Still);
        assert_eq!(d.feed(frame(100, 2, 6, 250), at(3)), Step::Still);
    }

    #[test]
    fn changes_under_a_mask_or_below_the_area_do_not_count() {
        let mask = Region {
            points: vec![
                Point { x: 0.0, y: 0.0 },
                Point { x: 0.5, y: 0.0 },
                Point { x: 0.5, y: 1.0 },
                Point { x: 0.0, y: 1.0 },
            ],
        };
        let mut d = Detector::new(MotionSettings { masks: vec![mask], ..settings() });
        d.feed(frame(100, 0, 0, 0), at(0));
        for s in 1..6 {
            // Flicker in the masked left half only.
            let v = if s % 2 == 0 { 250 } else { 10 };
            assert_eq!(d.feed(frame(100, 0, 10, v), at(s)), Step::Still);
        }
        let mut d = Detector::new(MotionSettings { min_area: 0.2, ..settings() });
        d.feed(frame(100, 0, 0, 0), at(0));
        for s in 1..6 {
            // One column in 20 flickers: 5 % of the frame, below 20 %.
            let v = if s % 2 == 0 { 250 } else { 10 };
            assert_eq!(d.feed(frame(100, 3, 4, v), at(s)), Step::Still);
        }
    }

    #[test]
    fn an_endless_episode_is_cut_at_its_longest_and_the_next_begins() {
        let mut d = Detector::new(settings());
        d.feed(frame(100, 0, 0, 0), at(0));
        let mut ended = Vec::new();
        for s in 1..=(MAX_EPISODE.as_secs() as i64 + 5) {
            let x = (s as usize) % 15;
            if let Step::Ended(ep) = d.feed(frame(100, x, x + 5, 250), at(s)) {
                ended.push(ep);
            }
        }
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].start, at(1));
        assert!(d.moving(), "the next episode is under way");
    }

    #[test]
    fn settings_fill_defaults_and_name_the_bad_field() {
        let s = MotionSettings {
            frame_interval_ms: 0,
            pixel_threshold: 0,
            min_area: 0.0,
            start_frames: 0,
            end_quiet_ms: 0,
            masks: vec![],
        };
        assert_eq!(s.checked("camera.motion").expect("defaults"), MotionSettings::default());
        let e = MotionSettings { min_area: 1.5, ..MotionSettings::default() }.checked("camera.motion").unwrap_err();
        assert!(e.message().contains("camera.motion.min_area"), "{}", e.message());
        let e =
            MotionSettings { frame_interval_ms: 50, ..MotionSettings::default() }.checked("camera.motion").unwrap_err();
        assert!(e.message().contains("camera.motion.frame_interval"), "{}", e.message());
    }
}
