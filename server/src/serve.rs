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

/// How long startup waits for the database to accept connections.
const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// Waits (bounded) until the database answers, then checks the schema version.
pub async fn check_database(pool: &Pool) -> Result<(), RunError> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    let client = loop {
        match pool.get().await {
            Ok(client) => break client,
            Err(e) if tokio::time::Instant::now() >= deadline || store::is_permanent(&e) => {
                return Err(RunError::Database(format!(
                    "cannot connect: {}",
                    store::describe_pool(&e)
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
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
        let pool = store::build_pool(config);
        check_database(&pool).await?;
        let metrics = Arc::new(Metrics::new());
        let options = WriterOptions {
            max_records: config.batch_max_records,
            max_wait: config.batch_max_wait,
            // Few, larger batches cost the database less CPU per record than many small ones;
            // the rest of the pool serves queries and readiness checks.
            concurrency: (config.pool_size / 4).clamp(1, 4),
            queue: (config.batch_max_records * 8).max(10_000),
        };
        let (writer, writer_task) = Writer::spawn(pool.clone(), options, metrics.clone());
        let state = AppState {
            writer,
            pool,
            metrics,
            telemetry_id: config.telemetry_id.as_str().into(),
            body_limit: config.body_limit_bytes,
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
    let purge = tokio::spawn(crate::purge::daily(app.state.pool.clone(), config.clone()));
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
    result.map_err(|e| RunError::Io(e.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}
