//! The web UI through the router (no socket): records list, filters, keyset paging, detail,
//! CSV, charts, error pages, prefix-aware links, and escaping of every user-controlled text.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use telem_collector::http::router;
use telem_collector::serve::App;
use tower::ServiceExt;

use crate::harness::{config, migrated_db, TID};
use crate::pg::PgCluster;

pub const SCRIPT_CLASSIFICATION: &str = "<script>alert(1)</script>/x";
pub const SCRIPT_PAYLOAD: &str =
    "<script>alert(\"payload\")</script> & <img src=x onerror=alert(2)>";

pub async fn app(pg: &PgCluster) -> Router {
    let app = App::start(&config(&migrated_db(pg).await)).await.unwrap();
    router(app.state)
}

/// Posts a valid format-4 record with `edits` applied; panics unless it is stored (201).
pub async fn post(app: &Router, edits: &[(&str, &str)], payload: &str) {
    let mut fields = vec![
        ("record_format_version", "4"),
        ("classification", "org.clearlinux/ui/test"),
        ("severity", "2"),
        ("machine_id", "0123456789abcdef0123456789abcdef"),
        ("creation_timestamp", "1795758044"),
        ("arch", "x86_64"),
        ("host_type", "Intel|NUC|1"),
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
        fields.push((k, v));
    }
    let mut builder = Request::post("/");
    for (k, v) in fields {
        builder = builder.header(k, v);
    }
    let request = builder.body(Body::from(payload.to_string())).unwrap();
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn get_ok(app: &Router, path: &str) -> String {
    let (status, body) = get(app, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Record ids linked from a records page, in page order.
fn ids(html: &str) -> Vec<i32> {
    html.split("href=\"./records/")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse().ok())
        .collect()
}

/// Distinct records for the list tests: (classification, severity, build, payload).
const SAMPLE: &[(&str, &str, &str, &str)] = &[
    (
        "org.clearlinux/crash/kernel",
        "3",
        "31870",
        "oops in module foo",
    ),
    ("org.clearlinux/crash/user", "2", "31870", "segfault in bar"),
    (
        "org.clearlinux/hello/world",
        "1",
        "31880",
        "hello 100% _done_",
    ),
    ("other.org/crash/kernel", "4", "31880", "panic"),
];

async fn with_sample(pg: &PgCluster) -> Router {
    let app = app(pg).await;
    for (i, (class, sev, build, payload)) in SAMPLE.iter().enumerate() {
        let ts = (1795758000 + i).to_string();
        post(
            &app,
            &[
                ("classification", class),
                ("severity", sev),
                ("build", build),
                ("creation_timestamp", &ts),
            ],
            payload,
        )
        .await;
    }
    app
}

#[tokio::test]
async fn user_controlled_text_is_escaped_everywhere() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = app(pg).await;
    post(
        &app,
        &[
            ("classification", SCRIPT_CLASSIFICATION),
            ("host_type", "<b>bold</b>\"quoted\""),
            ("machine_id", "<i>m</i>"),
        ],
        SCRIPT_PAYLOAD,
    )
    .await;
    let list = get_ok(&app, "/").await;
    let id = ids(&list)[0];
    let detail = get_ok(&app, &format!("/records/{id}")).await;
    let stats = get_ok(&app, "/stats").await;
    let overview = get_ok(&app, "/overview").await;
    for (name, html) in [
        ("list", &list),
        ("detail", &detail),
        ("stats", &stats),
        ("overview", &overview),
    ] {
        assert!(
            !html.contains("<script"),
            "{name} has a raw <script>:\n{html}"
        );
        assert!(!html.contains("<img"), "{name} has a raw <img>");
        assert!(!html.contains("<b>bold"), "{name} has raw <b>");
        assert!(!html.contains("<i>m"), "{name} has raw <i>");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;/x"),
            "{name}"
        );
    }
    assert!(detail.contains(
        "&lt;script&gt;alert(&quot;payload&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;"
    ));
    assert!(detail.contains("&lt;b&gt;bold&lt;/b&gt;&quot;quoted&quot;"));
    // The filter form echoes what was typed, escaped too.
    let echo = get_ok(&app, "/records?q=%22%3E%3Cscript%3Ex").await;
    assert!(!echo.contains("<script"));
    assert!(echo.contains("value=\"&quot;&gt;&lt;script&gt;x\""));
    // A bad filter value is echoed in the 400 page, escaped.
    let (status, bad) = get(&app, "/records?severity=%3Cscript%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!bad.contains("<script"));
    // Scripts are forbidden by policy as well.
    let response = app
        .clone()
        .oneshot(Request::get("/records").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    // CSV carries the data as it is.
    let csv = get_ok(&app, "/records.csv").await;
    assert!(csv.contains(SCRIPT_CLASSIFICATION));
    assert!(
        csv.contains("\"<script>alert(\"\"payload\"\")</script> & <img src=x onerror=alert(2)>\"")
    );
}

#[tokio::test]
async fn filters_select_the_matching_records() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = with_sample(pg).await;
    let all = ids(&get_ok(&app, "/records").await);
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    let count = |path: &'static str| {
        let app = app.clone();
        async move { ids(&get_ok(&app, path).await).len() }
    };
    assert_eq!(
        count("/records?classification=org.clearlinux/crash/*").await,
        2
    );
    assert_eq!(count("/records?classification=*/crash/kernel").await, 2);
    assert_eq!(
        count("/records?classification=org.clearlinux/crash/user").await,
        1
    );
    assert_eq!(
        count("/records?classification=org.clearlinux/crash").await,
        0
    );
    assert_eq!(count("/records?severity=4").await, 1);
    assert_eq!(count("/records?build=31880").await, 2);
    assert_eq!(count("/records?build=31880&severity=1").await, 1);
    assert_eq!(count("/records?q=OOPS").await, 1);
    // LIKE metacharacters in the search are literal.
    assert_eq!(count("/records?q=100%25%20_done_").await, 1);
    assert_eq!(count("/records?q=%25").await, 1);
    assert_eq!(count("/records?system_name=clear-linux-os").await, 4);
    assert_eq!(count("/records?system_name=debian").await, 0);
    assert_eq!(
        count("/records?machine_id=0123456789abcdef0123456789abcdef").await,
        4
    );
    assert_eq!(count("/records?since=1h").await, 4);
    assert_eq!(count("/records?to=2000-01-01").await, 0);
    assert_eq!(
        count("/records?from=2000-01-01&classification=&build=").await,
        4
    );
    for bad in [
        "/records?severity=9",
        "/records?since=1y",
        "/records?from=soon",
        "/records?before=x",
    ] {
        let (status, html) = get(&app, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(html.contains("invalid"), "{bad}: {html}");
    }
    // The CSV holds the filtered set: header plus one line per record.
    let csv = get_ok(&app, "/records.csv?classification=org.clearlinux/crash/*").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,ts_reception,ts_capture,severity,classification,build"));
    assert!(lines[1].contains("org.clearlinux/crash/user"));
}

/// Follows the "older" links from `path`: the ids seen, in order, and the last page's path.
async fn walk_older(app: &Router, path: &str) -> (Vec<i32>, String) {
    let mut seen = Vec::new();
    let mut path = path.to_string();
    loop {
        let html = get_ok(app, &path).await;
        seen.extend(ids(&html));
        let Some(next) = html.split("rel=\"next\" href=\"./").nth(1) else {
            return (seen, path);
        };
        path = format!("/{}", next.split('"').next().unwrap().replace("&amp;", "&"));
        assert!(path.contains("before="), "{path}");
    }
}

#[tokio::test]
async fn keyset_paging_walks_every_record_once() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = with_sample(pg).await;
    let (seen, path) = walk_older(&app, "/records?n=3").await;
    assert_eq!(seen.len(), 4);
    // And back: the newer link of the last page shows the first page again.
    let last = get_ok(&app, &path).await;
    let newer = last
        .split("rel=\"prev\" href=\"./")
        .nth(1)
        .expect("a newer link")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert_eq!(ids(&get_ok(&app, &format!("/{newer}")).await), seen[..3]);
}

