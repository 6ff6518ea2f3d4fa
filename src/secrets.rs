//! The run's secrets, resolved once: the database password (given explicitly, stored by an
//! earlier install, asked for on a terminal or generated) and the line of the web UI's user
//! file (`--ui-auth`). Only applying asks or generates; a dry run shows what it does not know
//! as `********`.

use std::io::Write;

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

/// The secrets given to the whole run on the controller, shared by every target: read once
/// and asked once, before any target changes ([`crate::app::settle`]).
#[derive(Default)]
pub struct Given {
    /// `--db-password-file`, `--db-password-stdin` or `TELEM_DB_PASSWORD` (not yet checked
    /// against a target's web UI: see [`password::check_usable`]).
    pub db: Option<Secret>,
    /// `--ui-password-file` or `TELEM_UI_PASSWORD`.
    pub ui: Option<Secret>,
    /// The database password typed at the prompt, for targets that have none.
    pub prompted_db: Option<Secret>,
    /// The web UI password typed at the prompt, for targets whose user file lacks it.
    pub prompted_ui: Option<Secret>,
}

impl Given {
    /// Read the explicitly given passwords some target uses; warnings go to `warn`. A dry run
    /// does not consume stdin: the plan is the same with any password.
    pub fn read(opts: &Options, needs: Needs, warn: &mut dyn Write) -> Result<Given, Error> {
        let db = if needs.uses_db_password
            && !(opts.dry_run && opts.password_source == PasswordSource::Stdin)
        {
            opts.read_explicit_password(warn)?
        } else {
            None
        };
        let ui = if opts.ui_auth.is_some() {
            crate::options::explicit_ui_password(opts, warn)?
        } else {
            None
        };
        Ok(Given {
            db,
            ui,
            ..Given::default()
        })
    }

    /// The explicit database password, checked for `opts` (a web UI refuses more).
    fn db_password(&self, opts: &Options) -> Result<Option<Secret>, Error> {
        match &self.db {
            Some(pw) => {
                password::check_usable(pw, password::Kind::Database, opts.webapp)?;
                Ok(Some(pw.clone()))
            }
            None => Ok(None),
        }
    }
}

/// What a target would have to be asked for: found while planning, asked once for all targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Some step holds or sets the database password.
    pub uses_db_password: bool,
    /// Applying sets the database password, none is given and the target stores none.
    pub db_password: bool,
    /// `--ui-auth USER` while applying, no password given, and the target's user file has no
    /// line for USER.
    pub ui_password: bool,
}

impl Needs {
    /// What applying `steps` on `host` needs that was not given (reads only).
    pub fn of(opts: &Options, host: &dyn Host, recipe: &Recipe, steps: &[&Step]) -> Needs {
        let uses_db_password = steps.iter().any(|s| uses_password(s));
        if opts.dry_run {
            return Needs {
                uses_db_password,
                ..Needs::default()
            };
        }
        let db_password = opts.password_source == PasswordSource::Implicit
            && uses_db_password
            && password::stored(host, &recipe.collector.config).is_none();
        let ui_password = opts.ui_auth.as_ref().is_some_and(|user| {
            opts.ui_password_file.is_none()
                && std::env::var_os(crate::secret::UI_PASSWORD_ENV).is_none()
                && htpasswd::existing(host, &recipe.nginx.htpasswd, user).is_none()
        });
        Needs {
            uses_db_password,
            db_password,
            ui_password,
        }
    }

    pub fn any(self, other: Needs) -> Needs {
        Needs {
            uses_db_password: self.uses_db_password || other.uses_db_password,
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
        let explicit = if any_password {
            given.db_password(opts)?
        } else {
            None
        };
        // A host with a collector keeps the password in its config; an inventory's database
        // host has none and gets the inventory's password (the collectors' config's).
        let needs_install = !matches!(opts.action, Action::Install | Action::Uninstall)
            && stored_password.is_none()
            && (opts.roles().collector || explicit.is_none());
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
        StepKind::PostgresPassword(p) => crate::steps::Step::uses_password(p),
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
    let password = match &given.ui {
        Some(p) => Some(p.clone()),
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
