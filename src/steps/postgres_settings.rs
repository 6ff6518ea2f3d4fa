//! `postgres_settings` steps: server settings held by `ALTER SYSTEM` (postgresql.auto.conf),
//! present with their values, or absent (reset to what postgresql.conf or the default says).
//!
//! Through psql as the cluster's OS user (`engine/pgadmin.rs`): the check compares what
//! postgresql.auto.conf holds (`pg_file_settings`) and what the server runs (`pg_settings`:
//! its value, and `pending_restart`); apply runs `ALTER SYSTEM SET`/`RESET` and the step
//! notifies its services (a reload applies most settings, a restart `listen_addresses`).
//! A setting in the file but not yet in effect is a change too, so a run interrupted between
//! the two converges on the next one. Values are written as `SHOW` prints them (`on`,
//! `128MB`): the running value is compared as text, except for settings a restart applies,
//! where the server itself says whether the file differs from what runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::{Op, Setting};
use crate::engine::postgres::{admin, exec, query};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::Presence;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Setting name → value (a string, as `SHOW` prints it). With `state: absent` the values
    /// are not used.
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub state: Presence,
    #[serde(default)]
    pub notify: Vec<String>,
}

/// The longest value accepted.
const MAX_VALUE: usize = 4096;

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
        let settings = match query(eng, self.op()) {
            Ok(r) => r.settings,
            Err(unknown) => return Ok(unknown),
        };
        let changes = self.differences(&settings)?;
        Ok(match changes.is_empty() {
            true => Check::ok(match self.state {
                Presence::Present => format!("{} in effect", self.listed()),
                Presence::Absent => format!("{} not set by ALTER SYSTEM", self.names().join(", ")),
            }),
            false => Check::change(changes),
        })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let settings = admin(eng)
            .call(self.op())
            .map_err(StepError::host)?
            .settings;
        match self.alter(&settings) {
            Some(op) => exec(eng, op),
            None => Ok(()),
        }
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }
}

impl PostgresSettings {
    fn names(&self) -> Vec<String> {
        self.settings.keys().cloned().collect()
    }

    pub(crate) fn op(&self) -> Op {
        Op::Settings {
            names: self.names(),
        }
    }

    /// The `ALTER SYSTEM` statements for what postgresql.auto.conf lacks (`None`: nothing).
    /// A value in the file but not in effect waits for the notification (the reload or
    /// restart the step's change queues).
    pub(crate) fn alter(&self, settings: &[Setting]) -> Option<Op> {
        let (mut set, mut reset) = (Vec::new(), Vec::new());
        for s in settings {
            match self.state {
                Presence::Present => {
                    let want = &self.settings[&s.name];
                    if s.auto_conf.as_ref() != Some(want) {
                        set.push((s.name.clone(), want.clone()));
                    }
                }
                Presence::Absent if s.auto_conf.is_some() => reset.push(s.name.clone()),
                Presence::Absent => {}
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

    /// What differs, one line per setting (empty: nothing).
    pub(crate) fn differences(&self, settings: &[Setting]) -> Result<Vec<String>, StepError> {
        let mut changes = Vec::new();
        for s in settings {
            if !s.known && self.state == Presence::Present {
                return Err(StepError::msg(format!(
                    "PostgreSQL has no setting `{}`",
                    s.name
                )));
            }
            if let Some(change) = self.difference(s) {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    fn difference(&self, s: &Setting) -> Option<String> {
        let how = match s.context.as_str() {
            "postmaster" => "a restart",
            _ => "a reload",
        };
        match self.state {
            Presence::Present => {
                let want = &self.settings[&s.name];
                if s.auto_conf.as_ref() != Some(want) {
                    let was = match &s.auto_conf {
                        Some(v) => format!("ALTER SYSTEM had '{v}'"),
                        None => format!("running '{}'", s.shown),
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
            Presence::Absent => match &s.auto_conf {
                Some(v) => Some(format!(
                    "ALTER SYSTEM RESET {} (was '{v}'; applied by {how})",
                    s.name
                )),
                None if s.from_auto_conf || s.pending_restart => Some(format!(
                    "{} is reset but its ALTER SYSTEM value is still in effect: {how} applies it",
                    s.name
                )),
                None => None,
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
        let d = want.differences(&[listen.clone(), ssl.clone()]).unwrap();
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
        let d = want.differences(&[listen.clone(), ssl.clone()]).unwrap();
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("not in effect") && d[0].contains("a restart"));
        assert!(d[1].contains("not in effect") && d[1].contains("a reload"));
        // Restarted and reloaded.
        listen.auto_conf_error = None;
        listen.from_auto_conf = true;
        ssl.from_auto_conf = true;
        ssl.shown = "on".into();
        ssl.setting = "on".into();
        assert!(want.differences(&[listen.clone(), ssl.clone()]).unwrap().is_empty());
        // Reloaded after a change of a restart's setting: pending.
        listen.pending_restart = true;
        assert_eq!(want.differences(&[listen, ssl]).unwrap().len(), 1);
        // A value written otherwise than SHOW prints it counts once the server read the file
        // after its change.
        let mem = step(Presence::Present, &[("work_mem", "1024MB")]);
        let mut work_mem = setting("work_mem", "user");
        work_mem.auto_conf = Some("1024MB".into());
        work_mem.from_auto_conf = true;
        work_mem.shown = "1GB".into();
        work_mem.setting = "1048576".into();
        assert_eq!(mem.differences(std::slice::from_ref(&work_mem)).unwrap().len(), 1);
        work_mem.reloaded_since_change = true;
        assert!(mem.differences(&[work_mem]).unwrap().is_empty());
    }

    #[test]
    fn absent_resets_and_waits_for_the_reload() {
        let gone = step(Presence::Absent, &[("ssl", "")]);
        let mut ssl = setting("ssl", "sighup");
        ssl.auto_conf = Some("on".into());
        assert_eq!(
            gone.differences(std::slice::from_ref(&ssl)).unwrap(),
            ["ALTER SYSTEM RESET ssl (was 'on'; applied by a reload)"]
        );
        ssl.auto_conf = None;
        ssl.from_auto_conf = true;
        assert_eq!(gone.differences(std::slice::from_ref(&ssl)).unwrap().len(), 1);
        ssl.from_auto_conf = false;
        assert!(gone.differences(&[ssl]).unwrap().is_empty());
    }

    #[test]
    fn an_unknown_setting_is_an_error_when_present() {
        let mut typo = setting("lsiten_addresses", "");
        typo.known = false;
        let err = step(Presence::Present, &[("lsiten_addresses", "*")])
            .differences(std::slice::from_ref(&typo))
            .unwrap_err();
        assert!(err.to_string().contains("no setting `lsiten_addresses`"), "{err}");
        assert!(step(Presence::Absent, &[("lsiten_addresses", "")])
            .differences(&[typo])
            .unwrap()
            .is_empty());
    }
}
