//! The loop of a run. Every selected step is checked; in apply mode a step that differs is
//! changed (its notified services owed first, queued after). Applying refuses before the first
//! change when a step's preflight does, takes the machine's run lock before its first change
//! (and checks that step again under it), stops at the first failure, and always ends with the
//! queued reloads and restarts. A check-only run (the dry run) shows what it would do.

use crate::engine::{Check, Engine, Status};
use crate::failure::StepError;
use crate::progress::Progress;
use crate::recipe::Step;
use crate::report::{Outcome, StepReport, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Check only: change nothing, show what would change (`--dry-run`).
    Check,
    /// Check, then change what differs.
    Apply,
}

/// What the loop did: one report per step, and the first failure with the name of its step.
pub struct Ran {
    pub steps: Vec<StepReport>,
    pub failure: Option<(String, StepError)>,
}

/// Run `steps` in `mode`; `progress` shows each step as it finishes (apply mode only).
pub fn run(
    eng: &Engine,
    steps: &[&Step],
    mode: Mode,
    progress: Option<&Progress>,
    style: &Style,
) -> Ran {
    let mut ran = Ran {
        steps: Vec::with_capacity(steps.len()),
        failure: None,
    };
    if mode == Mode::Apply {
        refuse_before_any_change(eng, steps, &mut ran);
    }
    for (i, step) in steps.iter().enumerate() {
        if ran.failure.is_some() {
            break;
        }
        if let Some(p) = progress {
            p.start(i, &step.name);
        }
        let mut report = match mode {
            Mode::Check => check_only(eng, step),
            Mode::Apply => match check_and_apply(eng, step) {
                Ok((outcome, check)) => StepReport::new(step, outcome, Some(check)),
                Err(e) => {
                    let r = StepReport::failed(step, &e);
                    ran.failure = Some((step.name.clone(), e));
                    r
                }
            },
        };
        report.notes = eng.take_notes();
        if let Some(p) = progress {
            p.finish(style, i, steps.len(), &report);
        }
        notes(progress, &report.notes);
        ran.steps.push(report);
    }
    for step in &steps[ran.steps.len()..] {
        ran.steps.push(StepReport::new(step, Outcome::NotRun, None));
    }
    if mode == Mode::Apply {
        // Queued reloads and restarts run even after a failure (not without the run lock).
        let failed = flush_handlers(eng, progress)
            .unwrap_or_else(|e| Some(("reloads and restarts".into(), e)));
        if let Some(failed) = failed {
            ran.failure.get_or_insert(failed);
        }
    }
    if let Some(p) = progress {
        p.clear();
    }
    ran
}

/// The queued reloads and restarts, under the run lock when there are any (`Err`: another run
/// holds it); the first that failed, with its name.
fn flush_handlers(
    eng: &Engine,
    progress: Option<&Progress>,
) -> Result<Option<(String, StepError)>, StepError> {
    if eng.handlers_queued() {
        eng.lock_for_change()?;
    }
    let results = eng.flush_handlers();
    notes(progress, &eng.take_notes());
    let mut failed = None;
    for r in results {
        match r {
            Ok(done) => note(progress, &done),
            Err((name, e)) => {
                note(
                    progress,
                    &format!("handler for {name} failed: {}", e.message),
                );
                failed.get_or_insert((format!("restart {name}"), e));
            }
        }
    }
    Ok(failed)
}

/// Whatever would make a later step refuse is found before the first step changes anything:
/// the steps before it are not run, it fails.
fn refuse_before_any_change(eng: &Engine, steps: &[&Step], ran: &mut Ran) {
    let refused = steps
        .iter()
        .enumerate()
        .find_map(|(i, s)| eng.preflight(s).err().map(|e| (i, e)));
    if let Some((i, e)) = refused {
        for before in &steps[..i] {
            ran.steps
                .push(StepReport::new(before, Outcome::NotRun, None));
        }
        ran.steps.push(StepReport::failed(steps[i], &e));
        ran.failure = Some((steps[i].name.clone(), e));
    }
}

/// A dry run's step: what its check finds (a refusing preflight shows as blocked, a check that
/// cannot be made yet as unknown); a change queues what it would notify.
fn check_only(eng: &Engine, step: &Step) -> StepReport {
    let check = match eng.preflight(step) {
        // What the run would refuse with, before changing anything.
        Err(e) => Check::blocked(e.message),
        Ok(()) => eng.check(step).unwrap_or_else(|e| Check {
            status: Status::Unknown,
            changes: vec![format!("cannot check yet: {}", e.message)],
            diff: None,
        }),
    };
    if check.status == Status::Change {
        eng.queue(eng.notifies(step));
    }
    StepReport::new(step, check.status.into(), Some(check))
}

/// An applied step: unchanged when its check is ok, else changed (a blocked step fails).
fn check_and_apply(eng: &Engine, step: &Step) -> Result<(Outcome, Check), StepError> {
    let mut check = eng.check(step)?;
    if matches!(check.status, Status::Change | Status::Unknown) && eng.lock_for_change()? {
        // The lock just taken: another run may have changed the machine since the check.
        check = eng.check(step)?;
    }
    match check.status {
        Status::Ok => Ok((Outcome::Ok, check)),
        Status::Blocked => Err(StepError::msg(check.changes.join("; "))),
        Status::Change | Status::Unknown => {
            eng.owe(eng.notifies(step))?;
            eng.apply(step)?;
            eng.queue(eng.notifies(step));
            Ok((Outcome::Changed, check))
        }
    }
}

fn note(progress: Option<&Progress>, text: &str) {
    if let Some(p) = progress {
        p.note(text);
    }
}

/// What a step (or the handlers) told the operator (`Engine::note`).
fn notes(progress: Option<&Progress>, texts: &[String]) {
    for text in texts {
        note(progress, text);
    }
}
