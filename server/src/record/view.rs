//! The JSON shape of a stored record, with the upstream keys (the 201 body and the query API).

use serde::Serialize;

use super::Record;

/// A stored record as upstream's `Record.to_dict()` presented it. Columns may be NULL in rows
/// written by the upstream collector, hence the options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    pub id: i32,
    pub machine_id: Option<String>,
    pub machine_type: Option<String>,
    pub arch: Option<String>,
    pub build: String,
    pub kernel_version: Option<String>,
    pub ts_capture: Option<String>,
    pub ts_reception: String,
    pub severity: Option<i32>,
    pub classification: String,
    pub record_version: Option<i32>,
    pub payload: String,
    pub board_name: Option<String>,
    pub bios_version: Option<String>,
    pub cpu_model: Option<String>,
    pub event_id: Option<String>,
    pub external: Option<bool>,
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`; the bare number if no calendar date fits.
pub fn format_ts(secs: f64) -> String {
    use chrono::{Datelike, Timelike};
    let whole = secs.floor();
    match chrono::DateTime::from_timestamp(whole as i64, 0) {
        // Formatted by hand: a strftime pattern is parsed anew on every call (perf showed it).
        Some(t) if whole.is_finite() => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        _ => format!("{secs}"),
    }
}

impl RecordView {
    /// The view of a record just stored with `id` at server time `ts_server` (unix seconds).
    pub fn new(id: i32, record: Record, ts_server: f64) -> Self {
        Self {
            id,
            machine_id: Some(record.machine_id),
            machine_type: Some(record.host_type),
            arch: Some(record.architecture),
            build: record.build,
            kernel_version: Some(record.kernel_version),
            ts_capture: Some(format_ts(record.timestamp_client as f64)),
            ts_reception: format_ts(ts_server),
            severity: Some(record.severity),
            classification: record.classification,
            record_version: Some(record.record_version),
            payload: record.payload,
            board_name: Some(record.board_name),
            bios_version: Some(record.bios_version),
            cpu_model: Some(record.cpu_model),
            event_id: Some(record.event_id),
            external: Some(record.external),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_upstream() {
        assert_eq!(format_ts(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_ts(1795758044.75), "2026-11-27 05:40:44 UTC");
        assert_eq!(format_ts(1e17), "100000000000000000");
    }
}
