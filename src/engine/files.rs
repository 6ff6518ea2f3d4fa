//! `directory`, `file` and `symlink` steps (`remove` and setting aside: `remove.rs`).
//!
//! Files are compared by content, owner and mode; the plan shows a unified diff with every
//! secret masked by its place (`mask`). Writes are atomic; the first replaced system file is kept as
//! `*.telem-orig`; an nginx config that fails `nginx -t` is rolled back.

use std::path::Path;

use similar::TextDiff;

use super::remove::save;
use super::{Check, Engine, Manager, StepError, INSTALL_FIRST};
use crate::host::{lookup_group, lookup_user, parse_mode, Cmd, FileKind, FileMeta, Owner};
use crate::recipe::model::{DirectoryStep, FileStep, SymlinkStep};
use crate::secret::{Secret, MASK};
use crate::state::Saved;

pub(super) fn owner(user: &str, group: &str, mode: &str) -> Owner {
    Owner {
        user: user.to_owned(),
        group: group.to_owned(),
        mode: parse_mode(mode).unwrap_or(0o644),
    }
}

/// Differences in owner, group and mode between `meta` and `want`.
pub(super) fn ownership_changes(eng: &Engine, meta: &FileMeta, want: &Owner) -> Vec<String> {
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

pub fn check_directory(eng: &Engine, step: &DirectoryStep) -> Result<Check, StepError> {
    let want = owner(&step.owner, &step.group, &step.mode);
    match eng
        .host
        .stat(Path::new(&step.path))
        .map_err(StepError::host)?
    {
        None => Ok(Check::change1(format!(
            "create {} ({}:{} {:04o})",
            step.path, want.user, want.group, want.mode
        ))),
        Some(m) if m.kind != FileKind::Dir => Err(StepError::msg(format!(
            "{} exists and is not a directory",
            step.path
        ))),
        Some(m) => {
            let changes = ownership_changes(eng, &m, &want);
            if changes.is_empty() {
                Ok(Check::ok(format!("{} exists", step.path)))
            } else {
                Ok(Check::change(changes))
            }
        }
    }
}

pub fn apply_directory(eng: &Engine, step: &DirectoryStep) -> Result<(), StepError> {
    let path = Path::new(&step.path);
    let existed = eng.host.stat(path).map_err(StepError::host)?.is_some();
    if !existed {
        eng.update_state(|s| {
            s.created.insert(step.path.clone());
        })?;
    }
    eng.host
        .mkdir(path, &owner(&step.owner, &step.group, &step.mode))
        .map_err(StepError::host)
}

/// The content a file step wants, or why it cannot be known yet.
enum Desired {
    Bytes(Vec<u8>),
    NotYet(String),
}

/// What the file holds, or with `Shown` what a plan shows of it: the template rendered with a
/// placeholder for every secret (see `mask`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Render {
    Real,
    Shown,
}

fn desired(eng: &Engine, step: &FileStep, how: Render) -> Result<Desired, StepError> {
    if let Some(t) = &step.template {
        let mut ctx = eng.vars.clone();
        let password = eng.password.as_ref().filter(|_| how == Render::Real);
        ctx.insert("db_password", password.map(Secret::expose).unwrap_or(MASK));
        if how == Render::Shown {
            for (name, shown) in &eng.shown_vars {
                ctx.insert(name, shown);
            }
        }
        return eng
            .templates
            .render(t, &ctx)
            .map(|s| Desired::Bytes(s.into_bytes()))
            .map_err(StepError::msg);
    }
    if let Some(src) = &step.copy_from {
        return Ok(
            match eng.host.read(Path::new(src)).map_err(StepError::host)? {
                Some(b) => Desired::Bytes(b),
                None => Desired::NotYet(format!("{src} is installed by an earlier step")),
            },
        );
    }
    let bin = eng.bundled_collector();
    match read_binary(&bin) {
        Ok(b) => Ok(Desired::Bytes(b)),
        Err(e) => Err(StepError::msg(format!(
            "the bundled collector {} cannot be read ({e}); build it or pass --collector-bin PATH",
            bin.display()
        ))),
    }
}

