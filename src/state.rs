//! The state file: what telem-deploy installed, created and set aside on this host, so that
//! `uninstall` removes only what it added and puts back what it replaced.
//!
//! It is rewritten (atomically) after every change, so a killed run leaves a true record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::{Host, HostError, Owner};

pub const STATE_FILE: &str = "/var/lib/telem-deploy/state.json";
/// Where removed files are kept until uninstall restores them.
pub const SAVED_DIR: &str = "/var/lib/telem-deploy/saved";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Packages (or bundles) this tool installed; those the operator had stay on uninstall.
    pub packages: BTreeSet<String>,
    /// What was installed before an install that has not finished recording what it added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_baseline: Option<BTreeSet<String>>,
    /// Paths this tool created.
    pub created: BTreeSet<String>,
    /// System users (each with its group of the same name) this tool created; uninstall
    /// removes only these.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub users: BTreeSet<String>,
    /// Paths whose original this tool set aside (replaced or removed), and where it is.
    pub saved: BTreeMap<String, Saved>,
    /// Services whose configuration changed but that were not yet reloaded or restarted: a run
    /// killed in between leaves them here, and the next run owes them the reload or restart.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub pending: BTreeSet<String>,
    /// PostgreSQL settings telem-deploy set with `ALTER SYSTEM` (`postgres_settings`), each
    /// with what postgresql.auto.conf held before its first change, so that uninstall puts
    /// the operator's value back (or resets only what the tool added).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub postgres_settings: BTreeMap<String, RecordedSetting>,
    /// The cluster's data directory is a base backup telem-deploy took (a standby): its
    /// postgresql.auto.conf came from the primary, so none of its values is the operator's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub postgres_from_backup: bool,
    /// telem-deploy's block of pg_hba.conf lines (`postgres_hba`): the file it wrote it in,
    /// and whether it is still there. Absent: no block written by a telem-deploy that records
    /// it (see [`State::hba_block_left`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_hba: Option<RecordedHba>,
}

/// [`State::postgres_hba`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedHba {
    /// The cluster's pg_hba.conf (the server's `hba_file`) when telem-deploy last changed it.
    pub file: String,
    /// telem-deploy's block is in it; `false` once uninstall took it out (what the file holds
    /// then is the operator's).
    pub ours: bool,
}

/// One setting of [`State::postgres_settings`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedSetting {
    /// What postgresql.auto.conf (`ALTER SYSTEM`) held for it before telem-deploy first set it;
    /// `None`: nothing (a value in postgresql.conf is never touched: `ALTER SYSTEM RESET` lets
    /// it apply again). A later run never replaces it while `ours` is set.
    pub before: Option<String>,
    /// The value telem-deploy set last; `None` once uninstall took it away (what is there is
    /// the operator's: `before` says what uninstall left, and a later install records anew).
    #[serde(default)]
    pub ours: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Saved {
    /// The original was a symlink to this target.
    Symlink { target: String },
    /// The original file was moved or copied here.
    File { backup: String },
}

