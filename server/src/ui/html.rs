//! The page frame ([`page`]), links that work at `/` or under a proxy prefix ([`Ctx`]), and
//! the UI's error pages. Pages are maud templates: every value they interpolate is
//! HTML-escaped, so record data cannot become markup; the only `PreEscaped` text is the
//! constant style sheet below.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::filter::RecordsQuery;
use crate::store::StoreError;

/// Where the UI's root is, seen from the current page: `X-Forwarded-Prefix` (a proxy that
/// serves us under a prefix) gives an absolute root, else links are relative to the request
/// path, so a proxy that strips any prefix needs no configuration at all.
#[derive(Debug, Clone)]
pub struct Ctx {
    root: String,
}

/// A prefix we are willing to put in links and redirects: a path on this host (`/a/b`): one
/// leading `/`, no empty segment (`//host` would be another host), no scheme, path characters
/// only. `None` (links stay relative) for anything else.
fn valid_prefix(p: &str) -> Option<String> {
    let p = p.trim();
    if p.contains("//") {
        return None;
    }
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() {
        return Some(String::new());
    }
    let ok = p.starts_with('/')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'));
    ok.then(|| p.to_string())
}

impl Ctx {
    /// The context for a request to `path` carrying an optional `X-Forwarded-Prefix`.
    pub fn new(path: &str, forwarded_prefix: Option<&str>) -> Self {
        let root = match forwarded_prefix.and_then(valid_prefix) {
            Some(prefix) => format!("{prefix}/"),
            None => {
                let depth = path.matches('/').count().saturating_sub(1);
                if depth == 0 {
                    "./".to_string()
                } else {
                    "../".repeat(depth)
                }
            }
        };
        Self { root }
    }

    /// A link to `path` (relative to the UI root, e.g. `records/5`); templates escape it.
    pub fn href(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// A link to the page `path` with `query` as its query string (none when it is empty).
    pub fn query(&self, path: &str, query: &RecordsQuery) -> String {
        match query.encode() {
            q if q.is_empty() => self.href(path),
            q => format!("{}{path}?{q}", self.root),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let prefix = parts
            .headers
            .get("x-forwarded-prefix")
            .and_then(|v| v.to_str().ok());
        Ok(Ctx::new(parts.uri.path(), prefix))
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{background:#1f3a5f;color:#fff;padding:.5em 1em}header a{color:#fff;margin-right:1.2em}
header b{margin-right:2em}main{padding:1em}table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right}td.t{white-space:nowrap}
.ex{font-family:monospace;color:#555;max-width:30em;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
form.filters{display:flex;flex-wrap:wrap;gap:.4em 1em;margin-bottom:1em;align-items:end}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#555}
pre{background:#f6f6f6;padding:1em;white-space:pre-wrap;word-break:break-all}
.sev3,.sev4{color:#b00;font-weight:bold}.err{color:#b00}.pager a{margin-right:1em}
.cards{display:flex;gap:1em}.card{border:1px solid #ddd;padding:.6em 1.2em}
.card b{display:block;font-size:24px}svg text{font:12px system-ui,sans-serif}";

/// Navigation entries: (path below the root, label).
const NAV: &[(&str, &str)] = &[
    ("records", "Records"),
    ("overview", "Overview"),
    ("builds", "Builds"),
    ("stats", "Stats"),
];

/// A complete HTML page around `body`.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · Telemetry" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    b { "Telemetry" }
                    @for (path, label) in NAV {
                        a href=(ctx.href(path)) { (label) }
                    }
                }
                main { (body) }
            }
        }
        "\n"
    };
    html_response(StatusCode::OK, html.into_string())
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // No page needs a script: forbid them all, so an escaping bug cannot run one.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// What a UI page can fail with; rendered as a small HTML page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no record with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            UiError::NotFound(_) => (StatusCode::NOT_FOUND, self.to_string()),
            UiError::Store(e) => {
                tracing::warn!(error = %e, "web UI query failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable, retry later".to_string(),
                )
            }
        };
        let html = html! {
            (DOCTYPE) "\n"
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (status) }
                    style { (PreEscaped(STYLE)) }
                }
                body { main { h1 { (status) } p.err { (text) } } }
            }
            "\n"
        };
        html_response(status, html.into_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text_of(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await;
        String::from_utf8(body.unwrap().to_vec()).unwrap()
    }

    /// Values a template interpolates come out as text, in element content and attributes.
    #[tokio::test]
    async fn pages_escape_what_they_interpolate() {
        let evil = "<script>alert('x')</script>&\"";
        let escaped = "&lt;script&gt;alert('x')&lt;/script&gt;&amp;&quot;";
        let ctx = Ctx::new("/records", None);
        let html = text_of(page(&ctx, evil, html! { p title=(evil) { (evil) } })).await;
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains(&format!("<title>{escaped} · Telemetry</title>")));
        assert!(html.contains(&format!("<p title=\"{escaped}\">{escaped}</p>")));
        let error = text_of(UiError::BadRequest(evil.into()).into_response()).await;
        assert!(
            error.contains(&format!("<p class=\"err\">{escaped}</p>")),
            "{error}"
        );
    }

    #[test]
    fn links_are_relative_or_use_the_forwarded_prefix() {
        assert_eq!(Ctx::new("/", None).href("records"), "./records");
        assert_eq!(Ctx::new("/records", None).href("builds"), "./builds");
        assert_eq!(Ctx::new("/records/5", None).href("stats"), "../stats");
        assert_eq!(
            Ctx::new("/records/5", Some("/telemetry/")).href("stats"),
            "/telemetry/stats"
        );
        assert_eq!(Ctx::new("/records", Some("/")).href("stats"), "/stats");
        // A prefix that is not a path on this host is ignored: links stay relative.
        for bad in [
            "/x\"><script>",
            "//evil.example",
            "//evil.example/",
            "///evil.example",
            "/a//b",
            "https://evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/a\tb",
            "/a b",
            "/\\evil.example",
            "/telemetry\u{e9}",
        ] {
            assert_eq!(
                Ctx::new("/", Some(bad)).href("records"),
                "./records",
                "{bad:?}"
            );
        }
    }
}
