//! Recording rules: where a segment's start time comes from (its file name, with its UTC offset),
//! how long a hook may say it lasted, and how segments merge into a timeline's runs.
use chrono::{DateTime, FixedOffset, TimeZone, Utc};

/// Longest segment MediaMTX accepts (`recordSegmentDuration` <= 24 h), with room for the last frames.
pub const MAX_SEGMENT_SECONDS: f64 = 86_400.0 + 600.0;

/// Where a segment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// MediaMTX is writing it: its duration is not known yet.
    Recording,
    Complete,
    /// Retention or a deletion marked it: listed nowhere; its file may be gone already (the row goes
    /// after it); a hold created before its deletion gives it back.
    Deleting,
}

impl SegmentState {
    /// Every state, in the order of their stored codes.
    pub const ALL: [SegmentState; 3] = [SegmentState::Recording, SegmentState::Complete, SegmentState::Deleting];

    /// The stored code.
    pub fn code(self) -> i16 {
        match self {
            SegmentState::Recording => 0,
            SegmentState::Complete => 1,
            SegmentState::Deleting => 2,
        }
    }

    /// The state stored as `code`, if any.
    pub fn from_code(code: i16) -> Option<SegmentState> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// Where an export is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportState {
    Running,
    Succeeded,
    Failed,
    /// Its file was removed when it expired.
    Expired,
}

impl super::StoredName for ExportState {
    const WHAT: &'static str = "export state";
    const ALL: &'static [ExportState] =
        &[ExportState::Running, ExportState::Succeeded, ExportState::Failed, ExportState::Expired];
    fn stored_name(self) -> &'static str {
        match self {
            ExportState::Running => "running",
            ExportState::Succeeded => "succeeded",
            ExportState::Failed => "failed",
            ExportState::Expired => "expired",
        }
    }
}

/// The container of an exported clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A plain MP4 (moov first), what players expect.
    Mp4,
    /// Fragmented MP4, as MediaMTX records.
    Fmp4,
}

impl super::StoredName for ExportFormat {
    const WHAT: &'static str = "export format";
    const ALL: &'static [ExportFormat] = &[ExportFormat::Mp4, ExportFormat::Fmp4];
    fn stored_name(self) -> &'static str {
        match self {
            ExportFormat::Mp4 => "mp4",
            ExportFormat::Fmp4 => "fmp4",
        }
    }
}

