//! `service` steps: running / stopped / restarted / reloaded, enabled at boot under systemd, and the
//! queued reload or restart of a service whose config changed earlier in the run.

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{Check, Engine, Manager, StepError};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::OnChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    Stopped,
    Restarted,
    /// Reloaded when running (nginx: new workers, no dropped connection; the collector: its
    /// binary upgrade), else started.
    Reloaded,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// A key of the recipe's `services` map.
    pub name: String,
    pub state: ServiceState,
    /// Start at boot (systemd only).
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl Step for Service {
    const KIND: &'static str = "service";
    type Raw = Service;

    fn compile(raw: &Service, c: &mut Compiler) -> Option<Service> {
        c.service("name", &raw.name).then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        apply(eng, self)
    }
}

fn check(eng: &Engine, step: &Service) -> Result<Check, StepError> {
    let def = eng.service(&step.name).expect("validated service name");
    let running = eng.services.is_running(def).map_err(StepError::host)?;
    let mut changes = Vec::new();
    match (step.state, running) {
        (ServiceState::Running, false) => changes.push(format!("start {}", def.unit)),
        (ServiceState::Running, true) if eng.pending_for(&step.name) => changes.push(format!(
            "{} {} (its configuration changed)",
            verb(def.on_change),
            def.unit
        )),
        (ServiceState::Stopped, true) => changes.push(format!("stop {}", def.unit)),
        (ServiceState::Restarted, _) => changes.push(format!("restart {}", def.unit)),
        (ServiceState::Reloaded, true) => changes.push(format!("reload {}", def.unit)),
        (ServiceState::Reloaded, false) => changes.push(format!("start {}", def.unit)),
        _ => {}
    }
    if let (Some(want), Some(is)) = (
        step.enabled,
        eng.services.is_enabled(def).map_err(StepError::host)?,
    ) {
        if want != is {
            changes.push(format!(
                "{} {} at boot",
                if want { "enable" } else { "disable" },
                def.unit
            ));
        }
    }
    if changes.is_empty() {
        let what = if running { "running" } else { "stopped" };
        return Ok(Check::ok(format!(
            "{} is {what} ({})",
            def.unit,
            eng.services.manager.name()
        )));
    }
    Ok(Check::change(changes))
}

fn verb(on_change: OnChange) -> &'static str {
    match on_change {
        OnChange::Reload => "reload",
        OnChange::Restart => "restart",
    }
}

fn apply(eng: &Engine, step: &Service) -> Result<(), StepError> {
    let def = eng.service(&step.name).expect("validated service name");
    let running = eng.services.is_running(def).map_err(StepError::host)?;
    let pending = eng.take_pending(&step.name);
    match step.state {
        ServiceState::Running if !running => eng.services.start(def)?,
        ServiceState::Running if pending => match def.on_change {
            OnChange::Reload => eng.services.reload(def)?,
            OnChange::Restart => eng.services.restart(def)?,
        },
        ServiceState::Stopped if running => eng.services.stop(def)?,
        ServiceState::Restarted => eng.services.restart(def)?,
        ServiceState::Reloaded if running => eng.services.reload(def)?,
        ServiceState::Reloaded => eng.services.start(def)?,
        _ => {}
    }
    eng.settle(&step.name)?;
    if let Some(want) = step.enabled {
        if eng.services.manager == Manager::Systemd
            && eng.services.is_enabled(def).map_err(StepError::host)? != Some(want)
        {
            if want {
                eng.services.enable(def)?;
            } else {
                eng.run_ok(&crate::host::Cmd::new(["systemctl", "disable", &def.unit]))?;
            }
        }
    }
    Ok(())
}
