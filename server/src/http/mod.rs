//! The HTTP surface: routes, shared state and limits. Handlers parse, validate and hand
//! records to the store; they never touch SQL themselves.

mod api;
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
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    pub telemetry_id: Arc<str>,
    pub body_limit: usize,
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
}