/// The start time a segment file carries in its name, read with `record_path` (a MediaMTX
/// `recordPath`) for the path `path` and MediaMTX's `.mp4` extension; `None` if `file` is not such a
/// name. The record path always holds `%z` (configuration refuses one without), so the result does
/// not depend on MediaMTX's time zone.
pub fn segment_start(record_path: &str, path: &str, file: &str) -> Option<DateTime<Utc>> {
    let template = format!("{}.mp4", record_path.replace("%path", path));
    let (t, f) = (template.as_bytes(), file.as_bytes());
    let (mut i, mut j) = (0, 0);
    // year, month, day, hour, minute, second, microsecond
    let mut parts = [0i64; 7];
    let mut offset = None;
    let digits = |j: &mut usize, n: usize| -> Option<i64> {
        let s = f.get(*j..*j + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *j += n;
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    while i < t.len() {
        if t[i] == b'%' && i + 1 < t.len() {
            let field = t[i + 1];
            i += 2;
            let (slot, width) = match field {
                b'Y' => (0, 4),
                b'm' => (1, 2),
                b'd' => (2, 2),
                b'H' => (3, 2),
                b'M' => (4, 2),
                b'S' => (5, 2),
                b'f' => (6, 6),
                b'z' => {
                    let sign = match f.get(j)? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    j += 1;
                    let hhmm = digits(&mut j, 4)?;
                    if hhmm % 100 >= 60 {
                        return None;
                    }
                    offset = FixedOffset::east_opt(i32::try_from(sign * (hhmm / 100 * 3600 + hhmm % 100 * 60)).ok()?);
                    offset?;
                    continue;
                }
                _ => return None,
            };
            parts[slot] = digits(&mut j, width)?;
        } else {
            if f.get(j) != Some(&t[i]) {
                return None;
            }
            i += 1;
            j += 1;
        }
    }
    if j != f.len() {
        return None;
    }
    let [y, mo, d, h, mi, s, us] = parts;
    let local = offset?
        .with_ymd_and_hms(
            i32::try_from(y).ok()?,
            u32::try_from(mo).ok()?,
            u32::try_from(d).ok()?,
            u32::try_from(h).ok()?,
            u32::try_from(mi).ok()?,
            u32::try_from(s).ok()?,
        )
        .single()?;
    Some((local + chrono::Duration::microseconds(us)).with_timezone(&Utc))
}

/// A hook's `MTX_SEGMENT_DURATION` (seconds as a decimal string, e.g. `60.02`) in microseconds.
pub fn segment_duration_us(text: &str) -> Option<i64> {
    let secs: f64 = text.trim().parse().ok()?;
    if !secs.is_finite() || !(0.0..=MAX_SEGMENT_SECONDS).contains(&secs) {
        return None;
    }
    Some((secs * 1e6).round() as i64)
}

/// A stretch of continuous recording, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Builds the runs of a timeline from spans fed in start order, holding only the runs: a span starting
/// no later than `tolerance` after the current run's end joins it. Runs are clipped to `[from, to)`
/// and empty ones dropped.
#[derive(Debug)]
pub struct RunBuilder {
    tolerance: chrono::Duration,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    runs: Vec<Run>,
}

impl RunBuilder {
    pub fn new(tolerance: chrono::Duration, from: DateTime<Utc>, to: DateTime<Utc>) -> RunBuilder {
        RunBuilder { tolerance, from, to, runs: Vec::new() }
    }

    /// Adds the next span (by start).
    pub fn push(&mut self, span: Run) {
        match self.runs.last_mut() {
            Some(run) if span.start <= run.end + self.tolerance => run.end = run.end.max(span.end),
            _ => self.runs.push(span),
        }
    }

    /// The runs, clipped to the range.
    pub fn finish(self) -> Vec<Run> {
        let (from, to) = (self.from, self.to);
        self.runs
            .into_iter()
            .map(|r| Run { start: r.start.max(from), end: r.end.min(to) })
            .filter(|r| r.start < r.end)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD_PATH: &str = "/recordings/%path/%Y-%m-%d_%H-%M-%S-%f%z";

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).expect("a time")
    }

    #[test]
    fn segment_names_carry_their_start_in_any_time_zone() {
        let file = "/recordings/opennvr-abc/2026-11-25_10-00-00-250000+0100.mp4";
        assert_eq!(segment_start(RECORD_PATH, "opennvr-abc", file), Some(t("2026-11-25T09:00:00.25Z")));
        let west = "/recordings/opennvr-abc/2026-11-25_03-30-00-000000-0530.mp4";
        assert_eq!(segment_start(RECORD_PATH, "opennvr-abc", west), Some(t("2026-11-25T09:00:00Z")));
        for bad in [
            "/recordings/opennvr-abc/2026-11-25_10-00-00-250000+0100.ts",
            "/recordings/opennvr-xyz/2026-11-25_10-00-00-250000+0100.mp4",
            "/recordings/opennvr-abc/2026-11-25_10-00-00+0100.mp4",
            "/recordings/opennvr-abc/2026-13-25_10-00-00-250000+0100.mp4",
            "/recordings/opennvr-abc/2026-11-25_10-00-00-250000+0170.mp4",
            "/recordings/opennvr-abc/../opennvr-abc/2026-11-25_10-00-00-250000+0100.mp4",
            "",
        ] {
            assert_eq!(segment_start(RECORD_PATH, "opennvr-abc", bad), None, "{bad}");
        }
    }

    #[test]
    fn hook_durations_are_bounded_decimals() {
        assert_eq!(segment_duration_us("60.02"), Some(60_020_000));
        assert_eq!(segment_duration_us("0"), Some(0));
        for bad in ["", "-1", "NaN", "inf", "1e9", "60s"] {
            assert_eq!(segment_duration_us(bad), None, "{bad}");
        }
    }

    #[test]
    fn spans_merge_within_the_tolerance_and_are_clipped() {
        let s = |a: &str, b: &str| Run { start: t(a), end: t(b) };
        let build = |spans: &[Run], tolerance: chrono::Duration, from: &str, to: &str| {
            let mut b = RunBuilder::new(tolerance, t(from), t(to));
            spans.iter().for_each(|span| b.push(*span));
            b.finish()
        };
        let spans = [
            s("2026-11-25T08:59:00Z", "2026-11-25T09:00:00Z"),
            // 0.5 s gap: joins.
            s("2026-11-25T09:00:00.5Z", "2026-11-25T09:01:00Z"),
            // Overlap: joins, extends.
            s("2026-11-25T09:00:30Z", "2026-11-25T09:02:00Z"),
            // Contained: nothing changes.
            s("2026-11-25T09:01:00Z", "2026-11-25T09:01:30Z"),
            // 5 s gap: a new run.
            s("2026-11-25T09:02:05Z", "2026-11-25T09:03:00Z"),
            // Outside the range.
            s("2026-11-25T10:00:00Z", "2026-11-25T10:01:00Z"),
        ];
        let runs = build(&spans, chrono::Duration::seconds(1), "2026-11-25T09:00:00Z", "2026-11-25T09:30:00Z");
        assert_eq!(
            runs,
            vec![s("2026-11-25T09:00:00Z", "2026-11-25T09:02:00Z"), s("2026-11-25T09:02:05Z", "2026-11-25T09:03:00Z")]
        );
        // Exactly at the tolerance still joins; just past it does not.
        let edge =
            [s("2026-11-25T09:00:00Z", "2026-11-25T09:01:00Z"), s("2026-11-25T09:01:01Z", "2026-11-25T09:02:00Z")];
        let (from, to) = ("2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z");
        assert_eq!(build(&edge, chrono::Duration::seconds(1), from, to).len(), 1);
        assert_eq!(build(&edge, chrono::Duration::milliseconds(999), from, to).len(), 2);
        assert!(build(&[], chrono::Duration::seconds(1), from, to).is_empty());
    }
}
