//! Many machines in one run (`--target`, `--targets FILE`), reached over SSH.
//!
//! One thread per target for the whole run, at most `--parallel` of them working at once: each
//! connects and plans (reads only: host key and login errors, a bad recipe, everything that
//! refuses, come before any target changes). Then, on the calling thread and once for all:
//! the passwords given, the confirmation of a destructive action and the passwords some target
//! needs. Then every planned target is changed with the engine it planned with. One target's
//! failure stops only that target; the report and the JSON document (`document`) hold every
//! target's result and a total.

mod document;
mod gate;
mod targets;

use std::sync::{mpsc, Mutex};
use std::time::Instant;

use crate::app::{self, Done, Io};
use crate::cli::Cli;
use crate::controller::Controller;
use crate::error::Error;
use crate::host::ssh::{SshHost, SshSettings, Target};
use crate::host::Host;
use crate::options::Options;
use crate::progress::{prefixed, Reporter};
use crate::secrets::{Given, Needs};
use gate::{Permits, Settled};
pub use targets::targets;

/// A target's machine, once connected; moved from the thread that planned it to the one that
/// changes it.
pub type BoxedHost<'a> = Box<dyn Host + Send + 'a>;

/// Opens the connection to the target of this label.
pub type Connect<'c, 'h> = &'c (dyn Fn(&str) -> Result<BoxedHost<'h>, String> + Sync);

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
    // The collector binary to install, read (once) on this machine for every target.
    let controller = &Controller::new(cli.collector_bin.as_deref());
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
                        cli, index, label, connect, controller, permits, settled, reporter, tx,
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
    Ok(document::write(&labels, outcomes, cli, io))
}

/// One target's whole run on its own thread: connect and plan (holding a permit), tell the
/// controller, wait for it to settle, then check or change (holding a permit again).
#[allow(clippy::too_many_arguments)]
fn run_target<'h>(
    cli: &Cli,
    index: usize,
    label: &str,
    connect: Connect<'_, 'h>,
    controller: &Controller,
    permits: &Permits,
    settled: &Settled,
    reporter: &Reporter,
    tx: mpsc::Sender<Planned>,
) -> Outcome {
    let started = Instant::now();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let permit = permits.acquire();
    // A target that cannot be planned tells the controller so, and ends there.
    let stopped = |notes, out, error, trips| {
        tx.send(Planned {
            index,
            ready: None,
            notes,
        })
        .ok();
        Outcome {
            out,
            result: Err(error),
            seconds: started.elapsed().as_secs_f64(),
            trips,
        }
    };
    let host = match connect(label) {
        Ok(host) => host,
        Err(e) => return stopped(notes, out, Error::Other(e), None),
    };
    let host = host.as_ref();
    let prepared = app::prepare(
        cli.clone(),
        host,
        &mut Io {
            out: &mut out,
            err: &mut notes,
        },
    );
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return stopped(notes, out, e, host.round_trips()),
    };
    let staged = match app::stage(&prepared, host, controller) {
        Ok(s) => s,
        Err(e) => return stopped(notes, out, e, host.round_trips()),
    };
    let mut seconds = started.elapsed().as_secs_f64();
    drop(permit);
    tx.send(Planned {
        index,
        ready: Some((staged.needs, prepared.opts.clone())),
        notes,
    })
    .ok();
    drop(tx);
    let result = match settled.wait() {
        Some(given) => {
            let _permit = permits.acquire();
            let began = Instant::now();
            let result = app::execute(staged, given, reporter, label);
            seconds += began.elapsed().as_secs_f64();
            result
        }
        None => Err(Error::Other(
            "not run: the run stopped before any change".into(),
        )),
    };
    Outcome {
        out,
        result,
        seconds,
        trips: host.round_trips(),
    }
}
