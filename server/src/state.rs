//! What every request handler shares, the client-facing endpoints (`http`) and the web UI
//! (`ui`) alike: the writer, the pools, the metrics, the limits and the body budget. Both
//! surfaces depend on this module; neither depends on the other for it.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::store::Writer;

/// The application state, cloned into every handler.
#[derive(Clone)]
pub struct AppState {
    pub writer: Writer,
    /// The readers' pool (web UI, query API): bounded, with a statement timeout.
    pub pool: Pool,
    /// The writer's pool, for readiness checks (ready means "records can be stored").
    pub writer_pool: Pool,
    /// One connection to `read_database_url` for readiness checks; `None` when the readers
    /// use `database_url`.
    pub read_check_pool: Option<Pool>,
    pub metrics: Arc<Metrics>,
    pub telemetry_id: Arc<str>,
    pub body_limit: usize,
    /// Bytes of large request bodies held at once (`body_budget_bytes`).
    pub body_budget: BodyBudget,
}

/// Bytes of request bodies the collector holds at once, beyond the first
/// [`SMALL_BODY_BYTES`](crate::config::SMALL_BODY_BYTES) of each (see `http::body`, which
/// reserves from it).
#[derive(Clone, Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Bytes of the budget not reserved now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// `bytes` of the budget, waiting at most `wait` for them; returned when dropped.
    pub(crate) async fn reserve(
        &self,
        bytes: usize,
        wait: Duration,
    ) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok()?;
        tokio::time::timeout(wait, self.bytes.clone().acquire_many_owned(n))
            .await
            .ok()?
            .ok()
    }
}
