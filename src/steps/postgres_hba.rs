//! `postgres_hba` steps: telem-deploy's block of pg_hba.conf lines (`engine/pg_hba.rs`), at the
//! top of the file the server names (`SHOW hba_file`, through psql as the cluster's OS user),
//! present or absent; every other byte of the file is kept.
//!
//! The file is written atomically with its owner and mode kept, then PostgreSQL reads it
//! (`pg_hba_file_rules`): a file it finds an error in is put back as it was and the step
//! fails, so a reload never meets a broken pg_hba.conf. The step notifies its services (a
//! reload applies it).
//!
//! The state file records the file and whether telem-deploy's block is in it (written before
//! the block goes in, updated once it is out): where it says the block is out, `absent` is
//! `ok` without asking the server (a second uninstall, on a standby the first one stopped).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::fs::unified_diff;
use crate::engine::pg_hba::{self, Cidr, ConnType, Entry, Method};
use crate::engine::pgadmin::{Op, PgAdmin};
use crate::engine::postgres::{admin, query};
use crate::engine::{Check, Engine, StepError};
use crate::host::{Host, Owner};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::Presence;
use crate::state::{RecordedHba, State};

/// One entry as a recipe writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    #[serde(rename = "type")]
    pub conn: String,
    pub database: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub method: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgresHba {
    #[serde(default)]
    pub entries: Vec<RawEntry>,
    #[serde(default)]
    pub state: Presence,
    #[serde(default)]
    pub notify: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PostgresHba {
    pub entries: Vec<Entry>,
    pub state: Presence,
    pub notify: Vec<String>,
}

impl Step for PostgresHba {
    const KIND: &'static str = "postgres_hba";
    type Raw = RawPostgresHba;

    fn compile(raw: &RawPostgresHba, c: &mut Compiler) -> Option<PostgresHba> {
        let mut ok = c.services("notify", &raw.notify);
        if raw.entries.is_empty() && raw.state == Presence::Present {
            c.error("entries", "names no entry");
            ok = false;
        }
        let mut entries = Vec::new();
        let mut expected = 0;
        for (i, e) in raw.entries.iter().enumerate() {
            let at = |field: &str| format!("entries[{i}].{field}");
            let conn = c.parse::<ConnType>(&at("type"), &e.conn);
            let method = c.parse::<Method>(&at("method"), &e.method);
            let database = c.parse_with(&at("database"), &e.database, pg_hba::name_field);
            let user = c.parse_with(&at("user"), &e.user, pg_hba::name_field);
            let waits = [&e.conn, &e.method, &e.database, &e.user]
                .into_iter()
                .chain(e.address.as_ref())
                .any(|v| c.waits(v));
            // Several addresses (separated by spaces or commas) make a line each; an
            // expression that expands to none makes none.
            let addresses: Vec<Option<Cidr>> = match &e.address {
                None => vec![None],
                Some(a) if c.waits(a) => Vec::new(),
                Some(a) => a
                    .split(|ch: char| ch.is_whitespace() || ch == ',')
                    .filter(|s| !s.is_empty())
                    .filter_map(|one| c.parse::<Cidr>(&at("address"), one).map(Some))
                    .collect(),
            };
            let wanted = match &e.address {
                None => 1,
                Some(a) => a
                    .split(|ch: char| ch.is_whitespace() || ch == ',')
                    .filter(|s| !s.is_empty())
                    .count(),
            };
            if waits {
                continue;
            }
            expected += wanted;
            let (Some(conn), Some(method), Some(database), Some(user)) =
                (conn, method, database, user)
            else {
                ok = false;
                continue;
            };
            for address in addresses {
                let entry = Entry {
                    conn,
                    database: database.clone(),
                    user: user.clone(),
                    address,
                    method,
                };
                match entry.coherent() {
                    Ok(()) => entries.push(entry),
                    Err(why) => {
                        c.error(&format!("entries[{i}]"), why);
                        ok = false;
                    }
                }
            }
        }
        let waited = raw.entries.iter().any(|e| {
            [&e.conn, &e.method, &e.database, &e.user]
                .into_iter()
                .chain(e.address.as_ref())
                .any(|v| c.waits(v))
        });
        if waited {
            // Checked again once expanded.
            return None;
        }
        (ok && entries.len() == expected).then(|| PostgresHba {
            entries,
            state: raw.state,
            notify: raw.notify.clone(),
        })
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        if let Some(done) = self.nothing_left(&eng.state.borrow()) {
            return Ok(done);
        }
        let path = match query(eng, Op::HbaFile) {
            Ok(r) => r.text.unwrap_or_default(),
            Err(unknown) => return Ok(unknown),
        };
        let (old, new) = self.contents(eng.host, &path)?;
        if old == new {
            return Ok(Check::ok(match self.state {
                Presence::Present => format!(
                    "{path} starts with telem-deploy's {} entries",
                    self.entries.len()
                ),
                Presence::Absent => format!("{path} holds no telem-deploy block"),
            }));
        }
        let what = match self.state {
            Presence::Present => format!(
                "write telem-deploy's {} entries at the top of {path}",
                self.entries.len()
            ),
            Presence::Absent => format!("remove telem-deploy's block from {path}"),
        };
        let mut check = Check::change1(what);
        check.diff = unified_diff(&path, &old, &new);
        Ok(check)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        if self.nothing_left(&eng.state.borrow()).is_some() {
            return Ok(());
        }
        let pg = admin(eng);
        let path = hba_file(&pg)?;
        let (old, new) = self.contents(eng.host, &path)?;
        // Recorded before the block goes in (a run killed after the write leaves a true
        // record), and once it is out.
        let record = |ours| {
            let recorded = RecordedHba {
                file: path.clone(),
                ours,
            };
            if eng.state.borrow().postgres_hba.as_ref() == Some(&recorded) {
                return Ok(());
            }
            eng.update_state(|st| st.postgres_hba = Some(recorded))
        };
        if self.state == Presence::Present {
            record(true)?;
        }
        if old != new {
            install(eng.host, &pg, &path, &old, &new)?;
        }
        if self.state == Presence::Absent {
            record(false)?;
        }
        Ok(())
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }
}

impl PostgresHba {
    /// `absent` where the state file says telem-deploy's block is not in pg_hba.conf any
    /// more (an earlier uninstall took it out, or telem-deploy never installed here): the
    /// `ok` it is, known without the server, which may be stopped by then (uninstall stops a
    /// standby). Lines the file holds then are the operator's. `None`: the file the server
    /// names says.
    fn nothing_left(&self, state: &State) -> Option<Check> {
        if self.state != Presence::Absent || state.hba_block_left() != Some(false) {
            return None;
        }
        Some(Check::ok(match &state.postgres_hba {
            Some(hba) => format!(
                "{} holds no telem-deploy block (taken out by an earlier uninstall, its state file says)",
                hba.file
            ),
            None if state.records_nothing() => {
                "pg_hba.conf holds no telem-deploy block (telem-deploy never installed here: its state file records nothing)".to_owned()
            }
            None => {
                "pg_hba.conf holds no telem-deploy block (an earlier uninstall took it out before telem-deploy's settings, which its state file says are gone)".to_owned()
            }
        }))
    }

    /// The file as it is, and as it should be.
    pub(crate) fn contents(
        &self,
        host: &dyn Host,
        path: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), StepError> {
        let old = host
            .read(Path::new(path))
            .map_err(StepError::host)?
            .ok_or_else(|| StepError::msg(format!("{path} (the server's hba_file) is missing")))?;
        let text = std::str::from_utf8(&old)
            .map_err(|_| StepError::msg(format!("{path} is not UTF-8 text")))?;
        let new = match self.state {
            Presence::Present => pg_hba::with_block(text, &pg_hba::block(&self.entries)),
            Presence::Absent => pg_hba::without_block(text),
        }
        .map_err(|e| StepError::msg(format!("{path}: {e}")))?;
        Ok((old, new.into_bytes()))
    }
}

/// Where the cluster's pg_hba.conf is.
pub(crate) fn hba_file(pg: &PgAdmin) -> Result<String, StepError> {
    let path = pg
        .call(Op::HbaFile)
        .map_err(StepError::host)?
        .text
        .unwrap_or_default();
    match path.starts_with('/') {
        true => Ok(path),
        false => Err(StepError::msg(format!(
            "the server's hba_file is not an absolute path: {path:?}"
        ))),
    }
}

/// Write `new` over `old` at `path` (atomically, owner and mode kept), then let PostgreSQL read
/// it: when it finds an error, `old` is put back and the step fails with the server's words.
pub(crate) fn install(
    host: &dyn Host,
    pg: &PgAdmin,
    path: &str,
    old: &[u8],
    new: &[u8],
) -> Result<(), StepError> {
    let p = Path::new(path);
    let meta = host
        .stat(p)
        .map_err(StepError::host)?
        .ok_or_else(|| StepError::msg(format!("{path} is missing")))?;
    let owner = Owner {
        user: meta.uid.to_string(),
        group: meta.gid.to_string(),
        mode: meta.mode,
    };
    host.write(p, new, &owner).map_err(StepError::host)?;
    let verdict = pg.call(Op::HbaErrors).map_err(StepError::host);
    let refused = match &verdict {
        Ok(r) if r.count == Some(0) => return Ok(()),
        Ok(r) => format!(
            "PostgreSQL refuses the new {path}: {}",
            r.text.as_deref().unwrap_or_default().replace('\n', "; ")
        ),
        Err(e) => format!("checking the new {path} with PostgreSQL: {e}"),
    };
    host.write(p, old, &owner)
        .map_err(|e| StepError::msg(format!("{refused}; putting the old one back failed: {}", e.0)))?;
    Err(StepError::msg(format!("{refused} (the previous file is back)")))
}
