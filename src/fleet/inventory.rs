//! The machines of an inventory (`--inventory FILE`) as one run: each host with its placement,
//! in waves (stages.rs) — the primary, the standby, the first collector (it migrates the schema
//! once, while the others still run their binary), the other collectors (`--serial` at once;
//! drained from the balancer in turn for `deploy` and `restart`), the balancer. `uninstall`
//! goes the other way; `resetdb` stops the collectors first.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use crate::app::Io;
use crate::cli::{Action, Cli};
use crate::error::Error;
use crate::host::ssh::{SshHost, SshSettings};
use crate::inventory::{Inventory, Role};
use crate::secret::Secret;

use super::{BoxedHost, Fleet, Job};

/// Run `cli` on the inventory it names, each host reached over SSH.
pub fn run(cli: Cli, io: &mut Io) -> Result<u8, Error> {
    let inventory = load(&cli)?;
    let settings = SshSettings::with_options(cli.ssh_option.clone());
    let connect = |label: &str| -> Result<BoxedHost<'static>, String> {
        let host = inventory
            .hosts
            .iter()
            .find(|h| h.name == label)
            .ok_or_else(|| format!("unknown host {label}"))?;
        SshHost::connect(host.target.clone(), settings.clone())
            .map(|h| Box::new(h) as BoxedHost<'static>)
            .map_err(|e| e.0)
    };
    run_with(cli, &inventory, &connect, io)
}

/// The inventory `cli` names.
pub fn load(cli: &Cli) -> Result<Inventory, Error> {
    let path = cli
        .inventory
        .as_deref()
        .ok_or_else(|| Error::Usage("no --inventory".into()))?;
    Inventory::load(path)
}

/// Run `cli` on `inventory`, each host reached through `connect` (by its name).
pub fn run_with<'h>(
    cli: Cli,
    inventory: &Inventory,
    connect: super::Connect<'_, 'h>,
    io: &mut Io,
) -> Result<u8, Error> {
    let fleet = fleet(&cli, inventory)?;
    let code = super::run_jobs(&cli, fleet, connect, io).map_err(|e| match e {
        // The machines in the inventory's order, and the install to run.
        Error::NotInstalled(mut refused) => {
            refused
                .hosts
                .sort_by_key(|name| inventory.hosts.iter().position(|h| &h.name == name));
            refused.inventory = Some(inventory.file.display().to_string());
            Error::NotInstalled(refused)
        }
        e => e,
    })?;
    if cli.action == Action::Promote && !cli.dry_run && code == 0 {
        // The inventory as it now is, for the operator to keep.
        let now = inventory.promoted().map_err(Error::Usage)?;
        let fenced: Vec<&crate::inventory::Host> = inventory
            .hosts
            .iter()
            .filter(|h| h.roles.db && !now.hosts.iter().any(|n| n.name == h.name))
            .collect();
        let text = now.to_yaml(&fenced);
        let note = format!(
            "The inventory as it now is (write it over {}):\n{text}",
            inventory.file.display()
        );
        match cli.format {
            crate::cli::Format::Human => write!(io.out, "\n{note}"),
            crate::cli::Format::Json => write!(io.err, "{note}"),
        }
        .ok();
    }
    Ok(code)
}

/// The jobs of `cli` on `inventory`: a host each (those of `--limit`), with its placement and
/// wave.
pub fn fleet(cli: &Cli, inventory: &Inventory) -> Result<Fleet, Error> {
    let domain = match (&cli.host, &inventory.domain) {
        (Some(flag), Some(file)) if flag != file => {
            return Err(Error::Usage(format!(
                "-H {flag} differs from the inventory's domain {file} ({})",
                inventory.file.display()
            )))
        }
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => {
            return Err(Error::Usage(format!(
                "{}: no domain; add `domain:` to the inventory or pass -H DOMAIN",
                inventory.file.display()
            )))
        }
    };
    crate::host::ssh::check_options(&cli.ssh_option).map_err(|e| Error::Usage(e.0))?;
    let hosts = inventory.limited(&cli.limit)?;
    // After a promotion the collectors are wired to the new primary; the old primary and the
    // standby keep their places for the fence and the promotion.
    let promoted = match cli.action {
        Action::Promote => Some(inventory.promoted().map_err(Error::Usage)?),
        _ => None,
    };
    if cli.action == Action::Promote {
        // Without the standby in the run nothing is promoted: the old primary would be fenced
        // with no primary after it, or the collectors pointed at a standby in recovery.
        if let Some(standby) = inventory.hosts.iter().find(|h| h.roles.standby) {
            if !hosts.iter().any(|h| h.name == standby.name) {
                return Err(Error::Usage(format!(
                    "promote: --limit leaves out the standby {}, the host promote makes the primary; add --limit {}",
                    standby.name, standby.name
                )));
            }
        }
    }
    // The CA that signs the database's certificate, when something reaches it over the
    // network: only install creates it (Keys).
    let ca = match (inventory.networked(), Keys::ca(cli.action)) {
        (false, _) | (_, Keys::Unused) => None,
        (true, Keys::Create) => Some(
            crate::ca::Ca::load_or_create(&inventory.ca_dir, cli.dry_run)
                .map_err(|e| Error::Usage(e.to_string()))?,
        ),
        (true, Keys::Existing) => Some(
            crate::ca::Ca::existing(&inventory.ca_dir)
                .map_err(|e| Error::Usage(e.to_string()))?
                .ok_or_else(|| {
                    install_first(
                        cli,
                        inventory,
                        &format!(
                            "{}: the inventory's CA is not there (neither {} nor {})",
                            inventory.ca_dir.display(),
                            crate::ca::CERT_FILE,
                            crate::ca::KEY_FILE
                        ),
                    )
                })?,
        ),
    }
    .map(std::sync::Arc::new);
    let ca_pem = ca.as_ref().map(|ca| ca.cert_pem().to_owned());
    let make = |host: &crate::inventory::Host,
                action: Action,
                drained: &[std::net::IpAddr],
                label: String|
     -> Job {
        let mut cli = cli.clone();
        cli.action = action;
        cli.host = Some(domain.clone());
        let wired = match &promoted {
            Some(now) if !host.roles.db && !host.roles.standby => now,
            _ => inventory,
        };
        let placement = wired.placement(host, ca_pem.as_deref());
        cli.placement = Some(super::stages::drained(placement, drained));
        Job {
            label,
            host: host.name.clone(),
            cli,
            wave: 0,
            stranded: None,
        }
    };
    let collectors = inventory.hosts.iter().filter(|h| h.roles.collector).count();
    let balanced = inventory.hosts.iter().any(|h| h.roles.has(Role::Balancer));
    let (jobs, serial) = super::stages::jobs(cli, &hosts, collectors, balanced, &make);
    Ok(Fleet {
        jobs,
        serial,
        shared_password: true,
        all_planned: true,
        ca,
        replication_password: match inventory.hosts.iter().any(|h| h.roles.standby) {
            true => replication_password(cli, inventory)?,
            false => None,
        },
    })
}

