//! `packages` steps: `present` installs what is missing of the step's set (never reinstalls);
//! `absent` (on `-u`) ignores the set and removes what the state file records this tool
//! installed, of every set and what their installs pulled in, and nothing the operator already
//! had: only the recorded packages whose removal takes nothing else (asked of the package
//! manager first, see `pkg::removal_plan`).

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{pkg, Check, Engine, Status, StepError};
use crate::recipe::compiler::{keys, Compiler};
use crate::recipe::model::{PackageManagerKind, Presence};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// A key of the recipe's `packages` map: the set `present` installs. `absent` does not
    /// read it: it removes every package telem-deploy recorded, whatever their set (so an
    /// action has at most one `absent` step).
    pub set: String,
    #[serde(default)]
    pub state: Presence,
    /// Repository packages to install first (yum: `epel-release`).
    #[serde(default)]
    pub repositories: Vec<String>,
}

impl Step for Packages {
    const KIND: &'static str = "packages";
    type Raw = Packages;

    fn compile(raw: &Packages, c: &mut Compiler) -> Option<Packages> {
        let known = c.waits(&raw.set) || c.recipe().packages.contains_key(&raw.set);
        if !known {
            let sets = keys(&c.recipe().packages);
            c.error(
                "set",
                format!("unknown package set `{}` (the recipe's sets are: {sets})", raw.set),
            );
            return None;
        }
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        apply(eng, self)
    }

    /// `-u` refuses before the first change when the package manager cannot tell what the
    /// removal would take.
    fn preflight(&self, eng: &Engine) -> Result<(), StepError> {
        if self.state != Presence::Absent {
            return Ok(());
        }
        eng.removal_plan().map(drop).map_err(|e| StepError {
            message: format!(
                "cannot tell which packages -u may remove, so nothing was changed: {}",
                e.message
            ),
            ..e
        })
    }
}

/// The names of the set on this target (of alternatives, the one its catalogue knows).
fn wanted(eng: &Engine, step: &Packages) -> Vec<String> {
    eng.recipe
        .recipe
        .packages
        .get(&step.set)
        .map(|set| set.iter().map(|c| eng.facts.choose(c)).collect())
        .unwrap_or_default()
}

/// Record what an install added beyond the names asked for (also after an interrupted run).
fn record_interrupted(eng: &Engine) -> Result<(), StepError> {
    let Some(before) = eng.state.borrow().install_baseline.clone() else {
        return Ok(());
    };
    let after = eng.pm.all_installed(eng.host).map_err(StepError::host)?;
    eng.update_state(|s| {
        s.packages.extend(after.difference(&before).cloned());
        s.install_baseline = None;
    })
}

fn missing(eng: &Engine, step: &Packages) -> Result<Vec<String>, StepError> {
    let names = wanted(eng, step);
    let installed = eng
        .pm
        .installed(eng.host, &names)
        .map_err(StepError::host)?;
    Ok(names
        .into_iter()
        .filter(|n| !installed.contains(n))
        .collect())
}

fn check(eng: &Engine, step: &Packages) -> Result<Check, StepError> {
    let verb = match eng.pm.kind {
        PackageManagerKind::Swupd => "bundle",
        _ => "package",
    };
    match step.state {
        Presence::Present => {
            let missing = match missing(eng, step) {
                Ok(m) => m,
                Err(e) => {
                    let all = wanted(eng, step);
                    let mut c =
                        Check::unknown(format!("cannot tell what is installed: {}", e.message));
                    c.changes
                        .push(format!("install the missing {verb}s of: {}", all.join(" ")));
                    c.changes
                        .push(format!("run: {}", eng.pm.install(&all).display()));
                    return Ok(c);
                }
            };
            if missing.is_empty() && eng.state.borrow().install_baseline.is_some() {
                return Ok(Check::change1(
                    "record the packages an interrupted install added",
                ));
            }
            if missing.is_empty() {
                let all = wanted(eng, step);
                Ok(Check::ok(format!(
                    "all {verb}s of `{}` installed: {}",
                    step.set,
                    all.join(" ")
                )))
            } else {
                Ok(Check::change(vec![
                    format!("install {verb}s: {}", missing.join(" ")),
                    format!("run: {}", eng.pm.install(&missing).display()),
                ]))
            }
        }
        Presence::Absent => {
            let plan = eng.removal_plan()?;
            let mut changes = Vec::new();
            if !plan.remove.is_empty() {
                changes.push(format!(
                    "remove {verb}s telem-deploy installed: {}",
                    plan.remove.join(" ")
                ));
                changes.push(format!("run: {}", eng.pm.remove(&plan.remove).display()));
            }
            changes.extend(kept_lines(verb, &plan));
            if plan.remove.is_empty() {
                if plan.kept.is_empty() {
                    changes.push(format!("no {verb} installed by telem-deploy is left"));
                }
                return Ok(Check {
                    status: Status::Ok,
                    changes,
                    diff: None,
                });
            }
            Ok(Check::change(changes))
        }
    }
}

/// One line per kept package: what the tool installed but leaves, and why.
fn kept_lines(verb: &str, plan: &pkg::RemovalPlan) -> Vec<String> {
    plan.kept
        .iter()
        .map(|(p, why)| format!("keep {verb} {p} (installed by telem-deploy): {why}"))
        .collect()
}

fn apply(eng: &Engine, step: &Packages) -> Result<(), StepError> {
    match step.state {
        Presence::Present => {
            let missing = missing(eng, step)?;
            if missing.is_empty() {
                return record_interrupted(eng);
            }
            if let Some(repair) = eng.pm.repair(eng.host).map_err(StepError::host)? {
                eng.run_ok(&repair)?;
            }
            for repo in &step.repositories {
                let have = eng
                    .pm
                    .installed(eng.host, std::slice::from_ref(repo))
                    .map_err(StepError::host)?;
                if have.is_empty() {
                    eng.run_ok(&eng.pm.install(std::slice::from_ref(repo)))?;
                    eng.update_state(|s| {
                        s.packages.insert(repo.clone());
                    })?;
                }
            }
            if let Some(refresh) = eng.pm.refresh() {
                // A stale or unreachable index is not fatal: the install below says if it matters.
                let out = eng.host.run(&refresh).map_err(StepError::host)?;
                if !out.success() {
                    eng.note(format!(
                        "warning: `{}` failed; installing from the current package lists",
                        refresh.display()
                    ));
                }
            }
            // Recorded before installing: a run killed mid-install still knows what it asked
            // for, and the baseline tells the next run what the install pulled in.
            let before = eng.pm.all_installed(eng.host).map_err(StepError::host)?;
            eng.update_state(|s| {
                s.packages.extend(missing.iter().cloned());
                s.install_baseline.get_or_insert(before);
            })?;
            eng.run_ok(&eng.pm.install(&missing))?;
            record_interrupted(eng)
        }
        Presence::Absent => {
            let plan = eng.removal_plan()?;
            if plan.remove.is_empty() {
                return Ok(());
            }
            eng.run_ok(&eng.pm.remove(&plan.remove))?;
            eng.update_state(|s| {
                for p in &plan.remove {
                    s.packages.remove(p);
                }
            })
        }
    }
}
