//! `user` steps: the collector's own system user. Created when missing and recorded in the
//! state file; an existing user of that name is used as it is and never removed, since
//! telem-deploy did not create it (another program may run as it).

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{Check, Engine, StepError};
use crate::host::{lookup_user, Cmd};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::Presence;

/// A system user with a group of the same name. `present`: created (`useradd --system
/// --user-group`) when missing, and recorded as created; an existing one is used as it is.
/// `absent`: removed (`userdel`) only when telem-deploy created it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
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

impl Step for User {
    const KIND: &'static str = "user";
    type Raw = User;

    fn compile(raw: &User, _: &mut Compiler) -> Option<User> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        apply(eng, self)
    }
}

fn useradd(step: &User) -> Cmd {
    Cmd::new([
        "useradd",
        "--system",
        "--user-group",
        "--home-dir",
        "/nonexistent",
        "--no-create-home",
        "--shell",
        &step.shell,
        &step.name,
    ])
}

fn userdel(step: &User) -> Cmd {
    Cmd::new(["userdel", &step.name])
}

fn exists(eng: &Engine, name: &str) -> bool {
    // Only /etc/passwd counts: a numeric fallback is not a user.
    lookup_user(eng.host, name).is_some() && name.parse::<u32>().is_err()
}

fn check(eng: &Engine, step: &User) -> Result<Check, StepError> {
    let ours = eng.state.borrow().users.contains(&step.name);
    let here = exists(eng, &step.name);
    Ok(match (step.state, here, ours) {
        (Presence::Present, true, true) => Check::ok(format!("user {} exists", step.name)),
        (Presence::Present, true, false) => Check::ok(format!(
            "user {} exists (not created by telem-deploy: uninstall keeps it)",
            step.name
        )),
        (Presence::Present, false, _) => Check::change(vec![
            format!("create the system user and group {}", step.name),
            format!("run: {}", useradd(step).display()),
        ]),
        (Presence::Absent, true, true) => Check::change(vec![
            format!(
                "remove the user and group {} (created by telem-deploy)",
                step.name
            ),
            format!("run: {}", userdel(step).display()),
        ]),
        (Presence::Absent, true, false) => Check::ok(format!(
            "user {} was not created by telem-deploy; kept",
            step.name
        )),
        (Presence::Absent, false, true) => {
            Check::change1(format!("forget the user {} (already gone)", step.name))
        }
        (Presence::Absent, false, false) => Check::ok(format!("user {} is absent", step.name)),
    })
}

fn apply(eng: &Engine, step: &User) -> Result<(), StepError> {
    let here = exists(eng, &step.name);
    match step.state {
        Presence::Present if !here => {
            // Recorded first: a run killed after useradd still knows the user is its own.
            eng.update_state(|s| {
                s.users.insert(step.name.clone());
            })?;
            eng.run_ok(&useradd(step)).map(drop)
        }
        Presence::Present => Ok(()),
        Presence::Absent => {
            if !eng.state.borrow().users.contains(&step.name) {
                return Ok(());
            }
            if here {
                eng.run_ok(&userdel(step))?;
            }
            eng.update_state(|s| {
                s.users.remove(&step.name);
            })
        }
    }
}
