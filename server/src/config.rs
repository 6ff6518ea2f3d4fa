//! Collector configuration: the TOML file, then `TELEM_COLLECTOR_<KEY>` environment variables,
//! then command-line flags, each layer overriding the one before, resolved into a checked
//! [`Config`]. Every error names the offending key. The database password must never appear in
//! an error message, a log line or a `Debug` output: it only lives inside [`Secret`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;

use crate::db_tls::DatabaseCa;

/// Default location of the config file (the deploy tool renders it there).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/telemetry/collector.toml";
/// The telemetry ID every stock client sends.
pub const DEFAULT_TELEMETRY_ID: &str = "6907c830-eed9-4ce9-81ae-76daf8d88f0f";
/// The first bytes of every request body, not counted against `body_budget_bytes`: a record
/// the real client sends (at most 8 KiB of payload) never waits for the budget. Their total is
/// bounded by the number of record requests in flight.
pub const SMALL_BODY_BYTES: usize = 16 << 10;
/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "TELEM_COLLECTOR_";

/// Every top-level key, in documentation order (env overrides are looked up from this list).
pub const KEYS: &[&str] = &[
    "listen",
    "database_url",
    "database_password",
    "database_password_file",
    "database_ca_file",
    "read_database_url",
    "telemetry_id",
    "body_limit_bytes",
    "header_timeout_secs",
    "writer_connections",
    "reader_connections",
    "read_statement_timeout_ms",
    "body_budget_bytes",
    "pool_size",
    "batch_max_records",
    "batch_max_wait_ms",
    "payload_search_index",
    "retention_max_days",
    "retention_purge_time",
    "log_level",
    "retention_classifications",
];

/// A configuration problem; `key` is the config key at fault (or `config` for the file itself).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// A string that must never be printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Where the HTTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One layer of configuration as written: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub database_password: Option<Secret>,
    pub database_password_file: Option<PathBuf>,
    pub database_ca_file: Option<PathBuf>,
    pub read_database_url: Option<String>,
    pub telemetry_id: Option<String>,
    pub body_limit_bytes: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub writer_connections: Option<u64>,
    pub reader_connections: Option<u64>,
    pub read_statement_timeout_ms: Option<u64>,
    pub body_budget_bytes: Option<u64>,
    /// Deprecated name of `reader_connections` (before readers and the writer had a pool each).
    pub pool_size: Option<u64>,
    pub batch_max_records: Option<u64>,
    pub batch_max_wait_ms: Option<u64>,
    pub payload_search_index: Option<bool>,
    pub retention_max_days: Option<u64>,
    pub retention_purge_time: Option<String>,
    pub log_level: Option<String>,
    pub retention_classifications: Option<BTreeMap<String, u64>>,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Default of `payload_search_index` (server/README.md: what the index costs ingestion and
/// what a payload search costs without it).
pub const PAYLOAD_SEARCH_INDEX: bool = true;

fn parse_num(key: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(key, "expected a non-negative integer"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(key, "expected true or false")),
    }
}

