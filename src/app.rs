//! One run of telem-deploy: options → recipe → facts → plan → (check | apply) → report.
//!
//! Data flows one way through this function; it holds no global state, so tests call it with a
//! fake host and captured output, as often as they like.

use std::io::Write;
use std::path::Path;

use crate::cli::{Action, Cli, Command, Format, ServiceManagerArg};
use crate::engine::{Engine, Manager, Status};
use crate::error::{Error, StepFailure};
use crate::host::{systemd_is_pid1, Host};
use crate::options::{Options, PasswordSource};
use crate::recipe::{self, Step};
use crate::render::Templates;
use crate::report::{self, ErrorReport, Outcome, Report, StepReport, Style, Summary};
use crate::state::State;
use crate::{context, password};

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
    let manager_arg = cli.service_manager;
    let opts = Options::resolve(cli, host)?;
    let summary = opts.summary();
    match opts.format {
        Format::Json => write!(io.err, "{summary}"),
        Format::Human => write!(io.out, "{summary}"),
    }
    .ok();
    let mut reported = false;
    let result = plan_and_run(&opts, manager_arg, host, io, &mut reported);
    if let (Err(e), Format::Json, false) = (&result, opts.format, reported) {
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

/// `reported` is set once the plan or result document has been written.
fn plan_and_run(
    opts: &Options,
    manager_arg: ServiceManagerArg,
    host: &dyn Host,
    io: &mut Io,
    reported: &mut bool,
) -> Result<u8, Error> {
    let loaded = recipe::load(opts.distro, opts.recipes.as_deref())?;
    // `webapp.enabled: true` in the recipe turns the web UI on as --webapp does.
    let enabled = opts.webapp || loaded.recipe.webapp.as_ref().is_some_and(|w| w.enabled);
    let effective = Options {
        webapp: enabled,
        ..opts.clone()
    };
    let opts = &effective;
    if opts.webapp && loaded.recipe.webapp.is_none() {
        return Err(Error::Usage(format!(
            "--webapp: {} has no `webapp` section",
            loaded.file
        )));
    }
    let templates = Templates::load(opts.templates.as_deref())?;
    let manager = match manager_arg {
        ServiceManagerArg::Systemd => Manager::Systemd,
        ServiceManagerArg::Direct => Manager::Direct,
        ServiceManagerArg::Auto if systemd_is_pid1(host) => Manager::Systemd,
        ServiceManagerArg::Auto => Manager::Direct,
    };
    let tls_material = crate::tls::resolve(opts, host, &loaded.recipe.nginx)?;
    // A certificate the operator placed by hand at the recipe's path also turns TLS on.
    let tls = tls_material.is_some()
        || matches!(
            host.stat(Path::new(&loaded.recipe.nginx.tls_certificate)),
            Ok(Some(_))
        );
    if opts.tls_only && !tls {
        return Err(Error::Usage(format!(
            "--tls-only needs a certificate: --tls-cert FILE --tls-key FILE, --tls-self-signed, or one at {}",
            loaded.recipe.nginx.tls_certificate
        )));
    }
    if let Some(note) = tls_material
        .as_ref()
        .and_then(|m| crate::tls::note(m, &loaded.recipe.nginx.tls_certificate))
    {
        writeln!(io.err, "{note}").ok();
    }
    let facts = crate::engine::facts::Facts::gather(host, &loaded.recipe);
    let mut vars = context::vars(&loaded.recipe, opts, manager, tls);
    vars.insert("os", &facts.os_vars());
    let shown_vars = ui_auth_line(opts, host, &loaded.recipe.nginx.htpasswd, &mut vars)?;
    let compiled = recipe::compile(&loaded, &vars)?;
    let state = State::load(host).map_err(|e| Error::Other(e.0))?;
    let mut eng = Engine::new(host, opts, &compiled, &templates, vars, manager, state, tls);
    eng.shown_vars = shown_vars;
    eng.facts = facts;
    eng.tls_material = tls_material;

    let steps: Vec<&Step> = compiled.actions[&opts.action]
        .iter()
        .filter(|s| eng.applies(s))
        .collect();
    webapp_preflight(&eng, &steps)?;
    let any_password = steps.iter().any(|s| uses_password(s));
    eng.stored_password = password::stored(host, &compiled.recipe.collector.config);
    let explicit =
        if any_password && !(opts.dry_run && opts.password_source == PasswordSource::Stdin) {
            opts.explicit_password()?
        } else {
            None
        };
    let needs_earlier_install = !matches!(opts.action, Action::Install | Action::Uninstall);
    eng.needs_install = needs_earlier_install && eng.stored_password.is_none();
    eng.password = explicit.or_else(|| eng.stored_password.clone());

    let mut report = Report {
        format: if opts.dry_run {
            "telem-deploy/plan"
        } else {
            "telem-deploy/result"
        },
        version: report::JSON_VERSION,
        action: opts.action.as_str().to_owned(),
        distro: opts.distro.as_str().to_owned(),
        host: opts.domain.clone(),
        recipe: compiled.file.clone(),
        service_manager: manager.name().to_owned(),
        steps: Vec::new(),
        summary: Summary::default(),
        error: None,
    };
    let style = Style { color: opts.color };

    if opts.dry_run {
        for step in &steps {
            let check = match eng.preflight(step) {
                // What the run would refuse with, before changing anything.
                Err(e) => crate::engine::Check::blocked(e.message),
                Ok(()) => eng.check(step).unwrap_or_else(|e| crate::engine::Check {
                    status: Status::Unknown,
                    changes: vec![format!("cannot check yet: {}", e.message)],
                    diff: None,
                }),
            };
            if check.status == Status::Change {
                eng.queue(eng.notifies(step));
            }
            report
                .steps
                .push(StepReport::new(step, check.status.into(), Some(check)));
        }
        report.summary = Summary::of(&report.steps);
        emit(&report, opts, &style, io, true);
        *reported = true;
        return Ok(if opts.detailed_exitcode && report.summary.pending() {
            3
        } else {
            0
        });
    }

    // Applying from here on: first the confirmation, before anything else can fail.
    confirm(opts, io)?;
    if eng.needs_install
        && steps
            .iter()
            .any(|s| uses_password(s) || matches!(s.kind, recipe::StepKind::Migrate(_)))
    {
        return Err(Error::Step(StepFailure {
            step: opts.action.as_str().to_owned(),
            message: crate::engine::INSTALL_FIRST.to_owned(),
            command: None,
            stderr_tail: None,
        }));
    }
    if any_password && eng.password.is_none() {
        eng.password = Some(if opts.interactive {
            password::prompt(opts.webapp)?
        } else {
            password::generate()
        });
    }
    let progress = crate::progress::Progress::new(opts, steps.len());
    let mut failure = None;
    // Whatever would make a later step refuse is found before the first step changes anything.
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = eng.preflight(step) {
            let mut r = StepReport::new(step, Outcome::Failed, None);
            r.error = Some(ErrorReport::from(&e));
            for before in &steps[..i] {
                report
                    .steps
                    .push(StepReport::new(before, Outcome::NotRun, None));
            }
            report.steps.push(r);
            failure = Some((step.name.clone(), e));
            break;
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if failure.is_some() {
            break;
        }
        progress.start(i, &step.name);
        let result = eng.check(step).and_then(|check| match check.status {
            Status::Ok => Ok((Outcome::Ok, check)),
            Status::Blocked => Err(crate::engine::StepError::msg(check.changes.join("; "))),
            Status::Change | Status::Unknown => {
                eng.owe(eng.notifies(step))?;
                eng.apply(step)?;
                eng.queue(eng.notifies(step));
                Ok((Outcome::Changed, check))
            }
        });
        let rep = match result {
            Ok((outcome, check)) => StepReport::new(step, outcome, Some(check)),
            Err(e) => {
                let mut r = StepReport::new(step, Outcome::Failed, None);
                r.error = Some(ErrorReport::from(&e));
                failure = Some((step.name.clone(), e));
                r
            }
        };
        progress.finish(&style, i, steps.len(), &rep);
        report.steps.push(rep);
        if failure.is_some() {
            break;
        }
    }
    for step in steps.iter().skip(report.steps.len()) {
        report
            .steps
            .push(StepReport::new(step, Outcome::NotRun, None));
    }
    // Queued reloads and restarts run even after a failure.
    for r in eng.flush_handlers() {
        match r {
            Ok(done) => progress.note(&done),
            Err((name, e)) => {
                progress.note(&format!("handler for {name} failed: {}", e.message));
                if failure.is_none() {
                    failure = Some((format!("restart {name}"), e));
                }
            }
        }
    }
    progress.clear();
    report.summary = Summary::of(&report.steps);
    if let Some((_, e)) = &failure {
        report.error = Some(ErrorReport::from(e));
    }
    emit(&report, opts, &style, io, false);
    *reported = true;
    match failure {
        Some((step, e)) => Err(Error::Step(StepFailure {
            step,
            message: e.message,
            command: e.command,
            stderr_tail: e.stderr_tail,
        })),
        None => Ok(0),
    }
}

/// For `--ui-auth USER`: put the htpasswd line in `vars` (reusing the file's line when it
/// already holds the password); returns it as a secret template variable with the value plans
/// show instead.
fn ui_auth_line(
    opts: &Options,
    host: &dyn Host,
    path: &str,
    vars: &mut tera::Context,
) -> Result<Vec<(String, String)>, Error> {
    let Some(user) = &opts.ui_auth else {
        return Ok(Vec::new());
    };
    let existing = crate::htpasswd::existing(host, path, user);
    let password = match crate::options::explicit_ui_password(opts)? {
        Some(p) => Some(p),
        None if opts.dry_run || existing.is_some() => None,
        None if opts.interactive => Some(password::prompt_new(&format!("Web UI password for {user}: "))?),
        None => {
            return Err(Error::Usage(
                "--ui-auth needs the password: --ui-password-file FILE or TELEM_UI_PASSWORD (no terminal to ask on)".into(),
            ))
        }
    };
    let line = match (&password, &existing) {
        (Some(pw), _) => crate::htpasswd::line(existing.as_deref(), user, pw),
        (None, Some(line)) => line.clone(),
        (None, None) => format!("{user}:{}", crate::secret::MASK),
    };
    vars.insert("ui_htpasswd", &line);
    Ok(vec![(
        "ui_htpasswd".to_owned(),
        format!("{user}:{}", crate::secret::MASK),
    )])
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

fn uses_password(step: &Step) -> bool {
    match &step.kind {
        recipe::StepKind::PostgresPassword(_) => true,
        recipe::StepKind::File(f) => f.secret,
        _ => false,
    }
}

fn emit(report: &Report, opts: &Options, style: &Style, io: &mut Io, plan: bool) {
    match opts.format {
        Format::Json => {
            report::write_json(report, io.out).ok();
        }
        Format::Human if plan => {
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
