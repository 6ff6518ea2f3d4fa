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
pub mod identity;
pub mod inventory;
mod stages;
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
use crate::secret::Secret;
use crate::secrets::{Given, Needs};
use gate::{Permits, Settled, Waves};
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
    /// It did not run because of others (an earlier wave failed, a host could not be
    /// planned, the controller refused): its error says why.
    not_run: bool,
    seconds: f64,
    trips: Option<u64>,
}

/// What a target tells the controller once planned: what it would need asked (and its
/// options), or nothing when it failed; and the notes of its planning.
struct Planned {
    index: usize,
    ready: Option<Ready>,
    /// Not planned because the action needs an installation its machine does not have.
    not_installed: bool,
    notes: Vec<u8>,
}

/// A planned target: what it would need asked, its options, (for a shared password) the
/// password its collector config holds, and which machine it is.
struct Ready {
    needs: Needs,
    opts: Options,
    stored: Option<Secret>,
    identity: Option<identity::Identity>,
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
    let jobs = labels
        .into_iter()
        .map(|label| Job {
            host: label.clone(),
            label,
            cli: cli.clone(),
            wave: 0,
            stranded: None,
        })
        .collect();
    run_jobs(&cli, Fleet::independent(jobs), connect, io)
}

/// One piece of a run on one machine: its label, the machine it connects to, its own
/// arguments (an inventory's host has its placement in them) and its wave. A machine may have
/// several jobs in a run (an inventory's balancer drains and restores each collector, a
/// collector stops before the database is reset): each connects on its own, and the later
/// ones re-read the state file before they change anything.
pub struct Job {
    pub label: String,
    /// The machine (what `connect` is given).
    pub host: String,
    pub cli: Cli,
    pub wave: usize,
    /// What is left behind when this job does not run because an earlier wave failed although
    /// the job it names ran (a collector drained from the balancer stays out of it): the
    /// label of that job, and the note added to the "not run" error.
    pub stranded: Option<(String, String)>,
}

/// The machines of a run and how they take turns.
pub struct Fleet {
    pub jobs: Vec<Job>,
    /// How many targets of wave i change at once (absent: all).
    pub serial: Vec<usize>,
    /// One database password for every target (an inventory's hosts share the database):
    /// the given one, else the one a target's collector config holds, else one asked for or
    /// generated once.
    pub shared_password: bool,
    /// No job changes anything unless every job was planned: the jobs depend on each other
    /// (an inventory: the primary admits collectors, the old primary is fenced only for a
    /// standby that is promoted). Else one target's failure stops only that target.
    pub all_planned: bool,
    /// The certificate authority of an inventory (on the controller).
    pub ca: Option<std::sync::Arc<crate::ca::Ca>>,
    /// The password of an inventory's replication role.
    pub replication_password: Option<Secret>,
}

impl Fleet {
    /// Jobs that do not depend on each other (`--target`): no shared password, no CA, one
    /// target's failure stops only that target, all in one wave.
    pub fn independent(jobs: Vec<Job>) -> Fleet {
        Fleet {
            jobs,
            serial: Vec::new(),
            shared_password: false,
            all_planned: false,
            ca: None,
            replication_password: None,
        }
    }
}

