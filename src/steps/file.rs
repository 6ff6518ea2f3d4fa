//! `file` steps: a file rendered from a template, copied from the host, or the bundled
//! collector binary (`collector`: compared by SHA-256 on the host, uploaded), with its owner
//! and mode.
//!
//! Files are compared by content, owner and mode; the plan shows a unified diff with every
//! secret masked by its place (`mask`). Writes are atomic; the first replaced system file is kept as
//! `*.telem-orig`; an nginx config that fails `nginx -t` is rolled back.

use std::path::Path;

use serde::{Deserialize, Serialize};

mod collector;

use super::Step;
use crate::engine::fs::{ensure_parent, owner, ownership_changes, unified_diff};
use crate::engine::{mask, Check, Engine, Manager, StepError, INSTALL_FIRST};
use crate::host::{Cmd, FileKind, Owner};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::root;
use crate::recipe::values::Mode;
use crate::render::TEMPLATE_NAMES;
use crate::secret::{Secret, MASK};
use crate::state::Saved;

/// A `file` step as the recipe writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub path: String,
    /// Render this template (a name under templates/).
    #[serde(default)]
    pub template: Option<String>,
    /// Copy this file of the host (e.g. a distro's example config).
    #[serde(default)]
    pub copy_from: Option<String>,
    /// Install the bundled collector binary.
    #[serde(default)]
    pub collector_binary: bool,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    /// Octal, e.g. "0644".
    pub mode: String,
    /// Services to reload/restart when the file changes.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Check the result with this service's config test before it goes live (nginx).
    #[serde(default)]
    pub validate: Option<String>,
    /// Keep the first replaced version as `*.telem-orig`.
    #[serde(default)]
    pub backup: bool,
    /// The content holds the database password: never show it.
    #[serde(default)]
    pub secret: bool,
}

/// A file with its content, owner and mode.
#[derive(Debug, Clone)]
pub struct File {
    pub path: String,
    pub source: Source,
    pub owner: String,
    pub group: String,
    pub mode: Mode,
    pub notify: Vec<String>,
    pub validate: Option<Validator>,
    pub backup: bool,
    pub secret: bool,
}

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A template of telem-deploy's, rendered with the run's variables.
    Template(String),
    /// A file of the host (e.g. a distro's example config).
    CopyFrom(String),
    /// The bundled collector binary.
    CollectorBinary,
}

/// A config test run on the new file before it goes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// `nginx -t`.
    Nginx,
}

impl std::str::FromStr for Validator {
    type Err = String;
    fn from_str(s: &str) -> Result<Validator, String> {
        match s {
            "nginx" => Ok(Validator::Nginx),
            _ => Err(format!("unknown validator `{s}`, expected nginx")),
        }
    }
}

impl Step for File {
    const KIND: &'static str = "file";
    type Raw = RawFile;

    fn compile(raw: &RawFile, c: &mut Compiler) -> Option<File> {
        let mode = c.parse("mode", &raw.mode);
        let source = match (&raw.template, &raw.copy_from, raw.collector_binary) {
            (Some(t), None, false) if c.waits(t) || TEMPLATE_NAMES.contains(&t.as_str()) => {
                Some(Source::Template(t.clone()))
            }
            (Some(t), None, false) => {
                let known = TEMPLATE_NAMES.join(", ");
                c.error("template", format!("unknown template `{t}` (known: {known})"));
                None
            }
            (None, Some(from), false) => Some(Source::CopyFrom(from.clone())),
            (None, None, true) => Some(Source::CollectorBinary),
            _ => {
                c.error(
                    "",
                    "needs exactly one of `template`, `copy_from`, `collector_binary: true`",
                );
                None
            }
        };
        if raw.collector_binary && (raw.backup || raw.validate.is_some()) {
            // The binary is compared by its SHA-256 on the host, never read back to keep a copy.
            c.error(
                "",
                "`backup` and `validate` are for config files, not `collector_binary: true`",
            );
        }
        let notified = c.services("notify", &raw.notify);
        let validate = match &raw.validate {
            Some(v) => Some(c.parse("validate", v)?),
            None => None,
        };
        Some(File {
            path: raw.path.clone(),
            source: source?,
            owner: raw.owner.clone(),
            group: raw.group.clone(),
            mode: mode?,
            notify: notified.then(|| raw.notify.clone())?,
            validate,
            backup: raw.backup,
            secret: raw.secret,
        })
    }

    fn preflight(&self, eng: &Engine) -> Result<(), StepError> {
        match self.source {
            Source::CollectorBinary => collector::preflight(eng),
            _ => Ok(()),
        }
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        match self.source {
            Source::CollectorBinary => collector::check(eng, self),
            _ => check_file(eng, self),
        }
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        match self.source {
            Source::CollectorBinary => collector::apply(eng, self),
            _ => apply_file(eng, self),
        }
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }

