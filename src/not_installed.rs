//! The refusal of an action that needs what `install` set up (`restart`, `migrate`,
//! `resetdb` and their inventory's internal jobs: [`Action::needs_install`]) on a machine
//! where telem-deploy has not installed: its state file records no installation (none at
//! all, everything in it taken away by `uninstall -u`, or only the packages a plain
//! `uninstall` kept).
//!
//! A real run is refused while the machine is planned, from reads only, so nothing changes
//! anywhere: on an inventory, one such machine stops the whole run, with one error naming
//! every such machine. Exit 2, as the refusal of an action that needs the inventory's CA
//! before install made it. A dry run never fails for a precondition an earlier action sets up
//! (DESIGN.md): it shows every step blocked with [`BLOCKED`], no step as a change that could
//! not happen.

use std::fmt;

use crate::cli::Action;
use crate::state::{State, STATE_FILE};

/// Why a dry run shows each step of such an action blocked.
pub const BLOCKED: &str =
    "telem-deploy has not installed this machine (its state file records no installation): \
     run the install action first";

/// The action and, on an inventory, the machines it was refused on and the inventory's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInstalled {
    pub action: Action,
    /// The machines (by their inventory names); empty: the one machine of the run.
    pub hosts: Vec<String>,
    /// The inventory file, for the `install` to run.
    pub inventory: Option<String>,
}

/// Refuse `action` on the machine whose state file is `state` when it needs an installation
/// that `state` does not record.
pub fn check(action: Action, state: &State) -> Result<(), NotInstalled> {
    if !action.needs_install() || state.records_an_install() {
        return Ok(());
    }
    Err(NotInstalled {
        action,
        hosts: Vec::new(),
        inventory: None,
    })
}

impl fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (which, whose) = match self.hosts.len() {
            0 | 1 => ("this machine", "its state file"),
            _ => ("these machines", "their state file"),
        };
        if !self.hosts.is_empty() {
            write!(f, "{}: ", self.hosts.join(", "))?;
        }
        write!(
            f,
            "telem-deploy has not installed {which} ({whose} {STATE_FILE} records no \
             installation): -a {} needs what install sets up; run -a install",
            self.action.as_str()
        )?;
        if let Some(inventory) = &self.inventory {
            write!(f, " --inventory {inventory}")?;
        }
        write!(f, " first; nothing was changed")?;
        if !self.hosts.is_empty() {
            write!(f, " on any host")?;
        }
        Ok(())
    }
}

impl std::error::Error for NotInstalled {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_actions_on_an_installation_are_refused_and_only_without_one() {
        let never = State::default();
        for action in Action::ALL {
            assert_eq!(
                check(action, &never).is_err(),
                matches!(
                    action,
                    Action::Restart
                        | Action::Migrate
                        | Action::Resetdb
                        | Action::StopCollector
                        | Action::Balance
                ),
                "{action:?}"
            );
        }
        let mut installed = State::default();
        installed.created.insert("/etc/telemetry".into());
        assert_eq!(check(Action::Restart, &installed), Ok(()));
    }

    #[test]
    fn the_message_names_the_machines_and_the_install_to_run() {
        let one = NotInstalled {
            action: Action::Restart,
            hosts: Vec::new(),
            inventory: None,
        };
        assert_eq!(
            one.to_string(),
            "telem-deploy has not installed this machine (its state file \
             /var/lib/telem-deploy/state.json records no installation): -a restart needs what \
             install sets up; run -a install first; nothing was changed"
        );
        let fleet = NotInstalled {
            action: Action::Migrate,
            hosts: vec!["db1".into(), "web1".into()],
            inventory: Some("inv.yaml".into()),
        };
        assert_eq!(
            fleet.to_string(),
            "db1, web1: telem-deploy has not installed these machines (their state file \
             /var/lib/telem-deploy/state.json records no installation): -a migrate needs what \
             install sets up; run -a install --inventory inv.yaml first; nothing was changed on \
             any host"
        );
    }
}
