//! The engine: for each step, `check` (is the host already in the desired state, and if not,
//! what would change?) and `apply` (change only what differs).
//!
//! A dry run calls only `check`. A check changes nothing on the host, but it does run commands
//! there that read it: the recipe's guards (`unless`, `only_if`; a recipe must keep them free of
//! side effects), the package manager's queries and its removal simulation, read-only queries
//! through psql as the cluster's OS user, the collector's `migrate --check`, `git ls-remote` for a snapshot.
//! Everything that changes the host, the state file included, is in `apply` and in the
//! handlers. What each kind checks and applies is its own file under `src/steps/`; `check`,
//! `apply`, `notifies` and `preflight` here dispatch to it. Services notified by a changed file are queued and reloaded or restarted once, at
//! their `service` step or at the end of the run (also when a later step failed).

pub mod facts;
pub(crate) mod fs;
mod handover;
pub(crate) mod mask;
pub(crate) mod pg_hba;
pub mod pgadmin;
pub mod pgrepl;
pub mod pgsql;
pub mod pkg;
mod pkg_graph;
pub(crate) mod postgres;
mod run_lock;
pub mod snaplinks;
pub mod snapshot;
pub mod standby;
pub mod svc;
pub mod venv;

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeSet;

use serde::Serialize;

use crate::ca::Ca;
use crate::controller::{Bundle, Controller};
use crate::host::{Cmd, CmdOutput, Host};
use crate::options::Options;
use crate::plan::Plan;
use crate::recipe::expand::Compiled;
use crate::recipe::model::{Condition, ServiceDef};
use crate::recipe::Step;
use crate::render::Templates;
use crate::secret::Secret;
use crate::secrets::Secrets;
use crate::state::State;

pub use crate::failure::StepError;
pub use svc::Manager;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Already in the desired state.
    Ok,
    /// Would change (see `changes`).
    Change,
    /// Cannot be known before an earlier step has been applied.
    Unknown,
    /// A precondition is missing (e.g. "run the install action first").
    Blocked,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: Status,
    /// What would change (or why it is ok / unknown / blocked).
    pub changes: Vec<String>,
    /// A unified diff for files (secrets masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Check {
    pub fn ok(why: impl Into<String>) -> Check {
        Check {
            status: Status::Ok,
            changes: vec![why.into()],
            diff: None,
        }
    }
    pub fn change(what: Vec<String>) -> Check {
        Check {
            status: Status::Change,
            changes: what,
            diff: None,
        }
    }
    pub fn change1(what: impl Into<String>) -> Check {
        Check::change(vec![what.into()])
    }
    pub fn unknown(why: impl Into<String>) -> Check {
        Check {
            status: Status::Unknown,
            changes: vec![why.into()],
            diff: None,
        }
    }
    pub fn blocked(why: impl Into<String>) -> Check {
        Check {
            status: Status::Blocked,
            changes: vec![why.into()],
            diff: None,
        }
    }
}

pub const INSTALL_FIRST: &str =
    "run the install action first (no collector config with the database password)";

/// Everything the steps need, for one run of one action: the options, the plan, the state
/// file and, from [`Engine::with_secrets`] on, the run's secrets.
pub struct Engine<'a> {
    pub host: &'a dyn Host,
    pub opts: &'a Options,
    pub recipe: &'a Compiled,
    pub templates: &'a Templates,
    /// The recipe's variables for templates (no secrets in it but the web UI's user-file line,
    /// which `shown_vars` masks).
    pub vars: tera::Context,
    pub pm: pkg::PackageManager,
    pub services: svc::Services<'a>,
    /// The password the database role should have, when known.
    pub password: Option<Secret>,
    /// The password of the replication role (`postgres_password { secret: replication }`),
    /// from the inventory's secrets; none without one.
    pub replication_password: Option<Secret>,
    /// The password the collector config on disk holds.
    pub stored_password: Option<Secret>,
    /// The action needs an earlier install that has not happened.
    pub needs_install: bool,
    /// The action needs an installation and the state file records none: every step is
    /// blocked (a real run is refused before its plan, `not_installed.rs`; a dry run shows
    /// this).
    not_installed: bool,
    /// Whether TLS is configured (a certificate is present).
    pub tls: bool,
    /// Template variables other than `db_password` that hold a secret (the web UI's
    /// htpasswd line), with the value a plan shows in their place.
    pub shown_vars: Vec<(String, String)>,
    /// What the target is (release, RHEL or a rebuild, firewall, package catalogue).
    pub facts: &'a facts::Facts,
    /// The certificate and key of `--tls-cert`/`--tls-key` or `--tls-self-signed`.
    pub tls_material: &'a Option<crate::tls::Material>,
    /// The collector binary this run installs (the controller's, shared by every target).
    pub bundle: &'a Bundle,
    /// The controller's certificate authority (`issued_tls` steps), when the run has one.
    pub ca: Option<&'a Ca>,
    pub state: RefCell<State>,
    pending: RefCell<BTreeSet<String>>,
    /// What `-u` removes and keeps, asked of the package manager once per run.
    removal: RefCell<Option<Result<pkg::RemovalPlan, String>>>,
    /// The target's `uname -m`, asked once per run.
    machine: OnceCell<Result<String, String>>,
    /// The psql program the admin queries run (`Engine::psql`).
    psql: OnceCell<String>,
    /// What steps and handlers tell the operator (through the reporter), until the executor
    /// takes them.
    notes: RefCell<Vec<String>>,
    /// The machine's run lock, once a change needed it (`run_lock.rs`).
    run_lock: RefCell<Option<crate::host::RunLock>>,
}

