//! One run of telem-deploy: options (and the recipe they select) → plan (recipe compiled with
//! the target's facts) → engine → selected steps → secrets → the loop (check only, or apply)
//! → report.
//!
//! Data flows one way; nothing here is global, so tests call `run_cli` with a fake host and
//! captured output, as often as they like.

use std::io::Write;

use crate::cli::{Action, Cli, Command, Format};
use crate::controller::Bundle;
use crate::engine::Engine;
use crate::error::Error;
use crate::executor::{self, Mode};
use crate::host::Host;
use crate::options::Options;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::recipe::{self, Step};
use crate::report::{self, Report, Style, Summary};
use crate::secrets::Secrets;
use crate::state::State;

/// Where output goes: stdout (the plan or the JSON document) and stderr (everything else).
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// Run with parsed arguments against `host`; `Ok` carries the exit code (0, or 3 for pending
/// changes with `--detailed-exitcode`).
pub fn run_cli(cli: Cli, host: &dyn Host, io: &mut Io) -> Result<u8, Error> {
    match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "telem-deploy", io.out);
            return Ok(0);
        }
        Some(Command::PgAdmin) => return Ok(crate::engine::pgadmin::serve_stdin()),
        None => {}
    }
    let format = cli.format;
    let mut reported = false;
    let result = run(cli, host, io, &mut reported);
    if let (Err(e), Format::Json, false) = (&result, format, reported) {
        // Even a failure before any step leaves one JSON document on stdout.
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
    result
}

/// One run: options, plan, engine, the selected steps, secrets, the loop, the report.
/// `reported` is set once the plan or result document has been written.
fn run(cli: Cli, host: &dyn Host, io: &mut Io, reported: &mut bool) -> Result<u8, Error> {
    let (opts, loaded) = Options::resolve(cli, host)?;
    let summary = opts.summary();
    match opts.format {
        Format::Json => write!(io.err, "{summary}"),
        Format::Human => write!(io.out, "{summary}"),
    }
    .ok();
    let plan = Plan::build(&opts, &loaded, host, io.err)?;
    let state = State::load(host).map_err(|e| Error::Other(e.0))?;
    let bundle = Bundle::new(opts.collector_bin.as_deref());
    let eng = Engine::new(host, &opts, &plan, state, &bundle);
    let steps: Vec<&Step> = plan
        .steps(opts.action)
        .iter()
        .filter(|s| eng.applies(s))
        .collect();
    webapp_preflight(&eng, &steps)?;
    let mode = if opts.dry_run {
        Mode::Check
    } else {
        // Applying: first the confirmation, before anything else can fail.
        confirm(&opts, io)?;
        Mode::Apply
    };
    let secrets = Secrets::resolve(&opts, host, &plan.recipe.recipe, &steps, mode)?;
    let eng = eng.with_secrets(secrets);
    let style = Style { color: opts.color };
    let progress = (mode == Mode::Apply).then(|| Progress::new(&opts, steps.len()));
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
    emit(&report, &opts, &style, io, mode);
    *reported = true;
    match (mode, ran.failure) {
        (_, Some((step, error))) => Err(Error::Step { step, error }),
        (Mode::Check, None) if opts.detailed_exitcode && report.summary.pending() => Ok(3),
        _ => Ok(0),
    }
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

fn emit(report: &Report, opts: &Options, style: &Style, io: &mut Io, mode: Mode) {
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
fn confirm(opts: &Options, io: &mut Io) -> Result<(), Error> {
    if !opts.action.is_destructive() || opts.yes {
        return Ok(());
    }
    let what = match opts.action {
        Action::Resetdb => "drop and re-create the telemetry database (all records)",
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