/// Run the `fleet`; `cli` holds what is the run's (format, `--parallel`, the collector
/// binary, the action).
pub fn run_jobs<'h>(
    cli: &Cli,
    fleet: Fleet,
    connect: Connect<'_, 'h>,
    io: &mut Io,
) -> Result<u8, Error> {
    let format = cli.format;
    let Fleet {
        jobs,
        serial,
        shared_password,
        all_planned,
        ca,
        replication_password,
    } = fleet;
    let labels: Vec<String> = jobs.iter().map(|j| j.label.clone()).collect();
    // Machines with several jobs: each job re-reads the state file before it changes anything.
    let shared_hosts: Vec<String> = jobs
        .iter()
        .filter(|j| jobs.iter().filter(|o| o.host == j.host).count() > 1)
        .map(|j| j.host.clone())
        .collect();
    // The collector binary to install, read (once) on this machine for every target; the CA.
    let controller = &Controller {
        ca,
        replication_password,
        ..Controller::new(cli.collector_bin.as_deref())
    };
    let permits = &Permits::new(usize::from(cli.parallel));
    let waves = &Waves::new(&jobs.iter().map(|j| j.wave).collect::<Vec<_>>(), |w| {
        serial.get(w).copied().unwrap_or(usize::MAX)
    });
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
    let (tx, rx) = mpsc::channel::<Planned>();
    let shared = Shared {
        connect,
        controller,
        permits,
        waves,
        settled,
        reporter,
        shared_password,
        shared_hosts,
        several_machines: jobs.iter().any(|j| j.host != jobs[0].host),
        succeeded: Mutex::new(Vec::new()),
    };
    let shared = &shared;
    let (outcomes, settling) = std::thread::scope(|scope| {
        let threads: Vec<_> = jobs
            .iter()
            .enumerate()
            .map(|(index, job)| {
                let tx = tx.clone();
                scope.spawn(move || run_target(job, index, shared, tx))
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
        let machines: Vec<(&str, Option<&identity::Identity>)> = planned
            .iter()
            .map(|p| {
                let identity = p.ready.as_ref().and_then(|r| r.identity.as_ref());
                (jobs[p.index].host.as_str(), identity)
            })
            .collect();
        // Jobs that depend on each other: one that could not be planned stops them all.
        let unplanned: Vec<&str> = planned
            .iter()
            .filter(|p| p.ready.is_none())
            .map(|p| labels[p.index].as_str())
            .collect();
        let (given, settling) =
            if let Some(refused) = not_installed(&planned, &jobs, all_planned, cli.action) {
                // One error for the run, naming every machine without an installation.
                (
                    Err("the run stopped before any change".to_owned()),
                    Err(Error::NotInstalled(refused)),
                )
            } else if all_planned && !unplanned.is_empty() {
                let why = format!(
                    "{} could not be planned; nothing was changed on any host",
                    unplanned.join(", ")
                );
                (Err(why), Ok(()))
            } else {
                // A machine named twice stops the run before any change (see identity.rs).
                let settled = match identity::named_twice(&machines) {
                    Some(why) => Err(Error::Usage(why)),
                    None => settle(&planned, cli.action, shared_password, &mut io),
                };
                match settled {
                    Ok(given) => (Ok(given), Ok(())),
                    Err(e) => (Err("the run stopped before any change".to_owned()), Err(e)),
                }
            };
        drop(io);
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

/// Jobs that depend on each other (`all_planned`) where every one that could not be planned
/// was refused for want of an installation: the refusal of the run's `action`, naming their
/// machines (each once, in the order of the jobs).
fn not_installed(
    planned: &[Planned],
    jobs: &[Job],
    all_planned: bool,
    action: crate::cli::Action,
) -> Option<crate::not_installed::NotInstalled> {
    let unplanned: Vec<&Planned> = planned.iter().filter(|p| p.ready.is_none()).collect();
    if !all_planned || unplanned.is_empty() || !unplanned.iter().all(|p| p.not_installed) {
        return None;
    }
    let mut hosts: Vec<String> = Vec::new();
    for p in unplanned {
        let host = &jobs[p.index].host;
        if !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    Some(crate::not_installed::NotInstalled {
        action,
        hosts,
        inventory: None,
    })
}

/// What every target's thread shares.
struct Shared<'s, 'c, 'h> {
    connect: Connect<'c, 'h>,
    controller: &'s Controller,
    permits: &'s Permits,
    waves: &'s Waves,
    settled: &'s Settled,
    reporter: &'s Reporter<'s>,
    shared_password: bool,
    /// Machines with more than one job in this run.
    shared_hosts: Vec<String>,
    /// Whether the run names more than one machine (then each says which it is: identity.rs).
    several_machines: bool,
    /// The jobs that ran and succeeded so far.
    succeeded: Mutex<Vec<String>>,
}

/// Once for all targets, on the controller: the passwords given, the confirmation (of the
/// run's `action`, not of an internal job's), the prompts. With a shared password, the one
/// password every target gets.
fn settle(
    planned: &[Planned],
    action: crate::cli::Action,
    shared_password: bool,
    io: &mut Io,
) -> Result<Given, Error> {
    let ready: Vec<&Ready> = planned.iter().filter_map(|p| p.ready.as_ref()).collect();
    let Some(first) = ready
        .iter()
        .find(|r| r.opts.action == action)
        .or(ready.first())
    else {
        return Ok(Given::default());
    };
    let opts = &first.opts;
    let mut needs = ready.iter().fold(Needs::default(), |n, r| n.any(r.needs));
    let stored = ready.iter().find_map(|r| r.stored.clone());
    if shared_password && stored.is_some() {
        // Some target holds the password already: the others get that one.
        needs.db_password = false;
    }
    let mut given = app::settle(opts, needs, io)?;
    if shared_password && given.db.is_none() {
        given.db = stored
            .or_else(|| given.prompted_db.take())
            .or_else(|| (needs.db_password && !opts.dry_run).then(crate::password::generate));
    }
    Ok(given)
}

/// A target whose thread panics (a bug) still finishes its wave, as a failure: the later
/// waves stop instead of waiting for it forever (and the run with them, as the scope joins
/// every thread before the panic reaches the caller).
struct FinishOnPanic<'w>(&'w Waves, usize, &'w str);

impl Drop for FinishOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.finish(self.1, self.2, true);
        }
    }
}

/// One target's whole run on its own thread: connect and plan (holding a permit), tell the
/// controller, wait for it to settle and for the earlier waves, then check or change (holding
/// a permit again).
fn run_target(job: &Job, index: usize, shared: &Shared, tx: mpsc::Sender<Planned>) -> Outcome {
    let Job {
        label,
        host: machine,
        cli,
        wave,
        stranded,
    } = job;
    let _unwinding = FinishOnPanic(shared.waves, *wave, label);
    let started = Instant::now();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let permit = shared.permits.acquire();
    // A target that cannot be planned tells the controller so, and ends there.
    let stopped = |notes, out, error: Error, trips| {
        tx.send(Planned {
            index,
            ready: None,
            not_installed: matches!(error, Error::NotInstalled(_)),
            notes,
        })
        .ok();
        shared.waves.finish(*wave, label, true);
        Outcome {
            out,
            result: Err(error),
            not_run: false,
            seconds: started.elapsed().as_secs_f64(),
            trips,
        }
    };
    let host = match (shared.connect)(machine) {
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
    let staged = match app::stage(&prepared, host, shared.controller) {
        Ok(s) => s,
        Err(e) => return stopped(notes, out, e, host.round_trips()),
    };
    let stored = if shared.shared_password {
        app::stored_password(&prepared, host)
    } else {
        None
    };
    let identity = if shared.several_machines {
        identity::Identity::read(host)
    } else {
        None
    };
    let mut seconds = started.elapsed().as_secs_f64();
    drop(permit);
    tx.send(Planned {
        index,
        ready: Some(Ready {
            needs: staged.needs,
            opts: prepared.opts.clone(),
            stored,
            identity,
        }),
        not_installed: false,
        notes,
    })
    .ok();
    drop(tx);
    let (result, failed, not_run) = match shared.settled.wait() {
        Ok(given) => match shared.waves.turn(*wave) {
            Ok(_turn) => {
                let _permit = shared.permits.acquire();
                let began = Instant::now();
                // Another job on this machine may have changed its state file since this one
                // read it: build on what that one recorded, never over it (and the run lock,
                // taken before this job's first change, reads it again).
                let result = if shared.shared_hosts.contains(machine) && !cli.dry_run {
                    staged.reread_state()
                } else {
                    Ok(staged)
                };
                let result =
                    result.and_then(|staged| app::execute(staged, given, shared.reporter, label));
                seconds += began.elapsed().as_secs_f64();
                let failed = !matches!(&result, Ok(done) if done.failure.is_none());
                if !failed {
                    if let Ok(mut done) = shared.succeeded.lock() {
                        done.push(label.clone());
                    }
                }
                (result, failed, false)
            }
            Err(failed) => (
                Err(Error::Other(format!(
                    "not run: {} failed before its turn{}",
                    failed.join(", "),
                    stranded
                        .as_ref()
                        .filter(|(after, _)| shared
                            .succeeded
                            .lock()
                            .is_ok_and(|done| done.contains(after)))
                        .map(|(_, note)| format!("; {note}"))
                        .unwrap_or_default()
                ))),
                false,
                true,
            ),
        },
        Err(why) => (Err(Error::Other(format!("not run: {why}"))), false, true),
    };
    shared.waves.finish(*wave, label, failed);
    Outcome {
        out,
        result,
        not_run,
        seconds,
        trips: host.round_trips(),
    }
}
