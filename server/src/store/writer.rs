//! Group commit. Request handlers queue validated records; each of `concurrency` committing
//! tasks takes its next batch from the queue ([`super::gather`]: whatever arrived
//! concurrently, up to `max_records`, waiting at most `max_wait` for more; a second batch
//! beside one in flight only once enough records wait) and inserts it with a single multi-row
//! statement in one transaction. A handler learns its record's id only after that transaction
//! committed, so a 201 always means "stored".
//! A batch PostgreSQL refuses because of what some record holds is split until the records at
//! fault stand alone: only those are refused (400), their batch-mates are stored. A database
//! outage fails the batch quickly (bounded by timeouts) as `Unavailable` (503).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

use super::gather::{Gather, GatherOptions};
use super::StoreError;
use crate::metrics::Metrics;
use crate::record::{Record, RecordView};

/// Upper bound for one batch's transaction, so a hung database becomes a 503 in time.
const BATCH_TIMEOUT: Duration = Duration::from_millis(1500);
/// Upper bound for a request waiting on its record's commit (the client's is 10 s; ours 2 s).
const SUBMIT_TIMEOUT: Duration = Duration::from_millis(1900);
/// Records that must be waiting for a batch to start beside one that is committing (see
/// [`super::gather`]): about the statement's fixed cost in records.
const PARALLEL_BATCH_MIN: usize = 4;

const INSERT_SQL: &str = "
WITH input AS (
    SELECT nextval('records_id_seq')::int4 AS id, u.*
    FROM unnest($1::int4[], $2::int4[], $3::text[], $4::text[], $5::int8[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::int4[], $11::text[], $12::text[],
                $13::text[], $14::text[], $15::text[], $16::bool[], $17::text[], $18::int8[])
         WITH ORDINALITY AS u(record_version, severity, classification, machine_id,
                              timestamp_client, architecture, host_type, build, kernel_version,
                              payload_version, system_name, board_name, cpu_model, bios_version,
                              event_id, external, payload, timestamp_server_us, ord)
), inserted AS (
    INSERT INTO records (id, record_version, severity, classification, machine_id,
                         timestamp_client, architecture, host_type, build, kernel_version,
                         payload_version, system_name, board_name, cpu_model, bios_version,
                         event_id, external, payload, timestamp_server, processed)
    SELECT id, record_version, severity, classification, machine_id, timestamp_client,
           architecture, host_type, build, kernel_version, payload_version, system_name,
           board_name, cpu_model, bios_version, event_id, external, payload,
           round(timestamp_server_us::numeric / 1000000, 6), false
    FROM input
    ON CONFLICT (machine_id, event_id, timestamp_client) WHERE record_version = 4 DO NOTHING
    RETURNING id
)
SELECT input.ord, input.id, inserted.id IS NOT NULL
FROM input LEFT JOIN inserted ON inserted.id = input.id
ORDER BY input.ord";

/// The stored row a format-4 resend matched (its 201 describes what is stored, which may
/// differ from what the resend carried). Built once, prepared once per connection.
fn existing_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT {} FROM records
             WHERE record_version = 4 AND machine_id = $1 AND event_id = $2
               AND timestamp_client = $3::int8::numeric",
            super::query::COLUMNS
        )
    })
}

/// How often the chart counts' appended changes are folded (migration 6), when records were
/// written since the last fold; and at least this often anyway, for changes other writers made
/// (purges, psql).
const FOLD_EVERY: Duration = Duration::from_secs(1);
const FOLD_ANYWAY_EVERY: Duration = Duration::from_secs(60);

/// What became of a record in its batch.
enum Stored {
    /// Inserted now: the id and timestamp_server (unix seconds) the database assigned.
    New(i32, f64),
    /// A resend of a stored format-4 record: the stored row, as it is.
    Existing(Box<RecordView>),
}

impl Stored {
    fn view(self, record: Record) -> RecordView {
        match self {
            Stored::New(id, ts) => RecordView::new(id, record, ts),
            Stored::Existing(view) => *view,
        }
    }
}

/// A record waiting for its batch.
struct Job {
    record: Record,
    /// Reception time, unix microseconds.
    received_us: i64,
    reply: oneshot::Sender<Result<RecordView, StoreError>>,
}

/// Tuning of the writer's batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    pub max_records: usize,
    pub max_wait: Duration,
    /// Batches committing at the same time.
    pub concurrency: usize,
    /// Records that may wait for a batch before new ones get a 503.
    pub queue: usize,
}

