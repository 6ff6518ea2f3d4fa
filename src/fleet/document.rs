//! What a run on many targets reports: every target's result (its report, error, own wall
//! time and SSH round trips) and a total, as one JSON document or as text, and the exit code.

use std::io::Write;

use serde::Serialize;

use super::Outcome;
use crate::app::{self, Io};
use crate::cli::{Cli, Format};
use crate::report::{self, Report};

/// One target's result, as the JSON document holds it.
#[derive(Serialize)]
struct TargetResult {
    target: String,
    ok: bool,
    exit_code: u8,
    /// Wall time of this target (connecting, planning and, when applying, changing).
    seconds: f64,
    /// SSH round trips (each `ssh` run over the master connection), when reached over SSH.
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_round_trips: Option<u64>,
    report: Option<Report>,
    error: Option<ErrorDoc>,
}

#[derive(Serialize)]
struct ErrorDoc {
    message: String,
    exit_code: u8,
}

#[derive(Serialize)]
struct Total {
    targets: usize,
    ok: usize,
    /// Failed on their own.
    failed: usize,
    /// Did not run because of others (an earlier wave failed, a host could not be planned).
    not_run: usize,
}

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    version: u32,
    action: &'a str,
    dry_run: bool,
    targets: &'a [TargetResult],
    total: Total,
}

/// Every target's result, then the total: one JSON document, or a block per target and a
/// total line; the run's exit code.
pub(super) fn write(labels: &[String], outcomes: Vec<Outcome>, cli: &Cli, io: &mut Io) -> u8 {
    let (format, dry_run) = (cli.format, cli.dry_run);
    let mut results = Vec::new();
    let mut blocks = Vec::new();
    let mut not_run = Vec::new();
    for (label, target) in labels.iter().zip(outcomes) {
        not_run.push(target.not_run);
        let seconds = target.seconds;
        let trips = target.trips;
        let mut block = target.out;
        let (report, outcome) = match target.result {
            Ok(done) => {
                let mut tio = Io {
                    out: &mut block,
                    err: &mut std::io::sink(),
                };
                if format == Format::Human {
                    app::emit(&done.report, &done.opts, &mut tio, done.mode);
                }
                let report = done.report.clone();
                (Some(report), done.exit())
            }
            Err(e) => (None, Err(e)),
        };
        let (ok, exit_code, error) = match &outcome {
            Ok(code) => (true, *code, None),
            Err(e) => (
                false,
                e.exit_code(),
                Some(ErrorDoc {
                    message: e.to_string(),
                    exit_code: e.exit_code(),
                }),
            ),
        };
        if let Some(e) = &error {
            writeln!(block, "error: {}", e.message).ok();
        }
        blocks.push(block);
        results.push(TargetResult {
            target: label.clone(),
            ok,
            exit_code,
            seconds: (seconds * 1000.0).round() / 1000.0,
            ssh_round_trips: trips,
            report,
            error,
        });
    }
    let not_ran = |r: &(usize, &TargetResult)| not_run[r.0];
    let names = |ran: bool| -> Vec<&str> {
        results
            .iter()
            .enumerate()
            .filter(|(i, r)| !r.ok && not_run[*i] != ran)
            .map(|(_, r)| r.target.as_str())
            .collect()
    };
    let (failed_list, not_run_list) = (names(true), names(false));
    let total = Total {
        targets: results.len(),
        ok: results.iter().filter(|r| r.ok).count(),
        failed: failed_list.len(),
        not_run: results.iter().enumerate().filter(not_ran).count(),
    };
    match format {
        Format::Json => {
            let doc = Document {
                format: "telem-deploy/targets",
                version: report::JSON_VERSION,
                action: cli.action.as_str(),
                dry_run,
                targets: &results,
                total,
            };
            writeln!(
                io.out,
                "{}",
                serde_json::to_string_pretty(&doc).expect("json")
            )
            .ok();
        }
        Format::Human => {
            for (r, block) in results.iter().zip(&blocks) {
                writeln!(io.out, "== {} ==", r.target).ok();
                io.out.write_all(block).ok();
                writeln!(io.out).ok();
            }
            let verb = if dry_run { "planned" } else { "done" };
            write!(
                io.out,
                "{} target{}: {} {verb}, {} failed",
                total.targets,
                if total.targets == 1 { "" } else { "s" },
                total.ok,
                total.failed
            )
            .ok();
            if !failed_list.is_empty() {
                write!(io.out, " ({})", failed_list.join(", ")).ok();
            }
            if !not_run_list.is_empty() {
                write!(
                    io.out,
                    ", {} not run ({})",
                    not_run_list.len(),
                    not_run_list.join(", ")
                )
                .ok();
            }
            writeln!(io.out).ok();
        }
    }
    exit_code(&results)
}

/// 0 when every target succeeded (3 with pending changes under `--detailed-exitcode`); when
/// some failed, their common exit code if they share one and all failed, else 1.
fn exit_code(results: &[TargetResult]) -> u8 {
    let failed: Vec<u8> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.exit_code)
        .collect();
    if failed.is_empty() {
        return results.iter().map(|r| r.exit_code).max().unwrap_or(0);
    }
    if failed.len() == results.len() && failed.iter().all(|c| *c == failed[0]) {
        failed[0]
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(ok: bool, code: u8) -> TargetResult {
        TargetResult {
            target: String::new(),
            ok,
            exit_code: code,
            seconds: 0.0,
            ssh_round_trips: None,
            report: None,
            error: None,
        }
    }

    #[test]
    fn exit_codes_of_many_targets() {
        assert_eq!(exit_code(&[result(true, 0), result(true, 0)]), 0);
        assert_eq!(exit_code(&[result(true, 0), result(true, 3)]), 3);
        assert_eq!(exit_code(&[result(true, 0), result(false, 2)]), 1);
        assert_eq!(exit_code(&[result(false, 2), result(false, 2)]), 2);
        assert_eq!(exit_code(&[result(false, 2), result(false, 1)]), 1);
    }
}
