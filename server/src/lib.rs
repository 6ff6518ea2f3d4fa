//! telem-collector: receives Clear Linux telemetrics-client records over HTTP, validates them
//! as the upstream collector did, stores them in PostgreSQL with group commit, and serves the
//! query API, health and metrics endpoints. `main` only maps [`run`]'s result to an exit code.

pub mod agent;
pub mod cli;
pub mod config;
pub mod conn;
pub mod db_tls;
pub mod error;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod probe;
pub mod purge;
pub mod record;
pub mod serve;
pub mod state;
pub mod store;
pub(crate) mod ui;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Command};
use config::Config;
use error::RunError;

/// Parses arguments, loads the config and runs one command. Never exits the process itself.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // The agent needs no configuration (and reads none).
    if cli.command == Some(Command::Agent) {
        return agent::run();
    }
    // With a URL, the probe needs no configuration (and reads none).
    if let Some(Command::Probe {
        url: Some(url),
        host_header,
        timeout,
        any_status,
    }) = &cli.command
    {
        return match probe::Request::from_url(url) {
            Ok(mut req) => {
                if let Some(h) = host_header {
                    req.host_header = h.clone();
                }
                probe::run(&req, Duration::from_secs(*timeout), *any_status)
            }
            Err(e) => {
                eprintln!("telem-collector: probe {e}");
                ExitCode::from(2)
            }
        };
    }
    let overrides = cli.keys.overrides();
    let config = match Config::load(&cli.config, |k| std::env::var(k).ok(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("telem-collector: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);
    let command = cli.command.unwrap_or(Command::Serve);
    if command == Command::CheckConfig {
        println!("configuration OK: {config:#?}");
        return ExitCode::SUCCESS;
    }
    if let Command::Probe {
        host_header,
        timeout,
        any_status,
        ..
    } = &command
    {
        let mut req = probe::Request::for_listen(&config.listen);
        if let Some(h) = host_header {
            req.host_header = h.clone();
        }
        return probe::run(&req, Duration::from_secs(*timeout), *any_status);
    }
    // Before any thread starts: taking the inherited socket edits the environment.
    let inherited = if matches!(command, Command::Serve) {
        match listen::Inherited::take() {
            Ok(inherited) => inherited,
            Err(e) => {
                eprintln!("telem-collector: the inherited listening socket (fd 3): {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        listen::Inherited::None
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("telem-collector: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(execute(command, config, inherited)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("telem-collector: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn execute(
    command: Command,
    config: Config,
    inherited: listen::Inherited,
) -> Result<(), RunError> {
    match command {
        Command::Serve => serve::serve(config, inherited).await,
        Command::Migrate { check: false } => migrate(&config).await,
        Command::Migrate { check: true } => migrate_check(&config).await,
        Command::Purge { dry_run } => purge(&config, dry_run).await,
        Command::CheckConfig | Command::Probe { .. } | Command::Agent => Ok(()),
    }
}

/// Gets a connection, waiting a bounded time for a database that is still starting.
async fn connect(pool: &deadpool_postgres::Pool) -> Result<deadpool_postgres::Object, RunError> {
    store::wait_for_connection(pool)
        .await
        .map_err(RunError::cannot_connect)
}

async fn migrate(config: &Config) -> Result<(), RunError> {
    let pool = store::build_pool(config);
    let mut client = connect(&pool).await?;
    let applied = store::migrate(&mut client)
        .await
        .map_err(|e| RunError::Database(db_message(&e)))?;
    store::payload_search_index(&mut client, config.payload_search_index)
        .await
        .map_err(|e| RunError::Database(db_message(&e)))?;
    let status = store::schema_status(&client)
        .await
        .map_err(|e| RunError::Database(db_message(&e)))?;
    if applied.is_empty() {
        println!("schema is current (version {})", status.current);
    } else {
        println!(
            "applied migrations {applied:?}; schema at version {}",
            status.current
        );
    }
    Ok(())
}

/// `migrate --check`: exit 0 when the schema is current, 3 when migrations are pending.
async fn migrate_check(config: &Config) -> Result<(), RunError> {
    let pool = store::build_pool(config);
    let client = connect(&pool).await?;
    let status = store::schema_status(&client)
        .await
        .map_err(|e| RunError::Database(db_message(&e)))?;
    if status.is_current() {
        println!("schema is current (version {})", status.current);
        Ok(())
    } else {
        println!(
            "schema at version {}, migrations up to {} pending",
            status.current, status.latest
        );
        Err(RunError::MigrationsPending)
    }
}

async fn purge(config: &Config, dry_run: bool) -> Result<(), RunError> {
    let pool = store::build_pool(config);
    drop(connect(&pool).await?);
    let summary = purge::run_once(&pool, config, dry_run)
        .await
        .map_err(|e| RunError::Database(e.to_string()))?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    if summary.is_empty() {
        println!("retention keeps every record (retention_max_days = 0, no classification rules)");
    }
    for s in summary {
        println!(
            "{}: older than {} days: {verb} {} records",
            s.label, s.days, s.records
        );
    }
    Ok(())
}

fn db_message(e: &tokio_postgres::Error) -> String {
    store::describe(e)
}
