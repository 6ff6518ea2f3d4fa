//! `health` steps: the collector answers through nginx (to 127.0.0.1 with the domain as Host
//! header, so neither DNS nor a certificate is in the way).

use std::time::{Duration, Instant};

use super::{Check, Engine, StepError};
use crate::recipe::model::HealthStep;

fn url(step: &HealthStep) -> String {
    format!(
        "http://127.0.0.1:{}{} (Host: {})",
        step.port, step.path, step.host
    )
}

/// 401 counts when the path is behind `--ui-auth` and it is on.
fn answered(eng: &Engine, step: &HealthStep, code: u16) -> bool {
    code == 200 || (code == 401 && step.behind_ui_auth && eng.opts.ui_auth.is_some())
}

pub fn check(eng: &Engine, step: &HealthStep) -> Result<Check, StepError> {
    match eng
        .host
        .http_get("127.0.0.1", step.port, &step.host, &step.path, 2)
    {
        Ok(200) => Ok(Check::ok(format!("{} answers 200", url(step)))),
        Ok(401) if answered(eng, step, 401) => Ok(Check::ok(format!(
            "{} answers 401 (--ui-auth: nginx asks for the password before the app)",
            url(step)
        ))),
        Ok(code) => Ok(Check::unknown(format!(
            "{} answers {code} now; checked again when applied",
            url(step)
        ))),
        Err(e) => Ok(Check::unknown(format!(
            "{}: {e}; checked again when applied",
            url(step)
        ))),
    }
}

/// Poll until the endpoint answers 200 or the step's timeout passes.
pub fn apply(eng: &Engine, step: &HealthStep) -> Result<(), StepError> {
    let deadline = Instant::now() + Duration::from_secs(step.timeout_secs);
    loop {
        let last = match eng
            .host
            .http_get("127.0.0.1", step.port, &step.host, &step.path, 2)
        {
            Ok(code) if answered(eng, step, code) => return Ok(()),
            Ok(code) => format!("answered HTTP {code}"),
            Err(e) => e.0,
        };
        if Instant::now() >= deadline {
            return Err(StepError::msg(format!(
                "health check {} failed after {} s: {last}",
                url(step),
                step.timeout_secs
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
