//! The command line as written (clap derive), kept close to the arguments; [`Cli::overrides`]
//! turns the per-key flags into (config key, value) pairs for [`crate::config::Config::load`].
//! The database password has no flag on purpose: argv is visible to every local user.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "telem-collector",
    version,
    about = "Collector for Clear Linux telemetrics-client records"
)]
pub struct Cli {
    /// Config file (TOML); a missing file is fine when env and flags give database_url.
    #[arg(long, global = true, value_name = "PATH", default_value = crate::config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    #[command(flatten)]
    pub keys: KeyFlags,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Receive records over HTTP (the default).
    Serve,
    /// Apply the embedded schema migrations (idempotent).
    Migrate {
        /// Only report: exit 0 when the schema is current, 3 when migrations are pending.
        #[arg(long)]
        check: bool,
    },
    /// Delete records older than the retention settings.
    Purge {
        /// Only print how many records each rule would delete.
        #[arg(long)]
        dry_run: bool,
    },
    /// Load and check the configuration, then exit (0 valid, 2 invalid).
    CheckConfig,
    /// Health check with this binary alone (no curl needed): GET the URL, print the status
    /// code; exit 0 on 200, 1 otherwise.
    Probe {
        /// http://HOST[:PORT]/PATH (default: /healthz at the configured listen address).
        #[arg(value_name = "URL")]
        url: Option<String>,
        /// The Host header (default: the URL's host), e.g. the domain nginx serves.
        #[arg(long, value_name = "NAME")]
        host_header: Option<String>,
        /// Seconds to connect and to wait for the answer.
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        timeout: u64,
        /// Exit 0 on any HTTP answer (the status code is printed); 1 only when none comes.
        #[arg(long)]
        any_status: bool,
    },
    /// Internal: run the shell scripts telem-deploy sends over one SSH session (see agent.rs).
    #[command(hide = true)]
    Agent,
}

/// One flag per config key (overriding file and environment).
#[derive(Debug, Default, clap::Args)]
pub struct KeyFlags {
    /// HOST:PORT or unix:/PATH
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// postgres://USER@HOST:PORT/DB (without password)
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// File holding the database password
    #[arg(long, global = true, value_name = "PATH")]
    pub database_password_file: Option<String>,
    /// PEM file of the CA(s) the database's certificate must chain to (TLS, verify-full)
    #[arg(long, global = true, value_name = "PATH")]
    pub database_ca_file: Option<String>,
    /// postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)
    #[arg(long, global = true, value_name = "URL")]
    pub read_database_url: Option<String>,
    #[arg(long, global = true, value_name = "ID")]
    pub telemetry_id: Option<String>,
    #[arg(long, global = true, value_name = "BYTES")]
    pub body_limit_bytes: Option<String>,
    #[arg(long, global = true, value_name = "SECS")]
    pub header_timeout_secs: Option<String>,
    #[arg(long, global = true, value_name = "N")]
    pub writer_connections: Option<String>,
    #[arg(long, global = true, value_name = "N")]
    pub reader_connections: Option<String>,
    #[arg(long, global = true, value_name = "MS")]
    pub read_statement_timeout_ms: Option<String>,
    #[arg(long, global = true, value_name = "BYTES")]
    pub body_budget_bytes: Option<String>,
    /// Deprecated: reader_connections
    #[arg(long, global = true, value_name = "N", hide = true)]
    pub pool_size: Option<String>,
    #[arg(long, global = true, value_name = "N")]
    pub batch_max_records: Option<String>,
    #[arg(long, global = true, value_name = "MS")]
    pub batch_max_wait_ms: Option<String>,
    #[arg(long, global = true, value_name = "true|false")]
    pub payload_search_index: Option<String>,
    #[arg(long, global = true, value_name = "DAYS")]
    pub retention_max_days: Option<String>,
    #[arg(long, global = true, value_name = "HH:MM")]
    pub retention_purge_time: Option<String>,
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Inline TOML table, e.g. '{ "org.clearlinux/hello/*" = 7 }'
    #[arg(long, global = true, value_name = "TABLE")]
    pub retention_classifications: Option<String>,
}

impl KeyFlags {
    /// The flags given, as (config key, value).
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        [
            ("listen", &self.listen),
            ("database_url", &self.database_url),
            ("database_password_file", &self.database_password_file),
            ("database_ca_file", &self.database_ca_file),
            ("read_database_url", &self.read_database_url),
            ("telemetry_id", &self.telemetry_id),
            ("body_limit_bytes", &self.body_limit_bytes),
            ("header_timeout_secs", &self.header_timeout_secs),
            ("writer_connections", &self.writer_connections),
            ("reader_connections", &self.reader_connections),
            ("read_statement_timeout_ms", &self.read_statement_timeout_ms),
            ("body_budget_bytes", &self.body_budget_bytes),
            ("pool_size", &self.pool_size),
            ("batch_max_records", &self.batch_max_records),
            ("batch_max_wait_ms", &self.batch_max_wait_ms),
            ("payload_search_index", &self.payload_search_index),
            ("retention_max_days", &self.retention_max_days),
            ("retention_purge_time", &self.retention_purge_time),
            ("log_level", &self.log_level),
            ("retention_classifications", &self.retention_classifications),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}