impl RawConfig {
    /// Parses a config file's text. Errors give the line, never the line's text (it may hold
    /// the password).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let line_text = line.and_then(|l| text.lines().nth(l - 1)).unwrap_or("");
            // The key written on the offending line (a table header names its table).
            let line_key = line_text
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '[' || c == ']' || c == '"')
                .to_string();
            let on_password_line = line_key.starts_with("database_password");
            let message = if on_password_line {
                "database_password must be a string".to_string()
            } else {
                e.message().to_string()
            };
            let key = if on_password_line {
                "database_password".to_string()
            } else if !line_key.is_empty() && !line_key.contains(char::is_whitespace) {
                line_key
            } else {
                "config".to_string()
            };
            match line {
                Some(l) => ConfigError::new(&key, format!("line {l}: {message}")),
                None => ConfigError::new(&key, message),
            }
        })
    }

    /// Overrides one key from a string (an environment variable or a flag).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let s = || Some(value.to_string());
        match key {
            "listen" => self.listen = s(),
            "database_url" => self.database_url = s(),
            "database_password" => {
                self.database_password = Some(Secret(value.to_string()));
                self.database_password_file = None;
            }
            "database_password_file" => {
                self.database_password_file = Some(PathBuf::from(value));
                self.database_password = None;
            }
            "database_ca_file" => self.database_ca_file = Some(PathBuf::from(value)),
            "read_database_url" => self.read_database_url = s(),
            "telemetry_id" => self.telemetry_id = s(),
            "body_limit_bytes" => self.body_limit_bytes = Some(parse_num(key, value)?),
            "header_timeout_secs" => self.header_timeout_secs = Some(parse_num(key, value)?),
            "writer_connections" => self.writer_connections = Some(parse_num(key, value)?),
            "reader_connections" => self.reader_connections = Some(parse_num(key, value)?),
            "read_statement_timeout_ms" => {
                self.read_statement_timeout_ms = Some(parse_num(key, value)?)
            }
            "body_budget_bytes" => self.body_budget_bytes = Some(parse_num(key, value)?),
            "pool_size" => self.pool_size = Some(parse_num(key, value)?),
            "batch_max_records" => self.batch_max_records = Some(parse_num(key, value)?),
            "batch_max_wait_ms" => self.batch_max_wait_ms = Some(parse_num(key, value)?),
            "payload_search_index" => self.payload_search_index = Some(parse_bool(key, value)?),
            "retention_max_days" => self.retention_max_days = Some(parse_num(key, value)?),
            "retention_purge_time" => self.retention_purge_time = s(),
            "log_level" => self.log_level = s(),
            "retention_classifications" => {
                // An inline TOML table: `{ "org.clearlinux/hello/*" = 7 }`.
                let table: BTreeMap<String, BTreeMap<String, u64>> =
                    toml::from_str(&format!("t = {value}")).map_err(|_| {
                        ConfigError::new(key, "expected an inline table like { \"a/b/*\" = 7 }")
                    })?;
                self.retention_classifications = table.into_values().next();
            }
            other => return Err(ConfigError::new(other, "unknown key")),
        }
        Ok(())
    }

    /// Applies `TELEM_COLLECTOR_<KEY>` overrides found by `lookup`.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for key in KEYS {
            if let Some(value) = lookup(&format!("{ENV_PREFIX}{}", key.to_uppercase())) {
                self.set(key, &value)?;
            }
        }
        Ok(())
    }
}

/// The resolved, checked configuration the program runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    /// The URL as configured (it carries no password; see [`Config::pg_config`]).
    pub database_url: String,
    pub database_password: Option<Secret>,
    /// Where the reader pool (web UI, query API, CSV, stats) connects, when not to
    /// `database_url` (a standby); same password, same CA. Writes and migrations never go there.
    pub read_database_url: Option<String>,
    /// `database_ca_file`: when set, every database connection is TLS, verified against these
    /// CA certificates and the URL's host (`verify-full`); without it, no TLS.
    pub database_ca: Option<DatabaseCa>,
    pub telemetry_id: String,
    pub body_limit_bytes: usize,
    /// How long a client may take to send a request head, and how long an idle keep-alive
    /// connection stays open.
    pub header_timeout: Duration,
    /// Batches committing at once; the writer's own pool (two more connections, for readiness
    /// checks and for folding the chart counts) that no reader can take.
    pub writer_connections: usize,
    /// The pool of the web UI and the query API.
    pub reader_connections: usize,
    /// `statement_timeout` of the readers' connections.
    pub read_statement_timeout: Duration,
    /// Bytes of request bodies held at once beyond the first [`SMALL_BODY_BYTES`] of each.
    pub body_budget_bytes: usize,
    pub batch_max_records: usize,
    pub batch_max_wait: Duration,
    pub retention_max_days: u32,
    pub retention_purge_time: NaiveTime,
    pub log_level: String,
    /// Whether `migrate` keeps the payload trigram index (migration 5) or drops it.
    pub payload_search_index: bool,
    /// (glob pattern, days), in pattern order.
    pub retention_classifications: Vec<(String, u32)>,
}

