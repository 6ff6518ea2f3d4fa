//! The `remove` step and setting aside: what telem-deploy created goes (a directory only with
//! nothing foreign in it), what it set aside (a replaced system file, a removed default site)
//! comes back, and what it did not create stays.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::fs::{exists, save};
use crate::engine::{Check, Engine, StepError};
use crate::host::{FileKind, FileMeta};
use crate::recipe::compiler::Compiler;
use crate::state::Saved;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Remove {
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

impl Step for Remove {
    const KIND: &'static str = "remove";
    type Raw = Remove;

    fn compile(raw: &Remove, c: &mut Compiler) -> Option<Remove> {
        c.services("notify", &raw.notify).then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check_remove(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        apply_remove(eng, self)
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }
}

/// What removing a directory telem-deploy created would take: the entries that are its own
/// (recorded, or written by its daemons) and those that are not, which keep the directory.
struct DirContents {
    ours: Vec<String>,
    foreign: Vec<String>,
}

fn daemon_file(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    })
}

fn dir_contents(eng: &Engine, step: &Remove) -> Result<DirContents, StepError> {
    let state = eng.state.borrow();
    let mut c = DirContents {
        ours: Vec::new(),
        foreign: Vec::new(),
    };
    for name in eng
        .host
        .list_dir(Path::new(&step.path))
        .map_err(StepError::host)?
    {
        let full = format!("{}/{name}", step.path.trim_end_matches('/'));
        if state.owns(&full) || daemon_file(&step.daemon_files, &name) {
            c.ours.push(full);
        } else {
            c.foreign.push(name);
        }
    }
    Ok(c)
}

/// How removing `step.path` goes, when telem-deploy owns it.
enum Removal {
    /// Remove it (a file, a link, a tree of its own, or a directory holding only its files).
    Whole,
    /// Remove these entries, keep the directory: it holds files telem-deploy did not create.
    KeepDir(DirContents),
    /// Keep it: it is the collector binary this telem-deploy installs from.
    Bundled,
}

fn removal(eng: &Engine, step: &Remove, meta: &FileMeta) -> Result<Removal, StepError> {
    if is_bundled_collector(eng, &step.path) {
        return Ok(Removal::Bundled);
    }
    if meta.kind != FileKind::Dir || step.tree {
        return Ok(Removal::Whole);
    }
    let c = dir_contents(eng, step)?;
    Ok(if c.foreign.is_empty() {
        Removal::Whole
    } else {
        Removal::KeepDir(c)
    })
}

/// Is `path` the collector binary this very telem-deploy installs (`--collector-bin`, or the
/// one next to it)? Run from /usr/local/bin after an install from a build directory, that is
/// the installed one: removing it would leave the tool unable to install again. Only a target
/// that is this machine can hold the controller's file; on another one a path is never
/// compared with a local one.
fn is_bundled_collector(eng: &Engine, path: &str) -> bool {
    eng.host.is_local() && eng.bundle.is_local_file(Path::new(path))
}

fn list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

fn check_remove(eng: &Engine, step: &Remove) -> Result<Check, StepError> {
    let meta = eng
        .host
        .stat(Path::new(&step.path))
        .map_err(StepError::host)?;
    let owned = eng.state.borrow().owns(&step.path);
    let mut changes = Vec::new();
    let mut kept = None;
    if let Some(m) = &meta {
        if step.save {
            changes.push(format!("remove {} (kept for uninstall)", step.path));
        } else if owned {
            match removal(eng, step, m)? {
                Removal::Whole => changes.push(format!("remove {}", step.path)),
                Removal::KeepDir(c) => {
                    changes.extend(c.ours.iter().map(|p| format!("remove {p}")));
                    changes.push(format!(
                        "keep {} (no longer recorded as telem-deploy's): it holds what telem-deploy did not create: {}",
                        step.path,
                        list(&c.foreign)
                    ));
                }
                Removal::Bundled => {
                    kept = Some(format!(
                        "keep {}: it is the collector this telem-deploy installs from (next to it, or --collector-bin); \
                         remove it by hand if you no longer need telem-deploy there",
                        step.path
                    ))
                }
            }
        }
    }
    let state = eng.state.borrow();
    if !step.save {
        match state.saved.get(&step.path) {
            Some(Saved::Symlink { target }) => {
                changes.push(format!("restore the link {} → {target}", step.path))
            }
            Some(Saved::File { backup }) => {
                changes.push(format!("restore {} from {backup}", step.path))
            }
            None => {}
        }
    }
    if changes.is_empty() {
        let why = match (meta, kept) {
            (_, Some(k)) => k,
            (None, _) => format!("{} is absent", step.path),
            (Some(_), _) => format!("{} was not created by telem-deploy; kept", step.path),
        };
        return Ok(Check::ok(why));
    }
    changes.extend(kept);
    Ok(Check::change(changes))
}

fn apply_remove(eng: &Engine, step: &Remove) -> Result<(), StepError> {
    let path = Path::new(&step.path);
    let meta = eng.host.stat(path).map_err(StepError::host)?;
    if step.save {
        return match meta {
            Some(m) => save(eng, &step.path, &m),
            None => Ok(()),
        };
    }
    let (owned, saved) = {
        let s = eng.state.borrow();
        (s.owns(&step.path), s.saved.get(&step.path).cloned())
    };
    if let (Some(m), true) = (&meta, owned) {
        match removal(eng, step, m)? {
            Removal::Whole => eng.host.remove(path).map_err(StepError::host)?,
            Removal::KeepDir(c) => {
                for p in &c.ours {
                    eng.host.remove(Path::new(p)).map_err(StepError::host)?;
                }
                eng.update_state(|s| {
                    for p in &c.ours {
                        s.created.remove(p);
                    }
                })?;
            }
            // Still telem-deploy's: a run of the tool from elsewhere removes it.
            Removal::Bundled => return Ok(()),
        }
    }
    match saved {
        Some(Saved::Symlink { target }) => eng
            .host
            .symlink(Path::new(&target), path)
            .map_err(StepError::host)?,
        Some(Saved::File { backup }) if exists(eng, &backup)? => eng
            .host
            .rename(Path::new(&backup), path)
            .map_err(StepError::host)?,
        _ => {}
    }
    eng.update_state(|s| {
        s.created.remove(&step.path);
        s.saved.remove(&step.path);
    })
}
