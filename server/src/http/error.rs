//! The HTTP layer's error type: invalid input gets its message (400/413), an unavailable
//! database a 503, and internal details only ever go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::record::Rejection;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    BadQuery(String),
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("request body broken off")]
    BodyBroken,
    /// The collector itself is at capacity (requests in flight, the body budget): 503.
    #[error("collector busy: {0}")]
    Busy(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn retry_later(text: &str) -> Response {
    let mut response = message(StatusCode::SERVICE_UNAVAILABLE, text);
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("120"),
    );
    response
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Rejected(r) => message(StatusCode::BAD_REQUEST, &r.message),
            AppError::TooLarge(limit) => message(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("record larger than {limit} bytes"),
            ),
            AppError::BadQuery(m) => message(StatusCode::BAD_REQUEST, &m),
            AppError::BodyBroken => message(StatusCode::BAD_REQUEST, "request body broken off"),
            AppError::BodyTimeout => message(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            ),
            // PostgreSQL's message names what it could not take (e.g. the index).
            AppError::Store(StoreError::Refused(why)) => message(
                StatusCode::BAD_REQUEST,
                &format!("record refused by the database: {why}"),
            ),
            AppError::Store(StoreError::Unavailable(_)) => {
                retry_later("database unavailable, retry later")
            }
            AppError::Busy(_) => retry_later("collector busy, retry later"),
        }
    }
}
