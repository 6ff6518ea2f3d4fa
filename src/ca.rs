//! The controller's certificate authority: a directory on the machine telem-deploy runs on
//! (`ca.pem`, and `ca.key.pem` 0600 in a 0700 directory) the inventory names. It signs the
//! server certificates the `issued_tls` steps install (the database host's, for its clients
//! to verify with `ca.pem`).
//!
//! Created on the first run that applies, never overwritten: a directory that holds only one
//! of the two files, or files that do not parse or do not match, is an error naming the path.
//! A dry run never writes it: an in-memory CA stands in, and [`Ca::would_create`] says so.
//! The key lives only in memory here and in its 0600 file; nothing of it reaches a plan, a log
//! or JSON (`Debug` shows the directory only).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::secret::Secret;
use crate::tls::{self, CertInfo};

/// The CA's certificate, in its directory.
pub const CERT_FILE: &str = "ca.pem";
/// The CA's private key, in its directory (0600).
pub const KEY_FILE: &str = "ca.key.pem";
/// How long a new CA is valid (10 years).
pub const CA_DAYS: i64 = 3650;
/// How long an issued server certificate is valid (at most; never beyond the CA).
pub const ISSUED_DAYS: i64 = 825;
/// The common name of a new CA (followed by its creation time, so two CAs differ by name).
const CA_NAME: &str = "telem-deploy CA";

/// The CA cannot be loaded or created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate authority {}: {reason}", path.display())]
pub struct CaError {
    pub path: PathBuf,
    pub reason: String,
}

/// A server certificate and its key, issued by the CA.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret,
    pub info: CertInfo,
}

