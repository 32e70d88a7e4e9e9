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
    Table,
    Json,
}

/// Prints `rows` under `header`, as a table or as a JSON array of objects keyed by the header.
pub fn print(format: Format, header: &[&str], rows: Vec<Vec<String>>) {
    match format {
        Format::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
            rows.into_iter().for_each(|r| {
                t.add_row(r);
            });
            line(format_args!("{t}"));
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|r| {
                    let obj: serde_json::Map<String, serde_json::Value> = header
                        .iter()
                        .zip(r)
                        .map(|(k, v)| (k.to_lowercase().replace(' ', "_"), serde_json::Value::String(v)))
                        .collect();
                    serde_json::Value::Object(obj)
                })
                .collect();
            line(format_args!("{}", serde_json::to_string_pretty(&items).unwrap_or_default()));
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
