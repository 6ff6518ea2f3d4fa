//! The `serve` command: connect, refuse a schema that is behind, start the group-commit
//! writer and the daily purge, listen on TCP or a unix socket (or the one inherited as fd 3),
//! and shut down gracefully on SIGTERM/SIGINT (stop accepting, answer every in-flight request,
//! flush the last batch). SIGUSR2 hands the socket over to a new binary (`listen`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::config::{Config, Listen};
use crate::conn::Stop;
use crate::error::RunError;
use crate::http::{router, AppState};
use crate::listen::Inherited;
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
            read_check_pool: store::read_check_pool(config),
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
        self.serve_on(listener, async {
            shutdown.await;
            Stop::Now
        })
        .await;
        Ok(())
    }

    /// Serves on `listener` until `stop` resolves, then flushes the writer.
    async fn serve_on<L: axum::serve::Listener>(
        self,
        listener: L,
        stop: impl Future<Output = Stop>,
    ) -> Stop {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let stop = async move {
            let s = stop.await;
            let _ = stop_tx.send(s);
            s
        };
        crate::conn::serve(listener, router(self.state), self.header_timeout, stop).await;
        let _ = self.writer_task.await;
        stop_rx.await.unwrap_or(Stop::Now)
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

/// How long an old process serves its open connections after a handover: longer than nginx
/// keeps an idle upstream connection (20 s) and than the collector's own idle timeout.
fn handover_drain(config: &Config) -> Duration {
    config.header_timeout * 2
}

/// Resolves on SIGTERM or SIGINT (`Stop::Now`), or on SIGUSR2 once a new process serves on
/// `socket` (`Stop::Handover`). A failed upgrade is logged and the collector goes on serving.
async fn stop_signal(socket: std::os::fd::OwnedFd, drain: Duration) -> Stop {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut usr2 = signal(SignalKind::user_defined2()).expect("installing a SIGUSR2 handler");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = usr2.recv() => {
                let fd = match socket.try_clone() {
                    Ok(fd) => fd,
                    Err(e) => {
                        tracing::error!("upgrade: cannot duplicate the listening socket: {e}");
                        continue;
                    }
                };
                tracing::info!("upgrade: starting the new binary");
                match tokio::task::spawn_blocking(move || crate::listen::spawn_successor(fd)).await {
                    Ok(Ok(pid)) => {
                        tracing::info!(
                            pid,
                            "upgrade: the new process serves; draining open connections (up to {} s)",
                            drain.as_secs()
                        );
                        return Stop::Handover { drain };
                    }
                    Ok(Err(e)) => tracing::error!("upgrade failed, still serving: {e}"),
                    Err(e) => tracing::error!("upgrade failed, still serving: {e}"),
                }
            }
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    Stop::Now
}

/// The listening socket: the inherited one, or a new one on the configured address.
enum Socket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

fn open_socket(config: &Config, inherited: Inherited) -> Result<Socket, RunError> {
    match (inherited, &config.listen) {
        (Inherited::Tcp(l), _) => Ok(Socket::Tcp(l)),
        (Inherited::Unix(l), _) => Ok(Socket::Unix(l)),
        (Inherited::None, Listen::Tcp(addr)) => {
            let listener = listen_tcp(*addr)
                .map_err(|e| RunError::Io(format!("cannot listen on {addr}: {e}")))?;
            let std = listener
                .into_std()
                .map_err(|e| RunError::Io(format!("cannot listen on {addr}: {e}")))?;
            Ok(Socket::Tcp(std))
        }
        (Inherited::None, Listen::Unix(path)) => {
            let _ = std::fs::remove_file(path);
            let listener = std::os::unix::net::UnixListener::bind(path)
                .map_err(|e| RunError::Io(format!("cannot listen on {}: {e}", path.display())))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
                .map_err(|e| RunError::Io(format!("cannot chmod {}: {e}", path.display())))?;
            Ok(Socket::Unix(listener))
        }
    }
}

/// The `serve` command. `inherited` is the socket a parent passed (see `listen`).
pub async fn serve(config: Config, inherited: Inherited) -> Result<(), RunError> {
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
    let io = |e: std::io::Error| RunError::Io(format!("listening socket: {e}"));
    let drain = handover_drain(&config);
    let stop = match open_socket(&config, inherited)? {
        Socket::Tcp(std) => {
            std.set_nonblocking(true).map_err(io)?;
            let handover = std.try_clone().map_err(io)?;
            let listener = TcpListener::from_std(std).map_err(io)?;
            tracing::info!(listen = %config.listen, "telem-collector {} serving", env!("CARGO_PKG_VERSION"));
            crate::listen::report_ready();
            app.serve_on(listener, stop_signal(handover.into(), drain))
                .await
        }
        Socket::Unix(std) => {
            std.set_nonblocking(true).map_err(io)?;
            let handover = std.try_clone().map_err(io)?;
            let listener = UnixListener::from_std(std).map_err(io)?;
            tracing::info!(listen = %config.listen, "telem-collector {} serving", env!("CARGO_PKG_VERSION"));
            crate::listen::report_ready();
            let stop = app
                .serve_on(listener, stop_signal(handover.into(), drain))
                .await;
            if let (Stop::Now, Listen::Unix(path)) = (stop, &config.listen) {
                let _ = std::fs::remove_file(path);
            }
            stop
        }
    };
    purge.abort();
    janitor.abort();
    match stop {
        Stop::Now => tracing::info!("stopped"),
        Stop::Handover { .. } => tracing::info!("stopped: handed over to the new process"),
    }
    Ok(())
}
