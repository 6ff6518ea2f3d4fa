//! The replication side of the PostgreSQL administration: a role's `REPLICATION LOGIN`, a
//! physical replication slot, where a cluster is in recovery and whom it streams from, and
//! its promotion. Each [`Repl`] is a script run by `psql` as the cluster's OS user exactly as
//! the admin [`Op`](super::pgadmin::Op)s are (`PgAdmin::run_script`): names quoted here
//! (`pgsql.rs`), the SQL on stdin, a check one read-only `SELECT` answering exactly one row.

use super::pgadmin::PgAdmin;
use super::pgsql::{
    boolean, fields, one_row, quote_ident, quote_literal, NulError, Script, PREAMBLE, READ_ONLY,
};
use crate::host::HostError;

/// How long `pg_promote` waits for the standby to leave recovery.
pub const PROMOTE_WAIT_SECONDS: u32 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repl {
    /// Does `role` exist, and may it log in and replicate?
    RoleAttributes {
        role: String,
    },
    /// `CREATE ROLE ... LOGIN REPLICATION`.
    CreateReplicationRole {
        role: String,
    },
    /// `ALTER ROLE ... LOGIN REPLICATION` (an existing role without one of them).
    GrantReplication {
        role: String,
    },
    /// The slot `name`: exists, its type, active.
    Slot {
        name: String,
    },
    /// A physical slot reserving WAL from now on.
    CreateSlot {
        name: String,
    },
    DropSlot {
        name: String,
    },
    /// Recovery, the WAL receiver, and the data directory of the cluster.
    Standby,
    /// `pg_promote(wait => true)`.
    Promote,
}

/// What a [`Repl`] check answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplAnswer {
    pub exists: bool,
    /// The role has both LOGIN and REPLICATION.
    pub replication_login: bool,
    /// `physical` or `logical` (a slot).
    pub slot_type: String,
    pub active: bool,
    pub standby: Option<StandbyState>,
    /// `pg_promote` saw the cluster leave recovery in time.
    pub promoted: bool,
}

/// A cluster's replication state, from `pg_is_in_recovery()` and `pg_stat_wal_receiver`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandbyState {
    pub in_recovery: bool,
    /// The WAL receiver's status (`streaming`, `starting`, ...); empty without a receiver.
    pub status: String,
    pub sender_host: String,
    pub sender_port: Option<u16>,
    pub slot: String,
    pub data_directory: String,
    /// The slot the configuration names (`primary_slot_name`; empty on a primary).
    pub configured_slot: String,
    /// The receiver's `sslmode` and `sslrootcert` (only these of its connection string are
    /// asked; the server shows its password obfuscated anyway).
    pub ssl_mode: String,
    pub ssl_root_cert: String,
}

impl StandbyState {
    /// Streaming from `host:port` through `slot` (whatever its TLS).
    pub fn streams_from(&self, host: &str, port: u16, slot: &str) -> bool {
        self.in_recovery
            && self.status == "streaming"
            && self.sender_host == host
            && self.sender_port == Some(port)
            && self.slot == slot
    }
}

impl Repl {
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Repl::RoleAttributes { .. } | Repl::Slot { .. } | Repl::Standby
        )
    }

    fn statements(&self) -> Result<String, NulError> {
        let (i, q) = (quote_ident, quote_literal);
        Ok(match self {
            Repl::RoleAttributes { role } => {
                let role = q(role)?;
                format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {role}), \
                     coalesce((SELECT rolcanlogin AND rolreplication FROM pg_roles WHERE rolname = {role}), false);\n"
                )
            }
            Repl::CreateReplicationRole { role } => {
                format!("CREATE ROLE {} LOGIN REPLICATION;\n", i(role)?)
            }
            Repl::GrantReplication { role } => {
                format!("ALTER ROLE {} LOGIN REPLICATION;\n", i(role)?)
            }
            Repl::Slot { name } => {
                let name = q(name)?;
                format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {name}), \
                     coalesce((SELECT slot_type FROM pg_replication_slots WHERE slot_name = {name}), ''), \
                     coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = {name}), false);\n"
                )
            }
            Repl::CreateSlot { name } => format!(
                "SELECT pg_create_physical_replication_slot({}, true) IS NOT NULL;\n",
                q(name)?
            ),
            Repl::DropSlot { name } => {
                format!("SELECT 1 FROM pg_drop_replication_slot({});\n", q(name)?)
            }
            Repl::Standby => "SELECT pg_is_in_recovery(), \
                 coalesce((SELECT status FROM pg_stat_wal_receiver), ''), \
                 coalesce((SELECT sender_host FROM pg_stat_wal_receiver), ''), \
                 coalesce((SELECT sender_port::text FROM pg_stat_wal_receiver), ''), \
                 coalesce((SELECT slot_name FROM pg_stat_wal_receiver), ''), \
                 current_setting('data_directory'), current_setting('primary_slot_name'), \
                 coalesce((SELECT substring(conninfo from 'sslmode=([^ ]*)') FROM pg_stat_wal_receiver), ''), \
                 coalesce((SELECT substring(conninfo from 'sslrootcert=([^ ]*)') FROM pg_stat_wal_receiver), '');\n"
                .to_owned(),
            Repl::Promote => {
                format!(
                    "SELECT pg_promote(wait => true, wait_seconds => {PROMOTE_WAIT_SECONDS});\n"
                )
            }
        })
    }

    /// What psql runs (in the `postgres` database).
    pub fn script(&self) -> Result<Script, NulError> {
        let read_only = self.reads_only();
        let mut sql = String::from(PREAMBLE);
        if read_only {
            sql.push_str(READ_ONLY);
        }
        sql.push_str(&self.statements()?);
        Ok(Script {
            database: "postgres".to_owned(),
            read_only,
            sql,
        })
    }

    /// The answer from psql's `-A -t -z -0` output: exactly one row where a row is expected.
    pub fn answer(&self, stdout: &[u8]) -> Result<ReplAnswer, String> {
        let f = fields(stdout)?;
        let one_row = |n: usize| one_row(&f, n);
        let mut a = ReplAnswer::default();
        match self {
            Repl::RoleAttributes { .. } => {
                one_row(2)?;
                a.exists = boolean(&f[0])?;
                a.replication_login = boolean(&f[1])?;
            }
            Repl::Slot { .. } => {
                one_row(3)?;
                a.exists = boolean(&f[0])?;
                a.slot_type = f[1].clone();
                a.active = boolean(&f[2])?;
            }
            Repl::Standby => {
                one_row(9)?;
                let port =
                    match f[3].as_str() {
                        "" => None,
                        p => Some(p.parse().map_err(|_| {
                            format!("psql answered {p:?} where a port was expected")
                        })?),
                    };
                a.standby = Some(StandbyState {
                    in_recovery: boolean(&f[0])?,
                    status: f[1].clone(),
                    sender_host: f[2].clone(),
                    sender_port: port,
                    slot: f[4].clone(),
                    data_directory: f[5].clone(),
                    configured_slot: f[6].clone(),
                    ssl_mode: f[7].clone(),
                    ssl_root_cert: f[8].clone(),
                });
            }
            Repl::Promote => {
                one_row(1)?;
                a.promoted = boolean(&f[0])?;
            }
            Repl::CreateSlot { .. } | Repl::DropSlot { .. } => one_row(1)?,
            Repl::CreateReplicationRole { .. } | Repl::GrantReplication { .. } => {}
        }
        Ok(a)
    }
}