/// The handle request handlers submit records through. Dropping every clone lets the tasks
/// flush what is queued and end.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the committing tasks; await the handle after dropping all writers to flush.
    pub fn spawn(
        pool: Pool,
        options: WriterOptions,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let handle = tokio::spawn(run(rx, pool, options, metrics));
        (Self { tx }, handle)
    }

    /// Queues a record and waits until its transaction committed (or failed).
    pub async fn submit(&self, record: Record, received_us: i64) -> Result<RecordView, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            record,
            received_us,
            reply,
        };
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                StoreError::Unavailable("write queue full".into())
            }
            mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable("shutting down".into()),
        })?;
        match timeout(SUBMIT_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Unavailable("writer stopped".into())),
            Err(_) => Err(StoreError::Unavailable(
                "timed out waiting for commit".into(),
            )),
        }
    }
}

async fn run(rx: mpsc::Receiver<Job>, pool: Pool, options: WriterOptions, metrics: Arc<Metrics>) {
    let gather = Arc::new(Gather::new(
        rx,
        GatherOptions {
            max_records: options.max_records,
            max_wait: options.max_wait,
            parallel_min: PARALLEL_BATCH_MIN,
        },
    ));
    let written = Arc::new(AtomicBool::new(false));
    let folder = tokio::spawn(fold_counts(pool.clone(), written.clone()));
    let mut committers = JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        committers.spawn(commit_loop(
            gather.clone(),
            pool.clone(),
            metrics.clone(),
            written.clone(),
        ));
    }
    while committers.join_next().await.is_some() {}
    folder.abort();
}

/// One of the `concurrency` batches that may commit at once: takes the next batch, commits it,
/// answers it, and goes back for the next. The task that ends a batch starts the next one
/// itself: no hand-over to another task between a commit and the next batch (measured at 8
/// clients: 4–6 % more records/s than a dispatching task). Ends once the queue is closed and
/// empty.
async fn commit_loop(
    gather: Arc<Gather<Job>>,
    pool: Pool,
    metrics: Arc<Metrics>,
    written: Arc<AtomicBool>,
) {
    while let Some(mut batch) = gather.next().await {
        // A request that already timed out (answered 503) or whose client went away must not
        // be stored behind its back: the client keeps the record and sends it again.
        batch.jobs.retain(|job| !job.reply.is_closed());
        let jobs = std::mem::take(&mut batch.jobs);
        if !jobs.is_empty() {
            write_batch(&pool, jobs, &metrics).await;
            written.store(true, Ordering::Relaxed);
        }
        drop(batch);
    }
}

/// Folds the chart counts' appended changes into `record_counts` in the background
/// (`record_counts_fold()`, migration 6), so no batch ever waits for another's count rows.
/// Nothing depends on it for exactness (readers add what is not folded yet); it keeps the
/// unfolded tail short. It takes one of the writer pool's connections for a few milliseconds;
/// a failure (the database is away) is retried on the next tick.
async fn fold_counts(pool: Pool, written: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(FOLD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tick.tick().await;
        if !written.swap(false, Ordering::Relaxed) && last.elapsed() < FOLD_ANYWAY_EVERY {
            continue;
        }
        last = Instant::now();
        let deadline = Instant::now() + BATCH_TIMEOUT;
        let client = match timeout_at(deadline, pool.get()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                tracing::debug!(error = %StoreError::from(e), "folding chart counts: no connection");
                continue;
            }
            Err(_) => continue,
        };
        match timeout_at(
            deadline,
            client.query_one("SELECT record_counts_fold()", &[]),
        )
        .await
        {
            Ok(Ok(row)) => tracing::trace!(rows = row.get::<_, i64>(0), "folded chart counts"),
            Ok(Err(e)) => {
                tracing::debug!(error = %StoreError::from(e), "folding chart counts failed")
            }
            Err(_) => {
                // A late answer must not confuse the next user of this connection.
                drop(deadpool_postgres::Object::take(client));
                tracing::debug!("folding chart counts timed out");
            }
        }
    }
}

/// Writes one batch and answers every job in it. When PostgreSQL refuses the batch for
/// something in its rows (see [`super::meaning`]), the batch is split in halves until the
/// records at fault stand alone: those are refused (400), every other record is stored. One bad
/// record among n costs about 2·log2(n) statements, so its batch-mates still get their answer
/// well within the submit timeout.
async fn write_batch(pool: &Pool, batch: Vec<Job>, metrics: &Metrics) {
    metrics.observe_batch(batch.len());
    let mut results: Vec<Option<Result<Stored, StoreError>>> =
        std::iter::repeat_with(|| None).take(batch.len()).collect();
    let mut pending: Vec<std::ops::Range<usize>> = Vec::new();
    pending.push(0..batch.len());
    while let Some(range) = pending.pop() {
        let jobs = &batch[range.clone()];
        match insert(pool, jobs, Instant::now() + BATCH_TIMEOUT).await {
            Ok(stored) => {
                for (slot, s) in results[range].iter_mut().zip(stored) {
                    *slot = Some(Ok(s));
                }
            }
            Err(StoreError::Refused(why)) if jobs.len() > 1 => {
                metrics.database_error();
                tracing::warn!(records = jobs.len(), error = %why, "batch refused, splitting it to find the record at fault");
                let mid = range.start + jobs.len() / 2;
                pending.push(mid..range.end);
                pending.push(range.start..mid);
            }
            Err(e) => {
                metrics.database_error();
                match &e {
                    StoreError::Refused(why) => {
                        let r = &jobs[0].record;
                        tracing::warn!(machine_id = %r.machine_id, classification = %r.classification, error = %why, "record refused by the database");
                    }
                    StoreError::Unavailable(why) => {
                        tracing::warn!(records = jobs.len(), error = %why, "batch failed");
                        // The database is away: the rest of this batch would wait for the
                        // same timeouts. Answer it now.
                        for rest in pending.drain(..) {
                            for slot in &mut results[rest] {
                                *slot = Some(Err(e.clone()));
                            }
                        }
                    }
                }
                for slot in &mut results[range] {
                    *slot = Some(Err(e.clone()));
                }
            }
        }
    }
    for (job, result) in batch.into_iter().zip(results) {
        let result = result.expect("every record of the batch has a result");
        let _ = job.reply.send(result.map(|stored| stored.view(job.record)));
    }
}

