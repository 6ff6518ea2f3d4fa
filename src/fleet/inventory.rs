//! The machines of an inventory (`--inventory FILE`) as one run: each host with its placement,
//! in waves (stages.rs) — the primary, the standby, the first collector (it migrates the schema
//! once, while the others still run their binary), the other collectors (`--serial` at once;
//! drained from the balancer in turn for `deploy` and `restart`), the balancer. `uninstall`
//! goes the other way; `resetdb` stops the collectors first.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
    let code = super::run_jobs(&cli, fleet, connect, io)?;
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
    // network: created on the first apply, never by a dry run.
    let ca = if inventory.networked() {
        let ca = crate::ca::Ca::load_or_create(&inventory.ca_dir, cli.dry_run)
            .map_err(|e| Error::Usage(e.to_string()))?;
        Some(std::sync::Arc::new(ca))
    } else {
        None
    };
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
        replication_password: if inventory.hosts.iter().any(|h| h.roles.standby) {
            replication_password(&inventory.ca_dir, cli.dry_run)?
        } else {
            None
        },
    })
}

/// The file beside the CA that keeps the replication role's password.
pub const REPLICATION_PASSWORD: &str = "replication.password";

/// The replication role's password: the one kept beside the inventory's CA, else (applying) a
/// new one, written there (0600) before any host uses it; a dry run creates nothing.
fn replication_password(ca_dir: &Path, dry_run: bool) -> Result<Option<Secret>, Error> {
    let path = ca_dir.join(REPLICATION_PASSWORD);
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
            if dry_run {
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
