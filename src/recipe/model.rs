//! The recipe schema: what a per-distro YAML file may say, exactly.
//!
//! Every struct denies unknown fields, so a typo is a parse error with file:line:column. The
//! string values of steps may use Tera expressions (`{{ collector.config }}`); they are expanded
//! later by `recipe::expand`, never here. This module holds data only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::model_webapp::*;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Which distro this recipe is for (must match the file name).
    pub distro: String,
    /// The package manager used for `packages` steps.
    pub package_manager: PackageManagerKind,
    /// Named sets of packages (apt/yum) or bundles (swupd); an entry may name alternatives
    /// (`{ any_of: [nginx, web-server-basic] }`), of which the first the target's catalogue
    /// knows is used.
    pub packages: BTreeMap<String, Vec<PackageChoice>>,
    pub web_server: WebServer,
    pub nginx: Nginx,
    pub postgres: Postgres,
    pub database: Database,
    pub collector: Collector,
    #[serde(default)]
    pub webapp: Option<Webapp>,
    /// Services by the name steps use for them.
    pub services: BTreeMap<String, ServiceDef>,
    /// The ordered steps of each action.
    pub actions: BTreeMap<String, Vec<RawStep>>,
}

/// One entry of a package set: a name, or alternatives (e.g. a bundle renamed between
/// releases), of which the first the target's package manager knows is installed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PackageChoice {
    Name(String),
    AnyOf { any_of: Vec<String> },
}

