//! `postgres_settings` steps: server settings held by `ALTER SYSTEM` (postgresql.auto.conf),
//! present with their values, or absent (what was there before telem-deploy).
//!
//! Through psql as the cluster's OS user (`engine/pgadmin.rs`): the check compares what
//! postgresql.auto.conf holds (`pg_file_settings`) and what the server runs (`pg_settings`:
//! its value, and `pending_restart`); apply runs `ALTER SYSTEM SET`/`RESET` and the step
//! notifies its services (a reload applies most settings, a restart `listen_addresses`).
//! A setting in the file but not yet in effect is a change too, so a run interrupted between
//! the two converges on the next one. Values are written as `SHOW` prints them (`on`,
//! `128MB`): the running value is compared as text, except for settings a restart applies,
//! where the server itself says whether the file differs from what runs.
//!
//! Before its first change, `present` records in the state file what postgresql.auto.conf
//! held for each of its settings (the operator's own `ALTER SYSTEM` value, or nothing); a
//! later run keeps that record and only notes the value it set. `absent` puts the recorded
//! value back (`ALTER SYSTEM SET`) or resets the setting when there was none (a value of
//! postgresql.conf then applies again: `ALTER SYSTEM RESET` never touches that file); a
//! setting someone changed since telem-deploy set it stays as it is. The record then says
//! telem-deploy's value is gone, so a second uninstall leaves the operator's values alone and
//! a later install records afresh. Without a record (a host installed before telem-deploy
//! kept one), it resets what holds the step's value (or anything, when the step gives none).
//! Where the record says none of the step's settings holds telem-deploy's value any more,
//! `absent` is `ok` without asking the server (a second uninstall, on a standby the first one
//! stopped).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::{Op, PgAdmin, Setting};
use crate::engine::postgres::{admin, query};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::Presence;
use crate::state::{RecordedSetting, State};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Setting name → value (a string, as `SHOW` prints it). With `state: absent`, the value
    /// telem-deploy sets (what a setting it holds without a record of what was there before
    /// is reset from), or `""`: reset whatever it holds.
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub state: Presence,
    #[serde(default)]
    pub notify: Vec<String>,
}

/// The longest value accepted.
const MAX_VALUE: usize = 4096;

/// The settings telem-deploy recorded (the state file's).
pub(crate) type Records = BTreeMap<String, RecordedSetting>;

/// What `absent` leaves in postgresql.auto.conf for one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Goal {
    /// No entry: reset.
    Reset,
    /// The value that was there before telem-deploy.
    Restore(String),
    /// As it is (someone else's value, not telem-deploy's): why.
    Keep(String),
}

impl Step for PostgresSettings {
    const KIND: &'static str = "postgres_settings";
    type Raw = PostgresSettings;

    fn compile(raw: &PostgresSettings, c: &mut Compiler) -> Option<PostgresSettings> {
        let mut ok = c.services("notify", &raw.notify);
        if raw.settings.is_empty() {
            c.error("settings", "names no setting");
            ok = false;
        }
        for (name, value) in &raw.settings {
            let field = format!("settings.{name}");
            if !valid_name(name) {
                c.error(
                    &field,
                    format!("`{name}` is not a setting name (lower-case letters, digits and _)"),
                );
                ok = false;
            }
            if !c.waits(value) {
                if let Err(e) = valid_value(value) {
                    c.error(&field, e);
                    ok = false;
                }
            }
        }
        ok.then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        if let Some(done) = self.nothing_left(&eng.state.borrow()) {
            return Ok(done);
        }
        let settings = match query(eng, self.op()) {
            Ok(r) => r.settings,
            Err(unknown) => return Ok(unknown),
        };
        let records = eng.state.borrow().postgres_settings.clone();
        let changes = self.differences(&settings, &records)?;
        Ok(match changes.is_empty() {
            true => Check::ok(match self.state {
                Presence::Present => format!("{} in effect", self.listed()),
                Presence::Absent => self.as_before(&settings, &records),
            }),
            false => Check::change(changes),
        })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        if self.nothing_left(&eng.state.borrow()).is_some() {
            return Ok(());
        }
        let (records, from_backup) = {
            let st = eng.state.borrow();
            (st.postgres_settings.clone(), st.postgres_from_backup)
        };
        self.converge(&admin(eng), &records, from_backup, &mut |recorded| {
            eng.update_state(|st| st.postgres_settings = recorded)
        })
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }
}