    fn uses_password(&self) -> bool {
        self.secret
    }
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

fn desired(eng: &Engine, step: &File, how: Render) -> Result<Desired, StepError> {
    match &step.source {
        Source::Template(t) => {
            let mut ctx = eng.vars.clone();
            let password = eng.password.as_ref().filter(|_| how == Render::Real);
            ctx.insert("db_password", password.map(Secret::expose).unwrap_or(MASK));
            if how == Render::Shown {
                for (name, shown) in &eng.shown_vars {
                    ctx.insert(name, shown);
                }
            }
            eng.templates
                .render(t, &ctx)
                .map(|s| Desired::Bytes(s.into_bytes()))
                .map_err(StepError::msg)
        }
        Source::CopyFrom(src) => Ok(
            match eng.host.read(Path::new(src)).map_err(StepError::host)? {
                Some(b) => Desired::Bytes(b),
                None => Desired::NotYet(format!("{src} is installed by an earlier step")),
            },
        ),
        // Compared by its SHA-256 on the host, never read back: see `collector`.
        Source::CollectorBinary => Err(StepError::msg(
            "the collector binary is checked and installed by its own code, not rendered",
        )),
    }
}

/// What a file step should write, and what a plan shows of it.
struct Wanted {
    bytes: Vec<u8>,
    /// A template rendered with a placeholder for every secret (`None` for other sources).
    shown: Option<Vec<u8>>,
}

impl Wanted {
    /// Does the content hold a secret (it differs from what a plan shows)?
    fn holds_secret(&self) -> bool {
        self.shown.as_ref().is_some_and(|s| *s != self.bytes)
    }

    /// The unified diff from `old`, every secret masked by its place; `None` for binaries.
    fn diff(&self, path: &str, old: &[u8]) -> Option<String> {
        let Some(shown) = &self.shown else {
            return unified_diff(path, old, &self.bytes);
        };
        let texts = (
            std::str::from_utf8(old),
            std::str::from_utf8(&self.bytes),
            std::str::from_utf8(shown),
        );
        let (Ok(old), Ok(new), Ok(shown)) = texts else {
            return None;
        };
        Some(mask::unified_diff(path, old, new, shown).unwrap_or_else(|| {
            format!("(the diff of {path} is not shown: it holds a secret)\n")
        }))
    }
}

/// The content to write and the one to show, or why it cannot be known yet.
fn wanted(eng: &Engine, step: &File) -> Result<Result<Wanted, String>, StepError> {
    let bytes = match desired(eng, step, Render::Real)? {
        Desired::Bytes(b) => b,
        Desired::NotYet(why) => return Ok(Err(why)),
    };
    let shown = match step.source {
        Source::Template(_) => match desired(eng, step, Render::Shown)? {
            Desired::Bytes(b) => Some(b),
            Desired::NotYet(_) => None,
        },
        _ => None,
    };
    Ok(Ok(Wanted { bytes, shown }))
}

fn check_file(eng: &Engine, step: &File) -> Result<Check, StepError> {
    if step.secret && eng.needs_install {
        return Ok(Check::blocked(INSTALL_FIRST));
    }
    let want = match wanted(eng, step)? {
        Ok(w) => w,
        Err(why) => return Ok(Check::unknown(why)),
    };
    let want_own = owner(&step.owner, &step.group, step.mode);
    let path = Path::new(&step.path);
    let meta = eng.host.stat(path).map_err(StepError::host)?;
    let old = match &meta {
        Some(m) if m.kind == FileKind::File => eng.host.read(path).map_err(StepError::host)?,
        _ => None,
    };
    let (mut changes, diff) = match (&meta, &old) {
        (_, None) => {
            let what = match meta {
                Some(_) => "replace (not a regular file)",
                None => "create",
            };
            // The size of a file with a secret would tell the secret's length.
            let size = match want.holds_secret() {
                true => String::new(),
                false => format!("{} bytes, ", want.bytes.len()),
            };
            let line = format!(
                "{what} {} ({size}{}:{} {})",
                step.path, want_own.user, want_own.group, step.mode
            );
            let diff = want.diff(&step.path, b"");
            (vec![line], diff)
        }
        (_, Some(old)) if *old != want.bytes => {
            if step.secret && eng.password.is_none() {
                // Without the password the rendering cannot be compared for real.
                return Ok(Check::unknown(
                    "rendered with the password chosen when applied",
                ));
            }
            updated(eng, step, &want, old)
        }
        (_, Some(_)) => (Vec::new(), None),
    };
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

/// What updating a regular file that holds `old` changes, and the diff a plan shows.
fn updated(eng: &Engine, step: &File, want: &Wanted, old: &[u8]) -> (Vec<String>, Option<String>) {
    let mut changes = vec![format!("update {}", step.path)];
    let diff = want.diff(&step.path, old);
    if step.backup && !eng.state.borrow().owns(&step.path) {
        changes.push(format!("keep the original as {}.telem-orig", step.path));
    }
    (changes, diff)
}

fn apply_file(eng: &Engine, step: &File) -> Result<(), StepError> {
    let path = Path::new(&step.path);
    let new = match desired(eng, step, Render::Real)? {
        Desired::Bytes(b) => b,
        Desired::NotYet(why) => return Err(StepError::msg(why)),
    };
    if step.secret && eng.password.is_none() {
        return Err(StepError::msg(INSTALL_FIRST));
    }
    let want_own = owner(&step.owner, &step.group, step.mode);
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
    if step.validate == Some(Validator::Nginx) {
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
