//! Record intake: `POST /`, `/v2/collector`, `/v3/collector` (either body format on any of
//! them) and the `GET` redirect of the collector paths to the UI. A POST is never redirected.
//! Every rejection is logged with its reason, because a 400 blocks that client's spool.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::{read_body, BodyError};
use super::error::AppError;
use crate::record::{self, Field, RawRecord};
use crate::state::AppState;

/// Record requests handled at once before new ones get a 503 (memory bound: each holds its body).
const MAX_IN_FLIGHT: i64 = 4096;

/// How long a request body may take to arrive (the client's own total timeout is 10 s).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /v2/collector`, `GET /v3/collector`: upstream answered 302 to its UI. The location is
/// relative (`../`), or under `X-Forwarded-Prefix`, so it also works behind a proxy prefix.
pub async fn redirect_to_ui(ctx: crate::ui::html::Ctx) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, ctx.href(""))]).into_response()
}

/// Unix time in microseconds.
fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub async fn post_record(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let _in_flight = state.metrics.request_started();
    if state.metrics.in_flight() > MAX_IN_FLIGHT {
        // Each waiting request holds its body: shed load instead of growing without bound.
        state.metrics.unavailable();
        return AppError::Busy("record requests in flight").into_response();
    }
    let received_us = now_us();
    let response = match receive(&state, &headers, body, received_us).await {
        Ok(view) => {
            state.metrics.accepted();
            created(&view)
        }
        Err(e) => {
            match &e {
                AppError::Store(crate::store::StoreError::Unavailable(_)) | AppError::Busy(_) => {
                    state.metrics.unavailable()
                }
                AppError::Store(crate::store::StoreError::Refused(_)) => {
                    state.metrics.rejected("refused", "database")
                }
                _ => {}
            }
            e.into_response()
        }
    };
    state
        .metrics
        .observe_latency(started.elapsed().as_secs_f64());
    response
}

/// The 201 answer: the stored record as JSON. Serialized into a buffer sized for a typical
/// record at once (axum's `Json` starts at 128 bytes and grows by doubling, 3 reallocations
/// and copies for the usual ~700-byte body).
fn created(view: &record::RecordView) -> Response {
    let mut body = Vec::with_capacity(1024 + view.payload.len());
    match serde_json::to_writer(&mut body, view) {
        Ok(()) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        // Serializing strings and numbers cannot fail; should it, the record is stored anyway.
        Err(_) => (StatusCode::CREATED, Json(view)).into_response(),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    received_us: i64,
) -> Result<record::RecordView, AppError> {
    let limit = state.body_limit;
    let too_large = || {
        state.metrics.rejected("too_large", "body");
        tracing::warn!(limit, "record rejected: body too large");
        AppError::TooLarge(limit)
    };
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // A client that stops sending mid-body must not hold a request open forever.
    let reading = read_body(body, limit, declared, &state.body_budget);
    // The reservation lives until the record is answered: the record holds a copy of the body.
    let (body, _reservation) = match tokio::time::timeout(BODY_TIMEOUT, reading).await {
        Ok(Ok(received)) => (received.bytes, received.reservation),
        Ok(Err(BodyError::TooLarge)) => return Err(too_large()),
        Ok(Err(BodyError::Broken)) => return Err(AppError::BodyBroken),
        Ok(Err(BodyError::Overloaded)) => {
            tracing::warn!("record not received: body budget spent (body_budget_bytes)");
            return Err(AppError::Busy("body budget spent"));
        }
        Err(_) => {
            state.metrics.rejected("timeout", "body");
            return Err(AppError::BodyTimeout);
        }
    };
    let raw = if record::is_json(headers, &body) {
        record::from_json(headers, &body).map_err(|r| reject(state, &RawRecord::default(), r))?
    } else {
        record::from_headers(headers, &body)
    };
    drop(body);
    let valid = record::validate_owned(raw, &state.telemetry_id)
        .map_err(|rejected| reject(state, &rejected.1, rejected.0))?;
    let (machine_id, classification) = (valid.machine_id.clone(), valid.classification.clone());
    match state.writer.submit(valid, received_us).await {
        Ok(view) => Ok(view),
        Err(e) => {
            tracing::warn!(%machine_id, %classification, error = %e, "record not stored");
            Err(e.into())
        }
    }
}

fn reject(state: &AppState, raw: &RawRecord, rejection: record::Rejection) -> AppError {
    state
        .metrics
        .rejected(rejection.kind.as_str(), rejection.field);
    tracing::warn!(
        reason = rejection.kind.as_str(),
        field = rejection.field,
        message = %rejection.message,
        machine_id = raw.get(Field::MachineId).unwrap_or("-"),
        classification = raw.get(Field::Classification).unwrap_or("-"),
        "record rejected"
    );
    AppError::Rejected(rejection)
}
