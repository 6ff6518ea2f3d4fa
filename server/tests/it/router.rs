//! The router driven without a socket (`tower::ServiceExt::oneshot`): status codes, the 400
//! body naming the field, 413, redirects, health, readiness, metrics and the query API.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use telem_collector::http::router;
use telem_collector::serve::App;
use tower::ServiceExt;

use crate::harness::{config, migrated_db, TID};
use crate::pg::PgCluster;

async fn app(pg: &PgCluster) -> Router {
    let app = App::start(&config(&migrated_db(pg).await)).await.unwrap();
    router(app.state)
}

fn record(path: &str, edits: &[(&str, Option<&str>)], body: &str) -> Request<Body> {
    let mut fields = vec![
        ("record_format_version", "4"),
        ("classification", "org.clearlinux/router/test"),
        ("severity", "2"),
        ("machine_id", "0123456789abcdef0123456789abcdef"),
        ("creation_timestamp", "1795758044"),
        ("arch", "x86_64"),
        ("host_type", "host"),
        ("build", "31870"),
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
        if let Some(v) = v {
            fields.push((k, v));
        }
    }
    let mut builder = Request::post(path);
    for (k, v) in fields {
        builder = builder.header(k, v);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn created_with_the_upstream_body() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    for path in ["/", "/v2/collector", "/v3/collector"] {
        let ts = match path {
            "/" => "1",
            "/v2/collector" => "2",
            _ => "3",
        };
        let (status, body) = call(
            &app,
            record(path, &[("creation_timestamp", Some(ts))], "p\n"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        for key in [
            "id",
            "machine_id",
            "machine_type",
            "arch",
            "build",
            "kernel_version",
            "ts_capture",
            "ts_reception",
            "severity",
            "classification",
            "record_version",
            "payload",
            "board_name",
            "bios_version",
            "cpu_model",
            "event_id",
            "external",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {body}");
        }
        assert_eq!(v["ts_capture"], format!("1970-01-01 00:00:0{ts} UTC"));
        assert_eq!(v["machine_type"], "host");
        assert_eq!(v["payload"], "p\n");
    }
}

/// (header edits: None removes, field the 400 must name).
type RejectCase = (
    &'static [(&'static str, Option<&'static str>)],
    &'static str,
);

#[tokio::test]
async fn invalid_records_are_400_naming_the_field() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    let cases: &[RejectCase] = &[
        (&[("x-telemetry-tid", None)], "X-Telemetry-TID"),
        (&[("x-telemetry-tid", Some("wrong"))], "X-Telemetry-TID"),
        (&[("severity", Some("9"))], "severity"),
        (&[("arch", Some("mips"))], "arch"),
        (&[("event_id", None)], "event_id"),
        (&[("classification", Some("a/b"))], "classification"),
        (
            &[("record_format_version", Some("7"))],
            "record_format_version",
        ),
    ];
    for (edits, field) in cases {
        let (status, body) = call(&app, record("/v2/collector", edits, "x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{edits:?}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["message"].as_str().unwrap().contains(field), "{body}");
    }
    let (_, metrics) = call(&app, get("/metrics")).await;
    assert!(
        metrics.contains("records_rejected_total{reason=\"invalid\",field=\"severity\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn nul_in_json_is_400_before_batching() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    let body = r#"{"record_format_version":"4","classification":"a/b/c","severity":"1","machine_id":"m","creation_timestamp":"1","arch":"x86_64","host_type":"h","build":"1","kernel_version":"1.2.3","payload_format_version":"1","system_name":"x","board_name":"b","cpu_model":"c","bios_version":"v","event_id":"0123456789abcdef0123456789abcdef","payload":"a\u0000b"}"#;
    let request = Request::post("/v3/collector")
        .header("x-telemetry-tid", TID)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, text) = call(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("payload") && text.contains("NUL"), "{text}");
    let (_, metrics) = call(&app, get("/metrics")).await;
    assert!(
        metrics.contains("telem_collector_batch_size_records_count 0"),
        "no batch ran:\n{metrics}"
    );
}

#[tokio::test]
async fn oversize_body_is_413() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    let big = "y".repeat(307_201);
    let (status, _) = call(&app, record("/v2/collector", &[], &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let at_limit = "y".repeat(307_200);
    let (status, body) = call(&app, record("/v2/collector", &[], &at_limit)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn get_redirects_but_post_never_does() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    for path in ["/v2/collector", "/v3/collector"] {
        let response = app.clone().oneshot(get(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        // relative to /v2/collector: the UI root, also under a prefix a proxy strips
        assert_eq!(response.headers()["location"], "../");
        let behind = Request::get(path)
            .header("x-forwarded-prefix", "/telemetry")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(behind).await.unwrap();
        assert_eq!(response.headers()["location"], "/telemetry/");
        let (status, _) = call(&app, record(path, &[("severity", Some("0"))], "")).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a bad POST is a 400, not a redirect"
        );
    }
    let (status, html) = call(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Stored records"));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    assert_eq!(call(&app, get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(call(&app, get("/readyz")).await.0, StatusCode::OK);
    call(&app, record("/v2/collector", &[], "m")).await;
    let (status, text) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "telem_collector_records_accepted_total 1",
        "telem_collector_batch_size_records_count 1",
        "telem_collector_record_request_duration_seconds_count 1",
        "telem_collector_database_errors_total 0",
    ] {
        assert!(text.contains(name), "{name}:\n{text}");
    }
}

#[tokio::test]
async fn query_api_filters_orders_and_pages() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    for i in 1..=5 {
        let ts = i.to_string();
        let severity = if i % 2 == 0 { "4" } else { "1" };
        let class = format!("org.test/api/c{}", i % 2);
        let edits = [
            ("creation_timestamp", Some(ts.as_str())),
            ("severity", Some(severity)),
            ("classification", Some(class.as_str())),
        ];
        assert_eq!(
            call(&app, record("/", &edits, "q")).await.0,
            StatusCode::CREATED
        );
    }
    let ids = |body: &str| -> Vec<i64> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let (status, all) = call(&app, get("/api/records")).await;
    assert_eq!(status, StatusCode::OK);
    let all = ids(&all);
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    let (_, page) = call(
        &app,
        get(&format!("/api/records?limit=2&from_id={}", all[1])),
    )
    .await;
    assert_eq!(ids(&page), all[2..4].to_vec());
    let (_, sev) = call(&app, get("/api/records?severity=4")).await;
    assert_eq!(ids(&sev).len(), 2);
    let (_, class) = call(
        &app,
        get("/api/records?classification=org.test/api/c1&created_in_sec=600"),
    )
    .await;
    assert_eq!(ids(&class).len(), 3);
    let (_, machine) = call(
        &app,
        get("/api/records?machine_id=nobody&created_in_days=1"),
    )
    .await;
    assert!(ids(&machine).is_empty());
    // Upstream compared limit as a string ("200" > "1000"); we compare numbers.
    assert_eq!(
        call(&app, get("/api/records?limit=200")).await.0,
        StatusCode::OK
    );
    for bad in [
        "limit=1001",
        "limit=0",
        "severity=x",
        "from_id=-1",
        "created_in_days=31",
        "created_in_sec=9999999",
    ] {
        let (status, body) = call(&app, get(&format!("/api/records?{bad}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body.contains(bad.split('=').next().unwrap()),
            "{bad}: {body}"
        );
    }
}
