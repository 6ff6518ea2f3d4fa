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
}
