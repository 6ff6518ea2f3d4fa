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
    /// SHA-256 (hex) of the regular file there, if any.
    pub sha256: Option<String>,
    /// `user group mode` (octal) of that file.
    pub owner: Option<(String, String, u32)>,
}

/// `uname -m`, and the SHA-256, owner and mode of `dest` when it is a regular file.
/// The path is passed as `$1` of the script, never pasted into it.
pub fn inspect(host: &dyn Host, dest: &Path) -> HostResult<Remote> {
    let dest_s = dest
        .to_str()
        .ok_or_else(|| HostError(format!("{} is not valid UTF-8", dest.display())))?;
    let script = r#"uname -m || exit 1
if [ -f "$1" ] && [ ! -L "$1" ]; then
  sha256sum < "$1" || exit 1
  stat -c '%U %G %a' -- "$1" || exit 1
fi"#;
    let out = host.run(&Cmd::new(["sh", "-c", script, "sh", dest_s]))?;
    if !out.success() {
        return Err(HostError(format!(
            "cannot inspect {}: {}",
            dest.display(),
            out.tail().trim()
        )));
    }
    let text = out.stdout_text();
    let mut lines = text.lines();
    let machine = lines.next().unwrap_or_default().trim().to_owned();
    let sha256 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned);
    let owner = lines.next().and_then(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            [u, g, m] => Some((u.to_owned(), g.to_owned(), u32::from_str_radix(m, 8).ok()?)),
            _ => None,
        }
    });
    Ok(Remote {
        machine,
        sha256,
        owner,
    })
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
    if remote.sha256.as_deref() == Some(sha256_hex(contents).as_str()) {
        let want = (owner.user.clone(), owner.group.clone(), owner.mode);
        if remote.owner.as_ref() == Some(&want) {
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
        assert_eq!(r.sha256, None);
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let first = upload(&host, "this binary", &me, &dest, &owner).unwrap();
        assert_eq!(
            first,
            Uploaded::Sent {
                bytes: me.len() as u64
            }
        );
        assert_eq!(std::fs::read(&dest).unwrap(), me);
        assert_eq!(
            upload(&host, "this binary", &me, &dest, &owner).unwrap(),
            Uploaded::Unchanged
        );
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
