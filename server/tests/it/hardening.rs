//! What a hostile record or request must not achieve through the collector's answers: CSV
//! cells that a spreadsheet runs as formulas, links and redirects to another host through
//! `X-Forwarded-Prefix`, content sniffing of JSON/CSV/metrics, and a format-4 resend whose 201
//! describes values that were not stored.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use telem_collector::http::router;
use telem_collector::serve::App;
use tower::ServiceExt;

use crate::harness::{config, migrated_db, TID};
use crate::pg::{connect, PgCluster};

async fn app_and_db(pg: &PgCluster) -> (Router, String) {
    let db = migrated_db(pg).await;
    let app = App::start(&config(&db)).await.unwrap();
    (router(app.state), db)
}

async fn call(app: &Router, request: Request<Body>) -> (Response, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&body).to_string(),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// The text columns of the export, as the `records` columns that feed them.
const TEXT_COLUMNS: &[&str] = &[
    "classification",
    "build",
    "machine_id",
    "host_type",
    "architecture",
    "kernel_version",
    "system_name",
    "board_name",
    "cpu_model",
    "bios_version",
    "event_id",
    "payload",
];

/// RFC 4180 records (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

/// Every text column holding a value that starts with each character a spreadsheet takes as
/// a formula start (`=`, `+`, `-`, `@`, TAB, CR) is exported with a leading `'`. The rows are
/// written with SQL, as any writer of the database (the old collector, psql) could: several
/// such values would not pass the collector's validation.
#[tokio::test]
async fn csv_cells_that_start_a_formula_are_neutralised_in_every_text_column() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let (app, db) = app_and_db(pg).await;
    let client = connect(&db).await;
    let mut expected = Vec::new();
    for column in TEXT_COLUMNS {
        for start in ['=', '+', '-', '@', '\t', '\r'] {
            let value = format!("{start}cmd|' /C calc'!A0");
            let sql =
                "INSERT INTO records (classification, build, machine_id, host_type, architecture,
                     kernel_version, system_name, board_name, cpu_model, bios_version, event_id,
                     payload, record_version, severity, timestamp_client, timestamp_server)
                 SELECT 'org/csv/test', '1', 'm', 'h', 'x86_64', '6.1.0', 's', 'b', 'c', 'v',
                     'e', 'p', 3, 2, 1795758044, 1795758044
                 RETURNING id";
            let id: i32 = client.query_one(sql, &[]).await.unwrap().get(0);
            client
                .execute(
                    &format!("UPDATE records SET {column} = $1 WHERE id = $2"),
                    &[&value, &id],
                )
                .await
                .unwrap();
            expected.push((id, *column, value));
        }
    }
    let (response, csv) = call(&app, get("/records.csv")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rows = parse_csv(&csv);
    let header = &rows[0];
    for (id, column, value) in &expected {
        let col = header
            .iter()
            .position(|h| h == column)
            .unwrap_or_else(|| panic!("{column} not in {header:?}"));
        let row = rows
            .iter()
            .find(|r| r[0] == id.to_string())
            .unwrap_or_else(|| panic!("record {id} not exported"));
        assert_eq!(row[col], format!("'{value}"), "{column} starting {value:?}");
    }
    // No cell of the export starts a formula, whatever its column.
    for row in &rows[1..] {
        for (cell, name) in row.iter().zip(header) {
            let formula = cell.starts_with(['=', '+', '@', '\t', '\r'])
                || (cell.starts_with('-') && cell.parse::<f64>().is_err());
            assert!(!formula, "{name}: {cell:?}");
        }
    }
}