#[tokio::test]
async fn detail_shows_every_field_and_links_honour_the_prefix() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = with_sample(pg).await;
    let id = ids(&get_ok(&app, "/").await)[0];
    let html = get_ok(&app, &format!("/records/{id}")).await;
    for text in [
        "classification",
        "other.org/crash/kernel",
        "kernel_version",
        "6.1.0",
        "event_id",
        "cpu_model",
        "timestamp_client",
        "<pre id=\"payload\">panic</pre>",
        "href=\"../records\"",
    ] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }
    let (status, _) = get(&app, "/records/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&app, "/records/abc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let request = Request::get("/records")
        .header("x-forwarded-prefix", "/telemetry/")
        .body(Body::empty())
        .unwrap();
    let (_, prefixed) = send(&app, request).await;
    assert!(
        prefixed.contains("href=\"/telemetry/records/"),
        "{prefixed}"
    );
    assert!(prefixed.contains("href=\"/telemetry/stats\""));
}

/// A payload search first looks among the newest records the other filters select, then asks
/// the whole table; paged one record at a time (so the first look is used whenever it finds
/// more than a page), with a glob and keyset paging adding their own parameters, it still
/// walks every match once, newest first.
#[tokio::test]
async fn a_payload_search_pages_through_every_match_once() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = with_sample(pg).await;
    let every = ids(&get_ok(&app, "/records?q=in").await);
    let crash = ids(&get_ok(&app, "/records?q=in&classification=org.clearlinux/crash/*").await);
    assert!(every.len() >= 2 && crash.len() == 2, "{every:?} {crash:?}");
    for (query, expected) in [
        ("q=in", &every),
        ("q=in&classification=org.clearlinux/crash/*", &crash),
    ] {
        let (seen, _) = walk_older(&app, &format!("/records?{query}&n=1")).await;
        assert_eq!(&seen, expected, "{query}");
    }
}

