//! `tls` steps: the certificate (0644) and private key (0600, root's) of `--tls-cert`/`--tls-key`
//! or `--tls-self-signed`. The plan names the certificate by subject, issuer, expiry and
//! SHA-256 fingerprint; the key is compared but never shown, not even as a diff.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::fs::{ensure_parent, ownership_changes};
use crate::engine::{Check, Engine, StepError};
use crate::host::Owner;
use crate::recipe::compiler::Compiler;
use crate::tls::{Material, Origin};

/// Install the run's TLS certificate (0644) and private key (0600, root's, never shown).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub certificate: String,
    pub key: String,
    #[serde(default)]
    pub notify: Vec<String>,
}

impl Step for Tls {
    const KIND: &'static str = "tls";
    type Raw = Tls;

    fn compile(raw: &Tls, c: &mut Compiler) -> Option<Tls> {
        c.services("notify", &raw.notify).then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        apply(eng, self)
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }
}

const CERT_MODE: u32 = 0o644;
const KEY_MODE: u32 = 0o600;

fn root(mode: u32) -> Owner {
    Owner {
        user: "root".into(),
        group: "root".into(),
        mode,
    }
}

fn material<'e>(eng: &'e Engine) -> Result<&'e Material, StepError> {
    eng.tls_material.as_ref().ok_or_else(|| {
        StepError::msg("no certificate given (--tls-cert/--tls-key or --tls-self-signed)")
    })
}

fn check(eng: &Engine, step: &Tls) -> Result<Check, StepError> {
    let m = material(eng)?;
    let mut changes = Vec::new();
    let cert_path = Path::new(&step.certificate);
    match eng.host.read(cert_path).map_err(StepError::host)? {
        None => changes.push(format!(
            "install certificate {} ({})",
            step.certificate,
            m.info.describe()
        )),
        Some(old) if old != m.cert_pem => {
            let was = crate::tls::info(&old)
                .map(|i| i.describe())
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            changes.push(format!(
                "replace certificate {}: was {was}; now {}",
                step.certificate,
                m.info.describe()
            ));
        }
        Some(_) => {}
    }
    if let Some(meta) = eng.host.stat(cert_path).map_err(StepError::host)? {
        for c in ownership_changes(eng, &meta, &root(CERT_MODE)) {
            changes.push(format!("{}: {c}", step.certificate));
        }
    }
    let key_path = Path::new(&step.key);
    match eng.host.read(key_path).map_err(StepError::host)? {
        None => changes.push(format!("install private key {} (not shown)", step.key)),
        Some(old) if old != m.key_pem.expose().as_bytes() => {
            changes.push(format!("private key changed (not shown): {}", step.key))
        }
        Some(_) => {}
    }
    if let Some(meta) = eng.host.stat(key_path).map_err(StepError::host)? {
        for c in ownership_changes(eng, &meta, &root(KEY_MODE)) {
            changes.push(format!("{}: {c}", step.key));
        }
    }
    if let (Origin::SelfSignedNew, false) = (&m.origin, changes.is_empty()) {
        changes.push(format!(
            "self-signed for {}: give clients {} as their CA (curl --cacert {})",
            eng.opts.domain, step.certificate, step.certificate
        ));
    }
    if changes.is_empty() {
        let how = match m.origin {
            Origin::SelfSignedReused | Origin::SelfSignedNew => "self-signed certificate",
            Origin::Files { .. } => "certificate",
        };
        return Ok(Check::ok(format!(
            "{how} {} ({}) and its key installed",
            step.certificate,
            m.info.describe()
        )));
    }
    Ok(Check::change(changes))
}

/// The key first: nginx is reloaded only once both are in place (the notification runs after
/// the site step), and a key without its certificate serves nothing.
fn apply(eng: &Engine, step: &Tls) -> Result<(), StepError> {
    let m = material(eng)?;
    let key_path = Path::new(&step.key);
    let cert_path = Path::new(&step.certificate);
    // Recorded before they are written, so uninstall removes them (and only them: a pair the
    // operator had placed there is not ours).
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
    ensure_parent(eng, key_path)?;
    eng.host
        .write(key_path, m.key_pem.expose().as_bytes(), &root(KEY_MODE))
        .map_err(|e| StepError::msg(format!("writing the private key {}: {}", step.key, e.0)))?;
    ensure_parent(eng, cert_path)?;
    eng.host
        .write(cert_path, &m.cert_pem, &root(CERT_MODE))
        .map_err(StepError::host)?;
    Ok(())
}
