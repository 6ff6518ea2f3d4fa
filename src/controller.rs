//! The controller side: what telem-deploy takes from the machine it runs on, as opposed to the
//! machine it provisions (always reached through [`crate::host::Host`]).
//!
//! The [`Bundle`] is the collector binary the tool installs: `--collector-bin`, or the
//! `telem-collector` next to telem-deploy's own executable. It is read once per run, only when
//! a step needs its bytes (the actions that install it), and shared by every target (it is
//! `Send + Sync`). The other controller inputs are read where they are parsed: recipes
//! (`recipe/mod.rs`), templates (`render.rs`), the password file (`options.rs`), `--tls-cert`
//! and `--tls-key` (`tls.rs`). Nothing else in the engine reads a local path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::ca::Ca;

use crate::host::upload::sha256_hex;
use crate::options::COLLECTOR_BIN_LIMIT;

/// What the controller gives every target of a run: the collector binary it installs, and
/// the certificate authority that signs the database host's certificate (when an inventory
/// names one; `None` otherwise). `Send + Sync`: shared by the targets' threads.
pub struct Controller {
    pub bundle: Bundle,
    pub ca: Option<Arc<Ca>>,
    /// The password of an inventory's replication role (kept beside its CA).
    pub replication_password: Option<crate::secret::Secret>,
}

impl Controller {
    /// The bundle of `--collector-bin` (or next to this executable), no CA.
    pub fn new(collector_bin: Option<&Path>) -> Controller {
        Controller {
            bundle: Bundle::new(collector_bin),
            ca: None,
            replication_password: None,
        }
    }
}

/// The collector binary on the controller: its path, and (read on first use) its bytes and
/// their SHA-256.
pub struct Bundle {
    path: PathBuf,
    limit: u64,
    loaded: OnceLock<Result<Loaded, String>>,
}

struct Loaded {
    bytes: Vec<u8>,
    sha256: String,
}

/// The bundle cannot be read (missing, not a regular file, too large).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the bundled collector {path} cannot be read ({reason}); build it or pass --collector-bin PATH"
)]
pub struct BundleError {
    pub path: PathBuf,
    pub reason: String,
}

impl Bundle {
    /// `--collector-bin` when given, else `telem-collector` next to this executable. Nothing
    /// is read yet.
    pub fn new(collector_bin: Option<&Path>) -> Bundle {
        let path = collector_bin
            .map(Path::to_path_buf)
            .unwrap_or_else(beside_this_executable);
        Bundle::at(path, COLLECTOR_BIN_LIMIT)
    }

    /// The bundle at `path`, refused when larger than `limit` bytes.
    pub fn at(path: PathBuf, limit: u64) -> Bundle {
        Bundle {
            path,
            limit,
            loaded: OnceLock::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How errors name it: "the bundled collector PATH".
    pub fn describe(&self) -> String {
        format!("the bundled collector {}", self.path.display())
    }

    /// Its bytes, read on the first call (of any thread) and kept for the run.
    pub fn bytes(&self) -> Result<&[u8], BundleError> {
        self.loaded().map(|l| l.bytes.as_slice())
    }

    /// The SHA-256 of its bytes, hex (as `sha256sum` prints it).
    pub fn sha256(&self) -> Result<&str, BundleError> {
        self.loaded().map(|l| l.sha256.as_str())
    }

    /// Is `path`, on this machine, the bundle's file (its path as given, or where its
    /// symlinks lead)? Meaningful only when the target is this machine (`Host::is_local`).
    pub fn is_local_file(&self, path: &Path) -> bool {
        if self.path == path {
            return true;
        }
        std::fs::canonicalize(&self.path).is_ok_and(|c| c == path)
    }

    fn loaded(&self) -> Result<&Loaded, BundleError> {
        self.loaded
            .get_or_init(|| {
                let bytes = read_limited(&self.path, self.limit).map_err(|e| e.to_string())?;
                let sha256 = sha256_hex(&bytes);
                Ok(Loaded { bytes, sha256 })
            })
            .as_ref()
            .map_err(|reason| BundleError {
                path: self.path.clone(),
                reason: reason.clone(),
            })
    }
}

fn beside_this_executable() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
        .join("telem-collector")
}

/// A regular file of at most `limit` bytes (a device such as /dev/zero would be read until
/// memory runs out).
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Error;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn bytes_and_sha256_are_read_once() {
        let f = file(b"abc");
        let b = Bundle::at(f.path().to_owned(), 16);
        assert_eq!(b.bytes().unwrap(), b"abc");
        assert_eq!(
            b.sha256().unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Read once: a later change of the file is not seen within the run.
        std::fs::write(f.path(), b"changed").unwrap();
        assert_eq!(b.bytes().unwrap(), b"abc");
    }

    #[test]
    fn nothing_is_read_before_it_is_needed() {
        let b = Bundle::new(Some(Path::new("/nonexistent/telem-collector")));
        assert_eq!(b.path(), Path::new("/nonexistent/telem-collector"));
        assert!(b.loaded.get().is_none());
        let err = b.sha256().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the bundled collector /nonexistent/telem-collector cannot be read \
             (No such file or directory (os error 2)); build it or pass --collector-bin PATH"
        );
    }

    #[test]
    fn a_file_over_the_limit_or_not_regular_is_refused() {
        let f = file(&[0u8; 17]);
        let err = Bundle::at(f.path().to_owned(), 16).bytes().unwrap_err();
        assert_eq!(err.reason, "larger than 16 bytes");
        assert_eq!(
            Bundle::at(f.path().to_owned(), 17).bytes().unwrap().len(),
            17
        );
        for dev in ["/dev/zero", "/tmp"] {
            let err = Bundle::at(dev.into(), 16).bytes().unwrap_err();
            assert_eq!(err.reason, "not a regular file", "{dev}");
        }
    }

    #[test]
    fn without_collector_bin_it_is_next_to_this_executable() {
        let b = Bundle::new(None);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(b.path(), exe.with_file_name("telem-collector"));
    }

    #[test]
    fn a_local_path_matches_as_given_or_through_its_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let b = Bundle::new(Some(&link));
        assert!(b.is_local_file(&link));
        assert!(b.is_local_file(&std::fs::canonicalize(&real).unwrap()));
        assert!(!b.is_local_file(Path::new("/usr/local/bin/telem-collector")));
    }

    #[test]
    fn one_bundle_is_shared_by_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Bundle>();
        shared::<Controller>();
        let f = file(b"shared");
        let b = Bundle::at(f.path().to_owned(), 16);
        let shas: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| b.sha256().unwrap().to_owned()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(shas.iter().all(|s| *s == sha256_hex(b"shared")));
    }
}
