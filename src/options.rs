//! Resolved options: the raw `Cli` turned into what the program runs on.
//!
//! Here the distro is detected (through the `Host`), its recipe loaded (which may turn the web
//! UI on), the service manager chosen, the password source chosen, the domain checked and the
//! colour decided. Conflicts and bad values become usage errors (exit 2).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cli::{Action, Cli, ColorChoice, Distro, Format, ServiceManagerArg, SourceType};
use crate::engine::Manager;
use crate::error::Error;
use crate::host::{systemd_is_pid1, Host};
use crate::recipe::{self, LoadedRecipe};
use crate::secret::Secret;

/// Where the database password comes from when it is given explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Stdin,
    Env,
    /// Not given: reuse the stored one, prompt, or generate.
    Implicit,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub action: Action,
    pub distro: Distro,
    pub domain: String,
    pub repo: String,
    pub source: String,
    pub source_type: SourceType,
    pub purge: bool,
    pub dry_run: bool,
    pub format: Format,
    pub yes: bool,
    pub password_source: PasswordSource,
    pub templates: Option<PathBuf>,
    pub detailed_exitcode: bool,
    pub no_backup: bool,
    pub collector_bin: Option<PathBuf>,
    /// The legacy web UI (`--webapp`, or `webapp.enabled` in the recipe).
    pub webapp: bool,
    /// How services are run: `--service-manager`, else systemd when it is PID 1.
    pub manager: Manager,
    /// `--pip-index-url`: pip's index for the web UI's requirements.
    pub pip_index_url: Option<String>,
    /// `--webapp-requirements FILE`: the web UI's requirements, whatever the snapshot has.
    pub webapp_requirements: Option<PathBuf>,
    /// `--ui-auth USER`: basic auth in front of the web UI.
    pub ui_auth: Option<String>,
    pub ui_password_file: Option<PathBuf>,
    /// `--tls-cert/--tls-key` (checked) or `--tls-self-signed`.
    pub tls: Option<crate::tls::Choice>,
    /// `--tls-only`: nginx serves HTTPS only.
    pub tls_only: bool,
    pub verbose: u8,
    pub color: bool,
    /// stdin and stderr are terminals (prompts and progress bars are allowed).
    pub interactive: bool,
    /// The machine's part in an inventory; `None`: the whole backend on this one machine.
    pub placement: Option<crate::inventory::Placement>,
}

impl Options {
    /// This machine's roles (db and collector without an inventory).
    pub fn roles(&self) -> crate::inventory::Roles {
        self.placement
            .as_ref()
            .map_or(crate::inventory::Roles::SINGLE, |p| p.roles)
    }
}

