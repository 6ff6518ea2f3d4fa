//! `venv` steps (a Python virtual environment with a requirements file installed by pip) and
//! `flask_migrate` steps (`flask db upgrade` of the web UI, in that venv).
//!
//! The requirements: `--webapp-requirements FILE`, else the snapshot's own file, else the
//! recipe's `webapp.requirements`, else telem-deploy's pins for the snapshot's layout (the
//! plan says which). A copy of what was installed is kept in the venv: the plan shows a diff
//! against it, and an unchanged file means nothing to install.

use std::path::Path;

use super::fs::{exists, unified_diff};
use super::{snapshot, Check, Engine, StepError};
use crate::host::{Cmd, FileKind, Owner};
use crate::steps::flask_migrate::FlaskMigrate;
use crate::steps::venv::Venv;

/// The requirements last installed into the venv.
pub const MARKER: &str = ".telem-requirements.txt";
/// The requirements pip is given (a copy: pip never reads the snapshot's file itself).
const PENDING: &str = ".telem-requirements.pending.txt";

/// telem-deploy's pins for each known layout of upstream's telemetryui.
pub const PINS_MASTER: &str = include_str!("pins/telemetryui-master.txt");
pub const PINS_DEPLOY_SH: &str = include_str!("pins/telemetryui-2020.txt");

/// The requirements to install and where they come from (said in the plan).
struct Requirements {
    text: Vec<u8>,
    source: String,
}

/// Largest requirements file read (a requirements file is a few hundred bytes).
const MAX_REQUIREMENTS: u64 = 1 << 20;

/// A regular file of bounded size (never through a symlink), or `None` when absent.
fn read_regular(eng: &Engine, path: &str, what: &str) -> Result<Option<Vec<u8>>, StepError> {
    let Some(meta) = eng.host.stat(Path::new(path)).map_err(StepError::host)? else {
        return Ok(None);
    };
    if meta.kind != FileKind::File || meta.size > MAX_REQUIREMENTS {
        return Err(StepError::msg(format!(
            "{what} {path} is not a regular file of at most 1 MiB; refusing to read it"
        )));
    }
    eng.host.read(Path::new(path)).map_err(StepError::host)
}

