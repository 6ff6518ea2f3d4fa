//! `GET /records/<id>`: every column of one record and its full payload, preformatted.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{html, Markup};

use super::html::{page, Ctx, UiError};
use crate::record::format_ts;
use crate::state::AppState;
use crate::store::ui_queries::record_detail;

/// A timestamp column shown with its calendar form next to the stored number.
fn show(column: &str, value: &str) -> Markup {
    match (column, value.parse::<f64>()) {
        ("timestamp_server" | "timestamp_client", Ok(secs)) => {
            html! { (format_ts(secs)) " " small { "(" (value) ")" } }
        }
        _ => html! { (value) },
    }
}

pub async fn detail(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let Some(id_num) = id.parse::<i32>().ok().filter(|n| *n > 0) else {
        return Err(UiError::NotFound(id));
    };
    let Some((fields, payload)) = record_detail(&state.pool, id_num).await? else {
        return Err(UiError::NotFound(id));
    };
    let body = html! {
        h1 { "Record " (id_num) }
        table #fields {
            @for (column, value) in &fields {
                tr {
                    th { (column) }
                    td {
                        @match value {
                            Some(v) => (show(column, v)),
                            None => i { "NULL" },
                        }
                    }
                }
                "\n"
            }
        }
        h2 { "Payload (" (payload.len()) " bytes)" }
        pre #payload { (payload) }
        p { a href=(ctx.href("records")) { "« records" } }
    };
    Ok(page(&ctx, &format!("Record {id_num}"), body))
}
