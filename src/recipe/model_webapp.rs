//! The recipe schema of the optional legacy web UI (`--webapp`): its section and its step kinds
//! (snapshot, venv, flask migrations, ownership reassignment, deploy.sh adoption). Data only,
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

/// A source snapshot (git clone of a branch/tag, or an unpacked tarball) installed at `dest`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotStep {
    /// `git` or `tarball`.
    #[serde(rename = "type")]
    pub source_type: String,
    /// The git repository (path, `file://` or remote URL); unused for tarballs.
    pub repo: String,
    /// The branch or tag (git), or the tarball's path or `file://` URL.
    pub source: String,
    /// Where the snapshot goes (swapped in whole).
    pub dest: String,
    /// Install only this directory of the snapshot (e.g. `telemetryui`).
    #[serde(default)]
    pub subdir: Option<String>,
    #[serde(default = "super::model::root")]
    pub owner: String,
    #[serde(default = "super::model::root")]
    pub group: String,
    #[serde(default)]
    pub notify: Vec<String>,
    /// Modules the app imports that live elsewhere in the repository (master's
    /// `utils/shared_utils`): copied into the installed tree as upstream's Dockerfile does.
    #[serde(default)]
    pub shared: Option<SharedModules>,
}

/// `files` of the repository's directory `from` (relative to its root) go to `to` (relative
/// to the installed tree), unless the tree already has them (the deploy.sh era's layout).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SharedModules {
    pub from: String,
    pub to: String,
    pub files: Vec<String>,
}

/// A Python virtual environment with a requirements file installed into it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VenvStep {
    pub path: String,
    pub requirements: String,
    #[serde(default = "python3")]
    pub python: String,
    /// pip's `--index-url` (empty: pip's default).
    #[serde(default)]
    pub index_url: String,
    #[serde(default)]
    pub notify: Vec<String>,
    /// The snapshot whose marker names its layout (for telem-deploy's pins when it has no
    /// requirements of its own).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// The recipe's requirements file, used when the snapshot has none (empty: telem-deploy's
    /// pins for the snapshot's layout).
    #[serde(default)]
    pub fallback: String,
}

fn python3() -> String {
    "python3".to_owned()
}

/// `flask db upgrade` of a Flask app in a venv, with the environment of a uWSGI vassal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlaskMigrateStep {
    pub venv: String,
    /// The app's directory (its `migrations/` are relative to it).
    pub chdir: String,
    /// FLASK_APP.
    pub app: String,
    /// The vassal whose `env =` lines (the database settings) the command gets.
    pub env_from: String,
    pub user: String,
}

/// Objects in a database owned by `from` (e.g. `postgres`, as deploy.sh left them) are
/// given to `to`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgReassignStep {
    pub database: String,
    pub from: String,
    pub to: String,
}

/// Report an installation of the old deploy.sh (any of `paths` exists) in the plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyStep {
    pub paths: Vec<String>,
}