/// Only a path on this host is taken from `X-Forwarded-Prefix`: one leading `/`, no `//`,
/// no scheme, printable path characters. Anything else leaves links (and the collector
/// redirect) relative.
#[tokio::test]
async fn forwarded_prefix_is_only_taken_as_a_local_path() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let (app, _) = app_and_db(pg).await;
    let with_prefix = |path: &str, prefix: &str| {
        Request::get(path)
            .header("x-forwarded-prefix", prefix)
            .body(Body::empty())
            .unwrap()
    };
    for bad in [
        "//evil.example",
        "//evil.example/",
        "///evil.example",
        "/ok//evil.example",
        "https://evil.example",
        "http:/evil.example",
        "evil.example",
        "/\\evil.example",
        "/a b",
        "/x\"><script>",
    ] {
        let (response, html) = call(&app, with_prefix("/records", bad)).await;
        assert_eq!(response.status(), StatusCode::OK, "{bad}");
        assert!(
            html.contains("href=\"./stats\""),
            "{bad}: links not relative"
        );
        assert!(!html.contains("evil"), "{bad}: {html}");
        let (response, _) = call(&app, with_prefix("/v2/collector", bad)).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(location, "../", "{bad}: redirect to {location}");
    }
    let (response, html) = call(&app, with_prefix("/records", "/telemetry")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(html.contains("href=\"/telemetry/stats\""));
    let (response, _) = call(&app, with_prefix("/v2/collector", "/telemetry/")).await;
    assert_eq!(response.headers()[header::LOCATION], "/telemetry/");
}

fn record(edits: &[(&str, &str)], payload: &str) -> Request<Body> {
    let mut fields = vec![
        ("record_format_version", "4"),
        ("classification", "org.clearlinux/first/send"),
        ("severity", "2"),
        ("machine_id", "0123456789abcdef0123456789abcdef"),
        ("creation_timestamp", "1795758044"),
        ("arch", "x86_64"),
        ("host_type", "first|host"),
        ("build", "100"),
        ("kernel_version", "6.1.0"),
        ("payload_format_version", "1"),
        ("system_name", "clear-linux-os"),
        ("board_name", "b"),
        ("cpu_model", "c"),
        ("bios_version", "v"),
        ("event_id", "0123456789abcdef0123456789abcdef"),
        ("x-telemetry-tid", TID),
        ("content-type", "application/text"),
    ];
    for (k, v) in edits {
        fields.retain(|(n, _)| n != k);
        fields.push((k, v));
    }
    let mut builder = Request::post("/");
    for (k, v) in fields {
        builder = builder.header(k, v);
    }
    builder.body(Body::from(payload.to_string())).unwrap()
}

/// A format-4 resend (same machine, event id and creation time) with other content is not
/// stored again, and its 201 describes the row that is stored, not what the resend carried.
#[tokio::test]
async fn a_format4_resend_with_other_content_is_answered_with_the_stored_row() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let (app, db) = app_and_db(pg).await;
    let (response, first) = call(&app, record(&[], "first payload")).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{first}");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let changed = [
        ("classification", "org.clearlinux/second/send"),
        ("severity", "4"),
        ("host_type", "second|host"),
        ("build", "200"),
        ("kernel_version", "6.9.9"),
        ("arch", "aarch64"),
        ("board_name", "other"),
        ("x-clr-external", "true"),
    ];
    let (response, again) = call(&app, record(&changed, "second payload")).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{again}");
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again, first, "the resend's 201 describes the stored row");
    assert_eq!(again["payload"], "first payload");
    assert_eq!(again["classification"], "org.clearlinux/first/send");
    let rows: i64 = connect(&db)
        .await
        .query_one("SELECT count(*) FROM records", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

/// JSON (201, 400, the query API), CSV and `/metrics` are sent with
/// `X-Content-Type-Options: nosniff`, as the HTML pages are.
#[tokio::test]
async fn every_answer_says_nosniff() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let (app, _) = app_and_db(pg).await;
    let requests = [
        ("201", record(&[], "p")),
        ("400", record(&[("severity", "9")], "p")),
        ("query API", get("/api/records")),
        ("CSV", get("/records.csv")),
        ("metrics", get("/metrics")),
        ("readyz", get("/readyz")),
        ("HTML", get("/records")),
        ("404", get("/nowhere")),
    ];
    for (name, request) in requests {
        let (response, body) = call(&app, request).await;
        assert_eq!(
            response
                .headers()
                .get(header::X_CONTENT_TYPE_OPTIONS)
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{name} ({}): {body}",
            response.status()
        );
    }
}