/// The run's certificate authority (loaded, created, or for a dry run held in memory only).
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    info: CertInfo,
    /// The CA's parameters as the issuer of what it signs (its subject, key identifier).
    issuer: rcgen::Certificate,
    key: rcgen::KeyPair,
    would_create: bool,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("subject", &self.info.subject)
            .field("would_create", &self.would_create)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// The CA in `dir`: loaded when both files are there; created (directory 0700, key 0600
    /// written first) when the directory is missing or empty, unless `dry_run`, where an
    /// in-memory CA stands in and nothing is written. Anything else is an error naming the
    /// path: one of the two files alone, a file that does not parse, a key that is not the
    /// certificate's, a certificate that is not a CA or has expired, a key others may read.
    pub fn load_or_create(dir: &Path, dry_run: bool) -> Result<Ca, CaError> {
        match Ca::existing(dir)? {
            Some(ca) => Ok(ca),
            None => Ca::create(dir, dry_run),
        }
    }

    /// The CA in `dir` as [`Ca::load_or_create`] finds it, without ever creating one: `None`
    /// where that would create one (the directory missing or empty); the same errors
    /// otherwise. Nothing is written.
    pub fn existing(dir: &Path) -> Result<Option<Ca>, CaError> {
        let fail = |path: &Path, reason: String| CaError {
            path: path.to_owned(),
            reason,
        };
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        // A symbolic link to a directory (a CA kept on another volume) is that directory.
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => return Err(fail(dir, "not a directory".into())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Ok(to) = std::fs::read_link(dir) {
                    return Err(fail(
                        dir,
                        format!(
                            "a symbolic link to {}, which does not exist (restore it, or remove the link for a new CA)",
                            to.display()
                        ),
                    ));
                }
                return Ok(None);
            }
            Err(e) => return Err(fail(dir, e.to_string())),
        }
        let present = |p: &Path| match std::fs::symlink_metadata(p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(fail(p, e.to_string())),
        };
        match (present(&cert_path)?, present(&key_path)?) {
            (true, true) => Ca::load(dir).map(Some),
            (false, false) => {
                let entries = std::fs::read_dir(dir)
                    .map_err(|e| fail(dir, e.to_string()))?
                    .count();
                match entries {
                    0 => Ok(None),
                    _ => Err(fail(
                        dir,
                        format!("holds neither {CERT_FILE} nor {KEY_FILE} but is not empty; name an empty or missing directory for a new CA"),
                    )),
                }
            }
            (true, false) => Err(fail(
                &key_path,
                format!("missing: the CA is incomplete ({CERT_FILE} without its key); restore the key or move the directory aside for a new CA"),
            )),
            (false, true) => Err(fail(
                &cert_path,
                format!("missing: the CA is incomplete ({KEY_FILE} without its certificate); restore the certificate or move the directory aside for a new CA"),
            )),
        }
    }

    fn load(dir: &Path) -> Result<Ca, CaError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let fail = |path: &Path, reason: String| CaError {
            path: path.to_owned(),
            reason,
        };
        let key_meta = std::fs::metadata(&key_path).map_err(|e| fail(&key_path, e.to_string()))?;
        let mode = key_meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(fail(
                &key_path,
                format!(
                    "mode {mode:04o}: the CA key must not be readable by others (chmod 600 it)"
                ),
            ));
        }
        let cert_pem =
            std::fs::read_to_string(&cert_path).map_err(|e| fail(&cert_path, e.to_string()))?;
        let key_pem = Secret::new(
            std::fs::read_to_string(&key_path).map_err(|e| fail(&key_path, e.to_string()))?,
        );
        let info = tls::info(cert_pem.as_bytes()).map_err(|e| fail(&cert_path, e))?;
        if !tls::is_ca(cert_pem.as_bytes()).map_err(|e| fail(&cert_path, e))? {
            return Err(fail(&cert_path, "not a CA certificate (no CA:TRUE)".into()));
        }
        let now = tls::now();
        if info.not_after <= now {
            return Err(fail(
                &cert_path,
                format!("the CA expired on {}", tls::utc(info.not_after)),
            ));
        }
        match tls::key_matches(cert_pem.as_bytes(), &key_pem) {
            Ok(true) => {}
            Ok(false) => {
                return Err(fail(
                    &key_path,
                    format!("not the private key of {}", cert_path.display()),
                ))
            }
            Err(e) => return Err(fail(&key_path, e)),
        }
        let key = rcgen::KeyPair::from_pem(key_pem.expose())
            .map_err(|e| fail(&key_path, format!("unsupported private key: {e}")))?;
        let params = rcgen::CertificateParams::from_ca_cert_pem(&cert_pem)
            .map_err(|e| fail(&cert_path, e.to_string()))?;
        // Re-signed in memory only: what signing needs is its subject and key identifier.
        let issuer = params
            .self_signed(&key)
            .map_err(|e| fail(&cert_path, e.to_string()))?;
        Ok(Ca {
            dir: dir.to_owned(),
            cert_pem,
            info,
            issuer,
            key,
            would_create: false,
        })
    }

    /// A new CA for `dir`: written (unless `dry_run`) into a 0700 directory, the key first.
    fn create(dir: &Path, dry_run: bool) -> Result<Ca, CaError> {
        let fail = |path: &Path, reason: String| CaError {
            path: path.to_owned(),
            reason,
        };
        let now = tls::now();
        let at = |t: i64| {
            ::time::OffsetDateTime::from_unix_timestamp(t)
                .map_err(|e| fail(dir, format!("clock: {e}")))
        };
        let rc = |e: rcgen::Error| fail(dir, format!("generating the CA: {e}"));
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            format!("{CA_NAME} {}", tls::utc(now)),
        );
        params.distinguished_name = dn;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = at(now - 60)?;
        params.not_after = at(now + CA_DAYS * 86_400)?;
        params.serial_number = Some(serial());
        let key = rcgen::KeyPair::generate().map_err(rc)?;
        let issuer = params.self_signed(&key).map_err(rc)?;
        let cert_pem = issuer.pem();
        let info = tls::info(cert_pem.as_bytes()).map_err(|e| fail(dir, e))?;
        if !dry_run {
            write_new(dir, &cert_pem, &Secret::new(key.serialize_pem()))?;
        }
        Ok(Ca {
            dir: dir.to_owned(),
            cert_pem,
            info,
            issuer,
            key,
            would_create: dry_run,
        })
    }

    /// The CA's directory on the controller.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM): public, for clients to verify the servers it signed.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// What plans show of the CA certificate.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// A dry run's stand-in: the CA does not exist yet and would be created by applying.
    pub fn would_create(&self) -> bool {
        self.would_create
    }

    /// "CA CN=... in DIR" or "new CA in DIR (created when applied)".
    pub fn describe(&self) -> String {
        match self.would_create {
            true => format!("a new CA in {} (created when applied)", self.dir.display()),
            false => format!("the CA {} in {}", self.info.subject, self.dir.display()),
        }
    }

    /// Did this CA sign the certificate `cert_pem`?
    pub fn signed(&self, cert_pem: &[u8]) -> bool {
        tls::issued_by(cert_pem, self.cert_pem.as_bytes()).unwrap_or(false)
    }

    /// A server certificate (ECDSA P-256, [`ISSUED_DAYS`] days but never beyond the CA) for
    /// exactly `names`: IP addresses become IP subjectAltNames, anything else DNS names. The
    /// first name is the subject's common name.
    pub fn issue(&self, names: &[String]) -> Result<Issued, CaError> {
        let fail = |reason: String| CaError {
            path: self.dir.clone(),
            reason,
        };
        let first = names
            .first()
            .ok_or_else(|| fail("a certificate needs at least one name".into()))?;
        let rc = |e: rcgen::Error| {
            fail(format!(
                "issuing a certificate for {}: {e}",
                names.join(", ")
            ))
        };
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(rc)?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, first.as_str());
        params.distinguished_name = dn;
        let now = tls::now();
        let at = |t: i64| {
            ::time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| fail(format!("clock: {e}")))
        };
        params.not_before = at(now - 60)?;
        params.not_after = at((now + ISSUED_DAYS * 86_400).min(self.info.not_after))?;
        params.serial_number = Some(serial());
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().map_err(rc)?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(rc)?;
        let cert_pem = cert.pem().into_bytes();
        let info = tls::info(&cert_pem).map_err(fail)?;
        Ok(Issued {
            cert_pem,
            key_pem: Secret::new(key.serialize_pem()),
            info,
        })
    }
}