/// The links of a page (`href` values, unescaped) as paths from the root, for a page at
/// `path` (one level deep, or a record's detail two levels deep).
fn links(path: &str, html: &str) -> Vec<String> {
    let up = if path.starts_with("/records/") {
        "../"
    } else {
        "./"
    };
    html.split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .map(|link| {
            let rest = link
                .strip_prefix(up)
                .unwrap_or_else(|| panic!("{path}: {link}"));
            format!("/{rest}")
        })
        .collect()
}

/// Every link of every page (records, paging, per-value links, chart bars under filters,
/// cards, CSV) answers 200 and names each parameter once, so no link depends on which of
/// two values the server takes.
#[tokio::test]
async fn every_link_of_every_page_answers_and_names_each_parameter_once() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let app = with_sample(pg).await;
    let id = ids(&get_ok(&app, "/records").await)[0];
    let pages = [
        "/records".to_string(),
        "/records?classification=org.clearlinux/crash/*&n=1".into(),
        "/records?build=31880&since=24h".into(),
        "/builds?classification=org.clearlinux/*".into(),
        "/stats?classification=org.clearlinux/*&severity=3".into(),
        "/stats?platform=Intel%7CNUC%7C1".into(),
        "/overview".into(),
        format!("/records/{id}"),
    ];
    let mut checked = std::collections::HashSet::new();
    for page in &pages {
        let html = get_ok(&app, page).await;
        let found = links(page.split('?').next().unwrap(), &html);
        assert!(found.len() > 4, "{page}: {found:?}");
        for link in found {
            if let Some((_, query)) = link.split_once('?') {
                let mut names: Vec<&str> = query
                    .split('&')
                    .map(|kv| kv.split('=').next().unwrap())
                    .collect();
                let all = names.len();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), all, "{page}: {link} repeats a parameter");
            }
            if checked.insert(link.clone()) {
                let (status, body) = get(&app, &link).await;
                assert_eq!(status, StatusCode::OK, "{page}: {link}: {body}");
            }
        }
    }
    // A query that names a parameter twice is refused, naming it, rather than read one way.
    let (status, html) = get(&app, "/records?severity=1&severity=2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("severity"), "{html}");
}
