//! The recipe schema of the optional legacy web UI (`--webapp`): its section (its step kinds
//! are in `src/steps/`: snapshot, venv, flask_migrate, postgres_reassign, legacy). Data only,
//! re-exported by `recipe::model`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webapp {
    /// Deploy the web UI even without `--webapp`.
    #[serde(default)]
    pub enabled: bool,
    pub app_dir: String,
    pub vassal_dir: String,
    pub vassal: String,
    pub socket: String,
    pub log_dir: String,
    pub uwsgi_plugin: String,
    /// The uWSGI binary the emperor runs.
    pub uwsgi_bin: String,
    /// The emperor's pid file and the vassal's socket live here.
    pub run_dir: String,
    /// The emperor's systemd unit (rendered from uwsgi-emperor.service.tera).
    pub emperor_unit_file: String,
    /// The Python that creates the venv.
    #[serde(default = "default_python")]
    pub python: String,
    /// A pip index for offline sites (`--pip-index-url` wins); empty: pip's default.
    #[serde(default)]
    pub pip_index_url: String,
    /// Requirements for snapshots without their own `telemetryui/requirements.txt`
    /// (`--webapp-requirements` wins); empty: telem-deploy's pins for the snapshot's layout.
    #[serde(default)]
    pub requirements: String,
    /// The oldest Python the web UI runs on; an older one refuses `--webapp` before anything
    /// changes.
    #[serde(default = "default_min_python")]
    pub min_python: String,
    /// Releases (`VERSION_ID` of /etc/os-release, major part) whose Python is too old, for
    /// when it is not installed yet.
    #[serde(default)]
    pub unsupported_releases: Vec<String>,
    #[serde(default = "default_processes")]
    pub processes: u32,
    #[serde(default = "default_threads")]
    pub threads: u32,
    /// Seconds before uWSGI kills a stuck request.
    #[serde(default = "default_harakiri")]
    pub harakiri: u32,
    /// Rotate the vassal's log at this size.
    #[serde(default = "default_log_maxsize")]
    pub log_maxsize: u64,
}

fn default_python() -> String {
    "python3".to_owned()
}
fn default_min_python() -> String {
    "3.9".to_owned()
}
fn default_processes() -> u32 {
    2
}
fn default_threads() -> u32 {
    2
}
fn default_harakiri() -> u32 {
    60
}
fn default_log_maxsize() -> u64 {
    10 * 1024 * 1024
}