impl PgAdmin<'_> {
    /// Run one replication operation.
    pub fn repl(&self, op: &Repl) -> Result<ReplAnswer, HostError> {
        let script = op
            .script()
            .map_err(|e| HostError(format!("PostgreSQL administration: {e}")))?;
        let stdout = self.run_script(&script, None)?;
        op.answer(&stdout)
            .map_err(|e| HostError(format!("PostgreSQL administration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(op: Repl) -> String {
        op.script()
            .unwrap()
            .sql
            .strip_prefix(PREAMBLE)
            .unwrap()
            .to_owned()
    }

    #[test]
    fn names_are_quoted() {
        assert_eq!(
            body(Repl::CreateReplicationRole {
                role: "re\"pl; DROP".into()
            }),
            "CREATE ROLE \"re\"\"pl; DROP\" LOGIN REPLICATION;\n"
        );
        assert_eq!(
            body(Repl::GrantReplication { role: "r".into() }),
            "ALTER ROLE \"r\" LOGIN REPLICATION;\n"
        );
        assert_eq!(
            body(Repl::CreateSlot {
                name: "it's".into()
            }),
            "SELECT pg_create_physical_replication_slot('it''s', true) IS NOT NULL;\n"
        );
        assert!(body(Repl::RoleAttributes {
            role: "back\\slash".into()
        })
        .contains("rolname = E'back\\\\slash'"));
        assert_eq!(
            Repl::DropSlot { name: "a\0".into() }.script(),
            Err(NulError)
        );
    }

    #[test]
    fn checks_are_one_read_only_select() {
        for op in [
            Repl::RoleAttributes { role: "r".into() },
            Repl::Slot { name: "s".into() },
            Repl::Standby,
        ] {
            let b = body(op);
            let b = b.strip_prefix(READ_ONLY).expect("read-only first");
            assert!(b.starts_with("SELECT "), "{b}");
            assert_eq!(b.matches(";\n").count(), 1, "{b}");
        }
        for op in [
            Repl::CreateReplicationRole { role: "r".into() },
            Repl::GrantReplication { role: "r".into() },
            Repl::CreateSlot { name: "s".into() },
            Repl::DropSlot { name: "s".into() },
            Repl::Promote,
        ] {
            assert!(!op.script().unwrap().sql.contains("read_only"), "{op:?}");
        }
    }

    #[test]
    fn answers() {
        let role = Repl::RoleAttributes { role: "r".into() };
        let a = role.answer(b"t\0f\0").unwrap();
        assert!(a.exists && !a.replication_login);
        assert!(role.answer(b"t\0").is_err());
        let slot = Repl::Slot { name: "s".into() };
        let a = slot.answer(b"t\0physical\0t\0").unwrap();
        assert!(a.exists && a.active && a.slot_type == "physical");
        let s = Repl::Standby
            .answer(b"t\0streaming\x0010.0.0.1\x005432\0s1\0/var/lib/postgresql/15/main\0s1\0verify-full\0/ca.pem\0")
            .unwrap()
            .standby
            .unwrap();
        assert!(s.streams_from("10.0.0.1", 5432, "s1"));
        assert!(!s.streams_from("10.0.0.2", 5432, "s1"));
        assert!(!s.streams_from("10.0.0.1", 5433, "s1"));
        assert!(!s.streams_from("10.0.0.1", 5432, "s2"));
        let s = Repl::Standby
            .answer(b"f\0\0\0\0\0/data\0\0\0\0")
            .unwrap()
            .standby
            .unwrap();
        assert!(!s.in_recovery && s.sender_port.is_none() && s.data_directory == "/data");
        assert!(Repl::Standby.answer(b"f\0\0\0x\0\0/d\0\0").is_err());
        assert!(
            Repl::Standby.answer(b"f\0\0\0\0\0/d\0").is_err(),
            "6 fields"
        );
        assert!(Repl::Promote.answer(b"t\0").unwrap().promoted);
        assert!(!Repl::Promote.answer(b"f\0").unwrap().promoted);
    }
}