fn bounded(
    key: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError::new(
            key,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

impl Config {
    /// Reads `path` (a missing file is allowed: env and flags may carry everything), then env
    /// overrides, then `flags` (key, value) pairs, and checks the result.
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
        flags: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let mut raw = match std::fs::read_to_string(path) {
            Ok(text) => RawConfig::from_toml(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RawConfig::default(),
            Err(e) => {
                return Err(ConfigError::new(
                    "config",
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        raw.apply_env(env)?;
        for (key, value) in flags {
            raw.set(key, value)?;
        }
        Self::resolve(raw)
    }

    /// Checks every key and applies defaults.
    pub fn resolve(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = parse_listen(raw.listen.as_deref().unwrap_or("127.0.0.1:8090"))?;
        let database_url = raw
            .database_url
            .ok_or_else(|| ConfigError::new("database_url", "is required"))?;
        let database_ca = match &raw.database_ca_file {
            Some(path) => Some(
                DatabaseCa::load(path)
                    .map_err(|message| ConfigError::new("database_ca_file", message))?,
            ),
            None => None,
        };
        check_database_url("database_url", &database_url, database_ca.as_ref())?;
        if let Some(url) = &raw.read_database_url {
            check_database_url("read_database_url", url, database_ca.as_ref())?;
        }
        let database_password = match (raw.database_password, raw.database_password_file) {
            (Some(p), _) => Some(p),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    ConfigError::new(
                        "database_password_file",
                        format!("cannot read {}: {}", file.display(), e.kind()),
                    )
                })?;
                Some(Secret(text.trim_end_matches(['\n', '\r']).to_string()))
            }
            (None, None) => None,
        };
        let telemetry_id = raw
            .telemetry_id
            .unwrap_or_else(|| DEFAULT_TELEMETRY_ID.to_string());
        if telemetry_id.trim().is_empty() {
            return Err(ConfigError::new("telemetry_id", "must not be empty"));
        }
        let body_limit_bytes = bounded(
            "body_limit_bytes",
            raw.body_limit_bytes,
            307_200,
            1024,
            64 << 20,
        )? as usize;
        let header_timeout_secs =
            bounded("header_timeout_secs", raw.header_timeout_secs, 30, 1, 3600)?;
        let writer_connections =
            bounded("writer_connections", raw.writer_connections, 2, 1, 64)? as usize;
        let reader_key = if raw.reader_connections.is_none() && raw.pool_size.is_some() {
            "pool_size"
        } else {
            "reader_connections"
        };
        let reader_connections = bounded(
            reader_key,
            raw.reader_connections.or(raw.pool_size),
            2,
            1,
            1000,
        )? as usize;
        let read_statement_timeout_ms = bounded(
            "read_statement_timeout_ms",
            raw.read_statement_timeout_ms,
            10_000,
            100,
            3_600_000,
        )?;
        let body_budget_bytes = bounded(
            "body_budget_bytes",
            raw.body_budget_bytes,
            32 << 20,
            body_limit_bytes as u64,
            4 << 30,
        )
        .map_err(|e| {
            ConfigError::new(&e.key, format!("{} (body_limit_bytes or more)", e.message))
        })? as usize;
        let batch_max_records =
            bounded("batch_max_records", raw.batch_max_records, 500, 1, 10_000)? as usize;
        let batch_max_wait_ms = bounded("batch_max_wait_ms", raw.batch_max_wait_ms, 0, 0, 1000)?;
        let retention_max_days =
            bounded("retention_max_days", raw.retention_max_days, 35, 0, 100_000)? as u32;
        let purge_time = raw.retention_purge_time.as_deref().unwrap_or("03:00");
        let retention_purge_time = NaiveTime::parse_from_str(purge_time, "%H:%M")
            .map_err(|_| ConfigError::new("retention_purge_time", "expected HH:MM (24-hour)"))?;
        let log_level = raw.log_level.unwrap_or_else(|| "info".to_string());
        // Filters are ASCII (levels, module paths, span fields); tracing-subscriber 0.3.23
        // panics on some non-ASCII directives (found by the config fuzzer), so those are refused
        // before it sees them.
        if !log_level.is_ascii() || tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(ConfigError::new(
                "log_level",
                "expected error, warn, info, debug, trace or a tracing filter",
            ));
        }
        let mut retention_classifications = Vec::new();
        for (pattern, days) in raw.retention_classifications.unwrap_or_default() {
            if pattern.is_empty() || pattern.contains('\0') {
                return Err(ConfigError::new(
                    "retention_classifications",
                    "patterns must be non-empty",
                ));
            }
            let days = u32::try_from(days).map_err(|_| {
                ConfigError::new(
                    "retention_classifications",
                    format!("{pattern}: too many days"),
                )
            })?;
            retention_classifications.push((pattern, days));
        }
        Ok(Self {
            listen,
            database_url,
            database_password,
            read_database_url: raw.read_database_url,
            database_ca,
            telemetry_id,
            body_limit_bytes,
            header_timeout: Duration::from_secs(header_timeout_secs),
            writer_connections,
            reader_connections,
            read_statement_timeout: Duration::from_millis(read_statement_timeout_ms),
            body_budget_bytes,
            batch_max_records,
            batch_max_wait: Duration::from_millis(batch_max_wait_ms),
            payload_search_index: raw.payload_search_index.unwrap_or(PAYLOAD_SEARCH_INDEX),
            retention_max_days,
            retention_purge_time,
            log_level,
            retention_classifications,
        })
    }

    /// The driver configuration, with the password applied and short connect timeouts so an
    /// unreachable database turns into a quick 503.
    /// The writer's, `migrate`'s and `purge`'s database (`database_url`).
    pub fn pg_config(&self) -> tokio_postgres::Config {
        self.driver_config(&self.database_url)
    }

    /// The readers' database: `read_database_url`, else `database_url`.
    pub fn read_pg_config(&self) -> tokio_postgres::Config {
        self.driver_config(
            self.read_database_url
                .as_ref()
                .unwrap_or(&self.database_url),
        )
    }

    fn driver_config(&self, url: &str) -> tokio_postgres::Config {
        let mut pg =
            tokio_postgres::Config::from_str(url).expect("database URLs were checked in resolve");
        if self.database_ca.is_some() {
            // TLS or nothing: `prefer` would fall back to plain text when the server says no.
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        if let Some(password) = &self.database_password {
            pg.password(password.expose());
        }
        pg.connect_timeout(Duration::from_millis(1500));
        if pg.get_application_name().is_none() {
            pg.application_name("telem-collector");
        }
        pg
    }
}

/// A database URL as `database_url` and `read_database_url` must be: parseable, without a
/// password, and with `database_ca_file` a TCP host that TLS can be verified for.
fn check_database_url(
    key: &str,
    url: &str,
    ca: Option<&DatabaseCa>,
) -> Result<tokio_postgres::Config, ConfigError> {
    let parsed = tokio_postgres::Config::from_str(url)
        .map_err(|_| ConfigError::new(key, "not a valid postgres:// URL or key=value string"))?;
    if parsed.get_password().is_some() {
        return Err(ConfigError::new(
            key,
            "must not contain a password; use database_password or database_password_file",
        ));
    }
    if ca.is_some() {
        if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
            return Err(ConfigError::new(
                key,
                "sslmode=disable contradicts database_ca_file (which makes every connection TLS)",
            ));
        }
        if parsed
            .get_hosts()
            .iter()
            .any(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)))
        {
            return Err(ConfigError::new(
                key,
                "names a unix socket, which has no TLS; with database_ca_file give a host name or IP address",
            ));
        }
    }
    Ok(parsed)
}

fn parse_listen(value: &str) -> Result<Listen, ConfigError> {
    if let Some(path) = value.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(ConfigError::new(
                "listen",
                "unix socket path must be absolute",
            ));
        }
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    value.parse().map(Listen::Tcp).map_err(|_| {
        ConfigError::new(
            "listen",
            "expected HOST:PORT (e.g. 127.0.0.1:8090) or unix:/PATH",
        )
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
