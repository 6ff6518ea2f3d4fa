//! The HTTP surface: routes, shared state and limits. Handlers parse, validate and hand
//! records to the store; they never touch SQL themselves.

mod api;
pub mod body;
mod collect;
mod error;
mod health;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use deadpool_postgres::Pool;

use crate::metrics::Metrics;
use crate::store::Writer;

pub use error::AppError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub writer: Writer,
    /// The readers' pool (web UI, query API): bounded, with a statement timeout.
    pub pool: Pool,
    /// The writer's pool, for readiness checks (ready means "records can be stored").
    pub writer_pool: Pool,
    pub metrics: Arc<Metrics>,
    pub telemetry_id: Arc<str>,
    pub body_limit: usize,
    /// Bytes of large request bodies held at once (`body_budget_bytes`).
    pub body_budget: body::BodyBudget,
}

/// The complete router; tests drive it with `tower::ServiceExt::oneshot`, no socket needed.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(collect::post_record).get(crate::ui::records_page))
        .route(
            "/v2/collector",
            post(collect::post_record).get(collect::redirect_to_ui),
        )
        .route(
            "/v3/collector",
            post(collect::post_record).get(collect::redirect_to_ui),
        )
        .route("/api/records", get(api::records))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(crate::ui::routes())
        .with_state(state)
        .layer(axum::middleware::map_response(nosniff))
}

/// Every answer (JSON, CSV, HTML, `/metrics`) is to be taken as the type it says it is.
async fn nosniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}
