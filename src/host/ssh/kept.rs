//! A few files of a target that only programs change, kept from one read to the next while
//! nothing runs there: the account databases (`/etc/passwd`, `/etc/group`) and
//! `/etc/os-release`.
//!
//! The engine looks owners up before almost every file check (`host::users`), so a converged
//! run reads the account files a dozen times (and os-release twice: the distro, the facts).
//! Only a program changes them (`useradd`, a package's maintainer script, a command step), and
//! every program on the target is a script this host runs: so a kept copy is valid until the
//! next script starts, and one read while a script ran (on another thread) is not kept. Reads
//! of other files are never kept (a /proc file or a pid file is read again precisely to see it
//! change).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The files kept.
const FILES: [&str; 3] = ["/etc/passwd", "/etc/group", "/etc/os-release"];

/// A kept file: its path, `scripts` when it was read, and its content (or missing).
type Kept = (&'static str, u64, Option<Vec<u8>>);

#[derive(Debug, Default)]
pub(super) struct KeptFiles {
    /// Odd while a script runs; every start and end of one adds 1.
    scripts: AtomicU64,
    kept: Mutex<Vec<Kept>>,
}

impl KeptFiles {
    /// Whether `path` is one of the files kept.
    fn file(path: &Path) -> Option<&'static str> {
        FILES.iter().copied().find(|f| Path::new(f) == path)
    }

    /// The kept content of `path`, when it is kept and no script started since it was read.
    pub(super) fn get(&self, path: &Path) -> Option<Option<Vec<u8>>> {
        let file = Self::file(path)?;
        let now = self.scripts.load(Ordering::SeqCst);
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter()
            .find(|(f, at, _)| *f == file && *at == now)
            .map(|(_, _, content)| content.clone())
    }

    /// Read `path` with `read`, keeping the answer when it is a file kept and no script
    /// ran meanwhile.
    pub(super) fn read<E>(
        &self,
        path: &Path,
        read: impl FnOnce() -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Option<Vec<u8>>, E> {
        let Some(file) = Self::file(path) else {
            return read();
        };
        let before = self.scripts.load(Ordering::SeqCst);
        let content = read()?;
        if before % 2 == 0 && self.scripts.load(Ordering::SeqCst) == before {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.retain(|(f, _, _)| *f != file);
            kept.push((file, before, content.clone()));
        }
        Ok(content)
    }

    /// Run a script on the target (`run`): whatever was kept is stale from its start.
    pub(super) fn script<T>(&self, run: impl FnOnce() -> T) -> T {
        self.scripts.fetch_add(1, Ordering::SeqCst);
        let out = run();
        self.scripts.fetch_add(1, Ordering::SeqCst);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(n: &mut u32, text: &str) -> Result<Option<Vec<u8>>, ()> {
        *n += 1;
        Ok(Some(text.as_bytes().to_vec()))
    }

    #[test]
    fn kept_until_a_script_runs_and_only_those_files() {
        let a = KeptFiles::default();
        let mut n = 0;
        let passwd = Path::new("/etc/passwd");
        assert_eq!(a.get(passwd), None);
        a.read(passwd, || read(&mut n, "root")).unwrap();
        assert_eq!(a.get(passwd), Some(Some(b"root".to_vec())));
        assert_eq!(a.get(Path::new("/etc/group")), None);
        a.script(|| ());
        assert_eq!(a.get(passwd), None, "a script may have changed it");
        a.read(passwd, || read(&mut n, "root\nnew")).unwrap();
        assert_eq!(a.get(passwd), Some(Some(b"root\nnew".to_vec())));

        // Never another file.
        let other = Path::new("/proc/1/stat");
        a.read(other, || read(&mut n, "1 (init)")).unwrap();
        assert_eq!(a.get(other), None);

        // Not what was read while a script ran, nor across one.
        a.script(|| {
            a.read(passwd, || read(&mut n, "during")).unwrap();
        });
        assert_eq!(a.get(passwd), None);
        a.read(passwd, || {
            a.script(|| ());
            read(&mut n, "across")
        })
        .unwrap();
        assert_eq!(a.get(passwd), None);
        // A missing file is kept as missing; an error is not kept.
        let group = Path::new("/etc/group");
        a.read(group, || Ok::<_, ()>(None)).unwrap();
        assert_eq!(a.get(group), Some(None));
        a.script(|| ());
        a.read(group, || Err::<Option<Vec<u8>>, ()>(()))
            .unwrap_err();
        assert_eq!(a.get(group), None);
        assert_eq!(n, 5);
    }
}
