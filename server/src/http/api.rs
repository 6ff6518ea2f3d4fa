//! `GET /api/records`: the upstream query API, filters validated (400 naming the parameter),
//! newest first, paging by `from_id`.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use super::error::AppError;
use crate::state::AppState;
use crate::store::{query_records, RecordFilter};

fn parse_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, AppError> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    serde_urlencoded_pairs(query).ok_or_else(|| AppError::BadQuery("malformed query string".into()))
}

/// Decodes `a=1&b=x%20y` with the same rules axum's `Query` uses.
fn serde_urlencoded_pairs(query: &str) -> Option<Vec<(String, String)>> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&format!("/?{query}").parse().ok()?)
        .ok()
        .map(|q| q.0)
}

pub async fn records(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    let pairs = parse_pairs(query.as_deref())?;
    let filter = RecordFilter::from_pairs(&pairs).map_err(AppError::BadQuery)?;
    let records = query_records(&state.pool, &filter).await?;
    Ok(Json(json!({ "records": records })))
}
