//! The run's secrets, resolved once: the database password (given explicitly, stored by an
//! earlier install, asked for on a terminal or generated) and the line of the web UI's user
//! file (`--ui-auth`). Only applying asks or generates; a dry run shows what it does not know
//! as `********`.

use crate::cli::Action;
use crate::error::Error;
use crate::executor::Mode;
use crate::failure::StepError;
use crate::host::Host;
use crate::options::{Options, PasswordSource};
use crate::recipe::{Recipe, Step, StepKind};
use crate::secret::{Secret, MASK};
use crate::{htpasswd, password};

/// The template variable holding the web UI's user-file line.
pub const UI_HTPASSWD: &str = "ui_htpasswd";

#[derive(Default)]
pub struct Secrets {
    /// The password the database role should have, when known.
    pub password: Option<Secret>,
    /// The password the collector config on disk holds.
    pub stored_password: Option<Secret>,
    /// The action needs an earlier install that has not happened (no stored password).
    pub needs_install: bool,
    /// `--ui-auth USER`: the user file's line.
    pub ui_htpasswd: Option<UiLine>,
}

/// The line of the web UI's user file, and what plans show in its place.
pub struct UiLine {
    pub line: String,
    pub shown: String,
}

/// The secrets given to the whole run on the controller, shared by every target: the explicit
/// passwords (read at most once, when a target first needs them) and the ones asked for once,
/// before any target is touched ([`Needs`]).
#[derive(Default)]
pub struct Given {
    db: std::sync::OnceLock<Result<Option<Secret>, String>>,
    ui: std::sync::OnceLock<Result<Option<Secret>, String>>,
    /// The database password typed at the prompt, for targets that have none.
    pub prompted_db: Option<Secret>,
    /// The web UI password typed at the prompt, for targets whose user file lacks it.
    pub prompted_ui: Option<Secret>,
}

impl Given {
    /// `--db-password-file`, `--db-password-stdin` or `TELEM_DB_PASSWORD`, checked for
    /// `opts` (a web UI refuses more).
    fn db_password(&self, opts: &Options) -> Result<Option<Secret>, Error> {
        let raw = self
            .db
            .get_or_init(|| opts.read_explicit_password().map_err(|e| e.to_string()));
        match raw {
            Err(msg) => Err(Error::Usage(msg.clone())),
            Ok(None) => Ok(None),
            Ok(Some(pw)) => {
                password::check_usable(pw, password::Kind::Database, opts.webapp)?;
                Ok(Some(pw.clone()))
            }
        }
    }

    /// `--ui-password-file` or `TELEM_UI_PASSWORD`.
    fn ui_password(&self, opts: &Options) -> Result<Option<Secret>, Error> {
        let raw = self
            .ui
            .get_or_init(|| crate::options::explicit_ui_password(opts).map_err(|e| e.to_string()));
        raw.clone().map_err(Error::Usage)
    }
}

/// What a target would have to be asked for: found while planning, asked once for all targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Applying sets the database password, none is given and the target stores none.
    pub db_password: bool,
    /// `--ui-auth USER` while applying, no password given, and the target's user file has no
    /// line for USER.
    pub ui_password: bool,
}

impl Needs {
    /// What applying `steps` on `host` needs that was not given (reads only).
    pub fn of(opts: &Options, host: &dyn Host, recipe: &Recipe, steps: &[&Step]) -> Needs {
        if opts.dry_run {
            return Needs::default();
        }
        let db_password = opts.password_source == PasswordSource::Implicit
            && steps.iter().any(|s| uses_password(s))
            && password::stored(host, &recipe.collector.config).is_none();
        let ui_password = opts.ui_auth.as_ref().is_some_and(|user| {
            opts.ui_password_file.is_none()
                && std::env::var_os(crate::secret::UI_PASSWORD_ENV).is_none()
                && htpasswd::existing(host, &recipe.nginx.htpasswd, user).is_none()
        });
        Needs {
            db_password,
            ui_password,
        }
    }