impl Options {
    /// The options of one run, and the recipe they select.
    pub fn resolve(cli: Cli, host: &dyn Host) -> Result<(Options, LoadedRecipe), Error> {
        let tls = crate::tls::choice(&cli)?;
        let domain = cli.host.clone().unwrap_or_default();
        check_domain(&domain)?;
        check_flags(&cli)?;
        let password_source = if let Some(f) = cli.db_password_file {
            PasswordSource::File(f)
        } else if cli.db_password_stdin {
            PasswordSource::Stdin
        } else if std::env::var_os(crate::secret::DB_PASSWORD_ENV).is_some() {
            PasswordSource::Env
        } else {
            PasswordSource::Implicit
        };
        let distro = cli.distro.unwrap_or_else(|| detect_distro(host));
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        let interactive = interactive(cli.format);
        let manager = service_manager(cli.service_manager, host);
        let loaded = recipe::load(distro, cli.recipes.as_deref())?;
        let webapp = web_ui(cli.webapp, &loaded)?;
        if cli.action == crate::cli::Action::Promote && cli.placement.is_none() {
            return Err(Error::Usage(
                "promote works on an inventory with a standby (--inventory FILE)".into(),
            ));
        }
        if let Some(p) = &cli.placement {
            let split = p.roles != crate::inventory::Roles::SINGLE;
            if split && !matches!(distro, Distro::Debian | Distro::Ubuntu) {
                return Err(Error::Usage(format!(
                    "{}: the roles {} on {}: only the debian and ubuntu recipes split a backend over several machines so far (one host with db and collector works everywhere)",
                    p.name,
                    p.roles.describe(),
                    distro.as_str()
                )));
            }
        }
        if let (Some(p), true) = (&cli.placement, webapp) {
            if p.roles != crate::inventory::Roles::SINGLE {
                return Err(Error::Usage(format!(
                    "{}: the legacy web UI (--webapp) runs only on a host with both the db and collector roles",
                    p.name
                )));
            }
        }
        let opts = Options {
            action: cli.action,
            distro,
            domain,
            repo: cli.repo,
            source: cli.source,
            source_type: cli.source_type,
            purge: cli.purge,
            dry_run: cli.dry_run,
            format: cli.format,
            yes: cli.yes,
            password_source,
            templates: cli.templates,
            detailed_exitcode: cli.detailed_exitcode,
            no_backup: cli.no_backup,
            collector_bin: cli.collector_bin,
            webapp,
            manager,
            pip_index_url: cli.pip_index_url,
            webapp_requirements: cli.webapp_requirements,
            ui_auth: cli.ui_auth,
            ui_password_file: cli.ui_password_file,
            tls,
            tls_only: cli.tls_only,
            verbose: cli.verbose,
            color,
            interactive,
            placement: cli.placement,
        };
        Ok((opts, loaded))
    }

    /// The summary block deploy.sh printed before acting.
    pub fn summary(&self) -> String {
        format!(
            "Options:\n  host: {}\n  distro: {}\n  action: {}\n  repo: {}\n  source: {}\n  type: {}\n",
            self.domain,
            self.distro.as_str(),
            self.action.as_str(),
            self.repo,
            self.source,
            match self.source_type {
                SourceType::Git => "git",
                SourceType::Tarball => "tarball",
            }
        )
    }

    /// The explicitly given password, if any: file, then stdin, then the environment (not yet
    /// checked against what the stack can use: see [`crate::password::check_usable`]).
    /// Warnings (a password file others can read) go to `warn`.
    pub fn read_explicit_password(&self, warn: &mut dyn Write) -> Result<Option<Secret>, Error> {
        let raw = match &self.password_source {
            PasswordSource::Implicit => return Ok(None),
            PasswordSource::File(path) => read_password_file("--db-password-file", path, warn)?,
            PasswordSource::Stdin => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(|e| {
                    Error::Usage(format!("--db-password-stdin: cannot read stdin: {e}"))
                })?;
                line
            }
            PasswordSource::Env => std::env::var(crate::secret::DB_PASSWORD_ENV)
                .map_err(|_| Error::Usage("TELEM_DB_PASSWORD is not valid UTF-8".into()))?,
        };
        let pw = raw.strip_suffix('\n').unwrap_or(&raw);
        let pw = pw.strip_suffix('\r').unwrap_or(pw);
        if pw.is_empty() {
            return Err(Error::Usage("the database password is empty".into()));
        }
        Ok(Some(Secret::new(pw)))
    }
}

