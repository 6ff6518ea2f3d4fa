//! The HTTP surface: routes (the web UI's among them, from `crate::ui`) and limits; the
//! state handlers share is `crate::state`. Handlers parse, validate and hand
//! records to the store; they never touch SQL themselves.

mod api;
pub mod body;
mod collect;
mod error;
mod health;

use axum::routing::{get, post};
use axum::Router;

/// Re-exported for `serve` and the tests, which build the router from it.
pub use crate::state::AppState;
pub use error::AppError;

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
