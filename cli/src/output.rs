//! Output: human tables by default, JSON for scripts.
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use std::sync::{Arc, Mutex};

/// Output kept for a caller that runs commands in process (see [`crate::run_captured`]).
#[derive(Debug, Clone, Default)]
pub struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    /// What was written so far, leaving the sink empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Writes `text` and a newline to the invocation's output: standard output unless captured.
pub fn line(text: std::fmt::Arguments<'_>) {
    match crate::session::Invocation::current().out {
        Some(sink) => {
            let mut buffer = sink.0.lock().unwrap_or_else(|e| e.into_inner());
            buffer.extend_from_slice(format!("{text}\n").as_bytes());
        }
        None => println!("{text}"),
    }
}

/// `println!` to the invocation's output (see [`line`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for a person: names, human units.
    Table,
    /// JSON for scripts: numbers as numbers, lists as arrays, one thing as an object.
    Json,
}

/// One value of a row: shown for a person in a table, typed in JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Bool(bool),
    /// A list: joined with ", " in a table, an array in JSON.
    List(Vec<String>),
    /// `key=value` pairs (labels): an object in JSON.
    Map(Vec<(String, String)>),
    /// A size: human units in a table (`1.5 GiB`), bytes in JSON.
    Bytes(i64),
    /// A length of time: human units in a table (`30d`, `1h 30m`), seconds in JSON.
    Secs(i64),
    /// Nothing: `-` in a table, null in JSON.
    None,
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}

impl From<i32> for Cell {
    fn from(n: i32) -> Cell {
        Cell::Int(n.into())
    }
}

impl From<bool> for Cell {
    fn from(b: bool) -> Cell {
        Cell::Bool(b)
    }
}

impl From<Vec<String>> for Cell {
    fn from(v: Vec<String>) -> Cell {
        Cell::List(v)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Cell {
        v.map(Into::into).unwrap_or(Cell::None)
    }
}

/// `n` bytes in binary units: `512 B`, `1.5 KiB`, `20.0 GiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n.unsigned_abs() < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `secs` in its two largest units, the rest left out: `45s`, `1h 30m`, `30d`, `1d 1m` (for a day,
/// a minute and a second).
pub fn duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    let mut rest = secs.abs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= size && parts.len() < 2 {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    format!("{}{}", if secs < 0 { "-" } else { "" }, parts.join(" "))
}

impl Cell {
    /// As a table shows it.
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            Cell::List(v) => v.join(", "),
            Cell::Map(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
            Cell::Bytes(n) => bytes(*n),
            Cell::Secs(n) => duration(*n),
            Cell::None => "-".to_owned(),
        }
    }

    /// As JSON gives it.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Int(n) | Cell::Bytes(n) | Cell::Secs(n) => Value::from(*n),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::List(v) => Value::from(v.clone()),
            Cell::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
            Cell::None => Value::Null,
        }
    }
}

/// A header as a JSON key: `Last error` → `last_error`.
fn key(header: &str) -> String {
    header.to_lowercase().replace([' ', '/'], "_")
}

fn object(header: &[&str], row: Vec<Cell>) -> serde_json::Value {
    serde_json::Value::Object(header.iter().map(|h| key(h)).zip(row.iter().map(Cell::json)).collect())
}

/// Prints `rows` under `header`, as a table or as a JSON array of objects keyed by the header.
pub fn print<C: Into<Cell>>(format: Format, header: &[&str], rows: Vec<Vec<C>>) {
    let rows: Vec<Vec<Cell>> = rows.into_iter().map(|r| r.into_iter().map(Into::into).collect()).collect();
    match format {
        Format::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
            rows.into_iter().for_each(|r| {
                t.add_row(r.iter().map(Cell::text).collect::<Vec<_>>());
            });
            line(format_args!("{t}"));
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = rows.into_iter().map(|r| object(header, r)).collect();
            line(format_args!("{}", serde_json::to_string_pretty(&items).unwrap_or_default()));
        }
    }
}

/// Prints one thing: a table of one row, or a JSON object (not an array of one).
pub fn print_one<C: Into<Cell>>(format: Format, header: &[&str], row: Vec<C>) {
    match format {
        Format::Table => print(format, header, vec![row]),
        Format::Json => {
            let row = row.into_iter().map(Into::into).collect();
            line(format_args!("{}", serde_json::to_string_pretty(&object(header, row)).unwrap_or_default()));
        }
    }
}

/// Prints one thing as named fields: a two-column table (`title`, value), or a JSON object.
pub fn print_fields(format: Format, title: &str, fields: Vec<(&str, Cell)>) {
    match format {
        Format::Table => {
            let rows = fields.into_iter().map(|(k, v)| vec![Cell::from(k), v]).collect();
            print(format, &[title, ""], rows);
        }
        Format::Json => {
            let obj: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().map(|(k, v)| (key(k), v.json())).collect();
            line(format_args!("{}", serde_json::to_string_pretty(&obj).unwrap_or_default()));
        }
    }
}

/// A timestamp as RFC 3339, or empty.
pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A role's short name.
pub fn role(value: i32) -> String {
    opennvr_sdk::pb::Role::try_from(value)
        .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
        .unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_in_human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 << 30), "10.0 GiB");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(5400), "1h 30m");
        assert_eq!(duration(30 * 86_400), "30d");
        assert_eq!(duration(86_400 + 61), "1d 1m");
    }

    #[test]
    fn json_keeps_the_types_tables_hide() {
        assert_eq!(Cell::Bytes(2048).json(), serde_json::json!(2048));
        assert_eq!(Cell::Bytes(2048).text(), "2.0 KiB");
        assert_eq!(Cell::List(vec!["a".into(), "b".into()]).json(), serde_json::json!(["a", "b"]));
        assert_eq!(Cell::from(None::<i64>).json(), serde_json::Value::Null);
        assert_eq!(Cell::Map(vec![("site".into(), "dock".into())]).json(), serde_json::json!({"site": "dock"}));
    }
}