impl PackageChoice {
    /// Every name this entry may stand for, in order of preference.
    pub fn names(&self) -> &[String] {
        match self {
            PackageChoice::Name(n) => std::slice::from_ref(n),
            PackageChoice::AnyOf { any_of } => any_of,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManagerKind {
    Apt,
    Swupd,
    Yum,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebServer {
    pub user: String,
    pub group: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Nginx {
    /// `sites-enabled` (Debian family) or `conf.d` (Clear Linux, EL).
    pub layout: NginxLayout,
    /// Where the rendered site lives.
    pub site: String,
    /// The link that enables it (sites-enabled layout only).
    #[serde(default)]
    pub site_link: Option<String>,
    /// The distro's default site that would otherwise claim `default_server`.
    #[serde(default)]
    pub default_site: Option<String>,
    /// The main nginx.conf.
    pub main_config: String,
    /// A distro file to install as the main nginx.conf when there is none (Clear Linux).
    #[serde(default)]
    pub base_config: Option<String>,
    pub tls_certificate: String,
    pub tls_key: String,
    /// The basic-auth user file of `--ui-auth`.
    #[serde(default = "default_htpasswd")]
    pub htpasswd: String,
}

fn default_htpasswd() -> String {
    "/etc/nginx/telemetry.htpasswd".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum NginxLayout {
    #[serde(rename = "sites-enabled")]
    SitesEnabled,
    #[serde(rename = "conf.d")]
    ConfD,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// The OS user that owns the cluster (peer authentication over the socket).
    pub os_user: String,
    /// Data directory (for the Debian family a glob over versions is resolved at run time).
    pub data_dir: String,
    pub hba_file: String,
    pub socket_dir: String,
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub name: String,
    pub role: String,
    pub backup_dir: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Collector {
    pub user: String,
    pub group: String,
    pub binary: String,
    pub config: String,
    pub config_dir: String,
    pub log_dir: String,
    pub run_dir: String,
    pub listen: String,
    pub unit_file: String,
}

/// How to run one service: a systemd unit, and how to run it without systemd.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    /// The systemd unit.
    pub unit: String,
    /// What a changed config needs: a reload or a restart.
    #[serde(default)]
    pub on_change: OnChange,
    /// How the direct service manager runs it when systemd is not PID 1.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub direct: Direct,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    Reload,
    #[default]
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Direct {
    /// Debian's postgresql-common: every cluster from `pg_lsclusters`, via `pg_ctlcluster`.
    PgCtlcluster {},
    /// `pg_ctl` on one data directory, as the cluster's OS user.
    PgCtl { data_dir: String, log_file: String },
    /// nginx itself: `nginx`, `nginx -s reload`, `nginx -s quit`, alive while its pid file is.
    Nginx {
        pid_file: String,
        /// Started with `-e FILE`, so its error log (and stderr) goes there: a build whose
        /// default error log is stderr (Clear Linux's) would otherwise keep the tool's pipe
        /// open for as long as it runs.
        #[serde(default)]
        error_log: Option<String>,
    },
    /// A daemon started detached with a pid file and a log file, as an unprivileged user.
    Daemon {
        command: Vec<String>,
        user: String,
        pid_file: String,
        log_file: String,
    },
}

/// One step as written: exactly one of the kind fields must be set (checked in `validate`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// What the step is for, as the plan shows it.
    pub name: String,
    /// Run the step only when all of these hold.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub when: Vec<Condition>,
    /// Run the step only when telem-deploy itself installed one of these packages (e.g. stop
    /// nginx before `-u` removes it, but never the operator's own nginx).
    #[serde(default)]
    pub when_installed_by_us: Vec<String>,
    /// Run the step only when one of these packages is installed, by anyone (e.g. uninstall's
    /// database steps: after `-u` removed PostgreSQL there is nothing to drop, and a second
    /// uninstall changes nothing).
    #[serde(default)]
    pub when_installed: Vec<String>,
    /// The step needs what `install` sets up (the collector and its config); on a host
    /// without them it is blocked ("run the install action first").
    #[serde(default)]
    pub needs_install: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<PackagesStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink: Option<SymlinkStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<RemoveStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_role: Option<PgRoleStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_database: Option<PgDatabaseStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_password: Option<PgPasswordStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_backup: Option<PgBackupStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<MigrateStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venv: Option<VenvStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flask_migrate: Option<FlaskMigrateStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_reassign: Option<PgReassignStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<LegacyStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStep>,
    pub user: Option<UserStep>,
}

/// A system user with a group of the same name. `present`: created (`useradd --system
/// --user-group`) when missing, and recorded as created; an existing one is used as it is.
/// `absent`: removed (`userdel`) only when telem-deploy created it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserStep {
    pub name: String,
    /// The login shell of a new user (a nologin).
    #[serde(default = "nologin")]
    pub shell: String,
    #[serde(default)]
    pub state: Presence,
}

fn nologin() -> String {
    "/usr/sbin/nologin".to_owned()
}

/// A condition of `when`: a flag of the run (`systemd`, `webapp`, ...), a fact of the target
/// (`firewalld`, `ufw`, `rhel`, `{ release: "8" }`, `{ available: valkey }`), or the negation
/// of one (`{ not: rhel }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// systemd is the service manager.
    Systemd,
    /// The direct service manager is in use (no systemd).
    Direct,
    /// `-u`: complete uninstallation.
    Purge,
    /// The legacy web UI is enabled (`--webapp`).
    Webapp,
    /// The legacy web UI is not enabled.
    NoWebapp,
    /// A TLS certificate is configured.
    Tls,
    /// The certificate is the operator's choice on the command line (`--tls-cert`/`--tls-key`
    /// or `--tls-self-signed`).
    TlsManaged,
    /// `--ui-auth` is given.
    UiAuth,
    /// firewalld is running (`firewall-cmd --state`).
    Firewalld,
    /// ufw is active (`ufw status`).
    Ufw,
    /// The target is Red Hat Enterprise Linux itself (`ID=rhel` in /etc/os-release), not a
    /// rebuild (CentOS Stream, Rocky Linux, AlmaLinux).
    Rhel,
    /// The target's release (`VERSION_ID` of /etc/os-release) is this one or a point release
    /// of it: `"8"` holds for 8.10, `"22.04"` for 22.04.
    Release(String),
    /// The package manager's catalogue knows this package or bundle (swupd: `bundle-list
    /// --all`).
    Available(String),
    /// The condition does not hold.
    Not(Box<Condition>),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    #[default]
    Present,
    Absent,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackagesStep {
    /// A key of the recipe's `packages` map: what `present` installs. `absent` ignores it and
    /// removes every package the state file records (see engine/packages.rs).
    pub set: String,
    #[serde(default)]
    pub state: Presence,
    /// Repository packages to install first (yum: `epel-release`).
    #[serde(default)]
    pub repositories: Vec<String>,
}

pub(super) fn root() -> String {
    "root".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryStep {
    pub path: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    /// Octal, e.g. "0644".
    pub mode: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileStep {
    pub path: String,
    /// Render this template (a name under templates/).
    #[serde(default)]
    pub template: Option<String>,
    /// Copy this file of the host (e.g. a distro's example config).
    #[serde(default)]
    pub copy_from: Option<String>,
    /// Install the bundled collector binary.
    #[serde(default)]
    pub collector_binary: bool,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    /// Octal, e.g. "0644".
    pub mode: String,
    /// Services to reload/restart when the file changes.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Check the result with this service's config test before it goes live (nginx).
    #[serde(default)]
    pub validate: Option<String>,
    /// Keep the first replaced version as `*.telem-orig`.
    #[serde(default)]
    pub backup: bool,
    /// The content holds the database password: never show it.
    #[serde(default)]
    pub secret: bool,
}

/// Install the run's TLS certificate (0644) and private key (0600, root's, never shown).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsStep {
    pub certificate: String,
    pub key: String,
    #[serde(default)]
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkStep {
    pub path: String,
    pub target: String,
    #[serde(default)]
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveStep {
    pub path: String,
    /// Remove whatever is there and keep it, so that uninstall can put it back (e.g. the
    /// distro's default site). Without it, only what telem-deploy created or replaced is
    /// removed, and what it set aside for this path is restored.
    #[serde(default)]
    pub save: bool,
    #[serde(default)]
    pub notify: Vec<String>,
    /// A directory whose whole tree telem-deploy made (a venv, a snapshot): it goes with
    /// everything in it. Without `tree`, a directory telem-deploy created goes only when all
    /// it holds is telem-deploy's (recorded in the state file, or one of `daemon_files`);
    /// else those go and the directory stays, with what the operator (or another program)
    /// put there.
    #[serde(default)]
    pub tree: bool,
    /// Names of the files the tool's daemons write in this directory (logs, pid files); a
    /// trailing `*` matches any suffix (`collector.log*`: rotated logs too).
    #[serde(default)]
    pub daemon_files: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    Stopped,
    Restarted,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceStep {
    /// A key of the recipe's `services` map.
    pub name: String,
    pub state: ServiceState,
    /// Start at boot (systemd only).
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgRoleStep {
    pub name: String,
    #[serde(default)]
    pub state: Presence,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgDatabaseStep {
    pub name: String,
    pub owner: String,
    #[serde(default)]
    pub state: Presence,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgPasswordStep {
    pub role: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgBackupStep {
    pub database: String,
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateStep {
    /// Run the migrations even when the collector reports the schema current.
    #[serde(default)]
    pub always: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandStep {
    /// The argv to run (no shell).
    pub run: Vec<String>,
    /// Skip when this command succeeds (already done).
    #[serde(default)]
    pub unless: Option<Vec<String>>,
    /// Run only when this command succeeds.
    #[serde(default)]
    pub only_if: Option<Vec<String>>,
    /// Skip when this path exists.
    #[serde(default)]
    pub creates: Option<String>,
    /// Skip when this path does not exist.
    #[serde(default)]
    pub removes: Option<String>,
    #[serde(default)]
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthStep {
    pub path: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The Host header (the -H domain).
    pub host: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The path is behind `--ui-auth`: with it, nginx answers 401 before the app is reached,
    /// and that answer counts (the app's own answer needs the password).
    #[serde(default)]
    pub behind_ui_auth: bool,
}

fn default_port() -> u16 {
    80
}

fn default_timeout() -> u64 {
    15
}
