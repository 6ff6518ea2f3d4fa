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

pub fn check(eng: &Engine, step: &HealthStep) -> Result<Check, StepError> {
    match eng
        .host
        .http_get("127.0.0.1", step.port, &step.host, &step.path, 2)
    {
        Ok(200) => Ok(Check::ok(format!("{} answers 200", url(step)))),
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
            Ok(200) => return Ok(()),
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
