//! End to end in a real browser: PostgreSQL (the shared test cluster), the collector on port 0,
//! the captured client vectors posted byte for byte (the own fixtures when the shared folder is
//! absent) plus a `<script>` record, then headless Chromium driven over WebDriver opens every
//! page, uses the filter form, follows links and saves screenshots to
//! `target/ui-screenshots/`. Then every page (records, a detail, builds, stats, overview, each
//! with a filter) is visited and every same-origin link on it followed, one level deep, each
//! distinct link once: 200 and a page that is not an error page (screenshots in
//! `target/ui-screenshots/links/`). Skipped with a message when Chromium or chromedriver is missing,
//! unless `TELEM_E2E_REQUIRED=1` (CI), where that is a failure.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::harness::{config, header_request, migrated_db, send_raw, TestServer};
use crate::pg::{connect, PgCluster};
use crate::ui::{SCRIPT_CLASSIFICATION, SCRIPT_PAYLOAD};
use crate::webdriver::{which, Browser};

fn vectors() -> Vec<PathBuf> {
    // `TELEM_CLIENT_VECTORS` names the folder when the checkout is not next to `shared/`
    // (e.g. a git worktree elsewhere).
    let shared = std::env::var_os("TELEM_CLIENT_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/client")
        });
    let dir = if shared.is_dir() {
        shared
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    files.sort();
    files
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// What the browser should find, counted from the database.
struct Expect {
    total: usize,
    hello: usize,
    script_id: i32,
}

fn browse(base: &str, expect: &Expect, chromedriver: &Path, chromium: &Path) {
    let shots = screenshots_dir();
    let b = Browser::start(chromedriver, chromium).expect("headless Chromium starts");
    let shot = |name: &str| b.screenshot(&shots.join(name));

    // Records, newest first: every stored record (fewer than a page) is listed.
    b.goto(base);
    assert!(b.title().starts_with("Records"), "{}", b.title());
    let rows = b.find_all("#records tbody tr");
    assert_eq!(rows.len(), expect.total, "rows on /");
    // The <script> record shows as text: no script element came out of the data.
    assert!(
        b.find_all("script").is_empty(),
        "a script element in the DOM"
    );
    assert!(
        b.find_all("main img").is_empty(),
        "an img element in the DOM"
    );
    assert!(b
        .source()
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;/x"));
    shot("records.png");

    // The filter form: a classification glob.
    let input = b.find("input[name=classification]");
    b.type_into(&input, "org.clearlinux/hello/*");
    b.click_to_navigate(&b.find("form.filters button[type=submit]"));
    assert!(
        b.url()
            .contains("classification=org.clearlinux%2Fhello%2F*"),
        "{}",
        b.url()
    );
    let cells = b.find_all("#records tbody tr td:nth-child(4)");
    assert_eq!(cells.len(), expect.hello, "rows after filtering");
    for cell in &cells {
        assert!(b.text(cell).starts_with("org.clearlinux/hello/"));
    }
    shot("records-filtered.png");

    // The CSV link keeps the filter.
    let csv = "p.pager a[href='./records.csv?classification=org.clearlinux%2Fhello%2F*']";
    assert_eq!(b.find_all(csv).len(), 1, "CSV link with the filter");

    // Detail of the first filtered record, reached by its link.
    b.click(&b.find("#records tbody tr td a"));
    assert!(b.url().contains("/records/"), "{}", b.url());
    assert!(b.text(&b.find("#payload")).contains("hello"));
    shot("detail.png");
    // The navigation's relative link from a nested page.
    b.click(&b.find("header a[href='../builds']"));
    assert!(b.url().ends_with("/builds"), "{}", b.url());
    assert!(b.find_all("#builds-chart rect").len() >= 2, "build bars");
    shot("builds.png");

    // The <script> record's detail: the payload text is exactly what was sent.
    b.goto(&format!("{base}records/{}", expect.script_id));
    assert_eq!(b.text(&b.find("#payload")), SCRIPT_PAYLOAD);
    assert!(b.find_all("script").is_empty());
    shot("detail-escaped.png");

    b.goto(&format!("{base}stats"));
    assert!(b.find_all("#classification-chart rect").len() >= 3);
    assert!(!b.find_all("#platform-chart rect").is_empty());
    assert!(!b.find_all("#arch-chart rect").is_empty());
    shot("stats.png");

    b.goto(&format!("{base}overview"));
    assert_eq!(b.find_all("#days-chart rect").len(), 1, "all records today");
    assert!(!b.find_all("#top-chart rect").is_empty());
    let cards = b.text(&b.find(".cards"));
    assert!(cards.contains(&expect.total.to_string()), "{cards}");
    shot("overview.png");
    eprintln!("screenshots in {}", shots.display());
}

/// Status and content type of a plain GET of `url` (`http://host:port/...`), as any client
/// sees it (WebDriver does not report statuses).
fn http_status(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        if path.is_empty() { "/" } else { path }
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let head = String::from_utf8_lossy(&response);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type)
}

/// Asserts the browser shows a UI page, not an error page.
fn assert_ui_page(b: &Browser, what: &str) {
    let title = b.title();
    assert!(title.ends_with("· Telemetry"), "{what}: title {title:?}");
    assert!(b.find_all("p.err").is_empty(), "{what}: an error message");
    assert!(b.find_all("header a").len() >= 4, "{what}: no navigation");
}

/// Visits each page, then follows every same-origin link found on them, each distinct link
/// once, one level deep: every one answers 200, and HTML ones render a UI page.
fn follow_every_link(b: &Browser, base: &str, pages: &[String]) {
    let shots = screenshots_dir().join("links");
    std::fs::create_dir_all(&shots).unwrap();
    let origin = base.trim_end_matches('/');
    let mut links = BTreeSet::new();
    for (i, page) in pages.iter().enumerate() {
        let (status, _) = http_status(page);
        assert_eq!(status, 200, "{page}");
        b.goto(page);
        assert_ui_page(b, page);
        b.screenshot(&shots.join(format!("page-{i:02}.png")));
        let on_page: Vec<String> = b
            .find_all("a[href]")
            .iter()
            .map(|a| b.property(a, "href"))
            .filter(|href| href.starts_with(origin))
            .collect();
        assert!(!on_page.is_empty(), "{page}: no links");
        links.extend(on_page);
    }
    // The records table's per-row filter links are among them.
    for filter in [
        "records?classification=",
        "records?build=",
        "records?machine_id=",
    ] {
        assert!(
            links.iter().any(|l| l.contains(filter)),
            "no {filter} link in {links:#?}"
        );
    }
    for (i, link) in links.iter().enumerate() {
        let (status, content_type) = http_status(link);
        assert_eq!(status, 200, "{link} ({content_type})");
        if content_type.starts_with("text/csv") {
            continue; // a download, not a page
        }
        assert!(
            content_type.starts_with("text/html"),
            "{link}: {content_type}"
        );
        b.goto(link);
        assert_ui_page(b, link);
        b.screenshot(&shots.join(format!("link-{i:03}.png")));
    }
    eprintln!(
        "followed {} distinct links from {} pages; screenshots in {}",
        links.len(),
        pages.len(),
        shots.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_in_headless_chromium() {
    let required = std::env::var("TELEM_E2E_REQUIRED").as_deref() == Ok("1");
    let chromium = which(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = which(&["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        let why =
            "chromium and chromedriver are needed (apt-get install -y chromium chromium-driver)";
        assert!(!required, "TELEM_E2E_REQUIRED=1: {why}");
        eprintln!("SKIPPED: {why}");
        return;
    };
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let server = TestServer::start(config(&db)).await;
    for file in vectors() {
        let response = send_raw(server.addr, &std::fs::read(&file).unwrap()).await;
        assert_eq!(response.status, 201, "{}", file.display());
    }
    for (build, event) in [("31880", "a1"), ("31890", "a2")] {
        let event_id = format!("{event:0>32}");
        let request = header_request(
            "/v2/collector",
            &[("build", build), ("event_id", &event_id)],
            b"more builds",
        );
        assert_eq!(send_raw(server.addr, &request).await.status, 201);
    }
    // A hello record of the test's own, so the filter and detail checks hold without the
    // shared vectors (the repository's fixtures hold no hello record).
    let request = header_request(
        "/v2/collector",
        &[
            ("classification", "org.clearlinux/hello/world"),
            ("event_id", "000000000000000000000000000000fe"),
        ],
        b"hello world, from the UI test",
    );
    assert_eq!(send_raw(server.addr, &request).await.status, 201);
    let request = header_request(
        "/",
        &[
            ("classification", SCRIPT_CLASSIFICATION),
            ("event_id", "000000000000000000000000000000ff"),
        ],
        SCRIPT_PAYLOAD.as_bytes(),
    );
    let response = send_raw(server.addr, &request).await;
    assert_eq!(response.status, 201);
    let script_id = response.json()["id"].as_i64().unwrap() as i32;
    let client = connect(&db).await;
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) as usize }
    };
    let expect = Expect {
        total: count("SELECT count(*) FROM records").await,
        hello: count(
            "SELECT count(*) FROM records WHERE classification LIKE 'org.clearlinux/hello/%'",
        )
        .await,
        script_id,
    };
    assert!(expect.total <= 50 && expect.hello >= 1);
    let base = format!("http://{}/", server.addr);
    let detail = format!("{base}records/{script_id}");
    let pages: Vec<String> = [
        "records",
        "records?classification=org.clearlinux%2Fhello%2F*&since=24h",
        "records?build=31870&n=10",
        "builds?since=7d",
        "builds?classification=org.clearlinux%2F*",
        "stats?classification=org.clearlinux%2F*",
        "stats?platform=Intel&since=30d",
        "overview",
        "overview?since=24h",
    ]
    .iter()
    .map(|p| format!("{base}{p}"))
    .chain([detail])
    .collect();
    tokio::task::spawn_blocking(move || {
        browse(&base, &expect, &chromedriver, &chromium);
        let b = Browser::start(&chromedriver, &chromium).expect("headless Chromium starts");
        follow_every_link(&b, &base, &pages);
    })
    .await
    .unwrap();
    server.stop().await;
}