impl<'a> Engine<'a> {
    /// Where files named on the command line are read (a `-t tarball` snapshot,
    /// `--webapp-requirements`): the controller, which is the target itself when that is this
    /// machine.
    pub fn controller(&self) -> &dyn Host {
        if self.host.is_local() {
            self.host
        } else {
            &crate::host::LocalHost
        }
    }

    /// The engine for `plan` on `host`, with the state file as it was read and what the
    /// `controller` gives every target (the collector bundle, the CA); reloads and restarts an earlier run still owed are queued.
    pub fn new(
        host: &'a dyn Host,
        opts: &'a Options,
        plan: &'a Plan,
        state: State,
        controller: &'a Controller,
    ) -> Engine<'a> {
        let pending = RefCell::new(state.pending.clone());
        let not_installed = crate::not_installed::check(opts.action, &state).is_err();
        Engine {
            host,
            opts,
            recipe: &plan.recipe,
            templates: &plan.templates,
            vars: plan.vars.clone(),
            pm: pkg::PackageManager::new(plan.recipe.recipe.package_manager),
            services: svc::Services {
                host,
                manager: opts.manager,
            },
            password: None,
            replication_password: controller.replication_password.clone(),
            stored_password: None,
            needs_install: false,
            not_installed,
            tls: plan.tls,
            shown_vars: Vec::new(),
            facts: &plan.facts,
            tls_material: &plan.tls_material,
            bundle: &controller.bundle,
            ca: controller.ca.as_deref(),
            state: RefCell::new(state),
            pending,
            removal: RefCell::new(None),
            machine: OnceCell::new(),
            psql: OnceCell::new(),
            notes: RefCell::new(Vec::new()),
            run_lock: RefCell::new(None),
        }
    }

    /// The engine with the run's secrets, resolved once (after the steps were selected,
    /// since only the steps say whether the database password is needed).
    pub fn with_secrets(mut self, secrets: Secrets) -> Engine<'a> {
        self.password = secrets.password;
        self.stored_password = secrets.stored_password;
        self.needs_install = secrets.needs_install;
        if let Some(ui) = secrets.ui_htpasswd {
            self.vars.insert(crate::secrets::UI_HTPASSWD, &ui.line);
            self.shown_vars = vec![(crate::secrets::UI_HTPASSWD.to_owned(), ui.shown)];
        }
        self
    }

    /// Which recorded packages `-u` removes (and which it keeps): computed once per run, from
    /// the state file and the package manager's own simulation. Nothing before the packages
    /// step changes which packages are installed, so the plan, the preflight and the step
    /// itself all see the same answer.
    pub fn removal_plan(&self) -> Result<pkg::RemovalPlan, StepError> {
        if let Some(done) = &*self.removal.borrow() {
            return done.clone().map_err(StepError::msg);
        }
        let recorded = self.state.borrow().packages.clone();
        let plan = self.pm.removal_plan(self.host, &recorded).map_err(|e| e.0);
        *self.removal.borrow_mut() = Some(plan.clone());
        plan.map_err(StepError::msg)
    }

    /// What must hold before anything of this run changes: a step that would refuse half-way
    /// refuses here, before the first change (and a dry run shows it as blocked).
    pub fn preflight(&self, step: &Step) -> Result<(), StepError> {
        if self.not_installed {
            return Err(StepError::msg(crate::not_installed::BLOCKED));
        }
        step.kind.preflight(self)
    }

    /// Does every condition of the step hold for this run?
    pub fn applies(&self, step: &Step) -> bool {
        // `when_installed_by_us`: a package this run removes (a stop before `-u` removes it);
        // one the tool installed but keeps stays running. Without `-u`: one it installed.
        let by_us = step.when_installed_by_us.is_empty()
            || if self.opts.purge {
                match self.removal_plan() {
                    Ok(plan) => step
                        .when_installed_by_us
                        .iter()
                        .any(|p| plan.remove.contains(p)),
                    // The preflight refuses the run; the plan shows the step.
                    Err(_) => true,
                }
            } else {
                let ours = &self.state.borrow().packages;
                step.when_installed_by_us.iter().any(|p| ours.contains(p))
            };
        // `when_installed`: installed by anyone (unknown counts as installed: the step says why).
        let installed = step.when_installed.is_empty() || self.any_installed(&step.when_installed);
        by_us && installed && step.when.iter().all(|c| self.holds(c))
    }

    /// Is one of `packages` installed, by anyone? Unknown counts as installed (the step that
    /// runs then says why).
    fn any_installed(&self, packages: &[String]) -> bool {
        self.pm
            .installed(self.host, packages)
            .map_or(true, |found| !found.is_empty())
    }

    /// Does one condition of `when` hold for this run on this target?
    pub fn holds(&self, condition: &Condition) -> bool {
        match condition {
            Condition::Systemd => self.services.manager == Manager::Systemd,
            Condition::Direct => self.services.manager == Manager::Direct,
            Condition::Purge => self.opts.purge,
            Condition::Webapp => self.opts.webapp,
            Condition::NoWebapp => !self.opts.webapp,
            Condition::Tls => self.tls,
            Condition::UiAuth => self.opts.ui_auth.is_some(),
            Condition::Firewalld => self.facts.firewalld,
            Condition::Ufw => self.facts.ufw,
            Condition::Rhel => self.facts.rhel(),
            Condition::Release(r) => self.facts.release_is(r),
            Condition::Available(name) => self.facts.available(name),
            Condition::Not(inner) => !self.holds(inner),
            Condition::PostgresInstalled => {
                self.any_installed(&self.recipe.recipe.postgres.packages)
            }
            Condition::PostgresLeft => self.state.borrow().postgres_left(),
            Condition::TlsManaged => self.tls_material.is_some(),
            Condition::Db => self.opts.roles().db,
            Condition::Standby => self.opts.roles().standby,
            Condition::Postgres => self.opts.roles().db || self.opts.roles().standby,
            Condition::Collector => self.opts.roles().collector,
            Condition::Balancer => self.opts.roles().balancer,
            Condition::Nginx => self.opts.roles().collector || self.opts.roles().balancer,
            Condition::DbRemote => self.opts.roles().collector && !self.opts.roles().db,
            Condition::DbClients => {
                let roles = self.opts.roles();
                roles.standby
                    || roles.db
                        && self.opts.placement.as_ref().is_some_and(|p| {
                            !p.db_clients().is_empty() || p.standby_address.is_some()
                        })
            }
            Condition::Replicated => {
                self.opts.roles().db
                    && self
                        .opts
                        .placement
                        .as_ref()
                        .is_some_and(|p| p.standby_address.is_some())
            }
        }
    }

    pub fn check(&self, step: &Step) -> Result<Check, StepError> {
        if self.not_installed {
            return Ok(Check::blocked(crate::not_installed::BLOCKED));
        }
        if step.needs_install && self.needs_install {
            return Ok(Check::blocked(INSTALL_FIRST));
        }
        step.kind.check(self)
    }

    pub fn apply(&self, step: &Step) -> Result<(), StepError> {
        step.kind.apply(self)
    }

    /// Services a step's change notifies.
    pub fn notifies<'s>(&self, step: &'s Step) -> &'s [String] {
        step.kind.notifies()
    }

    pub fn queue(&self, services: &[String]) {
        self.pending.borrow_mut().extend(services.iter().cloned());
    }

    /// Before a change that notifies `services`: record in the state file that they will need
    /// a reload or restart, so a run killed after the change still leaves the debt behind.
    pub fn owe(&self, services: &[String]) -> Result<(), StepError> {
        if services
            .iter()
            .all(|s| self.state.borrow().pending.contains(s))
        {
            return Ok(());
        }
        self.update_state(|st| st.pending.extend(services.iter().cloned()))
    }

    /// `name` runs its current configuration (reloaded, restarted, started or stopped).
    pub fn settle(&self, name: &str) -> Result<(), StepError> {
        if !self.state.borrow().pending.contains(name) {
            return Ok(());
        }
        self.update_state(|st| {
            st.pending.remove(name);
        })
    }

    /// Is a notification queued for `name`?
    pub fn pending_for(&self, name: &str) -> bool {
        self.pending.borrow().contains(name)
    }

    /// Take a queued notification for `name`, if any.
    pub fn take_pending(&self, name: &str) -> bool {
        self.pending.borrow_mut().remove(name)
    }

    /// Reload or restart every service still queued (only those running: a stopped service
    /// picks up its config when it starts).
    pub fn flush_handlers(&self) -> Vec<Result<String, (String, StepError)>> {
        let names: Vec<String> = std::mem::take(&mut *self.pending.borrow_mut())
            .into_iter()
            .collect();
        let mut results = Vec::new();
        for name in names {
            let Some(def) = self.service(&name) else {
                continue;
            };
            match self.services.is_running(def) {
                Ok(true) => {}
                Ok(false) => {
                    if let Err(e) = self.settle(&name) {
                        results.push(Err((name, e)));
                    }
                    continue;
                }
                Err(e) => {
                    results.push(Err((name, StepError::host(e))));
                    continue;
                }
            }
            let r = match def.on_change {
                crate::recipe::model::OnChange::Reload => self
                    .services
                    .reload(def)
                    .map(|_| format!("reloaded {name}")),
                crate::recipe::model::OnChange::Restart => self
                    .services
                    .restart(def)
                    .map(|_| format!("restarted {name}")),
            };
            let r = r.and_then(|done| self.settle(&name).map(|()| done));
            results.push(r.map_err(|e| (name, e)));
        }
        results
    }

    pub fn service(&self, name: &str) -> Option<&ServiceDef> {
        self.recipe.services.get(name)
    }

    /// The state file as it now is on the machine (read again before this run changes
    /// anything): the services it says are owed are queued too.
    pub fn replace_state(&self, state: State) {
        self.pending
            .borrow_mut()
            .extend(state.pending.iter().cloned());
        *self.state.borrow_mut() = state;
    }

    /// Record a state change and persist it at once.
    pub fn update_state(&self, f: impl FnOnce(&mut State)) -> Result<(), StepError> {
        let mut state = self.state.borrow_mut();
        f(&mut state);
        state.save(self.host).map_err(StepError::host)
    }

    /// The target's machine as `uname -m` names it (asked once per run).
    pub fn machine(&self) -> Result<String, StepError> {
        let known = self.machine.get_or_init(|| {
            let cmd = Cmd::new(["uname", "-m"]);
            match self.host.run(&cmd) {
                Ok(out) if out.success() => Ok(out.stdout_text().trim().to_owned()),
                Ok(out) => Err(format!("`uname -m` failed: {}", out.tail().trim())),
                Err(e) => Err(e.0),
            }
        });
        known.clone().map_err(StepError::msg)
    }

    /// The psql program the admin queries run, looked for once per run: a version's own psql
    /// where the Debian layout has one, else psql from the PATH (which works everywhere: a
    /// run that looked before PostgreSQL was installed only runs the slower wrapper).
    pub fn psql(&self) -> &str {
        self.psql.get_or_init(|| {
            pgadmin::psql_program(self.host).unwrap_or_else(|| pgadmin::PSQL.to_owned())
        })
    }

    /// Tell the operator something about this step (a backup written, a warning): shown
    /// under the step while applying and kept in its report.
    pub fn note(&self, text: impl Into<String>) {
        self.notes.borrow_mut().push(text.into());
    }

    /// The notes since the last call (the executor's, after each step and the handlers).
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.borrow_mut())
    }

    pub fn run_ok(&self, cmd: &Cmd) -> Result<CmdOutput, StepError> {
        svc::run_ok(self.host, cmd)
    }
}
