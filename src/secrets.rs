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

impl Secrets {
    /// The secrets `steps` need. Applying (after the confirmation) may prompt or generate, and
    /// refuses a step that needs an earlier install, before anything changes.
    pub fn resolve(
        opts: &Options,
        host: &dyn Host,
        recipe: &Recipe,
        steps: &[&Step],
        mode: Mode,
    ) -> Result<Secrets, Error> {
        let ui_htpasswd = ui_line(opts, host, &recipe.nginx.htpasswd)?;
        let any_password = steps.iter().any(|s| uses_password(s));
        let stored_password = password::stored(host, &recipe.collector.config);
        // A dry run does not consume stdin: the plan is the same with any password.
        let explicit = if any_password
            && !(mode == Mode::Check && opts.password_source == PasswordSource::Stdin)
        {
            opts.explicit_password()?
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
                password = Some(if opts.interactive {
                    password::prompt(opts.webapp)?
                } else {
                    password::generate()
                });
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
fn ui_line(opts: &Options, host: &dyn Host, path: &str) -> Result<Option<UiLine>, Error> {
    let Some(user) = &opts.ui_auth else {
        return Ok(None);
    };
    let existing = htpasswd::existing(host, path, user);
    let password = match crate::options::explicit_ui_password(opts)? {
        Some(p) => Some(p),
        None if opts.dry_run || existing.is_some() => None,
        None if opts.interactive => Some(password::prompt_new(&format!(
            "Web UI password for {user}: "
        ))?),
        None => {
            return Err(Error::Usage(
                "--ui-auth needs the password: --ui-password-file FILE or TELEM_UI_PASSWORD (no terminal to ask on)".into(),
            ))
        }
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
