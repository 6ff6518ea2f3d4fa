//! Operational endpoints: `/healthz` (the process answers), `/readyz` (database reachable and
//! schema current: `database_url`'s, and `read_database_url`'s when set), `/metrics`
//! (Prometheus text). `GET /` is the web UI (`crate::ui`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::state::AppState;
use crate::store::{describe, describe_pool, schema_status};

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for each database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why one database is not ready: it failed to answer, or answered too late.
enum NotReady {
    Failed(String),
    TimedOut,
}

/// One database: a connection from `pool` and a current schema, within [`READY_TIMEOUT`].
async fn check(pool: &Pool) -> Result<(), NotReady> {
    let check = async {
        let client = pool.get().await.map_err(|e| describe_pool(&e))?;
        let status = schema_status(&client).await.map_err(|e| describe(&e))?;
        if status.is_current() {
            Ok(())
        } else {
            Err(format!(
                "schema at version {} of {}: run `telem-collector migrate`",
                status.current, status.latest
            ))
        }
    };
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(NotReady::Failed(why)),
        Err(_) => Err(NotReady::TimedOut),
    }
}

/// 200 when records can be stored (`database_url`) and, with `read_database_url`, pages can be
/// read; else 503 with a line per database that is not (naming its key when there are two).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let writer = check(&state.writer_pool);
    let Some(reader_pool) = &state.read_check_pool else {
        return match writer.await {
            Ok(()) => (StatusCode::OK, "ready\n").into_response(),
            Err(why) => not_ready(&[(None, why)]),
        };
    };
    let (writer, reader) = tokio::join!(writer, check(reader_pool));
    let failed: Vec<_> = [("database_url", writer), ("read_database_url", reader)]
        .into_iter()
        .filter_map(|(key, result)| result.err().map(|why| (Some(key), why)))
        .collect();
    if failed.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        not_ready(&failed)
    }
}

/// The 503: one line per database (by its config key, when there are two); the reasons go to
/// the log only.
fn not_ready(failed: &[(Option<&str>, NotReady)]) -> Response {
    let mut body = String::new();
    for (key, why) in failed {
        let which = key.map(|k| format!(" ({k})")).unwrap_or_default();
        match why {
            NotReady::Failed(why) => {
                tracing::warn!(database = key.unwrap_or("database_url"), %why, "not ready");
                body.push_str(&format!("database not ready{which}\n"));
            }
            NotReady::TimedOut => {
                tracing::warn!(
                    database = key.unwrap_or("database_url"),
                    "not ready: the check timed out"
                );
                body.push_str(&format!("database check timed out{which}\n"));
            }
        }
    }
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
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
