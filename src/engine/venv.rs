//! The web UI's virtual environment as `venv` steps need it: which requirements (and where
//! they come from), the pip command, and the Python version check of `--webapp`.
//!
//! The requirements: `--webapp-requirements FILE`, else the snapshot's own file, else the
//! recipe's `webapp.requirements`, else telem-deploy's pins for the snapshot's layout (the
//! plan says which). A copy of what was installed is kept in the venv: the plan shows a diff
//! against it, and an unchanged file means nothing to install.

use std::path::Path;

use super::fs::exists;
use super::{snapshot, Engine, StepError};
use crate::host::{Cmd, FileKind, Host};
use crate::steps::venv::Venv;

/// The requirements last installed into the venv.
pub const MARKER: &str = ".telem-requirements.txt";
/// The requirements pip is given (a copy: pip never reads the snapshot's file itself).
pub(crate) const PENDING: &str = ".telem-requirements.pending.txt";

/// telem-deploy's pins for each known layout of upstream's telemetryui.
pub const PINS_MASTER: &str = include_str!("pins/telemetryui-master.txt");
pub const PINS_DEPLOY_SH: &str = include_str!("pins/telemetryui-2020.txt");

/// The requirements to install and where they come from (said in the plan).
pub(crate) struct Requirements {
    pub(crate) text: Vec<u8>,
    pub(crate) source: String,
}

/// Largest requirements file read (a requirements file is a few hundred bytes).
const MAX_REQUIREMENTS: u64 = 1 << 20;

/// A regular file of bounded size (never through a symlink), or `None` when absent.
fn read_regular(host: &dyn Host, path: &str, what: &str) -> Result<Option<Vec<u8>>, StepError> {
    let Some(meta) = host.stat(Path::new(path)).map_err(StepError::host)? else {
        return Ok(None);
    };
    if meta.kind != FileKind::File || meta.size > MAX_REQUIREMENTS {
        return Err(StepError::msg(format!(
            "{what} {path} is not a regular file of at most 1 MiB; refusing to read it"
        )));
    }
    host.read(Path::new(path)).map_err(StepError::host)
}

/// The requirements, in this order: `--webapp-requirements`, the snapshot's own, the
/// recipe's `webapp.requirements`, telem-deploy's pins for the snapshot's layout.
/// `Ok(Err(why))` while the snapshot is not installed yet.
pub(crate) fn requirements(
    eng: &Engine,
    step: &Venv,
) -> Result<Result<Requirements, String>, StepError> {
    if let Some(flag) = &eng.opts.webapp_requirements {
        let path = flag.to_string_lossy().into_owned();
        let text =
            read_regular(eng.controller(), &path, "--webapp-requirements")?.ok_or_else(|| {
                StepError::msg(format!("--webapp-requirements {path} does not exist"))
            })?;
        let source = format!("--webapp-requirements {path}");
        return Ok(Ok(Requirements { text, source }));
    }
    let layout = match &step.snapshot {
        Some(dest) => match snapshot::layout(eng.host, dest) {
            Some(l) => Some(l),
            None => {
                return Ok(Err(format!(
                "the requirements are known once the snapshot is installed: its own {}, else {}",
                step.requirements,
                match step.fallback.is_empty() {
                    true => "telem-deploy's pins for its layout".to_owned(),
                    false => format!("the recipe's {}", step.fallback),
                }
            )))
            }
        },
        None => None,
    };
    if let Some(text) = read_regular(eng.host, &step.requirements, "the snapshot's")? {
        let source = format!("the snapshot's own {}", step.requirements);
        return Ok(Ok(Requirements { text, source }));
    }
    if !step.fallback.is_empty() {
        let text = read_regular(eng.host, &step.fallback, "the recipe's webapp.requirements")?
            .ok_or_else(|| {
                StepError::msg(format!(
                    "webapp.requirements {} does not exist",
                    step.fallback
                ))
            })?;
        let source = format!("the recipe's webapp.requirements {}", step.fallback);
        return Ok(Ok(Requirements { text, source }));
    }
    let Some(layout) = layout else {
        return Err(StepError::msg(format!(
            "{} does not exist",
            step.requirements
        )));
    };
    let (text, which) = match layout.as_str() {
        snapshot::LAYOUT_DEPLOY_SH => (
            PINS_DEPLOY_SH,
            "the deploy.sh era's layout (telemetryui-2020.txt)",
        ),
        _ => (PINS_MASTER, "master's layout (telemetryui-master.txt)"),
    };
    Ok(Ok(Requirements {
        text: text.as_bytes().to_vec(),
        source: format!(
            "telem-deploy's pins for {which}: the snapshot has no {}",
            step.requirements
        ),
    }))
}

pub(crate) fn pip_cmd(step: &Venv) -> Cmd {
    let mut argv = vec![
        format!("{}/bin/pip", step.path),
        "install".into(),
        "--no-input".into(),
        "--disable-pip-version-check".into(),
        "--no-cache-dir".into(),
    ];
    if !step.index_url.is_empty() {
        argv.extend(["--index-url".into(), step.index_url.clone()]);
    }
    argv.extend(["-r".into(), format!("{}/{PENDING}", step.path)]);
    Cmd::new(argv)
}

/// Refuse, before anything changes, a web UI the host's Python cannot run: older than
/// `min_python` (`major.minor`), or, while that Python is not installed yet, a release listed
/// in `unsupported` (the major part of os-release's `VERSION_ID`).
pub fn preflight(
    eng: &Engine,
    step: &Venv,
    min_python: &str,
    unsupported: &[String],
) -> Result<(), String> {
    if let Some(flag) = &eng.opts.webapp_requirements {
        match eng.controller().stat(flag) {
            Ok(Some(m)) if m.kind == FileKind::File && m.size <= MAX_REQUIREMENTS => {}
            _ => {
                return Err(format!(
                    "--webapp-requirements {}: not a regular file of at most 1 MiB",
                    flag.display()
                ))
            }
        }
    }
    let parse = |v: &str| -> Option<(u32, u32)> {
        let mut it = v.trim().split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    let Some(min) = parse(min_python) else {
        return Ok(());
    };
    let too_old = |found: &str| {
        format!(
            "--webapp: the web UI needs Python {min_python} or later and this system's {} is {found}; nothing was changed",
            step.python
        )
    };
    if exists(eng, &format!("{}/bin/python", step.path)).unwrap_or(false)
        || eng.host.which(&step.python).is_some()
    {
        let code = "import sys; print('%d.%d' % sys.version_info[:2])";
        let out = eng
            .host
            .run(&Cmd::new([step.python.as_str(), "-c", code]))
            .map_err(|e| e.0)?;
        let found = out.stdout_text();
        return match parse(&found) {
            Some(v) if v < min => Err(too_old(found.trim())),
            _ => Ok(()),
        };
    }
    let release = eng
        .host
        .read(Path::new("/etc/os-release"))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let version = release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .map(|v| {
            v.trim_matches('"')
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned()
        });
    match version {
        Some(v) if unsupported.contains(&v) => Err(too_old(&format!("that of release {v}"))),
        _ => Ok(()),
    }
}
