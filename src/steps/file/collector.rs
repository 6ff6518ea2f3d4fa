//! The `file` step with `collector_binary: true`: the controller's [`crate::controller::Bundle`]
//! onto the host through [`crate::host::upload`].
//!
//! The check is one round trip (`host::upload::inspect`: `uname -m`, and `sha256sum` and `stat`
//! of the installed binary on the host), compared with the bundle's SHA-256; the installed
//! binary is never read back (over SSH that would transfer ~100 MB on every run). The apply
//! is `host::upload::upload`: the architecture checked first, then nothing, a `chown`, or the
//! bytes written atomically (temporary file + rename). A binary the host cannot run is refused
//! in the preflight, before the run changes anything.

use std::path::Path;

use super::File;
use crate::engine::fs::{ensure_parent, owner};
use crate::engine::{Check, Engine, StepError};
use crate::host::upload::{self, Found};

fn bundle_bytes<'e>(eng: &Engine<'e>) -> Result<&'e [u8], StepError> {
    eng.bundle
        .bytes()
        .map_err(|e| StepError::msg(e.to_string()))
}

/// The bundle can be read and runs on the host's machine (`uname -m`, asked once per run).
pub(super) fn preflight(eng: &Engine) -> Result<(), StepError> {
    let bytes = bundle_bytes(eng)?;
    let machine = eng.machine()?;
    upload::check_arch(&eng.bundle.describe(), bytes, &machine).map_err(StepError::host)
}

pub(super) fn check(eng: &Engine, step: &File) -> Result<Check, StepError> {
    let bytes = bundle_bytes(eng)?;
    let sha256 = eng
        .bundle
        .sha256()
        .map_err(|e| StepError::msg(e.to_string()))?;
    let want = owner(&step.owner, &step.group, step.mode);
    let remote = upload::inspect(eng.host, Path::new(&step.path)).map_err(StepError::host)?;
    let what = match &remote.found {
        Found::Nothing => Some("create"),
        Found::Other => Some("replace (not a regular file)"),
        Found::File(_) => None,
    };
    if let Some(what) = what {
        return Ok(Check::change1(format!(
            "{what} {} ({} bytes, {}:{} {})",
            step.path,
            bytes.len(),
            want.user,
            want.group,
            step.mode
        )));
    }
    let file = remote.file().expect("a regular file");
    let mut changes = Vec::new();
    if file.sha256 != sha256 {
        changes.push(format!("update {}", step.path));
        changes.push(format!(
            "binary differs ({} → {} bytes)",
            file.size,
            bytes.len()
        ));
    }
    if !file.user_is(&want) {
        changes.push(format!("owner → {}", want.user));
    }
    if !file.group_is(&want) {
        changes.push(format!("group → {}", want.group));
    }
    if file.mode != want.mode {
        changes.push(format!("mode {:04o} → {:04o}", file.mode, want.mode));
    }
    if changes.is_empty() {
        return Ok(Check::ok(format!("{} is up to date", step.path)));
    }
    Ok(Check::change(changes))
}

pub(super) fn apply(eng: &Engine, step: &File) -> Result<(), StepError> {
    let bytes = bundle_bytes(eng)?;
    let path = Path::new(&step.path);
    let want = owner(&step.owner, &step.group, step.mode);
    let existed = eng.host.stat(path).map_err(StepError::host)?.is_some();
    ensure_parent(eng, path)?;
    if !existed {
        eng.update_state(|s| {
            s.created.insert(step.path.clone());
        })?;
    }
    upload::upload(eng.host, &eng.bundle.describe(), bytes, path, &want)
        .map_err(StepError::host)?;
    Ok(())
}
