//! Many machines in one run (`--target`, `--targets FILE`), reached over SSH.
//!
//! Each target is connected and planned on its own thread, at most `--parallel` at once (reads
//! only: host key and login errors, a bad recipe, everything that refuses, come before any
//! target changes). Then, on this thread, once for all: the confirmation of a destructive
//! action and the passwords some target needs. Then every planned target is changed, again in
//! parallel. One target's failure stops only that target; the report and the JSON document
//! hold every target's result and a total.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::app::{self, Done, Io, Prepared};
use crate::cli::{Cli, Format};
use crate::error::Error;
use crate::executor::Mode;
use crate::host::ssh::{SshHost, SshSettings, Target};
use crate::host::Host;
use crate::progress::{prefixed, Reporter};
use crate::report::{self, Report};
use crate::secrets::{Given, Needs};

/// A target's machine, once connected; moved from the thread that planned it to the one that
/// changes it.
pub type BoxedHost<'a> = Box<dyn Host + Send + 'a>;

/// Opens the connection to the target of this label.
pub type Connect<'c, 'h> = &'c (dyn Fn(&str) -> Result<BoxedHost<'h>, String> + Sync);

/// The targets of `--target` and `--targets FILE`, in that order; `None` for the local machine.
pub fn targets(cli: &Cli) -> Result<Option<Vec<Target>>, Error> {
    let mut all = cli.target.clone();
    if let Some(file) = &cli.targets_file {
        all.extend(read_targets_file(file)?);
    }
    if all.is_empty() {
        if cli.targets_file.is_some() {
            return Err(Error::Usage(format!(
                "--targets {}: no target in the file",
                cli.targets_file
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            )));
        }
        if !cli.ssh_option.is_empty() {
            return Err(Error::Usage(
                "--ssh-option applies only with --target or --targets".into(),
            ));
        }
        return Ok(None);
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in &all {
        if !seen.insert(t.to_string()) {
            return Err(Error::Usage(format!("target {t} is given twice")));
        }
    }
    crate::host::ssh::check_options(&cli.ssh_option).map_err(|e| Error::Usage(e.0))?;
    Ok(Some(all))
}

/// `--targets FILE`: one target per line; blank lines and `#` comments are skipped.
fn read_targets_file(path: &Path) -> Result<Vec<Target>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("--targets {}: {e}", path.display())))?;
    let mut targets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let t = line
            .parse::<Target>()
            .map_err(|e| Error::Usage(format!("--targets {}:{}: {e}", path.display(), n + 1)))?;
        targets.push(t);
    }
    Ok(targets)
}

/// The run over SSH: one master connection per target, with `--ssh-option`s.
pub fn run_ssh(cli: Cli, targets: Vec<Target>, io: &mut Io) -> Result<u8, Error> {
    let settings = SshSettings::with_options(cli.ssh_option.clone());
    let by_label: Vec<(String, Target)> = targets.into_iter().map(|t| (t.to_string(), t)).collect();
    let labels = by_label.iter().map(|(l, _)| l.clone()).collect();
    let connect = |label: &str| -> Result<BoxedHost<'static>, String> {
        let target = by_label
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| format!("unknown target {label}"))?;
        SshHost::connect(target, settings.clone())
            .map(|h| Box::new(h) as BoxedHost<'static>)
            .map_err(|e| e.0)
    };
    run(cli, labels, &connect, io)
}

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
    failed: usize,
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

/// What planning a target left: its connection, its plan (or why there is none), and the
/// output of its planning (the options' summary, notes).
struct Planned<'h> {
    host: Option<BoxedHost<'h>>,
    prepared: Result<Prepared, Error>,
    out: Vec<u8>,
    err: Vec<u8>,
    started: Instant,
}

/// A target after its run: what planning left, how the run ended (None when it could not
/// start), and its SSH round trips.
type Finished<'h> = (Planned<'h>, Option<Result<Done, Error>>, Option<u64>);