/// A random positive serial number of 16 bytes.
fn serial() -> rcgen::SerialNumber {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    rcgen::SerialNumber::from(bytes.to_vec())
}

/// Write a new CA into `dir` (created 0700 when missing): the key (0600) first, then the
/// certificate (0644), each to a temporary name and renamed, never over an existing file.
fn write_new(dir: &Path, cert_pem: &str, key_pem: &Secret) -> Result<(), CaError> {
    let fail = |path: &Path, e: std::io::Error| CaError {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(dir, e))?;
        // The mode of `create` is filtered by the umask: make sure.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(dir, e))?;
    }
    let put = |name: &str, bytes: &[u8], mode: u32| -> Result<(), CaError> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(bytes)?;
            f.sync_all()?;
            // A hard link fails when `path` exists: an existing file is never replaced.
            std::fs::hard_link(&tmp, &path)?;
            std::fs::remove_file(&tmp)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(|e| fail(&path, e))
    };
    put(KEY_FILE, key_pem.expose().as_bytes(), 0o600)?;
    put(CERT_FILE, cert_pem.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn existing_never_creates_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        assert!(Ca::existing(&dir).unwrap().is_none());
        assert!(!dir.exists(), "a directory was created");
        std::fs::create_dir(&dir).unwrap();
        assert!(Ca::existing(&dir).unwrap().is_none());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let created = Ca::load_or_create(&dir, false).unwrap();
        let found = Ca::existing(&dir).unwrap().expect("the CA created");
        assert_eq!(found.cert_pem(), created.cert_pem());
        std::fs::remove_file(dir.join(KEY_FILE)).unwrap();
        let err = Ca::existing(&dir).unwrap_err();
        assert_eq!(err.path, dir.join(KEY_FILE), "{err}");
    }

    #[test]
    fn created_on_first_use_then_reloaded_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sub/ca");
        let ca = Ca::load_or_create(&dir, false).unwrap();
        assert!(!ca.would_create());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(CERT_FILE)), 0o644);
        let mut listing: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        listing.sort();
        assert_eq!(listing, [KEY_FILE, CERT_FILE], "no temporary file left");
        assert_eq!(
            std::fs::read_to_string(dir.join(CERT_FILE)).unwrap(),
            ca.cert_pem()
        );
        assert!(tls::is_ca(ca.cert_pem().as_bytes()).unwrap());
        assert!(ca.info().subject.starts_with("CN=telem-deploy CA "));

        let key_before = std::fs::read(dir.join(KEY_FILE)).unwrap();
        let again = Ca::load_or_create(&dir, false).unwrap();
        assert_eq!(
            again.cert_pem(),
            ca.cert_pem(),
            "the same CA, not a new one"
        );
        assert_eq!(std::fs::read(dir.join(KEY_FILE)).unwrap(), key_before);
        // What the reloaded CA issues verifies against the certificate on disk.
        let issued = again.issue(&names(&["10.77.0.11"])).unwrap();
        assert!(tls::issued_by(&issued.cert_pem, ca.cert_pem().as_bytes()).unwrap());
        assert!(Ca::load_or_create(&dir, true)
            .unwrap()
            .signed(&issued.cert_pem));
    }

    #[test]
    fn a_dry_run_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let ca = Ca::load_or_create(&dir, true).unwrap();
        assert!(ca.would_create());
        assert!(
            ca.describe().contains("created when applied"),
            "{}",
            ca.describe()
        );
        assert!(!dir.exists());
        // It can still issue, for the plan.
        let issued = ca.issue(&names(&["db.example"])).unwrap();
        assert!(ca.signed(&issued.cert_pem));
        // An empty directory the operator made: the same.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(Ca::load_or_create(&empty, true).unwrap().would_create());
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        let made = Ca::load_or_create(&empty, false).unwrap();
        assert!(!made.would_create());
        assert!(empty.join(KEY_FILE).exists() && empty.join(CERT_FILE).exists());
    }

    #[test]
    fn issued_certificates_carry_exactly_the_names_and_verify() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(&tmp.path().join("ca"), false).unwrap();
        let wanted = names(&["10.77.0.11", "db.example.org", "::1"]);
        let issued = ca.issue(&wanted).unwrap();
        assert_eq!(issued.info.names, wanted);
        assert_eq!(issued.info.subject, "CN=10.77.0.11");
        assert_eq!(issued.info.issuer, ca.info().subject);
        assert!(!tls::is_ca(&issued.cert_pem).unwrap());
        assert!(tls::key_matches(&issued.cert_pem, &issued.key_pem).unwrap());
        assert!(ca.signed(&issued.cert_pem));
        assert!(issued.info.not_after <= ca.info().not_after);
        assert!(issued.info.not_after > tls::now() + (ISSUED_DAYS - 1) * 86_400);
        // The IPs are IP subjectAltNames, not DNS names (openssl's view).
        let text = openssl_text(&issued.cert_pem);
        if let Some(text) = text {
            assert!(text.contains("IP Address:10.77.0.11"), "{text}");
            assert!(text.contains("DNS:db.example.org"), "{text}");
            assert!(!text.contains("DNS:10.77.0.11"), "{text}");
        }
        // Another CA's certificate, or a self-signed one, is not this CA's.
        let other = Ca::load_or_create(&tmp.path().join("other"), true).unwrap();
        assert!(!ca.signed(&other.issue(&wanted).unwrap().cert_pem));
        let selfsigned = tls::generate("10.77.0.11", tls::now()).unwrap();
        assert!(!ca.signed(&selfsigned.cert_pem));
        assert!(ca.issue(&[]).is_err());
        // Nothing of a key in what may be shown.
        let shown = format!("{ca:?} {issued:?} {}", issued.info.describe());
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }

    /// `openssl x509 -text` of `pem`, when openssl is installed.
    fn openssl_text(pem: &[u8]) -> Option<String> {
        use std::process::{Command, Stdio};
        let mut child = Command::new("openssl")
            .args(["x509", "-noout", "-text"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(pem).ok()?;
        let out = child.wait_with_output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn an_incomplete_or_foreign_directory_is_an_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        Ca::load_or_create(&dir, false).unwrap();
        let cert = std::fs::read(dir.join(CERT_FILE)).unwrap();

        std::fs::remove_file(dir.join(CERT_FILE)).unwrap();
        let err = Ca::load_or_create(&dir, false).unwrap_err();
        assert_eq!(err.path, dir.join(CERT_FILE));
        assert!(err.to_string().contains("incomplete"), "{err}");
        assert!(
            !dir.join(CERT_FILE).exists(),
            "never completed behind the operator's back"
        );

        std::fs::write(dir.join(CERT_FILE), &cert).unwrap();
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let err = Ca::load_or_create(&dir, false).unwrap_err();
        assert_eq!(err.path, dir.join(KEY_FILE));
        assert!(err.to_string().contains("0644"), "{err}");
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o600))
            .unwrap();

        // Another CA's key beside this certificate.
        let other = tmp.path().join("other");
        Ca::load_or_create(&other, false).unwrap();
        let key = std::fs::read(dir.join(KEY_FILE)).unwrap();
        std::fs::copy(other.join(KEY_FILE), dir.join(KEY_FILE)).unwrap();
        let err = Ca::load_or_create(&dir, false).unwrap_err();
        assert!(err.to_string().contains("not the private key"), "{err}");
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
        std::fs::write(dir.join(KEY_FILE), &key).unwrap();

        std::fs::write(dir.join(CERT_FILE), b"garbage").unwrap();
        let err = Ca::load_or_create(&dir, false).unwrap_err();
        assert_eq!(err.path, dir.join(CERT_FILE));
        std::fs::write(dir.join(CERT_FILE), &cert).unwrap();
        Ca::load_or_create(&dir, false).unwrap();

        // A server certificate is not a CA.
        let leaf = tls::generate("x", tls::now()).unwrap();
        let leafdir = tmp.path().join("leaf");
        std::fs::create_dir(&leafdir).unwrap();
        std::fs::write(leafdir.join(CERT_FILE), &leaf.cert_pem).unwrap();
        std::fs::write(leafdir.join(KEY_FILE), leaf.key_pem.expose()).unwrap();
        std::fs::set_permissions(
            leafdir.join(KEY_FILE),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let err = Ca::load_or_create(&leafdir, false).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");

        // A directory with something else in it, or a file where the directory should be.
        let busy = tmp.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("notes.txt"), b"x").unwrap();
        let err = Ca::load_or_create(&busy, true).unwrap_err();
        assert_eq!(err.path, busy);
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(Ca::load_or_create(&file, true)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }

    #[test]
    fn shared_by_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Ca>();
    }
}
