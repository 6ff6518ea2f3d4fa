//! `GET /records/<id>`: every column of one record and its full payload, preformatted and
//! escaped.

use axum::extract::{Path, State};
use axum::response::Response;

use super::html::{esc, page, Ctx, UiError};
use crate::record::format_ts;
use crate::state::AppState;
use crate::store::ui_queries::record_detail;

/// A timestamp column shown with its calendar form next to the stored number.
fn show(column: &str, value: &str) -> String {
    match (column, value.parse::<f64>()) {
        ("timestamp_server" | "timestamp_client", Ok(secs)) => {
            format!("{} <small>({})</small>", esc(&format_ts(secs)), esc(value))
        }
        _ => esc(value),
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
    let mut body = format!("<h1>Record {id_num}</h1><table id=\"fields\">");
    for (column, value) in &fields {
        let cell = match value {
            Some(v) => show(column, v),
            None => "<i>NULL</i>".to_string(),
        };
        body.push_str(&format!("<tr><th>{column}</th><td>{cell}</td></tr>\n"));
    }
    body.push_str(&format!(
        "</table><h2>Payload ({} bytes)</h2><pre id=\"payload\">{}</pre>\
         <p><a href=\"{}\">« records</a></p>",
        payload.len(),
        esc(&payload),
        ctx.href("records")
    ));
    Ok(page(&ctx, &format!("Record {id_num}"), &body))
}