/// Prompts and progress bars are allowed: human output, stdin and stderr are terminals.
pub fn interactive(format: Format) -> bool {
    format == Format::Human && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The flags checked on their own: the web UI user, the collector binary, the snapshot's
/// repository and branch, pip's index, `--detailed-exitcode`.
fn check_flags(cli: &Cli) -> Result<(), Error> {
    if let Some(user) = &cli.ui_auth {
        check_ui_user(user)?;
    }
    // Read only by the actions that install it (uninstall merely compares its path).
    if let Some(bin) = &cli.collector_bin {
        if matches!(cli.action, Action::Install | Action::Deploy) {
            check_collector_bin(bin)?;
        }
    }
    if cli.source_type == SourceType::Git {
        crate::engine::snaplinks::check_repo(&cli.repo)
            .map_err(|e| Error::Usage(format!("-r/--repo: {e}")))?;
        if cli.source.is_empty()
            || cli.source.starts_with('-')
            || cli.source.chars().any(char::is_control)
        {
            return Err(Error::Usage(format!(
                "invalid value '{}' for '--source': a branch, tag or commit id",
                cli.source.escape_default()
            )));
        }
    }
    if let Some(url) = &cli.pip_index_url {
        if url.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(Error::Usage(format!(
                "invalid value '{url}' for '--pip-index-url <URL>': a URL without spaces"
            )));
        }
    }
    if cli.detailed_exitcode && !cli.dry_run {
        return Err(Error::Usage(
            "--detailed-exitcode only applies with --dry-run".into(),
        ));
    }
    Ok(())
}

/// `--service-manager`, where `auto` is systemd when it is PID 1.
fn service_manager(arg: ServiceManagerArg, host: &dyn Host) -> Manager {
    match arg {
        ServiceManagerArg::Systemd => Manager::Systemd,
        ServiceManagerArg::Direct => Manager::Direct,
        ServiceManagerArg::Auto if systemd_is_pid1(host) => Manager::Systemd,
        ServiceManagerArg::Auto => Manager::Direct,
    }
}

/// The web UI is deployed with `--webapp` or when the recipe says `webapp.enabled: true`;
/// either way the recipe needs its `webapp` section.
fn web_ui(flag: bool, loaded: &LoadedRecipe) -> Result<bool, Error> {
    let webapp = loaded.recipe.webapp.as_ref();
    let on = flag || webapp.is_some_and(|w| w.enabled);
    if on && webapp.is_none() {
        return Err(Error::Usage(format!(
            "--webapp: {} has no `webapp` section",
            loaded.file
        )));
    }
    Ok(on)
}

/// The web UI password, if given: `--ui-password-file`, then `TELEM_UI_PASSWORD`. Warnings go
/// to `warn`.
pub fn explicit_ui_password(opts: &Options, warn: &mut dyn Write) -> Result<Option<Secret>, Error> {
    let raw = match &opts.ui_password_file {
        Some(path) => read_password_file("--ui-password-file", path, warn)?,
        None => match std::env::var(crate::secret::UI_PASSWORD_ENV) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        },
    };
    if raw.is_empty() {
        return Err(Error::Usage("the web UI password is empty".into()));
    }
    let pw = Secret::new(raw);
    crate::password::check_usable(&pw, crate::password::Kind::WebUi, false)?;
    Ok(Some(pw))
}

