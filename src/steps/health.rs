//! `health` steps: the collector answers through nginx (to 127.0.0.1 with the domain as Host
//! header, so neither DNS nor a certificate is in the way).
//!
//! With `--tls-only` nginx serves no plain HTTP and this check does not speak TLS: it then asks
//! the collector itself at its listen address (nginx's part is its `nginx -t`-validated site and
//! its `service` step), and says so in the plan.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub path: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The Host header (the -H domain).
    pub host: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The path is behind `--ui-auth`: with it, nginx answers 401 before the app is reached,
    /// and that answer counts (the app's own answer needs the password).
    #[serde(default)]
    pub behind_ui_auth: bool,
}

fn default_port() -> u16 {
    80
}

fn default_timeout() -> u64 {
    15
}

impl Step for Health {
    const KIND: &'static str = "health";
    type Raw = Health;

    fn compile(raw: &Health, c: &mut Compiler) -> Option<Health> {
        if !c.waits(&raw.path) && !raw.path.starts_with('/') {
            c.error("path", "must start with /");
            return None;
        }
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        apply(eng, self)
    }
}

/// Where the check connects: nginx on 127.0.0.1, or the collector itself with `--tls-only`.
fn target(eng: &Engine, step: &Health) -> (String, u16) {
    let listen = &eng.recipe.recipe.collector.listen;
    if eng.opts.tls_only {
        if let Some((addr, port)) = listen.rsplit_once(':') {
            if let Ok(port) = port.parse() {
                return (addr.trim_matches(['[', ']']).to_owned(), port);
            }
        }
    }
    ("127.0.0.1".to_owned(), step.port)
}

fn url(eng: &Engine, step: &Health) -> String {
    let (addr, port) = target(eng, step);
    let via = if eng.opts.tls_only {
        ", the collector directly: --tls-only leaves nginx no plain HTTP"
    } else {
        ""
    };
    format!(
        "http://{addr}:{port}{} (Host: {}{via})",
        step.path, step.host
    )
}

/// 401 counts when the path is behind `--ui-auth` and it is on.
fn answered(eng: &Engine, step: &Health, code: u16) -> bool {
    code == 200 || (code == 401 && step.behind_ui_auth && eng.opts.ui_auth.is_some())
}

fn check(eng: &Engine, step: &Health) -> Result<Check, StepError> {
    let (addr, port) = target(eng, step);
    match eng.host.http_get(&addr, port, &step.host, &step.path, 2) {
        Ok(200) => Ok(Check::ok(format!("{} answers 200", url(eng, step)))),
        Ok(401) if answered(eng, step, 401) => Ok(Check::ok(format!(
            "{} answers 401 (--ui-auth: nginx asks for the password before the app)",
            url(eng, step)
        ))),
        Ok(code) => Ok(Check::unknown(format!(
            "{} answers {code} now; checked again when applied",
            url(eng, step)
        ))),
        Err(e) => Ok(Check::unknown(format!(
            "{}: {e}; checked again when applied",
            url(eng, step)
        ))),
    }
}

/// Poll until the endpoint answers 200 or the step's timeout passes.
fn apply(eng: &Engine, step: &Health) -> Result<(), StepError> {
    let deadline = Instant::now() + Duration::from_secs(step.timeout_secs);
    loop {
        let (addr, port) = target(eng, step);
        let last = match eng.host.http_get(&addr, port, &step.host, &step.path, 2) {
            Ok(code) if answered(eng, step, code) => return Ok(()),
            Ok(code) => format!("answered HTTP {code}"),
            Err(e) => e.0,
        };
        if Instant::now() >= deadline {
            return Err(StepError::msg(format!(
                "health check {} failed after {} s: {last}",
                url(eng, step),
                step.timeout_secs
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