    pub fn any(self, other: Needs) -> Needs {
        Needs {
            db_password: self.db_password || other.db_password,
            ui_password: self.ui_password || other.ui_password,
        }
    }

    /// Ask on the terminal, once, for what some target needs (before any target is touched);
    /// with no terminal the database password is generated per target, and the web UI's is an
    /// error.
    pub fn ask(self, opts: &Options, given: &mut Given) -> Result<(), Error> {
        if self.ui_password {
            let user = opts.ui_auth.as_deref().unwrap_or_default();
            if !opts.interactive {
                return Err(Error::Usage(
                    "--ui-auth needs the password: --ui-password-file FILE or TELEM_UI_PASSWORD (no terminal to ask on)".into(),
                ));
            }
            given.prompted_ui = Some(password::prompt_new(&format!(
                "Web UI password for {user}: "
            ))?);
        }
        if self.db_password && opts.interactive {
            given.prompted_db = Some(password::prompt(opts.webapp)?);
        }
        Ok(())
    }
}

impl Secrets {
    /// The secrets `steps` need. Applying refuses a step that needs an earlier install, before
    /// anything changes; a password nobody gave is the one asked for ([`Needs::ask`]), else a
    /// generated one.
    pub fn resolve(
        opts: &Options,
        host: &dyn Host,
        recipe: &Recipe,
        steps: &[&Step],
        mode: Mode,
        given: &Given,
    ) -> Result<Secrets, Error> {
        let ui_htpasswd = ui_line(opts, host, &recipe.nginx.htpasswd, given)?;
        let any_password = steps.iter().any(|s| uses_password(s));
        let stored_password = password::stored(host, &recipe.collector.config);
        // A dry run does not consume stdin: the plan is the same with any password.
        let explicit = if any_password
            && !(mode == Mode::Check && opts.password_source == PasswordSource::Stdin)
        {
            given.db_password(opts)?
        } else {
            None
        };
        let needs_install = !matches!(opts.action, Action::Install | Action::Uninstall)
            && stored_password.is_none();
        let mut password = explicit.or_else(|| stored_password.clone());
        if mode == Mode::Apply {
            let needs_config = steps
                .iter()
                .any(|s| uses_password(s) || matches!(s.kind, StepKind::Migrate(_)));
            if needs_install && needs_config {
                return Err(Error::Step {
                    step: opts.action.as_str().to_owned(),
                    error: StepError::msg(crate::engine::INSTALL_FIRST),
                });
            }
            if any_password && password.is_none() {
                password = Some(given.prompted_db.clone().unwrap_or_else(password::generate));
            }
        }
        Ok(Secrets {
            password,
            stored_password,
            needs_install,
            ui_htpasswd,
        })
    }
}

/// Does the step hold or set the database password?
fn uses_password(step: &Step) -> bool {
    match &step.kind {
        StepKind::PostgresPassword(_) => true,
        StepKind::File(f) => f.secret,
        _ => false,
    }
}

/// For `--ui-auth USER`: the user file's line (the file's own when it already holds the
/// password; masked in a dry run that does not know the password).
fn ui_line(
    opts: &Options,
    host: &dyn Host,
    path: &str,
    given: &Given,
) -> Result<Option<UiLine>, Error> {
    let Some(user) = &opts.ui_auth else {
        return Ok(None);
    };
    let existing = htpasswd::existing(host, path, user);
    let password = match given.ui_password(opts)? {
        Some(p) => Some(p),
        None if opts.dry_run || existing.is_some() => None,
        None => match &given.prompted_ui {
            Some(p) => Some(p.clone()),
            None => {
                return Err(Error::Usage(
                    "--ui-auth needs the password: --ui-password-file FILE or TELEM_UI_PASSWORD (no terminal to ask on)".into(),
                ))
            }
        },
    };
    let line = match (&password, &existing) {
        (Some(pw), _) => htpasswd::line(existing.as_deref(), user, pw),
        (None, Some(line)) => line.clone(),
        (None, None) => format!("{user}:{MASK}"),
    };
    Ok(Some(UiLine {
        line,
        shown: format!("{user}:{MASK}"),
    }))
}
