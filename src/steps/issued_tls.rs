//! `issued_tls` steps: a server certificate signed by the run's certificate authority (the
//! controller's, `crate::ca`) for exactly `names`, and its private key, owned by the service
//! that serves it (the database host's PostgreSQL).
//!
//! What is on the target is kept while it is this CA's, for exactly these names, valid for more
//! than [`RENEW_BEFORE_DAYS`] days, and its key matches it (compared, never shown); else a new
//! pair is issued and installed: the key (0600) first, then the certificate (0644), each
//! written atomically. The plan describes certificates (subject, issuer, expiry, SHA-256),
//! never the key.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::ca::{Ca, Issued};
use crate::engine::fs::{ensure_parent, ownership_changes};
use crate::engine::{Check, Engine, StepError};
use crate::host::Owner;
use crate::recipe::compiler::Compiler;
use crate::recipe::model::root;
use crate::secret::Secret;
use crate::tls::{self, CertInfo, RENEW_BEFORE_DAYS};

/// What a recipe writes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuedTls {
    pub certificate: String,
    pub key: String,
    pub names: Vec<String>,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    #[serde(default)]
    pub notify: Vec<String>,
}

/// A certificate issued by the run's CA for `names`, and its key.
#[derive(Debug, Clone)]
pub struct IssuedTls {
    pub certificate: String,
    pub key: String,
    /// As written (the first is the subject's common name).
    pub names: Vec<String>,
    pub owner: String,
    pub group: String,
    pub notify: Vec<String>,
    /// The pair a check found missing or stale, issued once per run: the plan describes the
    /// certificate that applying installs.
    issued: OnceLock<Issued>,
}

const CERT_MODE: u32 = 0o644;
const KEY_MODE: u32 = 0o600;

pub(crate) const NO_CA: &str =
    "no certificate authority for this run (the inventory names its directory)";

impl Step for IssuedTls {
    const KIND: &'static str = "issued_tls";
    type Raw = RawIssuedTls;

    fn compile(raw: &RawIssuedTls, c: &mut Compiler) -> Option<IssuedTls> {
        let mut ok = c.services("notify", &raw.notify);
        for (field, path) in [("certificate", &raw.certificate), ("key", &raw.key)] {
            if !c.waits(path) && !path.starts_with('/') {
                c.error(field, "must be an absolute path");
                ok = false;
            }
        }
        if !c.waits(&raw.certificate) && raw.certificate == raw.key {
            c.error("key", "must not be the certificate's path");
            ok = false;
        }
        if raw.names.is_empty() {
            c.error("names", "needs at least one IP address or DNS name");
            ok = false;
        }
        let mut seen = BTreeSet::new();
        for (i, name) in raw.names.iter().enumerate() {
            let field = format!("names[{i}]");
            match c.parse_with(&field, name, normalize) {
                Some(n) => {
                    if !seen.insert(n) {
                        c.error(&field, format!("`{name}` is named twice"));
                        ok = false;
                    }
                }
                None => ok &= c.waits(name),
            }
        }
        for (field, who) in [("owner", &raw.owner), ("group", &raw.group)] {
            if !c.waits(who) && !valid_account(who) {
                c.error(field, format!("`{who}` is not a user or group name"));
                ok = false;
            }
        }
        ok.then(|| IssuedTls {
            certificate: raw.certificate.clone(),
            key: raw.key.clone(),
            names: raw.names.clone(),
            owner: raw.owner.clone(),
            group: raw.group.clone(),
            notify: raw.notify.clone(),
            issued: OnceLock::new(),
        })
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        let Some(ca) = eng.ca else {
            return Ok(Check::blocked(NO_CA));
        };
        check(eng, ca, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let ca = eng.ca.ok_or_else(|| StepError::msg(NO_CA))?;
        apply(eng, ca, self)
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }

    fn preflight(&self, eng: &Engine) -> Result<(), StepError> {
        match eng.ca {
            Some(_) => Ok(()),
            None => Err(StepError::msg(NO_CA)),
        }
    }
}

/// A name as certificates compare it: an IP address in its canonical form, a DNS name in
/// lower case. Anything else is refused.
fn normalize(name: &str) -> Result<String, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let dns = name.strip_prefix("*.").unwrap_or(name);
    match name.len() <= 253 && dns.split('.').all(label_ok) {
        true => Ok(name.to_ascii_lowercase()),
        false => Err(format!("`{name}` is neither an IP address nor a DNS name")),
    }
}

fn valid_account(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The names of a certificate (or a step), as a set compared exactly.
fn name_set<'n>(names: impl IntoIterator<Item = &'n String>) -> BTreeSet<String> {
    names
        .into_iter()
        .map(|n| normalize(n).unwrap_or_else(|_| n.clone()))
        .collect()
}

/// What is on the target, judged.
enum Found {
    /// Keep it (this CA's, these names, fresh, its key matches).
    Keep(CertInfo),
    /// Issue a new pair; the old certificate (when it parses) and why it goes.
    Replace(Option<CertInfo>, String),
    /// No certificate there.
    Missing,
}

