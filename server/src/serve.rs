//! The `serve` command: connect, refuse a schema that is behind, start the group-commit
//! writer and the daily purge, listen on TCP or a unix socket, and shut down gracefully on
//! SIGTERM/SIGINT (stop accepting, answer every in-flight request, flush the last batch).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::config::{Config, Listen};
use crate::error::RunError;
use crate::http::{router, AppState};
use crate::metrics::Metrics;
use crate::store::{self, schema_status, Writer, WriterOptions};

/// A started collector, not yet listening: its router and the writer to flush at the end.
pub struct App {
    pub state: AppState,
    writer_task: JoinHandle<()>,
    header_timeout: Duration,
}

/// Waits (bounded) until the database answers, then checks the schema version.
pub async fn check_database(pool: &Pool) -> Result<(), RunError> {
    let client = store::wait_for_connection(pool)
        .await
        .map_err(RunError::cannot_connect)?;
    let status = schema_status(&client)
        .await
        .map_err(|e| RunError::Database(store::describe(&e)))?;
    if !status.is_current() {
        return Err(RunError::SchemaBehind {
            current: status.current,
            latest: status.latest,
        });
    }
    Ok(())
}

impl App {
    /// Connects, checks the schema and starts the writer.
    pub async fn start(config: &Config) -> Result<Self, RunError> {
        let writer_pool = store::writer_pool(config);
        check_database(&writer_pool).await?;
        let metrics = Arc::new(Metrics::new());
        let options = WriterOptions {
            max_records: config.batch_max_records,
            max_wait: config.batch_max_wait,
            // Few, larger batches cost the database less CPU per record than many small ones.
            // The writer's pool holds one connection more, for readiness checks.
            concurrency: config.writer_connections,
            queue: (config.batch_max_records * 8).max(10_000),
        };
        let (writer, writer_task) = Writer::spawn(writer_pool.clone(), options, metrics.clone());
        let state = AppState {
            writer,
            pool: store::reader_pool(config),
            writer_pool,
            metrics,
            telemetry_id: config.telemetry_id.as_str().into(),
            body_limit: config.body_limit_bytes,
            body_budget: crate::http::body::BodyBudget::new(config.body_budget_bytes),
        };
        Ok(Self {
            state,
            writer_task,
            header_timeout: config.header_timeout,
        })
    }

    /// Serves on a bound TCP listener until `shutdown` resolves, then flushes the writer.
    pub async fn serve_tcp(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::conn::serve(listener, router(self.state), self.header_timeout, shutdown).await;
        let _ = self.writer_task.await;
        Ok(())
    }

    async fn serve_unix(
        self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::conn::serve(listener, router(self.state), self.header_timeout, shutdown).await;
        let _ = self.writer_task.await;
        Ok(())
    }
}

/// A TCP listener with address reuse and a deep accept queue.
fn listen_tcp(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(crate::conn::LISTEN_BACKLOG)
}

/// mimalloc (the binary's allocator) gives freed memory back to the system lazily: a freed
/// range is purged only when a later free of a whole page finds its delay (1 s) expired. After
/// a burst (thousands of large bodies) the collector may go quiet, and nothing would purge the
/// memory the burst used. Freeing one page beyond mimalloc's largest size class (512 KiB)
/// every second is such a free (measured after 2,000 stalled 300 KB bodies: 71 MB kept
/// without it, 37 MB with it). The buffer is never touched, so it is never resident (mimalloc
/// is built without transparent huge pages, `no_thp`: with them, touching one byte of its
/// memory made 2 MiB resident, and RSS grew while idle).
async fn allocator_janitor() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        drop(std::hint::black_box(Vec::<u8>::with_capacity(1 << 20)));
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The `serve` command.
pub async fn serve(config: Config) -> Result<(), RunError> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        tracing::warn!("running as root: run the collector as an unprivileged user");
    }
    let app = App::start(&config).await?;
    let janitor = tokio::spawn(allocator_janitor());
    // The purge has a connection of its own: a long DELETE must hold neither a writer's
    // connection nor be cut off by the readers' statement timeout.
    let purge = tokio::spawn(crate::purge::daily(
        store::build_pool(&config),
        config.clone(),
    ));
    let result = match &config.listen {
        Listen::Tcp(addr) => {
            let listener = listen_tcp(*addr)
                .map_err(|e| RunError::Io(format!("cannot listen on {addr}: {e}")))?;
            tracing::info!(listen = %config.listen, "telem-collector {} serving", env!("CARGO_PKG_VERSION"));
            app.serve_tcp(listener, shutdown_signal()).await
        }
        Listen::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)
                .map_err(|e| RunError::Io(format!("cannot listen on {}: {e}", path.display())))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
                .map_err(|e| RunError::Io(format!("cannot chmod {}: {e}", path.display())))?;
            tracing::info!(listen = %config.listen, "telem-collector {} serving", env!("CARGO_PKG_VERSION"));
            let r = app.serve_unix(listener, shutdown_signal()).await;
            let _ = std::fs::remove_file(path);
            r
        }
    };
    purge.abort();
    janitor.abort();
    result.map_err(|e| RunError::Io(e.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}
