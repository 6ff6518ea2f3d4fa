//! One run of telem-deploy: options (and the recipe they select) → plan (recipe compiled with
//! the target's facts) → engine → selected steps → secrets → the loop (check only, or apply)
//! → report.
//!
//! Data flows one way; nothing here is global, so tests call `run_cli` with a fake host and
//! captured output, as often as they like.

use std::io::Write;

use crate::cli::{Action, Cli, Command, Format};
use crate::controller::Controller;
use crate::engine::Engine;
use crate::error::Error;
use crate::executor::{self, Mode};
use crate::failure::StepError;
use crate::host::Host;
use crate::options::Options;
use crate::plan::Plan;
use crate::progress::Reporter;
use crate::recipe::{self, Step};
use crate::report::{self, Report, Style, Summary};
use crate::secrets::{Given, Needs, Secrets};
use crate::state::State;

/// Where output goes: stdout (the plan or the JSON document) and stderr (everything else).
pub struct Io<'a> {
    pub out: &'a mut (dyn Write + Send),
    pub err: &'a mut (dyn Write + Send),
}

/// Run with parsed arguments against `host` (or, with `--target`, the machines named there);
/// `Ok` carries the exit code (0, or 3 for pending changes with `--detailed-exitcode`).
pub fn run_cli(cli: Cli, host: &dyn Host, io: &mut Io) -> Result<u8, Error> {
    run_cli_with(cli, host, None, io)
}

/// As [`run_cli`], with the controller's certificate authority `ca` (what an inventory
/// names; tests give one directly) for the run on `host` (`--target` runs take theirs from
/// the inventory).
pub fn run_cli_with(
    cli: Cli,
    host: &dyn Host,
    ca: Option<std::sync::Arc<crate::ca::Ca>>,
    io: &mut Io,
) -> Result<u8, Error> {
    match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "telem-deploy", io.out);
            return Ok(0);
        }
        None => {}
    }
    let format = cli.format;
    let mut reported = false;
    let result = match crate::fleet::targets(&cli) {
        Ok(None) if cli.inventory.is_some() => {
            crate::fleet::inventory::run(cli, io).inspect(|_| reported = true)
        }
        Ok(None) => run(cli, host, ca, io, &mut reported),
        Ok(Some(targets)) => crate::fleet::run_ssh(cli, targets, io).inspect(|_| reported = true),
        Err(e) => Err(e),
    };
    if let (Err(e), false) = (&result, reported) {
        error_document(e, format, io);
    }
    result
}

/// With `--format json`, a run that ended in `e` before its plan or result was written still
/// leaves one JSON document on stdout.
fn error_document(e: &Error, format: Format, io: &mut Io) {
    if format != Format::Json {
        return;
    }
    let doc = serde_json::json!({
        "format": "telem-deploy/error",
        "version": report::JSON_VERSION,
        "error": { "message": e.to_string(), "exit_code": e.exit_code() },
    });
    writeln!(
        io.out,
        "{}",
        serde_json::to_string_pretty(&doc).expect("json")
    )
    .ok();
}

/// Run with parsed arguments on the targets `labels` (each reached through `connect`), as
/// `--target` does over SSH: planned and changed in parallel, one document for all.
pub fn run_targets<'h>(
    cli: Cli,
    labels: Vec<String>,
    connect: crate::fleet::Connect<'_, 'h>,
    io: &mut Io,
) -> Result<u8, Error> {
    crate::fleet::run(cli, labels, connect, io)
}

/// Run with parsed arguments on the hosts of `--inventory`, each reached through `connect` by
/// its name in the inventory: in waves, one document for all.
pub fn run_inventory<'h>(
    cli: Cli,
    connect: crate::fleet::Connect<'_, 'h>,
    io: &mut Io,
) -> Result<u8, Error> {
    let format = cli.format;
    let result = crate::fleet::inventory::load(&cli)
        .and_then(|inventory| crate::fleet::inventory::run_with(cli, &inventory, connect, io));
    if let Err(e) = &result {
        error_document(e, format, io);
    }
    result
}

