//! The raw command line, as close to what the user typed as possible.
//!
//! Flags and defaults follow the old `deploy.sh` (`-a -d -H -r -s -t -u -h`); everything the
//! program derives from them (detected distro, password source, colour) is resolved later in
//! `options`. This module must never touch the host.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::host::ssh::Target;

/// `--version`: this tool's version and that of the telem-collector it ships. Both crates take
/// the workspace's version, so they cannot drift apart; tests/it/docs.rs checks the built binaries.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (ships telem-collector ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// Provision a Clear Linux telemetry backend: PostgreSQL, nginx and the telem-collector.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "telem-deploy",
    version = VERSION,
    disable_help_flag = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "The database password may also come from the environment variable TELEM_DB_PASSWORD \
(after --db-password-file and --db-password-stdin), the web UI password from TELEM_UI_PASSWORD; both are removed from every child's environment.\n\n\
Examples:\n  telem-deploy -a install -d clr -H localhost --dry-run\n  telem-deploy -a install -H telemetry.example.com --db-password-file /root/db.pass"
)]
pub struct Cli {
    /// Action to perform.
    #[arg(short = 'a', long = "action", value_enum, default_value_t = Action::Deploy)]
    pub action: Action,

    /// Target distribution [default: detected from /etc/os-release, else ubuntu].
    #[arg(short = 'd', long = "distro", value_enum)]
    pub distro: Option<Distro>,

    /// Domain name nginx serves (also used for the health check's Host header).
    #[arg(
        short = 'H',
        long = "host",
        value_name = "DOMAIN",
        required_unless_present = "inventory"
    )]
    pub host: Option<String>,

    /// Repository of the optional legacy web UI snapshot.
    #[arg(
        short = 'r',
        long = "repo",
        default_value = "https://github.com/clearlinux/telemetrics-backend"
    )]
    pub repo: String,

    /// Branch, tag or commit id (git) or tarball path (tarball) of the legacy web UI snapshot.
    #[arg(short = 's', long = "source", default_value = "master")]
    pub source: String,

    /// Kind of snapshot given by -s.
    #[arg(short = 't', long = "type", value_enum, default_value_t = SourceType::Git)]
    pub source_type: SourceType,

    /// Complete uninstallation: also remove the packages this tool installed.
    #[arg(short = 'u', long = "purge")]
    pub purge: bool,

    /// Print help.
    #[arg(short = 'h', long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,

    /// Show the plan and change nothing.
    #[arg(long = "dry-run", visible_alias = "plan")]
    pub dry_run: bool,

    /// Output format; with json, stdout holds exactly one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Answer yes to confirmations (resetdb, uninstall).
    #[arg(long, short = 'y', env = "TELEM_DEPLOY_YES")]
    pub yes: bool,

    /// Read the database password from FILE (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "db_password_stdin")]
    pub db_password_file: Option<PathBuf>,

    /// Read the database password from standard input (first line).
    #[arg(long)]
    pub db_password_stdin: bool,

    /// Use recipes from DIR instead of the built-in ones (DIR/<distro>.yaml).
    #[arg(long, value_name = "DIR")]
    pub recipes: Option<PathBuf>,

    /// Use templates from DIR instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,

    /// With --dry-run: exit 0 when nothing would change, 3 when changes are pending.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Do not write a pg_dump backup before resetdb or uninstall drop the database.
    #[arg(long)]
    pub no_backup: bool,

    /// Install this telem-collector binary instead of the one bundled next to telem-deploy.
    #[arg(long, value_name = "PATH")]
    pub collector_bin: Option<PathBuf>,

    /// Require HTTP basic auth as USER for the web UI, /api/ and /metrics (never for the
    /// collector paths); the password comes from --ui-password-file, TELEM_UI_PASSWORD or a prompt.
    #[arg(long, value_name = "USER")]
    pub ui_auth: Option<String>,

    /// Serve HTTPS with this certificate (PEM; a chain may follow it), installed for nginx
    /// (0644); refused when expired, not yet valid, or not matching --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; no passphrase),
    /// installed root-only (0600) and never shown.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate for -H, generated on the first run and kept
    /// while valid (renewed within 30 days of its expiry).
    #[arg(long)]
    pub tls_self_signed: bool,

    /// Serve only HTTPS (nginx no longer listens on port 80); needs a certificate.
    #[arg(long)]
    pub tls_only: bool,

    /// Read the web UI password (for --ui-auth) from FILE (first line).
    #[arg(long, value_name = "FILE", requires = "ui_auth")]
    pub ui_password_file: Option<PathBuf>,

    /// Also deploy the legacy web UI (uWSGI) from the -r/-s/-t snapshot.
    #[arg(long)]
    pub webapp: bool,

    /// pip's index for the legacy web UI's requirements (e.g. a local mirror or
    /// file:///srv/pypi/simple on an offline site) [default: the recipe's, else PyPI].
    #[arg(long, value_name = "URL")]
    pub pip_index_url: Option<String>,

    /// Requirements file for the legacy web UI [default: the snapshot's own
    /// telemetryui/requirements.txt, else the recipe's, else telem-deploy's pins for the
    /// snapshot's layout].
    #[arg(long, value_name = "FILE")]
    pub webapp_requirements: Option<PathBuf>,

    /// Service manager: systemd, or direct (the tool runs the daemons itself) [default: auto,
    /// systemd when it is PID 1].
    #[arg(long, value_enum, default_value_t = ServiceManagerArg::Auto)]
    pub service_manager: ServiceManagerArg,

    /// Provision this machine over SSH instead of the local one: `[USER@]HOST[:PORT]`, an IPv6
    /// address in brackets; repeatable (several machines in one run). The login user must be
    /// root. -H keeps its meaning (the domain nginx serves).
    #[arg(long = "target", value_name = "[USER@]HOST[:PORT]", value_parser = parse_target, help_heading = "Remote machines")]
    pub target: Vec<Target>,

    /// Read more targets from FILE, one per line (`#` starts a comment).
    #[arg(
        long = "targets",
        value_name = "FILE",
        help_heading = "Remote machines"
    )]
    pub targets_file: Option<PathBuf>,

    /// Pass an option to ssh, as `ssh -o OPT` (e.g. `ProxyJump=bastion`); repeatable. Options
    /// that would weaken host key checking or replace the tool's master connection are refused.
    #[arg(
        long = "ssh-option",
        value_name = "OPT",
        help_heading = "Remote machines"
    )]
    pub ssh_option: Vec<String>,

    /// Provision the machines of an inventory (YAML): the domain, and hosts with their SSH
    /// target, private address and roles (db, standby, collector, balancer), in order: the
    /// database first, then the standby, the collectors and the balancer.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "targets_file"], help_heading = "Remote machines")]
    pub inventory: Option<PathBuf>,

    /// Only these hosts of the inventory (by name); repeatable.
    #[arg(
        long,
        value_name = "HOST",
        requires = "inventory",
        help_heading = "Remote machines"
    )]
    pub limit: Vec<String>,

    /// `deploy` and `restart` of an inventory: change at most N collectors at once, so the
    /// others keep serving [default: all at once; 1 with a balancer].
    #[arg(long, value_name = "N", requires = "inventory", value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Remote machines")]
    pub serial: Option<u16>,

    /// The machine's part in an inventory (set by --inventory for each host, never a flag).
    #[arg(skip)]
    pub placement: Option<crate::inventory::Placement>,

    /// How many targets are planned and changed at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Remote machines")]
    pub parallel: u16,

    /// More output (commands as they run).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour (NO_COLOR is honoured with auto).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print shell completions to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Action {
    Deploy,
    Install,
    Migrate,
    Resetdb,
    Restart,
    Uninstall,
    /// An inventory's standby becomes the primary; the old primary is fenced.
    Promote,
    /// Internal (an inventory's `resetdb`, never a flag): a collector stopped before the
    /// primary drops the database.
    #[value(skip)]
    StopCollector,
    /// Internal (an inventory's rolling `deploy`/`restart`, never a flag): the balancer's
    /// upstream written with the collectors being changed marked `down` (or none), nginx
    /// reloaded.
    #[value(skip)]
    Balance,
}

