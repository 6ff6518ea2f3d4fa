//! What a run reports: the plan (dry run) or the result (apply), for people or as one
//! versioned JSON document. Only data that is already free of secrets reaches this module.

use std::io::Write;

use serde::Serialize;

use crate::engine::{Check, Status};
use crate::failure::StepError;
use crate::recipe::Step;

/// Version of the JSON document; bumped on incompatible changes.
pub const JSON_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `telem-deploy/plan` (dry run) or `telem-deploy/result` (apply).
    pub format: &'static str,
    pub version: u32,
    pub action: String,
    pub distro: String,
    pub host: String,
    pub recipe: String,
    pub service_manager: String,
    pub steps: Vec<StepReport>,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    // dry run
    Ok,
    Change,
    Unknown,
    Blocked,
    // apply
    Changed,
    Failed,
    NotRun,
}

impl From<Status> for Outcome {
    fn from(s: Status) -> Outcome {
        match s {
            Status::Ok => Outcome::Ok,
            Status::Change => Outcome::Change,
            Status::Unknown => Outcome::Unknown,
            Status::Blocked => Outcome::Blocked,
        }
    }
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Change => "change",
            Outcome::Unknown => "unknown",
            Outcome::Blocked => "blocked",
            Outcome::Changed => "changed",
            Outcome::Failed => "FAILED",
            Outcome::NotRun => "not run",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Outcome::Ok => "\x1b[32m",
            Outcome::Change | Outcome::Changed => "\x1b[33m",
            Outcome::Unknown | Outcome::NotRun => "\x1b[36m",
            Outcome::Blocked | Outcome::Failed => "\x1b[1;31m",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub status: Outcome,
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// What the step told the operator while it ran (a backup written, a warning).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl StepReport {
    pub fn new(step: &Step, status: Outcome, check: Option<Check>) -> StepReport {
        let (changes, diff) = check.map(|c| (c.changes, c.diff)).unwrap_or_default();
        StepReport {
            id: step.id.clone(),
            name: step.name.clone(),
            kind: step.kind.label(),
            status,
            changes,
            diff,
            error: None,
            notes: Vec::new(),
        }
    }

    /// A step that failed (in its preflight, check or change).
    pub fn failed(step: &Step, error: &StepError) -> StepReport {
        StepReport {
            error: Some(error.clone()),
            ..StepReport::new(step, Outcome::Failed, None)
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub change: usize,
    pub unknown: usize,
    pub blocked: usize,
    pub changed: usize,
    pub failed: usize,
    pub not_run: usize,
}

impl Summary {
    pub fn of(steps: &[StepReport]) -> Summary {
        let mut s = Summary::default();
        for st in steps {
            let slot = match st.status {
                Outcome::Ok => &mut s.ok,
                Outcome::Change => &mut s.change,
                Outcome::Unknown => &mut s.unknown,
                Outcome::Blocked => &mut s.blocked,
                Outcome::Changed => &mut s.changed,
                Outcome::Failed => &mut s.failed,
                Outcome::NotRun => &mut s.not_run,
            };
            *slot += 1;
        }
        s
    }

    /// Would a dry run change something?
    pub fn pending(&self) -> bool {
        self.change + self.unknown + self.blocked > 0
    }
}

pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// One step's line, padded, as a person reads it.
    pub fn step_line(&self, index: usize, total: usize, step: &StepReport) -> String {
        let label = format!("{:<8}", step.status.label());
        format!(
            "[{:>2}/{total}] {} {}",
            index + 1,
            self.paint(step.status.color(), &label),
            step.name
        )
    }

    pub fn details(&self, step: &StepReport, out: &mut String) {
        for c in &step.changes {
            out.push_str(&format!("           {c}\n"));
        }
        if let Some(diff) = &step.diff {
            for line in diff.lines() {
                let painted = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => self.paint("\x1b[32m", line),
                    Some('-') if !line.starts_with("---") => self.paint("\x1b[31m", line),
                    Some('@') => self.paint("\x1b[36m", line),
                    _ => line.to_owned(),
                };
                out.push_str(&format!("           {painted}\n"));
            }
        }
        if let Some(e) = &step.error {
            out.push_str(&format!("           error: {}\n", e.message));
            if let Some(c) = &e.command {
                out.push_str(&format!("           command: {c}\n"));
            }
            if let Some(t) = &e.stderr_tail {
                for line in t.lines() {
                    out.push_str(&format!("           | {line}\n"));
                }
            }
        }
    }
}

/// The whole plan for a person.
pub fn human_plan(report: &Report, style: &Style) -> String {
    let mut out = format!(
        "Plan for `{}` on {} ({}), service manager: {}, recipe: {}\n\n",
        report.action, report.host, report.distro, report.service_manager, report.recipe
    );
    let total = report.steps.len();
    for (i, step) in report.steps.iter().enumerate() {
        out.push_str(&style.step_line(i, total, step));
        out.push('\n');
        style.details(step, &mut out);
    }
    let s = &report.summary;
    out.push_str(&format!(
        "\n{} to change, {} ok, {} unknown until applied, {} blocked. Nothing was changed (dry run).\n",
        s.change, s.ok, s.unknown, s.blocked
    ));
    if s.blocked > 0 {
        out.push_str("Blocked steps need an earlier action: run `-a install` first.\n");
    }
    out
}

pub fn human_summary(report: &Report) -> String {
    let s = &report.summary;
    let mut line = format!("{} ok, {} changed, {} failed", s.ok, s.changed, s.failed);
    if s.not_run > 0 {
        line.push_str(&format!(", {} not run", s.not_run));
    }
    line
}

pub fn write_json(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
