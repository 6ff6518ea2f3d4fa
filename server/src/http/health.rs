//! Operational endpoints: `/healthz` (the process answers), `/readyz` (database reachable and
//! schema current), `/metrics` (Prometheus text). `GET /` is the web UI (`crate::ui`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::store::schema_status;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let check = async {
        let client = state.writer_pool.get().await.map_err(|e| e.to_string())?;
        let status = schema_status(&client).await.map_err(|e| e.to_string())?;
        if status.is_current() {
            Ok(())
        } else {
            Err(format!(
                "schema at version {} of {}: run `telem-collector migrate`",
                status.current, status.latest
            ))
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), check).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(why)) => {
            tracing::warn!(%why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database not ready\n").into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database check timed out\n",
        )
            .into_response(),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