impl Action {
    /// Every action a recipe holds (the internal ones too).
    pub const ALL: [Action; 9] = [
        Action::Deploy,
        Action::Install,
        Action::Migrate,
        Action::Resetdb,
        Action::Restart,
        Action::Uninstall,
        Action::Promote,
        Action::StopCollector,
        Action::Balance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Install => "install",
            Action::Migrate => "migrate",
            Action::Resetdb => "resetdb",
            Action::Restart => "restart",
            Action::Uninstall => "uninstall",
            Action::Promote => "promote",
            Action::StopCollector => "stop-collector",
            Action::Balance => "balance",
        }
    }

    /// Actions that work on what `install` set up (and the internal jobs of their inventory
    /// runs): on a machine where the state file records no installation they are refused
    /// before any change (`not_installed.rs`).
    pub fn needs_install(self) -> bool {
        match self {
            Action::Migrate
            | Action::Resetdb
            | Action::Restart
            | Action::StopCollector
            | Action::Balance => true,
            Action::Deploy | Action::Install | Action::Uninstall | Action::Promote => false,
        }
    }

    /// Actions that destroy data and so ask for confirmation.
    pub fn is_destructive(self) -> bool {
        matches!(self, Action::Resetdb | Action::Uninstall | Action::Promote)
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Clr,
    Ubuntu,
    Centos,
    Debian,
}

impl Distro {
    pub const ALL: [Distro; 4] = [Distro::Clr, Distro::Ubuntu, Distro::Centos, Distro::Debian];

    pub fn as_str(self) -> &'static str {
        match self {
            Distro::Clr => "clr",
            Distro::Ubuntu => "ubuntu",
            Distro::Centos => "centos",
            Distro::Debian => "debian",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceManagerArg {
    Auto,
    Systemd,
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceType {
    Git,
    Tarball,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--target`: a usage error (exit 2) that says what is wrong with it.
fn parse_target(s: &str) -> Result<Target, String> {
    s.parse::<Target>().map_err(|e| e.to_string())
}

impl Cli {
    /// Parse arguments; clap errors (exit 2 with usage) are returned, not printed.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_deploy_sh() {
        let cli = Cli::try_parse_args(["telem-deploy", "-H", "localhost"]).unwrap();
        assert_eq!(cli.action, Action::Deploy);
        assert_eq!(
            cli.repo,
            "https://github.com/clearlinux/telemetrics-backend"
        );
        assert_eq!(cli.source, "master");
        assert_eq!(cli.source_type, SourceType::Git);
        assert_eq!(cli.distro, None);
        assert!(!cli.purge);
    }

    #[test]
    fn completions_do_not_need_host() {
        let cli = Cli::try_parse_args(["telem-deploy", "completions", "bash"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Completions { .. })));
    }
}
