//! The machines of an inventory (`--inventory FILE`) as one run: each host with its placement,
//! in waves — the primary, the standby, the first collector (it migrates the schema once, while
//! the others still run their binary), the other collectors (`--serial` at once; one at a time
//! behind a balancer for `deploy` and `restart`), the balancer. `uninstall` goes the other way.

use crate::app::Io;
use crate::cli::{Action, Cli};
use crate::error::Error;
use crate::host::ssh::{SshHost, SshSettings};
use crate::inventory::{Inventory, Role};

use super::{BoxedHost, Fleet, Job};

/// The waves, in the order they run.
const PRIMARY: usize = 0;
const STANDBY: usize = 1;
const FIRST_COLLECTOR: usize = 2;
const COLLECTORS: usize = 3;
const BALANCER: usize = 4;
const WAVES: usize = 5;

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
    super::run_jobs(&cli, fleet, connect, io)
}

/// The jobs of `cli` on `inventory`: a host each (those of `--limit`), with its placement and
/// wave.
pub fn fleet(cli: &Cli, inventory: &Inventory) -> Result<Fleet, Error> {
    if cli.action == Action::Resetdb {
        return Err(Error::Usage(
            "resetdb of an inventory is not supported yet: the collectors must stop before the database is dropped and migrate after; run it with the collectors stopped, host by host (--limit)".into(),
        ));
    }
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
    let first_collector = hosts.iter().find(|h| h.roles.collector).map(|h| &h.name);
    let reverse = cli.action == Action::Uninstall;
    let jobs = hosts
        .iter()
        .map(|host| {
            let wave = match Inventory::wave(host) {
                0 => PRIMARY,
                1 => STANDBY,
                2 if Some(&host.name) == first_collector => FIRST_COLLECTOR,
                2 => COLLECTORS,
                _ => BALANCER,
            };
            let mut cli = cli.clone();
            cli.host = Some(domain.clone());
            cli.placement = Some(inventory.placement(host, ca_pem.as_deref()));
            Job {
                label: host.name.clone(),
                cli,
                wave: if reverse { WAVES - 1 - wave } else { wave },
            }
        })
        .collect();
    let rolling = matches!(cli.action, Action::Deploy | Action::Restart);
    let balanced = inventory.hosts.iter().any(|h| h.roles.has(Role::Balancer));
    let collectors_at_once = match cli.serial {
        Some(n) => usize::from(n),
        None if rolling && balanced => 1,
        None => usize::MAX,
    };
    let mut serial = vec![usize::MAX; WAVES];
    serial[if reverse {
        WAVES - 1 - COLLECTORS
    } else {
        COLLECTORS
    }] = collectors_at_once;
    Ok(Fleet {
        jobs,
        serial,
        shared_password: true,
        ca,
    })
}