impl State {
    pub fn load(host: &dyn Host) -> Result<State, HostError> {
        match host.read(Path::new(STATE_FILE))? {
            None => Ok(State {
                version: 1,
                ..State::default()
            }),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                HostError(format!(
                    "{STATE_FILE} is corrupt ({e}); move it away to start afresh"
                ))
            }),
        }
    }

    pub fn save(&self, host: &dyn Host) -> Result<(), HostError> {
        let root = Owner {
            user: "root".into(),
            group: "root".into(),
            mode: 0o755,
        };
        if let Some(dir) = Path::new(STATE_FILE).parent() {
            if host.stat(dir)?.is_none() {
                host.mkdir(dir, &root)?;
            }
        }
        let mut json = serde_json::to_vec_pretty(self).expect("state serializes");
        json.push(b'\n');
        host.write(
            Path::new(STATE_FILE),
            &json,
            &Owner {
                mode: 0o600,
                ..root
            },
        )
    }

    /// Did this tool create or replace `path`?
    pub fn owns(&self, path: &str) -> bool {
        self.created.contains(path) || self.saved.contains_key(path)
    }

    /// The state file records nothing telem-deploy did on this machine: it never installed
    /// here (or kept no record of it), so nothing here is its own to undo.
    pub fn records_nothing(&self) -> bool {
        let State {
            version: _,
            packages,
            install_baseline,
            created,
            users,
            saved,
            pending: _,
            postgres_settings,
            postgres_from_backup,
            postgres_hba,
        } = self;
        packages.is_empty()
            && install_baseline.is_none()
            && created.is_empty()
            && users.is_empty()
            && saved.is_empty()
            && postgres_settings.is_empty()
            && !postgres_from_backup
            && postgres_hba.is_none()
    }

    /// The state file records an installation: something telem-deploy created, set aside or
    /// set in PostgreSQL is still there (or an install is under way). Not after `uninstall -u`
    /// took everything away (records that say what is gone remain), nor after a plain
    /// `uninstall`, whose only leftovers are the packages telem-deploy installed (kept, and
    /// recorded for a later `-u`): packages alone are no installation to restart or migrate.
    pub fn records_an_install(&self) -> bool {
        self.install_baseline.is_some()
            || !self.created.is_empty()
            || !self.users.is_empty()
            || !self.saved.is_empty()
            || self.postgres_settings.values().any(|r| r.ours.is_some())
            || self.postgres_hba.as_ref().is_some_and(|h| h.ours)
    }

    /// Is telem-deploy's pg_hba.conf block still to be taken out, by this record? `Some(false)`:
    /// no (uninstall took it out, or telem-deploy never installed here); `Some(true)`: yes;
    /// `None`: the record cannot say (only the file the server names can).
    ///
    /// A host installed before the block was recorded has no record of it; when an uninstall
    /// there took telem-deploy's settings away (recorded since earlier), it took the block out
    /// before them (uninstall's pg_hba.conf step comes first, and a run stops at its first
    /// failure), so that too says no.
    pub fn hba_block_left(&self) -> Option<bool> {
        match &self.postgres_hba {
            Some(hba) => Some(hba.ours),
            None if self.records_nothing() => Some(false),
            None if !self.postgres_settings.is_empty()
                && self.postgres_settings.values().all(|r| r.ours.is_none()) =>
            {
                Some(false)
            }
            None => None,
        }
    }

    /// Is some value telem-deploy set on `names` with `ALTER SYSTEM` still to be taken away,
    /// by this record? `false`: each is recorded as taken away by uninstall, or telem-deploy
    /// never installed here. `true` also where a name has no record (a host installed before
    /// the settings were recorded: only the server can say what holds telem-deploy's value).
    pub fn settings_left<'n>(&self, mut names: impl Iterator<Item = &'n String>) -> bool {
        !self.records_nothing()
            && names.any(|n| {
                self.postgres_settings
                    .get(n)
                    .is_none_or(|r| r.ours.is_some())
            })
    }

    /// Is anything telem-deploy changed inside the PostgreSQL cluster (its pg_hba.conf block,
    /// its `ALTER SYSTEM` settings) still to be undone, or can the record not say? The
    /// `postgres_left` condition: uninstall runs a stopped standby only then.
    pub fn postgres_left(&self) -> bool {
        self.hba_block_left() != Some(false)
            || self.postgres_settings.values().any(|r| r.ours.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_state_file_reads_with_no_postgres_records_and_new_ones_round_trip() {
        let old = r#"{"version": 1, "packages": ["postgresql"], "created": [], "saved": {}}"#;
        let st: State = serde_json::from_str(old).unwrap();
        assert!(st.postgres_settings.is_empty() && !st.postgres_from_backup);
        let json = serde_json::to_string(&st).unwrap();
        assert!(
            !json.contains("postgres_"),
            "nothing new written when empty: {json}"
        );

        let mut st = st;
        st.postgres_settings.insert(
            "listen_addresses".into(),
            RecordedSetting {
                before: Some("*".into()),
                ours: Some("localhost,10.0.0.11".into()),
            },
        );
        st.postgres_settings.insert(
            "ssl".into(),
            RecordedSetting {
                before: None,
                ours: None,
            },
        );
        let back: State = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(back, st);
        // A record without `ours` (none set): telem-deploy's value is gone.
        let gone: RecordedSetting = serde_json::from_str(r#"{"before": "on"}"#).unwrap();
        assert_eq!(gone.ours, None);
    }

    #[test]
    fn what_is_left_inside_postgresql_is_read_from_the_records() {
        let names = ["listen_addresses".to_owned(), "ssl".to_owned()];
        let set = |ours: Option<&str>| RecordedSetting {
            before: None,
            ours: ours.map(str::to_owned),
        };
        // Never installed here: nothing of telem-deploy's.
        let never = State::default();
        assert!(never.records_nothing());
        assert_eq!(never.hba_block_left(), Some(false));
        assert!(!never.settings_left(names.iter()) && !never.postgres_left());

        // Installed by a telem-deploy that recorded neither: only the server can say.
        let mut old = State::default();
        old.created.insert("/etc/telemetry".into());
        assert_eq!(old.hba_block_left(), None);
        assert!(old.settings_left(names.iter()) && old.postgres_left());

        // Installed: the block and the settings are there.
        let mut st = old.clone();
        st.postgres_hba = Some(RecordedHba {
            file: "/etc/postgresql/15/main/pg_hba.conf".into(),
            ours: true,
        });
        for n in &names {
            st.postgres_settings.insert(n.clone(), set(Some("on")));
        }
        assert_eq!(st.hba_block_left(), Some(true));
        assert!(st.settings_left(names.iter()) && st.postgres_left());

        // The block out, one setting taken away: the other is still left.
        st.postgres_hba.as_mut().unwrap().ours = false;
        st.postgres_settings.insert("ssl".into(), set(None));
        assert_eq!(st.hba_block_left(), Some(false));
        assert!(st.settings_left(names.iter()) && st.postgres_left());
        assert!(!st.settings_left(names[1..].iter()));

        // Everything taken away.
        st.postgres_settings
            .insert("listen_addresses".into(), set(None));
        assert!(!st.settings_left(names.iter()) && !st.postgres_left());
        // A name without a record: the server says.
        assert!(st.settings_left(["work_mem".to_owned()].iter()));

        // No record of the block, the settings taken away (by an uninstall, after the block).
        st.postgres_hba = None;
        assert_eq!(st.hba_block_left(), Some(false));
        assert!(!st.postgres_left());
        let json = serde_json::to_string(&st).unwrap();
        assert!(!json.contains("postgres_hba"), "{json}");
    }
}