/// The requirements, in this order: `--webapp-requirements`, the snapshot's own, the
/// recipe's `webapp.requirements`, telem-deploy's pins for the snapshot's layout.
/// `Ok(Err(why))` while the snapshot is not installed yet.
fn requirements(eng: &Engine, step: &Venv) -> Result<Result<Requirements, String>, StepError> {
    if let Some(flag) = &eng.opts.webapp_requirements {
        let path = flag.to_string_lossy().into_owned();
        let text = read_regular(eng, &path, "--webapp-requirements")?.ok_or_else(|| {
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
    if let Some(text) = read_regular(eng, &step.requirements, "the snapshot's")? {
        let source = format!("the snapshot's own {}", step.requirements);
        return Ok(Ok(Requirements { text, source }));
    }
    if !step.fallback.is_empty() {
        let text = read_regular(eng, &step.fallback, "the recipe's webapp.requirements")?
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

fn pip_cmd(step: &Venv) -> Cmd {
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

pub fn check(eng: &Engine, step: &Venv) -> Result<Check, StepError> {
    let wanted = match requirements(eng, step)? {
        Ok(r) => r,
        Err(why) => {
            let mut c = Check::unknown(why);
            c.changes
                .push(format!("then run if needed: {}", pip_cmd(step).display()));
            return Ok(c);
        }
    };
    let venv = exists(eng, &format!("{}/bin/python", step.path))?;
    if !venv && eng.host.which(&step.python).is_none() {
        return Ok(Check::unknown(format!(
            "{} is installed by an earlier step; then the venv {} is created; requirements: {}",
            step.python, step.path, wanted.source
        )));
    }
    let installed = eng
        .host
        .read(&Path::new(&step.path).join(MARKER))
        .map_err(StepError::host)?;
    let mut changes = Vec::new();
    if !venv {
        changes.push(format!(
            "create the venv {} ({} -m venv)",
            step.path, step.python
        ));
    }
    let same = installed.as_deref() == Some(wanted.text.as_slice());
    if !venv || !same {
        changes.push(format!("requirements: {}", wanted.source));
        changes.push(format!("run: {}", pip_cmd(step).display()));
    }
    if changes.is_empty() {
        return Ok(Check::ok(format!(
            "{} has the requirements of {}",
            step.path, wanted.source
        )));
    }
    if !step.notify.is_empty() {
        changes.push(format!("then restart {}", step.notify.join(", ")));
    }
    let mut c = Check::change(changes);
    if !same {
        c.diff = unified_diff(
            &format!("{}/{MARKER}", step.path),
            installed.as_deref().unwrap_or_default(),
            &wanted.text,
        );
    }
    Ok(c)
}

pub fn apply(eng: &Engine, step: &Venv) -> Result<(), StepError> {
    let wanted = requirements(eng, step)?.map_err(StepError::msg)?;
    if !exists(eng, &format!("{}/bin/python", step.path))? {
        if !exists(eng, &step.path)? {
            eng.update_state(|s| {
                s.created.insert(step.path.clone());
            })?;
        }
        eng.run_ok(&Cmd::new([step.python.as_str(), "-m", "venv", &step.path]))?;
    }
    let root = Owner {
        user: "root".into(),
        group: "root".into(),
        mode: 0o644,
    };
    let pending = Path::new(&step.path).join(PENDING);
    eng.host
        .write(&pending, &wanted.text, &root)
        .map_err(StepError::host)?;
    eng.run_ok(&pip_cmd(step))?;
    eng.host
        .write(&Path::new(&step.path).join(MARKER), &wanted.text, &root)
        .map_err(StepError::host)?;
    eng.host.remove(&pending).map_err(StepError::host)
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
        match eng.host.stat(flag) {
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

/// The `env = KEY=VALUE` lines of a uWSGI vassal.
pub fn vassal_env(ini: &str) -> Vec<(String, String)> {
    ini.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "env").then_some(())?;
            let (k, v) = value.trim_start().split_once('=')?;
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

fn flask(step: &FlaskMigrate) -> String {
    format!("{}/bin/flask", step.venv)
}

pub fn check_flask(eng: &Engine, step: &FlaskMigrate) -> Result<Check, StepError> {
    for (path, what) in [
        (flask(step), "the venv with flask"),
        (step.env_from.clone(), "the vassal"),
        (step.chdir.clone(), "the web UI"),
    ] {
        if !exists(eng, &path)? {
            return Ok(Check::unknown(format!(
                "{path} is missing: {what} is installed by `-a install --webapp` or `-a deploy --webapp`"
            )));
        }
    }
    Ok(Check::change1(format!(
        "run `FLASK_APP={} {} db upgrade` in {} as {} (flask-migrate applies only pending revisions)",
        step.app,
        flask(step),
        step.chdir,
        step.user
    )))
}

pub fn apply_flask(eng: &Engine, step: &FlaskMigrate) -> Result<(), StepError> {
    let ini = eng
        .host
        .read(Path::new(&step.env_from))
        .map_err(StepError::host)?
        .ok_or_else(|| StepError::msg(format!("{} does not exist", step.env_from)))?;
    // The upstream app reads its database settings (the password too) from its environment:
    // the child gets them there, never in its argv; Cmd::display masks the password.
    let mut cmd = Cmd::new([flask(step), "db".into(), "upgrade".into()])
        .dir(&step.chdir)
        .user(&step.user)
        .env("FLASK_APP", &step.app);
    for (k, v) in vassal_env(&String::from_utf8_lossy(&ini)) {
        cmd = cmd.env(&k, &v);
    }
    eng.run_ok(&cmd).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vassal_env_lines() {
        let ini =
            "[uwsgi]\nenv = POSTGRES_USER=telemetry\nenv=POSTGRES_PASSWORD=a=b c\nsocket = x\n";
        assert_eq!(
            vassal_env(ini),
            vec![
                ("POSTGRES_USER".to_owned(), "telemetry".to_owned()),
                ("POSTGRES_PASSWORD".to_owned(), "a=b c".to_owned())
            ]
        );
    }
}