/// A regular file of at most [`COLLECTOR_BIN_LIMIT`] bytes (a device such as /dev/zero would
/// be read until memory runs out).
fn read_binary(path: &Path) -> std::io::Result<Vec<u8>> {
    use crate::options::COLLECTOR_BIN_LIMIT;
    use std::io::{Error, Read};
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(COLLECTOR_BIN_LIMIT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > COLLECTOR_BIN_LIMIT {
        return Err(Error::other(format!(
            "larger than {COLLECTOR_BIN_LIMIT} bytes"
        )));
    }
    Ok(bytes)
}

pub(super) fn unified_diff(path: &str, old: &[u8], new: &[u8]) -> Option<String> {
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

pub fn check_file(eng: &Engine, step: &FileStep) -> Result<Check, StepError> {
    if step.secret && eng.needs_install {
        return Ok(Check::blocked(INSTALL_FIRST));
    }
    let want_own = owner(&step.owner, &step.group, &step.mode);
    let path = Path::new(&step.path);
    let new = match desired(eng, step, Render::Real)? {
        Desired::Bytes(b) => b,
        Desired::NotYet(why) => return Ok(Check::unknown(why)),
    };
    // What a plan shows of a template: rendered with a placeholder for every secret.
    let shown = match step.template {
        Some(_) => match desired(eng, step, Render::Shown)? {
            Desired::Bytes(b) => Some(b),
            Desired::NotYet(_) => None,
        },
        None => None,
    };
    let holds_secret = shown.as_ref().is_some_and(|s| *s != new);
    let diff_of = |old: &[u8]| -> Result<Option<String>, StepError> {
        let Some(shown) = &shown else {
            return Ok(unified_diff(&step.path, old, &new));
        };
        let texts = (
            std::str::from_utf8(old),
            std::str::from_utf8(&new),
            std::str::from_utf8(shown),
        );
        let (Ok(old), Ok(new), Ok(shown)) = texts else {
            return Ok(None);
        };
        Ok(Some(
            super::mask::unified_diff(&step.path, old, new, shown).unwrap_or_else(|| {
                format!(
                    "(the diff of {} is not shown: it holds a secret)\n",
                    step.path
                )
            }),
        ))
    };
    let meta = eng.host.stat(path).map_err(StepError::host)?;
    let old = match &meta {
        Some(m) if m.kind == FileKind::File => eng.host.read(path).map_err(StepError::host)?,
        _ => None,
    };
    let mut changes = Vec::new();
    let mut diff = None;
    match &old {
        None => {
            let what = if meta.is_some() {
                "replace (not a regular file)"
            } else {
                "create"
            };
            // The size of a file with a secret would tell the secret's length.
            let size = match holds_secret {
                true => String::new(),
                false => format!("{} bytes, ", new.len()),
            };
            changes.push(format!(
                "{what} {} ({size}{}:{} {:04o})",
                step.path, want_own.user, want_own.group, want_own.mode
            ));
            diff = if step.collector_binary {
                None
            } else {
                diff_of(b"")?
            };
        }
        Some(old) if *old != new => {
            if step.secret && eng.password.is_none() {
                // Without the password the rendering cannot be compared for real.
                return Ok(Check::unknown(
                    "rendered with the password chosen when applied",
                ));
            }
            changes.push(format!("update {}", step.path));
            diff = match step.collector_binary {
                true => {
                    changes.push(format!(
                        "binary differs ({} → {} bytes)",
                        old.len(),
                        new.len()
                    ));
                    None
                }
                false => diff_of(old)?,
            };
            if step.backup && !eng.state.borrow().owns(&step.path) {
                changes.push(format!("keep the original as {}.telem-orig", step.path));
            }
        }
        Some(_) => {}
    }
    if let (Some(m), Some(_)) = (&meta, &old) {
        changes.extend(ownership_changes(eng, m, &want_own));
    }
    if changes.is_empty() {
        return Ok(Check::ok(format!("{} is up to date", step.path)));
    }
    let mut check = Check::change(changes);
    check.diff = diff;
    Ok(check)
}

pub fn apply_file(eng: &Engine, step: &FileStep) -> Result<(), StepError> {
    let path = Path::new(&step.path);
    let new = match desired(eng, step, Render::Real)? {
        Desired::Bytes(b) => b,
        Desired::NotYet(why) => return Err(StepError::msg(why)),
    };
    if step.secret && eng.password.is_none() {
        return Err(StepError::msg(INSTALL_FIRST));
    }
    let want_own = owner(&step.owner, &step.group, &step.mode);
    let meta = eng.host.stat(path).map_err(StepError::host)?;
    let previous = eng.host.read(path).map_err(StepError::host)?;
    ensure_parent(eng, path)?;
    if previous.is_none() && meta.is_none() {
        eng.update_state(|s| {
            s.created.insert(step.path.clone());
        })?;
    }
    if let Some(prev) = &previous {
        let owned = eng.state.borrow().owns(&step.path);
        if step.backup && !owned && *prev != new {
            let backup = format!("{}.telem-orig", step.path);
            if eng
                .host
                .stat(Path::new(&backup))
                .map_err(StepError::host)?
                .is_none()
            {
                let m = meta.as_ref().expect("a file that was read has metadata");
                let own = Owner {
                    user: m.uid.to_string(),
                    group: m.gid.to_string(),
                    mode: m.mode,
                };
                eng.host
                    .write(Path::new(&backup), prev, &own)
                    .map_err(StepError::host)?;
            }
            eng.update_state(|s| {
                s.saved.insert(step.path.clone(), Saved::File { backup });
            })?;
        }
    }
    eng.host
        .write(path, &new, &want_own)
        .map_err(StepError::host)?;
    if step.validate.as_deref() == Some("nginx") {
        validate_nginx(eng, path, previous.as_deref(), &want_own)?;
    }
    if step.path.ends_with(".service") && eng.services.manager == Manager::Systemd {
        eng.services.daemon_reload()?;
    }
    Ok(())
}

/// `nginx -t`; on failure put the previous file back (or remove the new one) and fail.
fn validate_nginx(
    eng: &Engine,
    path: &Path,
    previous: Option<&[u8]>,
    own: &Owner,
) -> Result<(), StepError> {
    if eng.host.which("nginx").is_none() {
        return Err(StepError::msg(
            "nginx is not installed; cannot check the config",
        ));
    }
    let cmd = Cmd::new(["nginx", "-t", "-q"]);
    let out = eng.host.run(&cmd).map_err(StepError::host)?;
    if out.success() {
        return Ok(());
    }
    let restored = match previous {
        Some(prev) => eng.host.write(path, prev, own),
        None => eng.host.remove(path),
    };
    let mut err = StepError::command(&cmd, &out);
    err.message = match restored {
        Ok(()) => format!(
            "nginx rejected the new config of {}; the previous file is back in place",
            path.display()
        ),
        Err(e) => format!(
            "nginx rejected the new config of {} and restoring it failed: {e}",
            path.display()
        ),
    };
    Err(err)
}

pub(super) fn ensure_parent(eng: &Engine, path: &Path) -> Result<(), StepError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if eng.host.stat(parent).map_err(StepError::host)?.is_none() {
        eng.update_state(|s| {
            s.created.insert(parent.display().to_string());
        })?;
        eng.host
            .mkdir(parent, &owner("root", "root", "0755"))
            .map_err(StepError::host)?;
    }
    Ok(())
}

pub fn check_symlink(eng: &Engine, step: &SymlinkStep) -> Result<Check, StepError> {
    match eng
        .host
        .stat(Path::new(&step.path))
        .map_err(StepError::host)?
    {
        Some(FileMeta {
            kind: FileKind::Symlink(t),
            ..
        }) if t == Path::new(&step.target) => {
            Ok(Check::ok(format!("{} → {}", step.path, step.target)))
        }
        Some(FileMeta {
            kind: FileKind::Symlink(t),
            ..
        }) => Ok(Check::change1(format!(
            "relink {} → {} (was → {})",
            step.path,
            step.target,
            t.display()
        ))),
        Some(_) => Ok(Check::change1(format!(
            "replace {} by a link → {} (original kept)",
            step.path, step.target
        ))),
        None => Ok(Check::change1(format!(
            "link {} → {}",
            step.path, step.target
        ))),
    }
}

pub fn apply_symlink(eng: &Engine, step: &SymlinkStep) -> Result<(), StepError> {
    let path = Path::new(&step.path);
    match eng.host.stat(path).map_err(StepError::host)? {
        None => eng.update_state(|s| {
            s.created.insert(step.path.clone());
        })?,
        Some(m) if !matches!(m.kind, FileKind::Symlink(_)) => save(eng, &step.path, &m)?,
        Some(_) => {}
    }
    ensure_parent(eng, path)?;
    eng.host
        .symlink(Path::new(&step.target), path)
        .map_err(StepError::host)
}
