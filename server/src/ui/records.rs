//! `GET /` and `GET /records`: the newest records, filtered, paged by id (keyset, no OFFSET),
//! with a link to the CSV export of the same filtered set.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};

use super::filter::{Field, Params, RecordsQuery};
use super::form;
use super::html::{page, Ctx, UiError};
use crate::record::format_ts;
use crate::state::AppState;
use crate::store::ui_queries::{list_records, stored_records_estimate, ListRow, Page};

pub fn now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

/// The records query of a request, or a 400 page for a malformed query string.
pub type Given = Result<Query<RecordsQuery>, QueryRejection>;

pub fn params(given: Given) -> Result<Params, UiError> {
    let Query(query) = given.map_err(|e| {
        let why = std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
        UiError::BadRequest(format!("malformed query string{why}"))
    })?;
    Params::parse(&query, now()).map_err(UiError::BadRequest)
}

fn row(ctx: &Ctx, r: &ListRow) -> Markup {
    // A link to the records with this value, whatever else is filtered now.
    let by = |field: Field, value: &str| {
        html! {
            a href=(ctx.query("records", &RecordsQuery::default().with(field, value))) { (value) }
        }
    };
    html! {
        tr {
            td.num { a href=(ctx.href(&format!("records/{}", r.id))) { (r.id) } }
            td.t { (format_ts(r.ts_server)) }
            @let severity = r.severity.map(|s| s.to_string()).unwrap_or_default();
            td class={ "num sev" (severity) } { (severity) }
            td { (by(|q| &mut q.classification, &r.classification)) }
            td { (by(|q| &mut q.build, &r.build)) }
            td {
                @if let Some(m) = &r.machine_id { (by(|q| &mut q.machine_id, m)) }
            }
            td { (r.system_name.as_deref().unwrap_or("")) }
            td { (r.host_type.as_deref().unwrap_or("")) }
            td { (r.arch.as_deref().unwrap_or("")) }
            td.ex { (r.excerpt) @if r.truncated { "…" } }
        }
        "\n"
    }
}

pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    given: Given,
) -> Result<Response, UiError> {
    let p = params(given)?;
    let result = list_records(
        &state.pool,
        &p.filter,
        p.page.unwrap_or(Page::Newest),
        p.limit,
    )
    .await?;
    let (stored, exact) = stored_records_estimate(&state.pool).await?;
    let filtered = !p.filter.is_empty();
    let at = |field: Field, id: i32| ctx.query("records", &p.query.with(field, &id.to_string()));
    let body = html! {
        h1 { "Records" }
        p {
            "Stored records: " @if !exact { "~" } (stored) ". Newest first"
            @if filtered { ", filtered" } "."
        }
        (form::filters(&p.query, &ctx.href("records")))
        @if result.rows.is_empty() {
            p { "No records match." }
        } @else {
            table #records {
                thead {
                    tr {
                        th { "id" } th { "received (UTC)" } th { "sev" } th { "classification" }
                        th { "build" } th { "machine" } th { "system" } th { "platform" }
                        th { "arch" } th { "payload" }
                    }
                }
                tbody {
                    "\n"
                    @for r in &result.rows { (row(&ctx, r)) }
                }
            }
        }
        p.pager {
            @if p.page.is_some() {
                a href=(ctx.query("records", &p.query)) { "« newest" }
            }
            @if let Some(id) = result.newer {
                a rel="prev" href=(at(|q| &mut q.after, id)) { "‹ newer" }
            }
            @if let Some(id) = result.older {
                a rel="next" href=(at(|q| &mut q.before, id)) { "older ›" }
            }
            a href=(ctx.query("records.csv", &p.query)) {
                "CSV of all " @if filtered { "matching" } @else { "stored" } " records"
            }
        }
    };
    Ok(page(&ctx, "Records", body))
}
