//! The recipe schema: what a per-distro YAML file may say, exactly.
//!
//! Every struct denies unknown fields, so a typo is a parse error with file:line:column. The
//! string values of steps may use Tera expressions (`{{ collector.config }}`); they are expanded
//! later by `recipe::expand`, never here. The steps' own schema is generated from the list of
//! step kinds (`crate::steps`). This module holds data only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cli::Distro;

pub use super::model_webapp::*;
pub use crate::steps::RawStep;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Which distro this recipe is for (must match the file name).
    pub distro: Distro,
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
    /// The packages (or bundles) of which any one installed means a PostgreSQL server is
    /// installed, by anyone: the `postgres_installed` condition.
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub name: String,
    pub role: String,
    pub backup_dir: String,
    /// An inventory's database host: where its TLS certificate and key live.
    #[serde(default = "default_db_tls_dir")]
    pub tls_dir: String,
    /// An inventory's standby streams as this role, through this slot.
    #[serde(default = "default_replication_role")]
    pub replication_role: String,
    #[serde(default = "default_replication_slot")]
    pub replication_slot: String,
}

fn default_db_tls_dir() -> String {
    "/etc/telem-db-tls".to_owned()
}

fn default_replication_role() -> String {
    "telem_replicator".to_owned()
}

fn default_replication_slot() -> String {
    "telem_standby".to_owned()
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
        /// The daemon upgrades in place on SIGUSR2 (telem-collector: a new process takes over
        /// its listening socket, the old one drains and exits): its reload is that upgrade.
        #[serde(default)]
        handover: bool,
    },
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
    /// The machine is the PostgreSQL primary (role `db`; every machine without an inventory).
    Db,
    /// The machine is a hot standby (role `standby`).
    Standby,
    /// The machine holds a PostgreSQL cluster (`db` or `standby`).
    Postgres,
    /// The machine runs telem-collector (role `collector`; every machine without an
    /// inventory).
    Collector,
    /// The machine balances the collectors (role `balancer`).
    Balancer,
    /// The machine runs nginx (`collector` or `balancer`).
    Nginx,
    /// The collector reaches its database on another machine (over TLS).
    DbRemote,
    /// A PostgreSQL server other machines reach: the primary with collectors or a standby on
    /// other machines, or the standby (it listens on its address, with TLS).
    DbClients,
    /// The primary has a standby (a replication role and slot).
    Replicated,
    /// PostgreSQL is installed on the target, by anyone: one of `postgres.packages` (unknown
    /// counts as installed: the step then says why). Uninstall's steps that ask the server
    /// hold it: where PostgreSQL is not installed, telem-deploy left nothing in it to remove.
    PostgresInstalled,
    /// The state file leaves something telem-deploy changed inside the PostgreSQL cluster to
    /// undo (its pg_hba.conf block, a value it set with `ALTER SYSTEM`), or cannot say
    /// (`State::postgres_left`). Uninstall runs a stopped standby only then: the steps that
    /// undo those need the server, and are `ok` from the record otherwise.
    PostgresLeft,
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

/// The default owner and group of files, directories and snapshots.
pub(crate) fn root() -> String {
    "root".to_owned()
}
