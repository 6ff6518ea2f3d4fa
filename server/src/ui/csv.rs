//! `GET /records.csv?<filters>`: the whole filtered set as CSV (RFC 4180, header line first,
//! written by the `csv` crate), newest first, streamed in keyset chunks so neither side holds
//! the set in memory and no connection is held between chunks. Text cells a spreadsheet would
//! run as formulas are neutralised first.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;

use super::html::UiError;
use super::records::{params, Given};
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

/// A CSV writer into memory: fields quoted only when they hold a comma, quote or line break,
/// lines ended by CRLF (RFC 4180).
fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// The CSV lines of `rows` (cells in [`CSV_COLUMNS`] order), text cells neutralised and
/// timestamps formatted.
fn lines(header: bool, rows: Vec<(i32, Vec<Option<String>>)>) -> csv::Result<Vec<u8>> {
    let mut out = writer();
    if header {
        out.write_record(CSV_COLUMNS)?;
    }
    for (_, cells) in rows {
        out.write_record(cells.into_iter().enumerate().map(|(i, v)| {
            let v = v.unwrap_or_default();
            match (CSV_COLUMNS[i], v.parse::<f64>()) {
                ("ts_reception" | "ts_capture", Ok(secs)) => format_ts(secs),
                (column, _) if NUMERIC_COLUMNS.contains(&column) => v,
                _ => neutralised(v),
            }
        }))?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
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
    let header = std::mem::take(&mut c.header);
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
    let error = match tokio::task::spawn_blocking(move || lines(header, rows)).await {
        Ok(Ok(out)) => return Some((Ok(Bytes::from(out)), c)),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(%error, "CSV export failed");
    c.done = true;
    Some((
        Err(StoreError::Unavailable("CSV formatting failed".into())),
        c,
    ))
}

pub async fn export(State(state): State<AppState>, given: Given) -> Result<Response, UiError> {
    let p = params(given)?;
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
        let mut out = writer();
        out.write_record(["a", "b,c", "say \"hi\"", "x\ny", "", "'q", " s"])
            .unwrap();
        assert_eq!(
            String::from_utf8(out.into_inner().unwrap()).unwrap(),
            "a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\",,'q, s\r\n"
        );
    }

    #[test]
    fn lines_neutralise_text_and_format_times() {
        let mut cells: Vec<Option<String>> = vec![None; CSV_COLUMNS.len()];
        cells[0] = Some("7".into());
        cells[1] = Some("0".into());
        cells[3] = Some("-1".into());
        cells[4] = Some("=1+1".into());
        cells[CSV_COLUMNS.len() - 1] = Some("@x,y".into());
        let out = String::from_utf8(lines(true, vec![(7, cells)]).unwrap()).unwrap();
        let (header, line) = out.split_once("\r\n").unwrap();
        assert_eq!(header, CSV_COLUMNS.join(","));
        assert_eq!(
            line,
            "7,1970-01-01 00:00:00 UTC,,-1,'=1+1,,,,,,,,,,,,,,\"'@x,y\"\r\n"
        );
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
