//! The machine's run lock ([`Host::lock_run`](crate::host::Host::lock_run)), taken before an
//! applying run's first change, never by a run that changes nothing (a converged run, a dry
//! run): two runs changing one machine at once would race for its package manager and its
//! state file, each recording only its own changes.

use super::Engine;
use crate::failure::StepError;
use crate::host::RUN_LOCK;
use crate::state::State;

impl Engine<'_> {
    /// Before a change: the run lock (held until the engine is dropped), then the state file
    /// read again under it. `Ok(true)` when it was taken now (what was checked before may
    /// have changed under another run: check again), `Ok(false)` when it was held already;
    /// an error when another run holds it.
    pub fn lock_for_change(&self) -> Result<bool, StepError> {
        if self.run_lock.borrow().is_some() {
            return Ok(false);
        }
        let held = self
            .host
            .lock_run()
            .map_err(StepError::host)?
            .ok_or_else(|| {
                StepError::msg(format!(
                    "another telem-deploy run is changing this machine (it holds {RUN_LOCK}); \
                     nothing was changed: run again once it has ended"
                ))
            })?;
        *self.run_lock.borrow_mut() = Some(held);
        let state = State::load(self.host).map_err(StepError::host)?;
        self.replace_state(state);
        Ok(true)
    }

    /// Is a reload or restart queued (the handlers will change something)?
    pub fn handlers_queued(&self) -> bool {
        !self.pending.borrow().is_empty()
    }
}