/// The first line of a password file (`flag` names the option in errors). Only a regular
/// file is read, and only its first [`PASSWORD_FILE_LIMIT`] bytes.
fn read_password_file(flag: &str, path: &Path, warn: &mut dyn Write) -> Result<String, Error> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let usage = |e: &dyn std::fmt::Display| Error::Usage(format!("{flag} {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| usage(&e))?;
    let meta = file.metadata().map_err(|e| usage(&e))?;
    if !meta.is_file() {
        return Err(usage(&"not a regular file"));
    }
    if meta.permissions().mode() & 0o004 != 0 {
        writeln!(
            warn,
            "warning: {flag} {} is readable by every user; chmod 600 it",
            path.display()
        )
        .ok();
    }
    let mut bytes = Vec::new();
    file.take(PASSWORD_FILE_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(&e))?;
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    if first.len() as u64 >= PASSWORD_FILE_LIMIT {
        return Err(usage(&format_args!(
            "the first line is longer than {} bytes",
            crate::password::MAX_LEN
        )));
    }
    String::from_utf8(first.to_vec()).map_err(|_| usage(&"the password is not valid UTF-8"))
}

/// How much of a password file is read: more than any usable password.
const PASSWORD_FILE_LIMIT: u64 = 64 * 1024;

/// The largest collector binary `--collector-bin` accepts (today's is ~10 MB).
pub const COLLECTOR_BIN_LIMIT: u64 = 512 * 1024 * 1024;

/// `--collector-bin`: a regular file of bounded size (not a device that reads forever).
fn check_collector_bin(path: &Path) -> Result<(), Error> {
    let usage = |e: &dyn std::fmt::Display| {
        Error::Usage(format!("--collector-bin {}: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| usage(&e))?;
    if !meta.is_file() {
        return Err(usage(&"not a regular file"));
    }
    if meta.len() > COLLECTOR_BIN_LIMIT {
        return Err(usage(&format_args!(
            "{} bytes; a collector binary is at most {COLLECTOR_BIN_LIMIT}",
            meta.len()
        )));
    }
    Ok(())
}

/// `--ui-auth USER`: a name nginx's user file can hold and a browser can send: printable,
/// without ':' (the separator of the file and of basic auth), spaces or control characters.
fn check_ui_user(user: &str) -> Result<(), Error> {
    let bad = user.is_empty()
        || user.len() > 255
        || user
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::Usage(format!(
            "invalid value {user:?} for '--ui-auth <USER>': 1 to 255 bytes without ':', spaces or control characters"
        )));
    }
    Ok(())
}

/// A name nginx accepts in `server_name` and that is safe inside a config file.
pub(crate) fn check_domain(domain: &str) -> Result<(), Error> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let body = domain.strip_prefix("*.").unwrap_or(domain);
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && (body.split('.').all(valid_label) || body.parse::<std::net::IpAddr>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid value '{domain}' for '-H <DOMAIN>': expected a host name (letters, digits, '-', '.'), an IP address or '*.domain'"
        )))
    }
}

/// The distro from /etc/os-release (then /usr/lib/os-release), else ubuntu as deploy.sh did.
pub fn detect_distro(host: &dyn Host) -> Distro {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| host.read(Path::new(p)).ok().flatten())
        .and_then(|bytes| distro_from_os_release(&String::from_utf8_lossy(&bytes)))
        .unwrap_or(Distro::Ubuntu)
}

pub fn distro_from_os_release(text: &str) -> Option<Distro> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_owned())
    };
    let by_id = |id: &str| match id {
        "clear-linux-os" => Some(Distro::Clr),
        "ubuntu" => Some(Distro::Ubuntu),
        "debian" => Some(Distro::Debian),
        "centos" | "rhel" | "rocky" | "almalinux" => Some(Distro::Centos),
        _ => None,
    };
    field("ID")
        .and_then(|id| by_id(&id))
        .or_else(|| field("ID_LIKE").and_then(|like| like.split_whitespace().find_map(by_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_ids_map_to_distros() {
        let cases = [
            ("ID=clear-linux-os\n", Some(Distro::Clr)),
            ("NAME=\"Ubuntu\"\nID=ubuntu\n", Some(Distro::Ubuntu)),
            ("ID=debian\n", Some(Distro::Debian)),
            ("ID=\"centos\"\n", Some(Distro::Centos)),
            ("ID=\"rhel\"\n", Some(Distro::Centos)),
            ("ID=rocky\n", Some(Distro::Centos)),
            ("ID=almalinux\n", Some(Distro::Centos)),
            (
                "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n",
                Some(Distro::Ubuntu),
            ),
            ("ID=arch\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(distro_from_os_release(text), want, "{text}");
        }
    }

    #[test]
    fn domains_nginx_would_reject_are_refused() {
        for ok in [
            "localhost",
            "telemetry.example.com",
            "10.0.0.1",
            "*.example.org",
            "my_host",
        ] {
            assert!(check_domain(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "x;y", "evil}", "a..b", "$host", "ex ample.com"] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }
}
