//! Put a file from the controller (e.g. the bundled collector binary) onto the host, sending it
//! only when the host's copy differs (SHA-256, computed there with `sha256sum`), atomically
//! (`Host::write`: temporary file + rename), and, for an ELF binary, only when the host's
//! architecture (`uname -m`) can run it.
//!
//! Works on any `Host`; one round trip decides whether anything needs sending.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::elf;
use super::{Cmd, Host, HostError, HostResult, Owner};

/// What [`upload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uploaded {
    /// The host had the same bytes, owner and mode.
    Unchanged,
    /// Same bytes; only the owner or mode were set.
    OwnerSet,
    /// The bytes were sent.
    Sent { bytes: u64 },
}

/// What the host has at a path, from one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `uname -m`
    pub machine: String,
    pub found: Found,
}

/// What is at the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Nothing,
    /// Something that is not a regular file (a directory, a symlink, a device).
    Other,
    File(RemoteFile),
}

/// A regular file on the host, as `sha256sum` and `stat` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// SHA-256, hex.
    pub sha256: String,
    /// Owner and group names (`UNKNOWN` for an id without a name, as `stat` prints it).
    pub user: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    pub size: u64,
}

impl RemoteFile {
    /// Is it owned by `want`'s user (by name, or by a numeric id)?
    pub fn user_is(&self, want: &Owner) -> bool {
        self.user == want.user || want.user == self.uid.to_string()
    }

    /// Is its group `want`'s (by name, or by a numeric id)?
    pub fn group_is(&self, want: &Owner) -> bool {
        self.group == want.group || want.group == self.gid.to_string()
    }

    /// Owner, group and mode all as `want` says.
    pub fn owned_as(&self, want: &Owner) -> bool {
        self.user_is(want) && self.group_is(want) && self.mode == want.mode
    }
}

impl Remote {
    /// The regular file there, if that is what is there.
    pub fn file(&self) -> Option<&RemoteFile> {
        match &self.found {
            Found::File(f) => Some(f),
            _ => None,
        }
    }
}

/// The script of [`inspect`]: `$1` is the path (never pasted into the script). Prints
/// `uname -m`; then for a regular file `sha256sum`'s line and `stat -c '%U %G %a %u %g %s'`;
/// for anything else there, a line `-`; for nothing, nothing.
pub const INSPECT_SCRIPT: &str = r#"uname -m || exit 1
if [ -f "$1" ] && [ ! -L "$1" ]; then
  sha256sum < "$1" || exit 1
  stat -c '%U %G %a %u %g %s' -- "$1" || exit 1
elif [ -e "$1" ] || [ -L "$1" ]; then
  echo -
fi"#;

/// `uname -m`, and what is at `dest`: for a regular file its SHA-256, owner, mode and size.
/// One round trip; the file is hashed on the host, never sent back.
pub fn inspect(host: &dyn Host, dest: &Path) -> HostResult<Remote> {
    let dest_s = dest
        .to_str()
        .ok_or_else(|| HostError(format!("{} is not valid UTF-8", dest.display())))?;
    let out = host.run(&Cmd::new(["sh", "-c", INSPECT_SCRIPT, "sh", dest_s]))?;
    if !out.success() {
        return Err(HostError(format!(
            "cannot inspect {}: {}",
            dest.display(),
            out.tail().trim()
        )));
    }
    parse_inspect(&out.stdout_text()).ok_or_else(|| {
        HostError(format!(
            "cannot inspect {}: unexpected output",
            dest.display()
        ))
    })
}