impl PostgresSettings {
    /// `absent` where the state file says telem-deploy has no value of its own left in these
    /// settings (an earlier uninstall took them away, or it never installed here): the `ok`
    /// it is, known without the server, which may be stopped by then (uninstall stops a
    /// standby). Whatever postgresql.auto.conf holds is the operator's then, which `absent`
    /// leaves as it is anyway. `None`: the server says what is left.
    fn nothing_left(&self, state: &State) -> Option<Check> {
        if self.state != Presence::Absent || state.settings_left(self.settings.keys()) {
            return None;
        }
        let names = self.names().join(", ");
        Some(Check::ok(match state.records_nothing() {
            true => format!(
                "{names}: telem-deploy never installed here (its state file records nothing)"
            ),
            false => format!(
                "{names}: telem-deploy's values were already taken away (its state file says so)"
            ),
        }))
    }

    fn names(&self) -> Vec<String> {
        self.settings.keys().cloned().collect()
    }

    pub(crate) fn op(&self) -> Op {
        Op::Settings {
            names: self.names(),
        }
    }

    /// Apply on the cluster of `pg`, with the state file's `records`: `save` writes the new
    /// records to the state file, for `present` before the change (what was there is on disk
    /// before anything replaces it), for `absent` once it is done (from then on, what its
    /// settings hold is the operator's: a second uninstall leaves it, an install records it).
    pub(crate) fn converge(
        &self,
        pg: &PgAdmin,
        records: &Records,
        from_backup: bool,
        save: &mut dyn FnMut(Records) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        let settings = pg.call(self.op()).map_err(StepError::host)?.settings;
        let alter = |op: Option<Op>| match op {
            Some(op) => pg.call(op).map(drop).map_err(StepError::host),
            None => Ok(()),
        };
        match self.state {
            Presence::Present => {
                let recorded = self.record(&settings, records, from_backup);
                if recorded != *records {
                    save(recorded)?;
                }
                alter(self.alter(&settings, records))
            }
            Presence::Absent => {
                alter(self.alter(&settings, records))?;
                // Done: what is there now is the operator's (a re-run leaves it alone).
                let mut left = records.clone();
                for s in &settings {
                    let now = match self.goal(s, records) {
                        Goal::Reset => None,
                        Goal::Restore(v) => Some(v),
                        Goal::Keep(_) => s.auto_conf.clone(),
                    };
                    left.insert(
                        s.name.clone(),
                        RecordedSetting {
                            before: now,
                            ours: None,
                        },
                    );
                }
                match left != *records {
                    true => save(left),
                    false => Ok(()),
                }
            }
        }
    }

    /// The records after `present` applies: each setting of the step keeps what was there
    /// before telem-deploy's first change (recorded now, if not yet: what postgresql.auto.conf
    /// holds, nothing when the data directory is telem-deploy's base backup) and notes the
    /// value set now.
    pub(crate) fn record(
        &self,
        settings: &[Setting],
        records: &Records,
        from_backup: bool,
    ) -> Records {
        let mut out = records.clone();
        for s in settings {
            let before = match records.get(&s.name) {
                Some(r) if r.ours.is_some() => r.before.clone(),
                _ if from_backup => None,
                _ => s.auto_conf.clone(),
            };
            let ours = Some(self.settings[&s.name].clone());
            out.insert(s.name.clone(), RecordedSetting { before, ours });
        }
        out
    }

    /// What `absent` leaves for `s`, by its record (see the module's documentation).
    pub(crate) fn goal(&self, s: &Setting, records: &Records) -> Goal {
        let now = s.auto_conf.as_ref();
        match records.get(&s.name).map(|r| (&r.before, &r.ours)) {
            Some((_, None)) => Goal::Keep("telem-deploy's value was already taken away".into()),
            Some((before, Some(ours))) if now == before.as_ref() || now == Some(ours) => {
                match before {
                    Some(v) => Goal::Restore(v.clone()),
                    None => Goal::Reset,
                }
            }
            Some((_, Some(ours))) => Goal::Keep(format!("changed since telem-deploy set '{ours}'")),
            None => {
                let ours = &self.settings[&s.name];
                match now {
                    Some(v) if !ours.is_empty() && v != ours => {
                        Goal::Keep(format!("not telem-deploy's '{ours}'"))
                    }
                    _ => Goal::Reset,
                }
            }
        }
    }

