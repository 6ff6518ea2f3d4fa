//! `GET /` and `GET /records`: the newest records, filtered, paged by id (keyset, no OFFSET),
//! with a link to the CSV export of the same filtered set.

use axum::extract::{Query, State};
use axum::response::Response;

use super::filter::Params;
use super::html::{esc, page, Ctx, UiError};
use crate::record::format_ts;
use crate::state::AppState;
use crate::store::ui_queries::{list_records, stored_records_estimate, ListRow, Page};

pub fn now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

/// Query-string pairs, or a 400 page for a malformed query string.
pub type Pairs = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

pub fn params(pairs: Pairs) -> Result<Params, UiError> {
    let Query(pairs) = pairs.map_err(|_| UiError::BadRequest("malformed query string".into()))?;
    Params::parse(&pairs, now()).map_err(UiError::BadRequest)
}

fn opt(v: &Option<String>) -> String {
    esc(v.as_deref().unwrap_or(""))
}

fn row(ctx: &Ctx, r: &ListRow) -> String {
    let detail = ctx.href(&format!("records/{}", r.id));
    let by = |name: &'static str, value: &str| {
        format!(
            "<a href=\"{}\">{}</a>",
            ctx.href(&format!(
                "records?{}",
                Params::default().link(&[(name, value.into())])
            )),
            esc(value)
        )
    };
    let severity = r.severity.map(|s| s.to_string()).unwrap_or_default();
    let ellipsis = if r.truncated { "…" } else { "" };
    format!(
        "<tr><td class=\"num\"><a href=\"{detail}\">{}</a></td><td class=\"t\">{}</td>\
         <td class=\"num sev{severity}\">{severity}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td class=\"ex\">{}{ellipsis}</td></tr>\n",
        r.id,
        esc(&format_ts(r.ts_server)),
        by("classification", &r.classification),
        by("build", &r.build),
        r.machine_id
            .as_deref()
            .map(|m| by("machine_id", m))
            .unwrap_or_default(),
        opt(&r.system_name),
        opt(&r.host_type),
        opt(&r.arch),
        esc(&r.excerpt),
    )
}

pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    pairs: Pairs,
) -> Result<Response, UiError> {
    let p = params(pairs)?;
    let result = list_records(
        &state.pool,
        &p.filter,
        p.page.unwrap_or(Page::Newest),
        p.limit,
    )
    .await?;
    let (stored, exact) = stored_records_estimate(&state.pool).await?;
    let mut body = format!(
        "<h1>Records</h1><p>Stored records: {}{stored}. Newest first{}.</p>",
        if exact { "" } else { "~" },
        if p.filter.is_empty() {
            ""
        } else {
            ", filtered"
        }
    );
    body.push_str(&p.form(&ctx.href("records")));
    let csv = ctx.href(&format!("records.csv?{}", p.link(&[])));
    if result.rows.is_empty() {
        body.push_str("<p>No records match.</p>");
    } else {
        body.push_str(
            "<table id=\"records\"><thead><tr><th>id</th><th>received (UTC)</th><th>sev</th>\
             <th>classification</th><th>build</th><th>machine</th><th>system</th>\
             <th>platform</th><th>arch</th><th>payload</th></tr></thead><tbody>\n",
        );
        for r in &result.rows {
            body.push_str(&row(&ctx, r));
        }
        body.push_str("</tbody></table>");
    }
    let mut pager = Vec::new();
    if p.page.is_some() {
        pager.push(format!(
            "<a href=\"{}\">« newest</a>",
            ctx.href(&format!("records?{}", p.link(&[])))
        ));
    }
    if let Some(id) = result.newer {
        pager.push(format!(
            "<a rel=\"prev\" href=\"{}\">‹ newer</a>",
            ctx.href(&format!("records?{}", p.link(&[("after", id.to_string())])))
        ));
    }
    if let Some(id) = result.older {
        pager.push(format!(
            "<a rel=\"next\" href=\"{}\">older ›</a>",
            ctx.href(&format!(
                "records?{}",
                p.link(&[("before", id.to_string())])
            ))
        ));
    }
    pager.push(format!(
        "<a href=\"{csv}\">CSV of all {} records</a>",
        if p.filter.is_empty() {
            "stored"
        } else {
            "matching"
        }
    ));
    body.push_str(&format!("<p class=\"pager\">{}</p>", pager.join("")));
    Ok(page(&ctx, "Records", &body))
}
