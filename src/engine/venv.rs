//! `venv` steps (a Python virtual environment with a requirements file installed by pip) and
//! `flask_migrate` steps (`flask db upgrade` of the web UI, in that venv).
//!
//! A copy of the installed requirements file is kept in the venv: the plan shows a diff
//! against it, and an unchanged file means nothing to install.

use std::path::Path;

use super::files::exists;
use super::{files, Check, Engine, StepError};
use crate::host::{Cmd, Owner};
use crate::recipe::model::{FlaskMigrateStep, VenvStep};

/// The requirements last installed into the venv.
pub const MARKER: &str = ".telem-requirements.txt";

fn pip_cmd(step: &VenvStep) -> Cmd {
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
    argv.extend(["-r".into(), step.requirements.clone()]);
    Cmd::new(argv)
}

pub fn check(eng: &Engine, step: &VenvStep) -> Result<Check, StepError> {
    let Some(wanted) = eng
        .host
        .read(Path::new(&step.requirements))
        .map_err(StepError::host)?
    else {
        let mut c = Check::unknown(format!(
            "{} comes with the snapshot installed by an earlier step",
            step.requirements
        ));
        c.changes
            .push(format!("then run if needed: {}", pip_cmd(step).display()));
        return Ok(c);
    };
    let venv = exists(eng, &format!("{}/bin/python", step.path))?;
    if !venv && eng.host.which(&step.python).is_none() {
        return Ok(Check::unknown(format!(
            "{} is installed by an earlier step; then the venv {} is created",
            step.python, step.path
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
    let same = installed.as_deref() == Some(wanted.as_slice());
    if !venv || !same {
        changes.push(format!("run: {}", pip_cmd(step).display()));
    }
    if changes.is_empty() {
        return Ok(Check::ok(format!(
            "{} has the requirements of {}",
            step.path, step.requirements
        )));
    }
    if !step.notify.is_empty() {
        changes.push(format!("then restart {}", step.notify.join(", ")));
    }
    let mut c = Check::change(changes);
    if !same {
        c.diff = files::unified_diff(
            &step.requirements,
            installed.as_deref().unwrap_or_default(),
            &wanted,
        );
    }
    Ok(c)
}

pub fn apply(eng: &Engine, step: &VenvStep) -> Result<(), StepError> {
    let wanted = eng
        .host
        .read(Path::new(&step.requirements))
        .map_err(StepError::host)?
        .ok_or_else(|| StepError::msg(format!("{} does not exist", step.requirements)))?;
    if !exists(eng, &format!("{}/bin/python", step.path))? {
        if !exists(eng, &step.path)? {
            eng.update_state(|s| {
                s.created.insert(step.path.clone());
            })?;
        }
        eng.run_ok(&Cmd::new([step.python.as_str(), "-m", "venv", &step.path]))?;
    }
    eng.run_ok(&pip_cmd(step))?;
    let root = Owner {
        user: "root".into(),
        group: "root".into(),
        mode: 0o644,
    };
    eng.host
        .write(&Path::new(&step.path).join(MARKER), &wanted, &root)
        .map_err(StepError::host)
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

fn flask(step: &FlaskMigrateStep) -> String {
    format!("{}/bin/flask", step.venv)
}

pub fn check_flask(eng: &Engine, step: &FlaskMigrateStep) -> Result<Check, StepError> {
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

pub fn apply_flask(eng: &Engine, step: &FlaskMigrateStep) -> Result<(), StepError> {
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
