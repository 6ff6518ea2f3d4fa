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
use std::sync::{mpsc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

use crate::app::{self, Done, Io};
use crate::cli::{Cli, Format};
use crate::controller::Bundle;
use crate::error::Error;
use crate::executor::Mode;
use crate::host::ssh::{SshHost, SshSettings, Target};
use crate::host::Host;
use crate::options::Options;
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

/// How one target's run ended: its buffered output (the options' summary), its result (or
/// why there is none), its own wall time and its SSH round trips.
struct Outcome {
    out: Vec<u8>,
    result: Result<Done, Error>,
    seconds: f64,
    trips: Option<u64>,
}

/// What a target tells the controller once planned: what it would need asked (and its
/// options), or nothing when it failed; and the notes of its planning.
struct Planned {
    index: usize,
    ready: Option<(Needs, Options)>,
    notes: Vec<u8>,
}

/// At most N targets work at once (connecting and planning, or changing); one waiting for the
/// others between the two holds none.
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    fn new(n: usize) -> Permits {
        Permits {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

struct Permit<'a>(&'a Permits);

/// What the controller settled, once, for every target's thread to wait for: `Some` to go on
/// with these secrets, `None` when it refused and no target changes anything.
struct Settled {
    value: OnceLock<Option<Given>>,
    set: Mutex<bool>,
    done: Condvar,
}

impl Settled {
    fn new() -> Settled {
        Settled {
            value: OnceLock::new(),
            set: Mutex::new(false),
            done: Condvar::new(),
        }
    }

    fn publish(&self, given: Option<Given>) {
        self.value.set(given).ok();
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.done.notify_all();
    }

    fn wait(&self) -> Option<&Given> {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            set = self.done.wait(set).unwrap_or_else(|e| e.into_inner());
        }
        self.value.get().and_then(Option::as_ref)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// Run `cli` on the targets `labels`, each reached through `connect`: one thread per target
/// for the whole run (its connection and its engine live from planning to changing), at most
/// `--parallel` of them working at once.
pub fn run<'h>(
    cli: Cli,
    labels: Vec<String>,
    connect: Connect<'_, 'h>,
    io: &mut Io,
) -> Result<u8, Error> {
    let format = cli.format;
    let dry_run = cli.dry_run;
    let action = cli.action;
    // The collector binary to install, read (once) on this machine for every target.
    let bundle = &Bundle::new(cli.collector_bin.as_deref());
    let permits = &Permits::new(usize::from(cli.parallel));
    // What the controller settled (None: it refused, and no target changes anything).
    let settled = &Settled::new();
    let io = Mutex::new(io);
    let lines = |text: &str| {
        if let Ok(mut io) = io.lock() {
            writeln!(io.err, "{text}").ok();
        }
    };
    let reporter = &Reporter::for_run(
        format,
        crate::options::interactive(format),
        cli.verbose,
        &lines,
    );
    let cli = &cli;
    let (tx, rx) = mpsc::channel::<Planned>();
    let (outcomes, settling) = std::thread::scope(|scope| {
        let threads: Vec<_> = labels
            .iter()
            .enumerate()
            .map(|(index, label)| {
                let tx = tx.clone();
                scope.spawn(move || {
                    run_target(
                        cli, index, label, connect, bundle, permits, settled, reporter, tx,
                    )
                })
            })
            .collect();
        drop(tx);
        // Every target planned (or failed), then settle once, before any changes.
        let mut planned: Vec<Planned> = rx.iter().collect();
        planned.sort_by_key(|p| p.index);
        let mut io = io.lock().unwrap_or_else(|e| e.into_inner());
        for p in &planned {
            if !p.notes.is_empty() {
                let text = String::from_utf8_lossy(&p.notes);
                let prefix = format!("[{}] ", labels[p.index]);
                writeln!(io.err, "{}", prefixed(&prefix, text.trim_end())).ok();
            }
        }
        let ready: Vec<&(Needs, Options)> =
            planned.iter().filter_map(|p| p.ready.as_ref()).collect();
        let settling = match ready.first() {
            Some((_, opts)) => {
                let needs = ready.iter().fold(Needs::default(), |n, (m, _)| n.any(*m));
                app::settle(opts, needs, &mut io)
            }
            None => Ok(Given::default()),
        };
        drop(io);
        let (given, settling) = match settling {
            Ok(given) => (Some(given), Ok(())),
            Err(e) => (None, Err(e)),
        };
        settled.publish(given);
        let outcomes: Vec<Outcome> = threads
            .into_iter()
            .map(|t| t.join().expect("a target's thread panicked"))
            .collect();
        (outcomes, settling)
    });
    settling?;
    let io = io.into_inner().unwrap_or_else(|e| e.into_inner());

    // 4. Report every target, then the total.
    let mut results = Vec::new();
    let mut blocks = Vec::new();
    for (label, target) in labels.iter().zip(outcomes) {
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

/// One target's whole run on its own thread: connect and plan (holding a permit), tell the
/// controller, wait for it to settle, then check or change (holding a permit again).
#[allow(clippy::too_many_arguments)]
fn run_target<'h>(
    cli: &Cli,
    index: usize,
    label: &str,
    connect: Connect<'_, 'h>,
    bundle: &Bundle,
    permits: &Permits,
    settled: &Settled,
    reporter: &Reporter,
    tx: mpsc::Sender<Planned>,
) -> Outcome {
    let started = Instant::now();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let permit = permits.acquire();
    let host = match connect(label) {
        Ok(host) => host,
        Err(e) => {
            drop(permit);
            let seconds = started.elapsed().as_secs_f64();
            tx.send(Planned {
                index,
                ready: None,
                notes,
            })
            .ok();
            return Outcome {
                out,
                result: Err(Error::Other(e)),
                seconds,
                trips: None,
            };
        }
    };
    let host = host.as_ref();
    let prepared = {
        let mut tio = Io {
            out: &mut out,
            err: &mut notes,
        };
        app::prepare(cli.clone(), host, &mut tio)
    };
    let staged = prepared
        .as_ref()
        .map_err(|e| Error::Other(e.to_string()))
        .and_then(|p| app::stage(p, host, bundle));
    let mut seconds = started.elapsed().as_secs_f64();
    drop(permit);
    let staged = match (prepared.as_ref(), staged) {
        (Ok(p), Ok(staged)) => {
            tx.send(Planned {
                index,
                ready: Some((staged.needs, p.opts.clone())),
                notes,
            })
            .ok();
            staged
        }
        (Err(_), _) => {
            tx.send(Planned {
                index,
                ready: None,
                notes,
            })
            .ok();
            let result = prepared.map(|_| unreachable!("planning failed"));
            return Outcome {
                out,
                result,
                seconds,
                trips: host.round_trips(),
            };
        }
        (Ok(_), Err(e)) => {
            tx.send(Planned {
                index,
                ready: None,
                notes,
            })
            .ok();
            return Outcome {
                out,
                result: Err(e),
                seconds,
                trips: host.round_trips(),
            };
        }
    };
    drop(tx);
    let Some(given) = settled.wait() else {
        let result = Err(Error::Other(
            "not run: the run stopped before any change".into(),
        ));
        return Outcome {
            out,
            result,
            seconds,
            trips: host.round_trips(),
        };
    };
    let _permit = permits.acquire();
    let began = Instant::now();
    let result = app::execute(staged, given, reporter, label);
    seconds += began.elapsed().as_secs_f64();
    Outcome {
        out,
        result,
        seconds,
        trips: host.round_trips(),
    }
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

    #[test]
    fn permits_bound_how_many_work_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let permits = Permits::new(3);
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    let _p = permits.acquire();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most}");
        assert_eq!(*permits.free.lock().unwrap(), 3, "every permit back");
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
