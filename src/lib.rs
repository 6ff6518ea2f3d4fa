//! telem-deploy: declarative, idempotent provisioning of a Clear Linux telemetry backend.
//!
//! Data flows one way (see `app`): `cli` (raw flags) → `options` (resolved, with the `recipe`
//! they select) → `plan` (the recipe compiled with the target's facts) → `engine` (check, then
//! change only what differs, through the `host` boundary) with the run's `secrets` → the
//! `executor`'s loop (check only, or apply) → `report`. Each kind of step is one file of `steps`; how to add one:
//! ARCHITECTURE.md. A step fails with a
//! [`failure::StepError`]; the run ends with an [`Error`] and its exit code.

// What the tests and the binary use; everything else is the crate's own, so the compiler
// reports what nothing uses.
pub mod app;
pub mod cli;
pub mod host;
pub mod recipe;
pub mod tls;

pub mod ca;
pub(crate) mod context;
pub(crate) mod controller;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod executor;
pub(crate) mod failure;
pub mod fleet;
pub(crate) mod htpasswd;
pub mod inventory;
pub(crate) mod not_installed;
pub(crate) mod options;
pub(crate) mod password;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod render;
pub(crate) mod report;
pub(crate) mod secret;
pub(crate) mod secrets;
pub(crate) mod state;
pub(crate) mod steps;

use std::ffi::OsString;

pub use error::Error;

/// What `main` needs: run with these arguments on this machine, get the exit code.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_args(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = u8::try_from(e.exit_code()).unwrap_or(2);
            if code == 2 && !e.to_string().contains("Usage:") {
                // Every usage error shows the usage, as deploy.sh did.
                let mut cmd = <cli::Cli as clap::CommandFactory>::command();
                eprintln!("\n{}", cmd.render_usage());
            }
            return code;
        }
    };
    let host = host::LocalHost;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut io = app::Io {
        out: &mut out,
        err: &mut err,
    };
    match app::run_cli(cli, &host, &mut io) {
        Ok(code) => code,
        Err(e @ Error::Recipe(_)) => {
            // Recipe errors carry their own `error:` lines.
            eprintln!("{e}");
            e.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