fn parse_inspect(text: &str) -> Option<Remote> {
    let mut lines = text.lines();
    let machine = lines.next()?.trim().to_owned();
    let found = match lines.next().map(str::trim) {
        None => Found::Nothing,
        Some("-") => Found::Other,
        Some(sum) => {
            let sha256 = sum.split_whitespace().next()?.to_owned();
            let f: Vec<&str> = lines.next()?.split_whitespace().collect();
            let [user, group, mode, uid, gid, size] = f[..] else {
                return None;
            };
            Found::File(RemoteFile {
                sha256,
                user: user.to_owned(),
                group: group.to_owned(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                mode: u32::from_str_radix(mode, 8).ok()?,
                size: size.parse().ok()?,
            })
        }
    };
    Some(Remote { machine, found })
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuse a binary the host cannot run, saying both architectures.
pub fn check_arch(what: &str, contents: &[u8], machine: &str) -> HostResult<()> {
    let arch = elf::arch(contents).map_err(|e| HostError(format!("{what} has {e}")))?;
    match arch {
        Some(a) if !a.runs_on(machine) => Err(HostError(format!(
            "{what} is built for {} but the machine is {} (`uname -m`): build the collector for {} (e.g. cargo build --release --target {}-unknown-linux-gnu) and pass it with --collector-bin",
            a.name(),
            machine.trim(),
            machine.trim(),
            machine.trim()
        ))),
        _ => Ok(()),
    }
}

/// Make `dest` hold `contents` with `owner`, sending the bytes only when they differ.
/// `what` names the source in errors (e.g. "the bundled collector /usr/lib/...").
pub fn upload(
    host: &dyn Host,
    what: &str,
    contents: &[u8],
    dest: &Path,
    owner: &Owner,
) -> HostResult<Uploaded> {
    let remote = inspect(host, dest)?;
    check_arch(what, contents, &remote.machine)?;
    if let Some(file) = remote.file().filter(|f| f.sha256 == sha256_hex(contents)) {
        if file.owned_as(owner) {
            return Ok(Uploaded::Unchanged);
        }
        host.chown(dest, owner)?;
        return Ok(Uploaded::OwnerSet);
    }
    host.write(dest, contents, owner)?;
    Ok(Uploaded::Sent {
        bytes: contents.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_hex_of_the_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn inspect_output_is_parsed_and_odd_output_refused() {
        let r = parse_inspect("aarch64\nabc  -\nroot staff 4755 0 50 123\n").unwrap();
        assert_eq!(r.machine, "aarch64");
        let f = r.file().unwrap();
        assert_eq!(
            (f.sha256.as_str(), f.user.as_str(), f.group.as_str()),
            ("abc", "root", "staff")
        );
        assert_eq!((f.mode, f.uid, f.gid, f.size), (0o4755, 0, 50, 123));
        assert_eq!(parse_inspect("x86_64\n").unwrap().found, Found::Nothing);
        assert_eq!(parse_inspect("x86_64\n-\n").unwrap().found, Found::Other);
        assert_eq!(parse_inspect(""), None);
        assert_eq!(parse_inspect("x86_64\nabc  -\nroot root 755\n"), None);
    }

    #[test]
    fn a_binary_for_another_machine_is_refused_before_sending() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        check_arch("this binary", &me, std::env::consts::ARCH).unwrap();
        let other = if std::env::consts::ARCH == "aarch64" {
            "x86_64"
        } else {
            "aarch64"
        };
        let err = check_arch("the bundled collector", &me, &format!("{other}\n")).unwrap_err();
        assert!(
            err.0.contains(&format!(
                "built for {} but the machine is {other}",
                std::env::consts::ARCH
            )),
            "{err}"
        );
        // Not ELF (a script): nothing to check.
        check_arch("a script", b"#!/bin/sh\n", other).unwrap();
    }

    #[test]
    fn inspect_and_upload_work_on_the_local_host() {
        let dir = std::env::temp_dir().join(format!("telem-upload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("bin with space");
        let host = super::super::LocalHost;
        let (user, group) = whoami(&host);
        let owner = Owner {
            user,
            group,
            mode: 0o755,
        };
        let r = inspect(&host, &dest).unwrap();
        assert_eq!(r.machine, std::env::consts::ARCH);
        assert_eq!(r.found, Found::Nothing);
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let first = upload(&host, "this binary", &me, &dest, &owner).unwrap();
        assert_eq!(
            first,
            Uploaded::Sent {
                bytes: me.len() as u64
            }
        );
        assert_eq!(std::fs::read(&dest).unwrap(), me);
        let file = inspect(&host, &dest).unwrap().file().cloned().unwrap();
        assert_eq!(file.sha256, sha256_hex(&me));
        assert_eq!((file.mode, file.size), (0o755, me.len() as u64));
        assert!(file.owned_as(&owner), "{file:?}");
        let numeric = Owner {
            user: file.uid.to_string(),
            group: file.gid.to_string(),
            mode: 0o755,
        };
        assert!(
            file.owned_as(&numeric),
            "numeric ids count as the same owner"
        );
        assert_eq!(
            upload(&host, "this binary", &me, &dest, &owner).unwrap(),
            Uploaded::Unchanged
        );
        // Not a regular file: a directory, a symlink (even to a regular file).
        assert_eq!(inspect(&host, &dir).unwrap().found, Found::Other);
        let link = dir.join("link");
        std::os::unix::fs::symlink(&dest, &link).unwrap();
        assert_eq!(inspect(&host, &link).unwrap().found, Found::Other);
        let owner644 = Owner {
            mode: 0o644,
            ..owner
        };
        assert_eq!(
            upload(&host, "this binary", &me, &dest, &owner644).unwrap(),
            Uploaded::OwnerSet
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn whoami(host: &dyn Host) -> (String, String) {
        let out = host
            .run(&Cmd::new(["sh", "-c", "id -un; id -gn"]))
            .unwrap()
            .stdout_text();
        let mut l = out.lines();
        (l.next().unwrap().to_owned(), l.next().unwrap().to_owned())
    }
}