/// Run `cli` on the targets `labels`, each reached through `connect`.
pub fn run<'h>(
    cli: Cli,
    labels: Vec<String>,
    connect: Connect<'_, 'h>,
    io: &mut Io,
) -> Result<u8, Error> {
    let parallel = usize::from(cli.parallel);
    let format = cli.format;
    let dry_run = cli.dry_run;
    let action = cli.action;

    // 1. Connect and plan every target: reads only.
    let planned: Vec<Planned<'h>> = parallel_map(parallel, labels.clone(), |_, label| {
        let started = Instant::now();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (host, prepared) = match connect(&label) {
            Err(e) => (None, Err(Error::Other(e))),
            Ok(host) => {
                let mut tio = Io {
                    out: &mut out,
                    err: &mut err,
                };
                let prepared = app::prepare(cli.clone(), host.as_ref(), &mut tio);
                (Some(host), prepared)
            }
        };
        Planned {
            host,
            prepared,
            out,
            err,
            started,
        }
    });
    for (label, p) in labels.iter().zip(&planned) {
        if !p.err.is_empty() {
            let text = String::from_utf8_lossy(&p.err);
            writeln!(
                io.err,
                "{}",
                prefixed(&format!("[{label}] "), text.trim_end())
            )
            .ok();
        }
    }

    // 2. Once, before any target changes: the passwords given, the confirmation, the
    //    passwords asked for.
    let ready: Vec<&Prepared> = planned
        .iter()
        .filter_map(|p| p.prepared.as_ref().ok())
        .collect();
    let given = match ready.first() {
        Some(first) => {
            let needs = ready.iter().fold(Needs::default(), |n, p| n.any(p.needs));
            app::settle(&first.opts, needs, io)?
        }
        None => Given::default(),
    };

    // 3. Check or change every planned target.
    let opts_of_first = ready.first().map(|p| p.opts.clone());
    drop(ready);
    let finished: Vec<Finished<'h>> = {
        let sink = Mutex::new(&mut *io.err);
        let lines = |text: &str| {
            if let Ok(mut err) = sink.lock() {
                writeln!(err, "{text}").ok();
            }
        };
        let reporter = opts_of_first.as_ref().map(|o| Reporter::new(o, &lines));
        let given = &given;
        let work: Vec<(String, Planned<'h>)> = labels.iter().cloned().zip(planned).collect();
        parallel_map(parallel, work, |_, (label, mut p)| {
            let prepared = std::mem::replace(&mut p.prepared, Err(Error::Other(String::new())));
            let (done, trips) = match (prepared, p.host.as_deref(), &reporter) {
                (Ok(prepared), Some(host), Some(reporter)) => {
                    let done = app::execute(prepared, host, given, reporter, &label);
                    (Some(done), host.round_trips())
                }
                (Err(e), host, _) => {
                    p.prepared = Err(e);
                    (None, host.and_then(|h| h.round_trips()))
                }
                _ => (None, None),
            };
            // Close the connection on this thread, now.
            p.host = None;
            (p, done, trips)
        })
    };

    // 4. Report every target, then the total.
    let mut results = Vec::new();
    let mut blocks = Vec::new();
    for (label, (planned, done, trips)) in labels.iter().zip(finished) {
        let seconds = planned.started.elapsed().as_secs_f64();
        let mut block = planned.out;
        let (report, outcome) = match (planned.prepared, done) {
            (_, Some(Ok(done))) => {
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
            (_, Some(Err(e))) | (Err(e), None) => (None, Err(e)),
            (Ok(_), None) => (None, Err(Error::Other("not run".into()))),
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
    let failed = results.iter().filter(|r| !r.ok).count();
    let total = Total {
        targets: results.len(),
        ok: results.len() - failed,
        failed,
    };
    match format {
        Format::Json => {
            let doc = Document {
                format: "telem-deploy/targets",
                version: report::JSON_VERSION,
                action: action.as_str(),
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
            let mode = if dry_run { Mode::Check } else { Mode::Apply };
            let verb = match mode {
                Mode::Check => "planned",
                Mode::Apply => "done",
            };
            let failed_list: Vec<&str> = results
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.target.as_str())
                .collect();
            write!(
                io.out,
                "{} target{}: {} {verb}, {} failed",
                total.targets,
                if total.targets == 1 { "" } else { "s" },
                total.ok,
                total.failed
            )
            .ok();
            if failed_list.is_empty() {
                writeln!(io.out).ok();
            } else {
                writeln!(io.out, " ({})", failed_list.join(", ")).ok();
            }
        }
    }
    Ok(exit_code(&results))
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

/// `f` over `items` on at most `n` threads; the results in the order of `items`.
fn parallel_map<T: Send, R: Send>(
    n: usize,
    items: Vec<T>,
    f: impl Fn(usize, T) -> R + Sync,
) -> Vec<R> {
    let len = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..len).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..n.clamp(1, len.max(1)) {
            scope.spawn(|| loop {
                let next = queue.lock().expect("queue").next();
                let Some((i, item)) = next else { break };
                let r = f(i, item);
                results.lock().expect("results")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order_and_bounds_threads() {
        let running = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let out = parallel_map(3, (0..20).collect(), |i, x: usize| {
            let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            std::thread::yield_now();
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(i, x);
            x * 2
        });
        assert_eq!(out, (0..20).map(|x| x * 2).collect::<Vec<_>>());
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 3);
    }

    #[test]
    fn targets_files_skip_comments_and_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hosts");
        std::fs::write(
            &f,
            "# fleet\nroot@10.0.0.1\n\n  [::1]:2222  # lab\nweb;rm\n",
        )
        .unwrap();
        let err = read_targets_file(&f).unwrap_err().to_string();
        assert!(err.contains(":5:"), "{err}");
        std::fs::write(&f, "# fleet\nroot@10.0.0.1\n\n  [::1]:2222  # lab\n").unwrap();
        let t = read_targets_file(&f).unwrap();
        assert_eq!(
            t.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            ["root@10.0.0.1", "[::1]:2222"]
        );
    }

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
