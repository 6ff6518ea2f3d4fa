//! `health` steps: the collector answers through nginx (to 127.0.0.1 with the domain as Host
//! header, so neither DNS nor a certificate is in the way).
//!
//! With `--tls-only` nginx serves no plain HTTP and this check does not speak TLS: it then asks
//! the collector itself at its listen address (nginx's part is its `nginx -t`-validated site and
//! its `service` step), and says so in the plan.

use std::time::{Duration, Instant};

use super::{Check, Engine, StepError};
use crate::recipe::model::HealthStep;

/// Where the check connects: nginx on 127.0.0.1, or the collector itself with `--tls-only`.
fn target(eng: &Engine, step: &HealthStep) -> (String, u16) {
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

fn url(eng: &Engine, step: &HealthStep) -> String {
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
fn answered(eng: &Engine, step: &HealthStep, code: u16) -> bool {
    code == 200 || (code == 401 && step.behind_ui_auth && eng.opts.ui_auth.is_some())
}

pub fn check(eng: &Engine, step: &HealthStep) -> Result<Check, StepError> {
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
pub fn apply(eng: &Engine, step: &HealthStep) -> Result<(), StepError> {
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
