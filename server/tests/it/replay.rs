//! Replays raw requests byte for byte over TCP: every captured client vector (when the shared
//! folder exists) and this repository's own fixtures. Each must be answered 201 and stored with
//! the field values it carried (quotes stripped from build and system_name; `N/A` where the
//! record format does not have the field).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use telem_collector::record::decode_text;

use crate::harness::{config, migrated_db, send_raw, TestServer};
use crate::pg::{connect, PgCluster};

/// The values a request carries, read independently of the collector's parser.
fn expected_fields(raw: &[u8]) -> HashMap<String, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("request head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split..];
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase().replace('-', "_"),
                v.trim().to_string(),
            )
        })
        .collect();
    let json = headers
        .iter()
        .any(|(k, v)| k == "content_type" && v.starts_with("application/json"));
    let mut fields: HashMap<String, String> = if json {
        let value: serde_json::Value = serde_json::from_slice(body).expect("JSON body");
        value
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    } else {
        let mut f: HashMap<String, String> = headers.into_iter().collect();
        f.insert("payload".into(), decode_text(body));
        f
    };
    let version: i32 = fields["record_format_version"].parse().unwrap();
    for key in ["build", "system_name"] {
        if let Some(v) = fields.get_mut(key) {
            *v = v.trim_matches('"').to_string();
        }
    }
    if version < 4 {
        fields.insert("event_id".into(), "N/A".into());
    }
    for key in ["board_name", "cpu_model", "bios_version"] {
        fields.entry(key.into()).or_insert_with(|| "N/A".into());
    }
    fields
}

fn http_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    files.sort();
    files
}

async fn replay_dir(pg: &PgCluster, dir: &Path) -> usize {
    let files = http_files(dir);
    assert!(!files.is_empty(), "no *.http files in {}", dir.display());
    let db = migrated_db(pg).await;
    let server = TestServer::start(config(&db)).await;
    let client = connect(&db).await;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        let raw = std::fs::read(file).unwrap();
        let response = send_raw(server.addr, &raw).await;
        assert_eq!(
            response.status,
            201,
            "{name}: {}",
            String::from_utf8_lossy(&response.body)
        );
        let id = response.json()["id"].as_i64().expect("id in the 201 body") as i32;
        let row = client
            .query_one(
                "SELECT record_version::text, classification, severity::text, machine_id,
                        timestamp_client::text, architecture, host_type, build, kernel_version,
                        payload_version::text, system_name, board_name, cpu_model, bios_version,
                        event_id, payload, external
                 FROM records WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        let want = expected_fields(&raw);
        let columns = [
            "record_format_version",
            "classification",
            "severity",
            "machine_id",
            "creation_timestamp",
            "arch",
            "host_type",
            "build",
            "kernel_version",
            "payload_format_version",
            "system_name",
            "board_name",
            "cpu_model",
            "bios_version",
            "event_id",
            "payload",
        ];
        for (i, key) in columns.iter().enumerate() {
            let stored: Option<String> = row.get(i);
            assert_eq!(
                stored.as_deref(),
                want.get(*key).map(String::as_str),
                "{name}: {key}"
            );
        }
        let external: bool = row.get(16);
        let sent_external = want.get("x_clr_external").is_some_and(|v| v == "true");
        assert_eq!(external, sent_external, "{name}: external");
    }
    server.stop().await;
    files.len()
}

#[tokio::test]
async fn captured_client_vectors_are_stored_as_sent() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/client");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: {} is absent (the captured vectors live outside the repo)",
            dir.display()
        );
        return;
    }
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let n = replay_dir(pg, &dir).await;
    eprintln!("replayed {n} captured vectors");
}

#[tokio::test]
async fn own_fixtures_are_stored_as_sent() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    assert!(replay_dir(pg, &dir).await >= 5);
}

#[tokio::test]
async fn either_body_format_on_every_path_and_413_before_reading() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let server = TestServer::start(config(&db)).await;
    let json = r#"{"record_format_version":"4","classification":"org.test/json/any-path","severity":"3","machine_id":"m","creation_timestamp":"PLACEHOLDER","arch":"x86_64","host_type":"h","build":"1","kernel_version":"1.2.3","payload_format_version":"1","system_name":"clear-linux-os","board_name":"b","cpu_model":"c","bios_version":"v","event_id":"0123456789abcdef0123456789abcdef","payload":"p\n"}"#;
    for (i, path) in ["/", "/v2/collector", "/v3/collector"].iter().enumerate() {
        let body = json.replace("PLACEHOLDER", &(10 + i).to_string());
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nX-Telemetry-TID: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            crate::harness::TID,
            body.len()
        );
        let r = send_raw(server.addr, request.as_bytes()).await;
        assert_eq!(
            r.status,
            201,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // The declared length alone is enough for a 413: the body is never awaited.
    let head = format!(
        "POST /v2/collector HTTP/1.1\r\nHost: t\r\nX-Telemetry-TID: {}\r\nContent-Length: 400000\r\n\r\n",
        crate::harness::TID
    );
    assert_eq!(send_raw(server.addr, head.as_bytes()).await.status, 413);
    server.stop().await;
}
