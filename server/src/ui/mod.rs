//! The web UI an operator opens at `/`: server-rendered HTML, no JavaScript, no external
//! resources; charts are inline SVG. Pages: records list (`/`, `/records`), one record
//! (`/records/<id>`), CSV export (`/records.csv`), charts (`/builds`, `/stats`,
//! `/overview`). Every link is relative to the request
//! path or built from `X-Forwarded-Prefix`, so the UI works at `/` or under a proxy prefix.
//! Pages are maud templates, which escape every value they interpolate; query strings are
//! [`filter::RecordsQuery`] serialised with serde_urlencoded; the CSV is written by the `csv`
//! crate. Pages are sent with a CSP that forbids scripts. Handlers only read: nothing here
//! writes to the database.

mod cache;
mod chart;
mod csv;
mod detail;
pub mod filter;
mod form;
pub mod html;
mod records;
mod stats;

use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub use records::list as records_page;

/// The UI's routes except `GET /`, which `http::router` registers next to `POST /`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/records", get(records::list))
        .route("/records.csv", get(csv::export))
        .route("/records/{id}", get(detail::detail))
        .route("/builds", get(stats::builds))
        .route("/stats", get(stats::stats))
        .route("/overview", get(stats::overview))
}
