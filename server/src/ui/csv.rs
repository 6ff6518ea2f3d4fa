//! `GET /records.csv?<filters>`: the whole filtered set as CSV (RFC 4180, header line first),
//! newest first, streamed in keyset chunks so neither side holds the set in memory and no
//! connection is held between chunks.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;

use super::html::UiError;
use super::records::{params, Pairs};
use crate::record::format_ts;
use crate::state::AppState;
use crate::store::ui_queries::{csv_chunk, CSV_COLUMNS};
use crate::store::Filter;
use crate::store::StoreError;

const CHUNK: i64 = 2000;

/// Columns whose cells are numbers (or `true`/`false`) written by PostgreSQL's casts, or
/// timestamps formatted here: nothing a client sent. Every other column is text a client sent.
const NUMERIC_COLUMNS: &[&str] = &[
    "id",
    "ts_reception",
    "ts_capture",
    "severity",
    "record_version",
    "payload_version",
    "external",
];

/// Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A text cell a spreadsheet would run as a formula (`=cmd|' /C calc'!A0`) gets a leading `'`,
/// as OWASP recommends: shown as text, the value readable as it was.
fn neutralised(value: String) -> String {
    if value.starts_with(FORMULA_STARTS) {
        format!("'{value}")
    } else {
        value
    }
}

/// One CSV field: quoted when it holds a comma, quote or line break.
fn field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn line(out: &mut String, cells: impl Iterator<Item = String>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, &cell);
    }
    out.push_str("\r\n");
}

/// Where the stream stands: the id to continue below, or done.
struct Cursor {
    pool: Pool,
    filter: Filter,
    before: Option<i32>,
    done: bool,
    header: bool,
}

async fn next_chunk(mut c: Cursor) -> Option<(Result<Bytes, StoreError>, Cursor)> {
    if c.done {
        return None;
    }
    let mut out = String::new();
    if c.header {
        c.header = false;
        line(&mut out, CSV_COLUMNS.iter().map(|s| s.to_string()));
    }
    let rows = match csv_chunk(&c.pool, &c.filter, c.before, CHUNK).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "CSV export failed");
            c.done = true;
            return Some((Err(e), c));
        }
    };
    c.done = (rows.len() as i64) < CHUNK;
    c.before = rows.last().map(|(id, _)| *id);
    // Formatting 2,000 rows is CPU work of its own: off the async workers, so requests (and
    // records) on the same worker are not kept waiting behind an export.
    let formatted = tokio::task::spawn_blocking(move || {
        for (_, cells) in rows {
            let cells = cells.into_iter().enumerate().map(|(i, v)| {
                let v = v.unwrap_or_default();
                match (CSV_COLUMNS[i], v.parse::<f64>()) {
                    ("ts_reception" | "ts_capture", Ok(secs)) => format_ts(secs),
                    (column, _) if NUMERIC_COLUMNS.contains(&column) => v,
                    _ => neutralised(v),
                }
            });
            line(&mut out, cells);
        }
        out
    })
    .await;
    match formatted {
        Ok(out) => Some((Ok(Bytes::from(out)), c)),
        Err(e) => {
            tracing::warn!(error = %e, "CSV export failed");
            c.done = true;
            Some((
                Err(StoreError::Unavailable("CSV formatting failed".into())),
                c,
            ))
        }
    }
}

pub async fn export(State(state): State<AppState>, pairs: Pairs) -> Result<Response, UiError> {
    let p = params(pairs)?;
    let cursor = Cursor {
        pool: state.pool.clone(),
        filter: p.filter,
        before: None,
        done: false,
        header: true,
    };
    // Fail before the 200 if the database is down: fetch the first chunk now.
    let first = next_chunk(cursor).await;
    let (first, cursor) = match first {
        Some((Ok(bytes), cursor)) => (bytes, cursor),
        Some((Err(e), _)) => return Err(e.into()),
        None => unreachable!("the first chunk always exists"),
    };
    let rest = futures_util::stream::unfold(cursor, next_chunk);
    let stream =
        futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(first) }), rest);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"records.csv\""),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut out = String::new();
        line(
            &mut out,
            ["a", "b,c", "say \"hi\"", "x\ny", ""]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(out, "a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\",\r\n");
    }

    #[test]
    fn formula_cells_get_a_quote() {
        for start in FORMULA_STARTS {
            let v = format!("{start}cmd|' /C calc'!A0");
            assert_eq!(neutralised(v.clone()), format!("'{v}"));
        }
        for harmless in ["", "org/a/b", "a=b", " =x", "'quoted"] {
            assert_eq!(neutralised(harmless.into()), harmless);
        }
        // Every column is either text (neutralised) or written by the database's casts.
        for c in NUMERIC_COLUMNS {
            assert!(CSV_COLUMNS.contains(c), "{c}");
        }
    }
}