fn judge(eng: &Engine, ca: &Ca, step: &IssuedTls) -> Result<Found, StepError> {
    let Some(cert) = eng
        .host
        .read(Path::new(&step.certificate))
        .map_err(StepError::host)?
    else {
        return Ok(Found::Missing);
    };
    let info = match tls::info(&cert) {
        Ok(i) => i,
        Err(e) => return Ok(Found::Replace(None, format!("unreadable: {e}"))),
    };
    let replace = |why: String| Ok(Found::Replace(Some(info.clone()), why));
    if !ca.signed(&cert) {
        return replace(format!("not issued by {}", ca.describe()));
    }
    let (have, want) = (name_set(&info.names), name_set(&step.names));
    if have != want {
        return replace(format!(
            "for {}, not {}",
            info.names.join(", "),
            step.names.join(", ")
        ));
    }
    let now = tls::now();
    if info.not_before > now {
        return replace(format!("not valid before {}", tls::utc(info.not_before)));
    }
    if info.not_after <= now + RENEW_BEFORE_DAYS * 86_400 {
        return replace(format!(
            "expires {} (within {RENEW_BEFORE_DAYS} days)",
            tls::utc(info.not_after)
        ));
    }
    let key = eng
        .host
        .read(Path::new(&step.key))
        .map_err(StepError::host)?
        .map(|k| Secret::new(String::from_utf8_lossy(&k).into_owned()));
    match key.map(|k| tls::key_matches(&cert, &k)) {
        None => replace(format!("no private key at {}", step.key)),
        Some(Ok(true)) => Ok(Found::Keep(info)),
        Some(Ok(false)) => replace(format!("the private key {} does not match it", step.key)),
        Some(Err(e)) => replace(format!("the private key {}: {e}", step.key)),
    }
}

impl IssuedTls {
    fn owner(&self, mode: u32) -> Owner {
        Owner {
            user: self.owner.clone(),
            group: self.group.clone(),
            mode,
        }
    }

    /// The pair applying installs: issued on first use, the same for the rest of the run.
    fn issued(&self, ca: &Ca) -> Result<&Issued, StepError> {
        if let Some(i) = self.issued.get() {
            return Ok(i);
        }
        let new = ca
            .issue(&self.names)
            .map_err(|e| StepError::msg(e.to_string()))?;
        Ok(self.issued.get_or_init(|| new))
    }

    /// Owner, group and mode of the certificate and the key that differ.
    fn ownership(&self, eng: &Engine) -> Result<Vec<String>, StepError> {
        let mut out = Vec::new();
        for (path, mode) in [(&self.certificate, CERT_MODE), (&self.key, KEY_MODE)] {
            if let Some(meta) = eng.host.stat(Path::new(path)).map_err(StepError::host)? {
                for c in ownership_changes(eng, &meta, &self.owner(mode)) {
                    out.push(format!("{path}: {c}"));
                }
            }
        }
        Ok(out)
    }
}

fn check(eng: &Engine, ca: &Ca, step: &IssuedTls) -> Result<Check, StepError> {
    let mut changes = Vec::new();
    if ca.would_create() {
        changes.push(format!("create {}", ca.describe()));
    }
    let names = step.names.join(", ");
    match judge(eng, ca, step)? {
        Found::Keep(info) => {
            let ownership = step.ownership(eng)?;
            if ownership.is_empty() && changes.is_empty() {
                return Ok(Check::ok(format!(
                    "certificate {} for {names} ({}) and its key installed",
                    step.certificate,
                    info.describe()
                )));
            }
            changes.extend(ownership);
        }
        found => {
            let new = step.issued(ca)?;
            changes.push(match found {
                Found::Missing => format!(
                    "install a certificate issued for {names} at {} ({})",
                    step.certificate,
                    new.info.describe()
                ),
                Found::Replace(old, why) => format!(
                    "replace certificate {}: was {} ({why}); now {}",
                    step.certificate,
                    old.map(|i| i.describe())
                        .unwrap_or_else(|| "not a certificate".into()),
                    new.info.describe()
                ),
                Found::Keep(_) => unreachable!("kept above"),
            });
            changes.push(format!(
                "install its private key {} (not shown), owned by {}:{}, mode 0600",
                step.key, step.owner, step.group
            ));
        }
    }
    Ok(Check::change(changes))
}

/// The key first, then the certificate: a service notified once both are in place never
/// reads a certificate whose key is not there yet.
fn apply(eng: &Engine, ca: &Ca, step: &IssuedTls) -> Result<(), StepError> {
    if let Found::Keep(_) = judge(eng, ca, step)? {
        for (path, mode) in [(&step.key, KEY_MODE), (&step.certificate, CERT_MODE)] {
            eng.host
                .chown(Path::new(path), &step.owner(mode))
                .map_err(StepError::host)?;
        }
        return Ok(());
    }
    let new = step.issued(ca)?;
    // Recorded before they are written, so uninstall removes them (and only them).
    for path in [&step.key, &step.certificate] {
        if eng
            .host
            .stat(Path::new(path))
            .map_err(StepError::host)?
            .is_none()
        {
            eng.update_state(|s| {
                s.created.insert(path.clone());
            })?;
        }
    }
    let key_path = Path::new(&step.key);
    ensure_parent(eng, key_path)?;
    eng.host
        .write(
            key_path,
            new.key_pem.expose().as_bytes(),
            &step.owner(KEY_MODE),
        )
        .map_err(|e| StepError::msg(format!("writing the private key {}: {}", step.key, e.0)))?;
    let cert_path = Path::new(&step.certificate);
    ensure_parent(eng, cert_path)?;
    eng.host
        .write(cert_path, &new.cert_pem, &step.owner(CERT_MODE))
        .map_err(StepError::host)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ips_or_dns_names() {
        assert_eq!(normalize("10.77.0.11").unwrap(), "10.77.0.11");
        assert_eq!(normalize("::1").unwrap(), "::1");
        assert_eq!(normalize("0:0:0:0:0:0:0:1").unwrap(), "::1");
        assert_eq!(normalize("DB.Example.org").unwrap(), "db.example.org");
        assert_eq!(normalize("*.example.org").unwrap(), "*.example.org");
        for bad in [
            "",
            "a b",
            "x;y",
            "-lead",
            "a..b",
            "10.0.0.0/8",
            "e\nvil",
            "'quote",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }
}