/// What an action does with one of the controller's keys (the inventory's CA, the replication
/// role's password; both in `ca_dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// `install` creates it when it is missing (applying; a dry run shows a stand-in and
    /// writes nothing).
    Create,
    /// The action uses the one install created and refuses to run without it.
    Existing,
    /// The action does not use it and leaves `ca_dir` alone.
    Unused,
}

impl Keys {
    /// The CA: `deploy` issues the database's certificate and writes the CA's certificate
    /// (as install does), `promote` writes the CA's certificate for the collectors.
    fn ca(action: Action) -> Keys {
        match action {
            Action::Install => Keys::Create,
            Action::Deploy | Action::Promote => Keys::Existing,
            Action::Restart
            | Action::Migrate
            | Action::Resetdb
            | Action::Uninstall
            | Action::StopCollector
            | Action::Balance => Keys::Unused,
        }
    }

    /// The replication password: `deploy` sets it on the primary's role and the standby's
    /// connection (as install does).
    fn replication(action: Action) -> Keys {
        match action {
            Action::Install => Keys::Create,
            Action::Deploy => Keys::Existing,
            Action::Restart
            | Action::Migrate
            | Action::Resetdb
            | Action::Uninstall
            | Action::Promote
            | Action::StopCollector
            | Action::Balance => Keys::Unused,
        }
    }
}

/// The usage error of an action that needs what install creates on the controller, `missing`.
fn install_first(cli: &Cli, inventory: &Inventory, missing: &str) -> Error {
    Error::Usage(format!(
        "{missing}: -a {} does not create it; run -a install --inventory {} first (or restore \
         it from where you kept it)",
        cli.action.as_str(),
        inventory.file.display()
    ))
}

/// The file beside the CA that keeps the replication role's password.
pub const REPLICATION_PASSWORD: &str = "replication.password";

/// The replication role's password: the one kept beside the inventory's CA, else (install,
/// applying) a new one, written there (0600) before any host uses it; an install's dry run
/// creates nothing, `deploy` refuses to run without it, the other actions never read it.
fn replication_password(cli: &Cli, inventory: &Inventory) -> Result<Option<Secret>, Error> {
    let keys = Keys::replication(cli.action);
    if keys == Keys::Unused {
        return Ok(None);
    }
    let path = inventory.ca_dir.join(REPLICATION_PASSWORD);
    let problem = |e: std::io::Error| Error::Usage(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let meta = std::fs::metadata(&path).map_err(problem)?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(Error::Usage(format!(
                    "{}: others can read the replication password (chmod 600 it)",
                    path.display()
                )));
            }
            let pw = text.trim_end_matches(['\n', '\r']);
            if pw.is_empty() {
                return Err(Error::Usage(format!("{}: empty", path.display())));
            }
            Ok(Some(Secret::new(pw)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if keys == Keys::Existing {
                return Err(install_first(
                    cli,
                    inventory,
                    &format!("{}: the replication password is not there", path.display()),
                ));
            }
            if cli.dry_run {
                return Ok(None);
            }
            let pw = crate::password::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(problem)?;
            writeln!(f, "{}", pw.expose()).map_err(problem)?;
            f.sync_all().map_err(problem)?;
            Ok(Some(pw))
        }
        Err(e) => Err(problem(e)),
    }
}