/// One run on one machine: prepare, ask, execute, report. `reported` is set once the plan or
/// result document has been written.
fn run(
    cli: Cli,
    host: &dyn Host,
    ca: Option<std::sync::Arc<crate::ca::Ca>>,
    io: &mut Io,
    reported: &mut bool,
) -> Result<u8, Error> {
    let controller = Controller {
        ca,
        ..Controller::new(cli.collector_bin.as_deref())
    };
    let prepared = prepare(cli, host, io)?;
    let staged = stage(&prepared, host, &controller)?;
    let given = settle(&prepared.opts, staged.needs, io)?;
    let done = {
        let sink = std::sync::Mutex::new(&mut *io.err);
        let lines = |text: &str| {
            if let Ok(mut err) = sink.lock() {
                writeln!(err, "{text}").ok();
            }
        };
        let reporter = Reporter::new(&prepared.opts, &lines);
        execute(staged, &given, &reporter, "")?
    };
    emit(&done.report, &done.opts, io, done.mode);
    *reported = true;
    done.exit()
}

/// Everything a target's run is decided by, found with reads only: its options, the plan and
/// its state file.
pub(crate) struct Prepared {
    pub opts: Options,
    plan: Plan,
    state: State,
}

/// Options, plan and state: reads only, nothing on the machine changes. The options' summary
/// goes to `io` (stdout, or stderr with `--format json`).
pub(crate) fn prepare(cli: Cli, host: &dyn Host, io: &mut Io) -> Result<Prepared, Error> {
    let (opts, loaded) = Options::resolve(cli, host)?;
    let summary = opts.summary();
    match opts.format {
        Format::Json => write!(io.err, "{summary}"),
        Format::Human => write!(io.out, "{summary}"),
    }
    .ok();
    let plan = Plan::build(&opts, &loaded, host, io.err)?;
    let state = State::load(host).map_err(|e| Error::Other(e.0))?;
    // A dry run is not refused: it shows every step blocked ("run install first", the
    // engine's `not_installed`), as for any precondition an earlier action sets up.
    if !opts.dry_run {
        crate::not_installed::check(opts.action, &state)?;
    }
    Ok(Prepared { opts, plan, state })
}

/// The database password the prepared target's collector config holds (reads only).
pub(crate) fn stored_password(
    prepared: &Prepared,
    host: &dyn Host,
) -> Option<crate::secret::Secret> {
    crate::password::stored(host, &prepared.plan.recipe.recipe.collector.config)
}

/// A prepared target with its engine (one per target and run: what it finds, such as the
/// packages a removal takes, it finds once), the steps that apply, and what it would need
/// asked.
pub(crate) struct Staged<'a> {
    prepared: &'a Prepared,
    host: &'a dyn Host,
    eng: Engine<'a>,
    steps: Vec<&'a Step>,
    pub needs: Needs,
}

/// The engine, the selected steps, what the web UI's steps refuse, what would be asked:
/// reads only.
pub(crate) fn stage<'a>(
    prepared: &'a Prepared,
    host: &'a dyn Host,
    controller: &'a Controller,
) -> Result<Staged<'a>, Error> {
    let Prepared { opts, plan, state } = prepared;
    let eng = Engine::new(host, opts, plan, state.clone(), controller);
    let steps = selected(&eng, plan, opts);
    webapp_preflight(&eng, &steps)?;
    let needs = Needs::of(opts, host, &plan.recipe.recipe, &steps);
    Ok(Staged {
        prepared,
        host,
        eng,
        steps,
        needs,
    })
}

impl Staged<'_> {
    /// The state file read again from the machine (another job of the run on the same machine
    /// may have changed it since planning): what this job checks and records builds on it,
    /// and the reloads and restarts it says are owed are owed by this job too.
    pub(crate) fn reread_state(self) -> Result<Self, Error> {
        let state = State::load(self.host).map_err(|e| Error::Other(e.0))?;
        self.eng.replace_state(state);
        Ok(self)
    }
}

/// On the controller, once for all targets, before anything changes anywhere: the passwords
/// given (read), the confirmation of a destructive action, then the passwords some target
/// needs (asked).
pub(crate) fn settle(opts: &Options, needs: Needs, io: &mut Io) -> Result<Given, Error> {
    let mut given = Given::read(opts, needs, io.err)?;
    if !opts.dry_run {
        confirm(opts, io)?;
        needs.ask(opts, &mut given)?;
    }
    Ok(given)
}

fn selected<'p>(eng: &Engine, plan: &'p Plan, opts: &Options) -> Vec<&'p Step> {
    plan.steps(opts.action)
        .iter()
        .filter(|s| eng.applies(s))
        .collect()
}

/// A target's run once planned: its report, and how it ended.
pub(crate) struct Done {
    pub opts: Options,
    pub mode: Mode,
    pub report: Report,
    pub failure: Option<(String, StepError)>,
}

