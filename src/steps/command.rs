//! `command` steps: a program run only when its guards say it is needed (`creates`,
//! `removes`, `unless`, `only_if`), so a re-run changes nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{Check, Engine, StepError};
use crate::host::Cmd;
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// The argv to run (no shell).
    pub run: Vec<String>,
    /// Skip when this command succeeds (already done).
    #[serde(default)]
    pub unless: Option<Vec<String>>,
    /// Run only when this command succeeds.
    #[serde(default)]
    pub only_if: Option<Vec<String>>,
    /// Skip when this path exists.
    #[serde(default)]
    pub creates: Option<String>,
    /// Skip when this path does not exist.
    #[serde(default)]
    pub removes: Option<String>,
    #[serde(default)]
    pub notify: Vec<String>,
}

impl Step for Command {
    const KIND: &'static str = "command";
    type Raw = Command;

    fn compile(raw: &Command, c: &mut Compiler) -> Option<Command> {
        let mut ok = true;
        for (field, argv) in [
            ("run", Some(&raw.run)),
            ("unless", raw.unless.as_ref()),
            ("only_if", raw.only_if.as_ref()),
        ] {
            if argv.is_some_and(Vec::is_empty) {
                c.error(field, "must name a program");
                ok = false;
            }
        }
        ok &= c.services("notify", &raw.notify);
        ok.then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        apply(eng, self)
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }
}

/// `Some(reason)` when the guards say the command need not run; `Err` when a guard cannot be
/// evaluated yet (its program is installed by an earlier step).
fn skip_reason(
    eng: &Engine,
    step: &Command,
) -> Result<Option<String>, Result<String, StepError>> {
    let exists = |p: &str| {
        eng.host
            .stat(Path::new(p))
            .map(|m| m.is_some())
            .map_err(|e| Err(StepError::host(e)))
    };
    if let Some(p) = &step.creates {
        if exists(p)? {
            return Ok(Some(format!("{p} exists")));
        }
    }
    if let Some(p) = &step.removes {
        if !exists(p)? {
            return Ok(Some(format!("{p} does not exist")));
        }
    }
    let guard = |argv: &[String]| -> Result<bool, Result<String, StepError>> {
        if eng.host.which(&argv[0]).is_none() && !argv[0].starts_with('/') {
            return Err(Ok(format!("`{}` is installed by an earlier step", argv[0])));
        }
        let cmd = Cmd::new(argv.to_vec());
        let out = eng.host.run(&cmd).map_err(|e| Err(StepError::host(e)))?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            // e.g. grep's 2: the file it reads does not exist yet.
            _ => Err(Ok(format!(
                "`{}` cannot be evaluated yet: {}",
                cmd.display(),
                out.tail().trim()
            ))),
        }
    };
    if let Some(argv) = &step.only_if {
        if !guard(argv)? {
            return Ok(Some(format!(
                "not needed (`{}` fails)",
                Cmd::new(argv.to_vec()).display()
            )));
        }
    }
    if let Some(argv) = &step.unless {
        if guard(argv)? {
            return Ok(Some(format!(
                "already done (`{}` succeeds)",
                Cmd::new(argv.to_vec()).display()
            )));
        }
    }
    Ok(None)
}

fn check(eng: &Engine, step: &Command) -> Result<Check, StepError> {
    match skip_reason(eng, step) {
        Ok(Some(why)) => Ok(Check::ok(why)),
        Ok(None) => Ok(Check::change1(format!(
            "run: {}",
            Cmd::new(step.run.clone()).display()
        ))),
        Err(Ok(why)) => {
            let mut c = Check::unknown(why);
            c.changes.push(format!(
                "run if needed: {}",
                Cmd::new(step.run.clone()).display()
            ));
            Ok(c)
        }
        Err(Err(e)) => Err(e),
    }
}

fn apply(eng: &Engine, step: &Command) -> Result<(), StepError> {
    match skip_reason(eng, step) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => eng.run_ok(&Cmd::new(step.run.clone())).map(drop),
        Err(Ok(why)) => Err(StepError::msg(format!(
            "cannot evaluate the step's guard: {why}"
        ))),
        Err(Err(e)) => Err(e),
    }
}