/// Writes a batch before `deadline`. A connection that did not answer in time is taken out
/// of the pool and closed: a late answer must not confuse the next batch on it.
async fn insert(pool: &Pool, batch: &[Job], deadline: Instant) -> Result<Vec<Stored>, StoreError> {
    let client = match timeout_at(deadline, pool.get()).await {
        Ok(client) => client?,
        Err(_) => return Err(StoreError::Unavailable("no connection in time".into())),
    };
    match timeout_at(deadline, insert_on(&client, batch)).await {
        Ok(result) => result,
        Err(_) => {
            drop(deadpool_postgres::Object::take(client));
            Err(StoreError::Unavailable(
                "database did not answer in time".into(),
            ))
        }
    }
}

/// One multi-row INSERT (one transaction), then the ids of already stored resends.
async fn insert_on(
    client: &deadpool_postgres::Object,
    batch: &[Job],
) -> Result<Vec<Stored>, StoreError> {
    let statement = client.prepare_cached(INSERT_SQL).await?;
    let r = |f: fn(&Record) -> &str| batch.iter().map(|j| f(&j.record)).collect::<Vec<_>>();
    let record_version: Vec<i32> = batch.iter().map(|j| j.record.record_version).collect();
    let severity: Vec<i32> = batch.iter().map(|j| j.record.severity).collect();
    let timestamp_client: Vec<i64> = batch.iter().map(|j| j.record.timestamp_client).collect();
    let payload_version: Vec<Option<i32>> =
        batch.iter().map(|j| j.record.payload_version).collect();
    let system_name: Vec<Option<&str>> = batch
        .iter()
        .map(|j| j.record.system_name.as_deref())
        .collect();
    let external: Vec<bool> = batch.iter().map(|j| j.record.external).collect();
    let received: Vec<i64> = batch.iter().map(|j| j.received_us).collect();
    let classification = r(|x| &x.classification);
    let machine_id = r(|x| &x.machine_id);
    let architecture = r(|x| &x.architecture);
    let host_type = r(|x| &x.host_type);
    let build = r(|x| &x.build);
    let kernel_version = r(|x| &x.kernel_version);
    let board_name = r(|x| &x.board_name);
    let cpu_model = r(|x| &x.cpu_model);
    let bios_version = r(|x| &x.bios_version);
    let event_id = r(|x| &x.event_id);
    let payload = r(|x| &x.payload);

    // One statement in autocommit mode is one transaction: no BEGIN/COMMIT round trips. When
    // it returns, every row of the batch is committed.
    let rows = client
        .query(
            &statement,
            &[
                &record_version,
                &severity,
                &classification,
                &machine_id,
                &timestamp_client,
                &architecture,
                &host_type,
                &build,
                &kernel_version,
                &payload_version,
                &system_name,
                &board_name,
                &cpu_model,
                &bios_version,
                &event_id,
                &external,
                &payload,
                &received,
            ],
        )
        .await?;
    let mut stored = Vec::with_capacity(batch.len());
    for (job, row) in batch.iter().zip(&rows) {
        let id: i32 = row.get(1);
        let inserted: bool = row.get(2);
        let entry = if inserted {
            Stored::New(id, job.received_us as f64 / 1e6)
        } else {
            // A resend of a stored record: ON CONFLICT waited for the stored row's transaction,
            // so it is committed and visible now.
            let lookup = client.prepare_cached(existing_sql()).await?;
            let existing = client
                .query_one(
                    &lookup,
                    &[
                        &job.record.machine_id,
                        &job.record.event_id,
                        &job.record.timestamp_client,
                    ],
                )
                .await?;
            Stored::Existing(Box::new(super::query::view(&existing)))
        };
        stored.push(entry);
    }
    Ok(stored)
}