    /// The `ALTER SYSTEM` statements for what postgresql.auto.conf lacks (`None`: nothing).
    /// A value in the file but not in effect waits for the notification (the reload or
    /// restart the step's change queues).
    pub(crate) fn alter(&self, settings: &[Setting], records: &Records) -> Option<Op> {
        let (mut set, mut reset) = (Vec::new(), Vec::new());
        for s in settings {
            match self.state {
                Presence::Present => {
                    let want = &self.settings[&s.name];
                    if s.auto_conf.as_ref() != Some(want) {
                        set.push((s.name.clone(), want.clone()));
                    }
                }
                Presence::Absent => match self.goal(s, records) {
                    Goal::Reset if s.auto_conf.is_some() => reset.push(s.name.clone()),
                    Goal::Restore(v) if s.auto_conf.as_ref() != Some(&v) => {
                        set.push((s.name.clone(), v))
                    }
                    _ => {}
                },
            }
        }
        (!set.is_empty() || !reset.is_empty()).then_some(Op::AlterSystem { set, reset })
    }

    /// `a = 'x', b = 'y'`.
    fn listed(&self) -> String {
        self.settings
            .iter()
            .map(|(n, v)| format!("{n} = '{v}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// An absent step's `ok`: each setting as it is left.
    fn as_before(&self, settings: &[Setting], records: &Records) -> String {
        settings
            .iter()
            .map(|s| match self.goal(s, records) {
                Goal::Reset => format!("{} not set by ALTER SYSTEM", s.name),
                Goal::Restore(v) => format!("{} = '{v}' as before telem-deploy", s.name),
                Goal::Keep(why) => format!("{} left as it is ({why})", s.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What differs, one line per setting (empty: nothing).
    pub(crate) fn differences(
        &self,
        settings: &[Setting],
        records: &Records,
    ) -> Result<Vec<String>, StepError> {
        let mut changes = Vec::new();
        for s in settings {
            if !s.known && self.state == Presence::Present {
                return Err(StepError::msg(format!(
                    "PostgreSQL has no setting `{}`",
                    s.name
                )));
            }
            if let Some(change) = self.difference(s, records) {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    fn difference(&self, s: &Setting, records: &Records) -> Option<String> {
        let how = match s.context.as_str() {
            "postmaster" => "a restart",
            _ => "a reload",
        };
        match self.state {
            Presence::Present => {
                let want = &self.settings[&s.name];
                if s.auto_conf.as_ref() != Some(want) {
                    let recorded = records.get(&s.name).is_some_and(|r| r.ours.is_some());
                    let was = match (&s.auto_conf, recorded) {
                        (Some(v), false) => {
                            format!("ALTER SYSTEM had '{v}', recorded for uninstall")
                        }
                        (Some(v), true) => format!("ALTER SYSTEM had '{v}'"),
                        (None, _) => format!("running '{}'", s.shown),
                    };
                    return Some(format!(
                        "ALTER SYSTEM SET {} = '{want}' ({was}; applied by {how})",
                        s.name
                    ));
                }
                (!in_effect(s, want)).then(|| {
                    format!(
                        "{} = '{want}' is set but not in effect (running '{}'): {how} applies it",
                        s.name, s.shown
                    )
                })
            }
            Presence::Absent => match (self.goal(s, records), &s.auto_conf) {
                (Goal::Keep(_), _) => None,
                (Goal::Reset, Some(v)) => Some(format!(
                    "ALTER SYSTEM RESET {} (was '{v}'; applied by {how})",
                    s.name
                )),
                (Goal::Reset, None) if s.from_auto_conf || s.pending_restart => Some(format!(
                    "{} is reset but its ALTER SYSTEM value is still in effect: {how} applies it",
                    s.name
                )),
                (Goal::Reset, None) => None,
                (Goal::Restore(v), now) if now.as_ref() != Some(&v) => Some(format!(
                    "ALTER SYSTEM SET {} = '{v}' (put back the value from before telem-deploy; {}; applied by {how})",
                    s.name,
                    match now {
                        Some(n) => format!("ALTER SYSTEM has '{n}'"),
                        None => "ALTER SYSTEM has none".to_owned(),
                    }
                )),
                (Goal::Restore(v), _) => (!in_effect(s, &v)).then(|| {
                    format!(
                        "{} = '{v}' (from before telem-deploy) is back but not in effect (running '{}'): {how} applies it",
                        s.name, s.shown
                    )
                }),
            },
        }
    }
}

/// Does the server run the value postgresql.auto.conf holds (`want`)? A setting a restart
/// applies: the server compares the file's value with the running one (parsed: `1GB` is
/// `1024MB`) and objects when they differ. Any other: it runs the file's value as `SHOW` or
/// `pg_settings` write it, or it read the file after its last change.
fn in_effect(s: &Setting, want: &str) -> bool {
    if s.pending_restart || s.auto_conf_error.is_some() {
        return false;
    }
    s.context == "postmaster"
        || (s.from_auto_conf
            && (s.shown == want || s.setting == want || s.reloaded_since_change))
}

/// Lower-case letters, digits and `_`, starting with a letter (every built-in setting).
fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Any text ALTER SYSTEM can hold: no line breaks (the server refuses them), no other control
/// character, not too long. Quotes and backslashes are fine: the value travels quoted.
fn valid_value(value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err("a setting's value cannot hold a line break or a control character".into());
    }
    if value.len() > MAX_VALUE {
        return Err(format!("a setting's value is limited to {MAX_VALUE} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(state: Presence, pairs: &[(&str, &str)]) -> PostgresSettings {
        PostgresSettings {
            settings: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            state,
            notify: Vec::new(),
        }
    }

    fn none() -> Records {
        Records::new()
    }

    fn setting(name: &str, context: &str) -> Setting {
        Setting {
            name: name.into(),
            known: true,
            context: context.into(),
            ..Setting::default()
        }
    }

    #[test]
    fn names_and_values_are_validated() {
        for good in ["ssl", "listen_addresses", "ssl_min_protocol_version", "a1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "SSL", "1a", "a-b", "a.b", "a b", "a;b", "a'b", "_x"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_value("localhost,10.77.0.11").is_ok());
        assert!(valid_value("it's \\ \"quoted\"").is_ok());
        assert!(valid_value("a\nb").is_err());
        assert!(valid_value("a\rb").is_err());
        assert!(valid_value("a\0b").is_err());
    }

    #[test]
    fn a_value_in_the_file_counts_once_it_runs() {
        let want = step(Presence::Present, &[("listen_addresses", "*"), ("ssl", "on")]);
        let mut listen = setting("listen_addresses", "postmaster");
        let mut ssl = setting("ssl", "sighup");
        listen.shown = "localhost".into();
        ssl.shown = "off".into();
        let d = want.differences(&[listen.clone(), ssl.clone()], &none()).unwrap();
        assert_eq!(
            d,
            [
                "ALTER SYSTEM SET listen_addresses = '*' (running 'localhost'; applied by a restart)",
                "ALTER SYSTEM SET ssl = 'on' (running 'off'; applied by a reload)",
            ]
        );
        // In the file, not yet applied.
        listen.auto_conf = Some("*".into());
        listen.auto_conf_error = Some("setting could not be applied".into());
        ssl.auto_conf = Some("on".into());
        let d = want.differences(&[listen.clone(), ssl.clone()], &none()).unwrap();
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("not in effect") && d[0].contains("a restart"));
        assert!(d[1].contains("not in effect") && d[1].contains("a reload"));
        // Restarted and reloaded.
        listen.auto_conf_error = None;
        listen.from_auto_conf = true;
        ssl.from_auto_conf = true;
        ssl.shown = "on".into();
        ssl.setting = "on".into();
        assert!(want.differences(&[listen.clone(), ssl.clone()], &none()).unwrap().is_empty());
        // Reloaded after a change of a restart's setting: pending.
        listen.pending_restart = true;
        assert_eq!(want.differences(&[listen, ssl], &none()).unwrap().len(), 1);
        // A value written otherwise than SHOW prints it counts once the server read the file
        // after its change.
        let mem = step(Presence::Present, &[("work_mem", "1024MB")]);
        let mut work_mem = setting("work_mem", "user");
        work_mem.auto_conf = Some("1024MB".into());
        work_mem.from_auto_conf = true;
        work_mem.shown = "1GB".into();
        work_mem.setting = "1048576".into();
        assert_eq!(mem.differences(std::slice::from_ref(&work_mem), &none()).unwrap().len(), 1);
        work_mem.reloaded_since_change = true;
        assert!(mem.differences(&[work_mem], &none()).unwrap().is_empty());
    }

    #[test]
    fn absent_resets_and_waits_for_the_reload() {
        let gone = step(Presence::Absent, &[("ssl", "")]);
        let mut ssl = setting("ssl", "sighup");
        ssl.auto_conf = Some("on".into());
        assert_eq!(
            gone.differences(std::slice::from_ref(&ssl), &none()).unwrap(),
            ["ALTER SYSTEM RESET ssl (was 'on'; applied by a reload)"]
        );
        ssl.auto_conf = None;
        ssl.from_auto_conf = true;
        assert_eq!(gone.differences(std::slice::from_ref(&ssl), &none()).unwrap().len(), 1);
        ssl.from_auto_conf = false;
        assert!(gone.differences(&[ssl], &none()).unwrap().is_empty());
    }

    #[test]
    fn an_unknown_setting_is_an_error_when_present() {
        let mut typo = setting("lsiten_addresses", "");
        typo.known = false;
        let err = step(Presence::Present, &[("lsiten_addresses", "*")])
            .differences(std::slice::from_ref(&typo), &none())
            .unwrap_err();
        assert!(err.to_string().contains("no setting `lsiten_addresses`"), "{err}");
        assert!(step(Presence::Absent, &[("lsiten_addresses", "")])
            .differences(&[typo], &none())
            .unwrap()
            .is_empty());
    }

    fn recorded(pairs: &[(&str, Option<&str>, &str)]) -> Records {
        pairs
            .iter()
            .map(|(n, before, ours)| {
                (
                    n.to_string(),
                    RecordedSetting {
                        before: before.map(str::to_owned),
                        ours: Some(ours.to_string()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn present_records_what_was_there_once() {
        let want = step(
            Presence::Present,
            &[("listen_addresses", "localhost,10.0.0.11"), ("ssl", "on")],
        );
        let mut listen = setting("listen_addresses", "postmaster");
        listen.auto_conf = Some("*".into());
        let mut ssl = setting("ssl", "sighup");
        ssl.auto_conf = Some("on".into());
        ssl.from_auto_conf = true;
        ssl.shown = "on".into();
        let settings = [listen.clone(), ssl.clone()];
        let first = want.record(&settings, &none(), false);
        assert_eq!(
            first,
            recorded(&[
                ("listen_addresses", Some("*"), "localhost,10.0.0.11"),
                ("ssl", Some("on"), "on"),
            ])
        );
        let d = want.differences(&settings, &none()).unwrap();
        assert_eq!(
            d,
            ["ALTER SYSTEM SET listen_addresses = 'localhost,10.0.0.11' (ALTER SYSTEM had '*', \
              recorded for uninstall; applied by a restart)"]
        );
        // A re-run (the tool's values now in the file, another address): the original stays.
        listen.auto_conf = Some("localhost,10.0.0.11".into());
        let moved = step(
            Presence::Present,
            &[("listen_addresses", "localhost,10.0.0.12"), ("ssl", "on")],
        );
        let again = moved.record(&[listen.clone(), ssl.clone()], &first, false);
        assert_eq!(
            again,
            recorded(&[
                ("listen_addresses", Some("*"), "localhost,10.0.0.12"),
                ("ssl", Some("on"), "on"),
            ])
        );
        // A base backup's file is the primary's: nothing of it is recorded as the operator's.
        assert_eq!(
            want.record(&settings, &none(), true),
            recorded(&[
                ("listen_addresses", None, "localhost,10.0.0.11"),
                ("ssl", None, "on"),
            ])
        );
        // After an uninstall (telem-deploy's values gone), a new install records afresh.
        let mut uninstalled = first.clone();
        for r in uninstalled.values_mut() {
            r.ours = None;
        }
        listen.auto_conf = Some("127.0.0.1".into());
        assert_eq!(
            want.record(&[listen.clone(), ssl.clone()], &uninstalled, false)["listen_addresses"]
                .before
                .as_deref(),
            Some("127.0.0.1")
        );
        // Records of other settings are kept.
        let other = recorded(&[("work_mem", None, "64MB")]);
        assert!(want.record(&settings, &other, false).contains_key("work_mem"));
    }

    #[test]
    fn absent_puts_back_what_was_there_or_resets_what_the_tool_added() {
        let gone = step(
            Presence::Absent,
            &[
                ("listen_addresses", "localhost,10.0.0.11"),
                ("ssl", "on"),
                ("ssl_cert_file", "/etc/telem-db-tls/server.crt"),
                ("work_mem", ""),
            ],
        );
        let mut listen = setting("listen_addresses", "postmaster");
        let mut ssl = setting("ssl", "sighup");
        let mut cert = setting("ssl_cert_file", "sighup");
        let mut mem = setting("work_mem", "user");
        listen.auto_conf = Some("localhost,10.0.0.11".into());
        ssl.auto_conf = Some("on".into());
        ssl.from_auto_conf = true;
        ssl.shown = "on".into();
        cert.auto_conf = Some("/etc/telem-db-tls/server.crt".into());
        mem.auto_conf = Some("64MB".into());
        let records = recorded(&[
            ("listen_addresses", Some("*"), "localhost,10.0.0.11"),
            ("ssl", Some("on"), "on"),
            ("ssl_cert_file", None, "/etc/telem-db-tls/server.crt"),
        ]);
        let settings = [listen.clone(), ssl.clone(), cert.clone(), mem.clone()];
        assert_eq!(
            gone.differences(&settings, &records).unwrap(),
            [
                "ALTER SYSTEM SET listen_addresses = '*' (put back the value from before \
                 telem-deploy; ALTER SYSTEM has 'localhost,10.0.0.11'; applied by a restart)",
                "ALTER SYSTEM RESET ssl_cert_file (was '/etc/telem-db-tls/server.crt'; applied by a reload)",
                "ALTER SYSTEM RESET work_mem (was '64MB'; applied by a reload)",
            ]
        );
        assert_eq!(
            gone.alter(&settings, &records),
            Some(Op::AlterSystem {
                set: vec![("listen_addresses".into(), "*".into())],
                reset: vec!["ssl_cert_file".into(), "work_mem".into()],
            })
        );
        // Changed by someone since telem-deploy set it: left alone.
        cert.auto_conf = Some("/etc/ssl/mine.crt".into());
        assert_eq!(
            gone.goal(&cert, &records),
            Goal::Keep("changed since telem-deploy set '/etc/telem-db-tls/server.crt'".into())
        );
        assert!(gone.difference(&cert, &records).is_none());
        // Without a record: only telem-deploy's value is reset.
        assert_eq!(
            gone.goal(&cert, &none()),
            Goal::Keep("not telem-deploy's '/etc/telem-db-tls/server.crt'".into())
        );
        assert_eq!(gone.goal(&listen, &none()), Goal::Reset);
        assert_eq!(gone.goal(&mem, &none()), Goal::Reset, "no value: anything");
        // Put back, waiting for the restart; then as before.
        listen.auto_conf = Some("*".into());
        listen.auto_conf_error = Some("setting could not be applied".into());
        let d = gone.difference(&listen, &records).unwrap();
        assert!(d.contains("is back but not in effect"), "{d}");
        listen.auto_conf_error = None;
        assert!(gone.difference(&listen, &records).is_none());
        assert!(gone.difference(&ssl, &records).is_none());
        let ok = gone.as_before(&[listen, ssl], &records);
        assert_eq!(
            ok,
            "listen_addresses = '*' as before telem-deploy, ssl = 'on' as before telem-deploy"
        );
    }
}
