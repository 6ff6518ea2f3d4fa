//! `postgres_standby` steps: the local cluster is a standby streaming from `primary:port`
//! through a physical replication slot, as the replication role; otherwise it is replaced by
//! a base backup of the primary (the former data directory kept, renamed; see
//! `engine/standby.rs`), started, and streaming before the step ends.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::postgres_slot::valid_slot_name;
use super::Step;
use crate::engine::pgrepl::{Repl, StandbyState};
use crate::engine::postgres::{admin, NOT_RUNNING};
use crate::engine::standby::{self, ServiceControl, Source};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;

/// How long a rebuilt standby may take to stream.
const STREAMING_WITHIN: Duration = Duration::from_secs(120);
/// How long a configured standby may take to (re)connect before a check counts it as one
/// to rebuild.
const RECONNECT_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresStandby {
    /// The primary's address (an IP, or a name its certificate holds).
    pub primary: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The replication role (its password: `Engine::replication_password`).
    pub role: String,
    /// The primary's physical replication slot for this standby.
    pub slot: String,
    /// The CA file the primary's certificate is verified with (`sslmode=verify-full`);
    /// without it, libpq's default (`prefer`: no verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The recipe's service that runs the cluster.
    #[serde(default = "default_service")]
    pub service: String,
}

fn default_port() -> u16 {
    5432
}

pub(crate) fn default_service() -> String {
    "postgresql".to_owned()
}

/// An address or host name: letters, digits, `.`, `-`, `:` (IPv6), `_`.
fn valid_address(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(format!("{s:?} is not an IP address or a host name")),
    }
}

impl Step for PostgresStandby {
    const KIND: &'static str = "postgres_standby";
    type Raw = PostgresStandby;

    fn compile(raw: &PostgresStandby, c: &mut Compiler) -> Option<PostgresStandby> {
        let mut ok = c.service("service", &raw.service);
        let mut check = |c: &mut Compiler, field: &str, value: &str, r: Result<(), String>| {
            if !c.waits(value) {
                if let Err(e) = r {
                    c.error(field, e);
                    ok = false;
                }
            }
        };
        check(c, "primary", &raw.primary, valid_address(&raw.primary));
        check(c, "slot", &raw.slot, valid_slot_name(&raw.slot));
        let role = match raw.role.is_empty() || raw.role.contains(['\0', '\n', '\r']) {
            true => Err("the replication role must be a name without NUL or line breaks".into()),
            false => Ok(()),
        };
        check(c, "role", &raw.role, role);
        if let Some(ca) = &raw.ca_file {
            let abs = match ca.starts_with('/') && !ca.contains('\0') {
                true => Ok(()),
                false => Err(format!("{ca:?} is not an absolute path")),
            };
            check(c, "ca_file", ca, abs);
        }
        if raw.port == 0 {
            c.error("port", "0 is not a port");
            ok = false;
        }
        ok.then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        if crate::host::lookup_user(eng.host, &eng.recipe.recipe.postgres.os_user).is_none() {
            return Ok(Check::unknown(NOT_RUNNING));
        }
        let what = match admin(eng).repl(&Repl::Standby) {
            Err(_) => "PostgreSQL is not running".to_owned(),
            Ok(a) => {
                let s = a.standby.unwrap_or_default();
                if standby::follows(&s, &self.source()) || self.reconnects(eng, &s) {
                    return Ok(Check::ok(format!(
                        "a standby streaming from {}:{} through slot {}{}",
                        self.primary,
                        self.port,
                        self.slot,
                        match &self.ca_file {
                            Some(ca) => format!(" (TLS verified with {ca})"),
                            None => String::new(),
                        }
                    )));
                }
                match (s.in_recovery, s.status.as_str()) {
                    (false, _) => "it is a primary, not a standby".to_owned(),
                    (true, "") => "a standby without a WAL receiver".to_owned(),
                    (true, status) => format!(
                        "a standby of {}:{} through slot {:?} ({status}, sslmode {:?})",
                        s.sender_host,
                        s.sender_port.map(|p| p.to_string()).unwrap_or_default(),
                        s.slot,
                        s.ssl_mode
                    ),
                }
            }
        };
        if eng.replication_password.is_none() {
            return Ok(Check::blocked(format!(
                "{what}, and there is no replication password to make it a standby of {} \
                 (the inventory's secrets name none)",
                self.primary
            )));
        }
        Ok(Check::change1(format!(
            "replace the cluster with a base backup of {}:{} through slot {} ({what}; its \
             data directory is kept, renamed with a timestamp)",
            self.primary, self.port, self.slot
        )))
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let password = eng.replication_password.as_ref().ok_or_else(|| {
            StepError::msg("no replication password (the inventory's secrets name none)")
        })?;
        let def = eng.service(&self.service).expect("validated service name");
        let pg = eng.recipe.recipe.postgres.clone();
        let data_dir = match admin(eng).repl(&Repl::Standby) {
            Ok(a) => {
                let s = a.standby.unwrap_or_default();
                if standby::follows(&s, &self.source()) || self.reconnects(eng, &s) {
                    return Ok(());
                }
                s.data_directory
            }
            Err(_) => standby::data_dir_offline(eng.host, Some(def), &pg.data_dir)?,
        };
        let source = self.source();
        let control = ServiceControl {
            services: &eng.services,
            def,
        };
        let stamp = standby::stamp(time::OffsetDateTime::now_utc());
        let done = standby::rebuild(
            eng.host,
            &pg.os_user,
            &data_dir,
            &control,
            &source,
            password,
            &stamp,
        )?;
        if let Some(aside) = &done.aside {
            eng.note(format!("the former data directory is kept in {aside}"));
        }
        // Its postgresql.auto.conf is the primary's now: nothing in it is this host's
        // operator's, and what was recorded of the former one went aside with it.
        eng.update_state(|st| {
            st.postgres_from_backup = true;
            st.postgres_settings.clear();
        })?;
        standby::wait_streaming(&admin(eng), &source, STREAMING_WITHIN).map(drop)
    }
}

impl PostgresStandby {
    /// A standby configured for this slot whose WAL receiver is not (yet) connected, as
    /// right after a restart: given [`RECONNECT_WITHIN`] to stream from this primary before
    /// it counts as a change (a rebuild is never the answer to a receiver starting up).
    fn reconnects(&self, eng: &Engine, s: &StandbyState) -> bool {
        let connecting = s.in_recovery
            && s.configured_slot == self.slot
            && matches!(s.status.as_str(), "" | "starting" | "waiting" | "restarting");
        connecting && standby::wait_streaming(&admin(eng), &self.source(), RECONNECT_WITHIN).is_ok()
    }

    fn source(&self) -> Source {
        Source {
            primary: self.primary.clone(),
            port: self.port,
            role: self.role.clone(),
            slot: self.slot.clone(),
            ca_file: self.ca_file.clone(),
        }
    }
}
