//! The private directory (0700) of a connection's control socket, removed on drop.

use std::path::{Path, PathBuf};

use super::super::{HostError, HostResult};

/// A private directory (0700) for the control socket, removed on drop.
#[derive(Debug)]
pub(super) struct PrivateDir(pub(super) PathBuf);

impl PrivateDir {
    pub(super) fn create() -> HostResult<PrivateDir> {
        use rand::Rng;
        use std::os::unix::fs::DirBuilderExt;
        let base = socket_base(&std::env::temp_dir());
        for _ in 0..16 {
            let name: String = rand::thread_rng()
                .sample_iter(rand::distributions::Alphanumeric)
                .take(10)
                .map(char::from)
                .collect();
            // Short: a socket path may hold at most 107 bytes.
            let path = base.join(format!("telem-ssh-{name}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(HostError::io("create the private directory", &path, e)),
            }
        }
        Err(HostError(format!(
            "cannot create a private directory in {}",
            base.display()
        )))
    }
}

/// `$TMPDIR` when a socket path under it stays short and means the same to ssh (`%` and `~`
/// are expanded in `ControlPath`, `:` separates the fields of `-L`), else `/tmp`.
fn socket_base(tmp: &Path) -> PathBuf {
    let plain = tmp.to_str().is_some_and(|s| {
        s.starts_with('/')
            && s.len() <= 60
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    });
    if plain {
        tmp.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_directory_is_short_and_plain() {
        assert_eq!(socket_base(Path::new("/var/tmp")), Path::new("/var/tmp"));
        for odd in [
            "/home/u/%h tmp",
            "/run/user/1000/a:b",
            "relative",
            "/a/very/long/temporary/directory/path/that/goes/on/and/on/for/ever",
        ] {
            assert_eq!(socket_base(Path::new(odd)), Path::new("/tmp"), "{odd}");
        }
    }
}
