//! Files on the host as steps need them: ownership compared, parents created, diffs shown,
//! and what is in the way set aside for uninstall to put back.

use std::path::{Path, PathBuf};

use similar::TextDiff;

use super::{Engine, StepError};
use crate::host::{lookup_group, lookup_user, FileKind, FileMeta, Owner};
use crate::recipe::values::Mode;
use crate::state::{Saved, SAVED_DIR};

pub(crate) fn owner(user: &str, group: &str, mode: Mode) -> Owner {
    Owner {
        user: user.to_owned(),
        group: group.to_owned(),
        mode: mode.bits(),
    }
}

/// Differences in owner, group and mode between `meta` and `want`.
pub(crate) fn ownership_changes(eng: &Engine, meta: &FileMeta, want: &Owner) -> Vec<String> {
    let mut out = Vec::new();
    match lookup_user(eng.host, &want.user) {
        Some((uid, _)) if uid != meta.uid => out.push(format!("owner → {}", want.user)),
        None => out.push(format!(
            "owner → {} (user created by an earlier step)",
            want.user
        )),
        _ => {}
    }
    match lookup_group(eng.host, &want.group) {
        Some(gid) if gid != meta.gid => out.push(format!("group → {}", want.group)),
        None => out.push(format!(
            "group → {} (group created by an earlier step)",
            want.group
        )),
        _ => {}
    }
    if meta.mode != want.mode {
        out.push(format!("mode {:04o} → {:04o}", meta.mode, want.mode));
    }
    out
}

pub(crate) fn unified_diff(path: &str, old: &[u8], new: &[u8]) -> Option<String> {
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return None;
    };
    let diff = TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (on disk)"), &format!("{path} (new)"))
        .to_string();
    Some(text)
}

/// Create the parent directory of `path` (root's, 0755) when missing, recorded as created.
pub(crate) fn ensure_parent(eng: &Engine, path: &Path) -> Result<(), StepError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if eng.host.stat(parent).map_err(StepError::host)?.is_none() {
        eng.update_state(|s| {
            s.created.insert(parent.display().to_string());
        })?;
        eng.host
            .mkdir(parent, &owner("root", "root", Mode(0o755)))
            .map_err(StepError::host)?;
    }
    Ok(())
}

/// Set aside what is at `path` so uninstall can put it back.
pub(crate) fn save(eng: &Engine, path: &str, meta: &FileMeta) -> Result<(), StepError> {
    if eng.state.borrow().saved.contains_key(path) {
        return eng.host.remove(Path::new(path)).map_err(StepError::host);
    }
    let saved = match &meta.kind {
        FileKind::Symlink(t) => {
            eng.host.remove(Path::new(path)).map_err(StepError::host)?;
            Saved::Symlink {
                target: t.display().to_string(),
            }
        }
        _ => {
            let dir = Path::new(SAVED_DIR);
            eng.host
                .mkdir(dir, &owner("root", "root", Mode(0o700)))
                .map_err(StepError::host)?;
            let backup: PathBuf = dir.join(path.trim_start_matches('/').replace('/', "%"));
            eng.host
                .rename(Path::new(path), &backup)
                .map_err(StepError::host)?;
            Saved::File {
                backup: backup.display().to_string(),
            }
        }
    };
    eng.update_state(|s| {
        s.saved.insert(path.to_owned(), saved);
    })
}

/// Is there anything at `path`?
pub(crate) fn exists(eng: &Engine, path: &str) -> Result<bool, StepError> {
    Ok(eng
        .host
        .stat(Path::new(path))
        .map_err(StepError::host)?
        .is_some())
}