impl Done {
    /// The exit code of this run alone, or the error it ended with.
    pub fn exit(self) -> Result<u8, Error> {
        match (self.mode, self.failure) {
            (_, Some((step, error))) => Err(Error::Step { step, error }),
            (Mode::Check, None) if self.opts.detailed_exitcode && self.report.summary.pending() => {
                Ok(3)
            }
            _ => Ok(0),
        }
    }
}

/// The loop on one target: check only (dry run), or apply, with the secrets it needs (the
/// machine's run lock is taken before the first change: `engine/run_lock.rs`).
pub(crate) fn execute(
    staged: Staged,
    given: &Given,
    reporter: &Reporter,
    label: &str,
) -> Result<Done, Error> {
    let Staged {
        prepared: Prepared { opts, plan, .. },
        host,
        eng,
        steps,
        ..
    } = staged;
    let mode = if opts.dry_run {
        Mode::Check
    } else {
        Mode::Apply
    };
    let secrets = Secrets::resolve(opts, host, &plan.recipe.recipe, &steps, mode, given)?;
    let eng = eng.with_secrets(secrets);
    let style = Style { color: opts.color };
    let progress = (mode == Mode::Apply).then(|| reporter.target(label, steps.len()));
    let ran = executor::run(&eng, &steps, mode, progress.as_ref(), &style);
    let report = Report {
        format: match mode {
            Mode::Check => "telem-deploy/plan",
            Mode::Apply => "telem-deploy/result",
        },
        version: report::JSON_VERSION,
        action: opts.action.as_str().to_owned(),
        distro: opts.distro.as_str().to_owned(),
        host: opts.domain.clone(),
        recipe: plan.recipe.file.clone(),
        service_manager: opts.manager.name().to_owned(),
        summary: Summary::of(&ran.steps),
        steps: ran.steps,
        error: ran.failure.as_ref().map(|(_, e)| e.clone()),
    };
    drop(eng);
    Ok(Done {
        opts: opts.clone(),
        mode,
        report,
        failure: ran.failure,
    })
}

/// What the web UI's steps can refuse before anything changes (exit 2, plan and apply
/// alike): a snapshot whose symlinks leave it, a Python too old for the web UI.
fn webapp_preflight(eng: &Engine, steps: &[&Step]) -> Result<(), Error> {
    for step in steps {
        let refused = match &step.kind {
            recipe::StepKind::Snapshot(s) => crate::engine::snapshot::preflight(eng, s),
            recipe::StepKind::Venv(v) => match &eng.recipe.recipe.webapp {
                Some(w) => {
                    crate::engine::venv::preflight(eng, v, &w.min_python, &w.unsupported_releases)
                }
                None => Ok(()),
            },
            _ => Ok(()),
        };
        refused.map_err(Error::Usage)?;
    }
    Ok(())
}

/// The plan (dry run) or the summary (apply), or the JSON document, on stdout.
pub(crate) fn emit(report: &Report, opts: &Options, io: &mut Io, mode: Mode) {
    let style = &Style { color: opts.color };
    match opts.format {
        Format::Json => {
            report::write_json(report, io.out).ok();
        }
        Format::Human if mode == Mode::Check => {
            write!(io.out, "{}", report::human_plan(report, style)).ok();
        }
        Format::Human => {
            writeln!(io.out, "{}", report::human_summary(report)).ok();
        }
    }
}

/// resetdb and uninstall destroy data: ask, unless --yes; with no terminal, refuse.
pub(crate) fn confirm(opts: &Options, io: &mut Io) -> Result<(), Error> {
    if !opts.action.is_destructive() || opts.yes {
        return Ok(());
    }
    let what = match opts.action {
        Action::Resetdb => "drop and re-create the telemetry database (all records)",
        Action::Promote => "make the standby the primary and fence the old primary (stopped, never again a primary)",
        _ => "remove the collector, its site and the telemetry database (all records)",
    };
    if !opts.interactive {
        return Err(Error::NotConfirmed(format!(
            "`{}` would {what}; pass --yes to confirm (no terminal to ask on)",
            opts.action.as_str()
        )));
    }
    io.err.flush().ok();
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!("This will {what}. Continue?"))
        .default(false)
        .interact()
        .map_err(|e| Error::Other(format!("confirmation: {e}")))?;
    if yes {
        Ok(())
    } else {
        Err(Error::NotConfirmed(
            "not confirmed; nothing was changed".into(),
        ))
    }
}
