//! Package managers: what is installed, and the commands that install or remove packages
//! non-interactively. swupd (Clear Linux bundles), apt (Debian, Ubuntu), yum/dnf (EL).

use std::collections::BTreeSet;

use crate::host::{Cmd, Host, HostError};
use crate::recipe::model::PackageManagerKind;

/// How long apt waits for another dpkg/apt to release its lock.
const APT_LOCK_TIMEOUT_SECS: u32 = 300;

pub struct PackageManager {
    pub kind: PackageManagerKind,
}

impl PackageManager {
    pub fn new(kind: PackageManagerKind) -> PackageManager {
        PackageManager { kind }
    }

    /// The program that must exist for this manager to work.
    pub fn program(&self) -> &'static str {
        match self.kind {
            PackageManagerKind::Apt => "dpkg-query",
            PackageManagerKind::Swupd => "swupd",
            PackageManagerKind::Yum => "rpm",
        }
    }

    /// The subset of `names` installed on the host.
    pub fn installed(&self, host: &dyn Host, names: &[String]) -> Result<Vec<String>, HostError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        if host.which(self.program()).is_none() {
            return Err(HostError(format!(
                "`{}` not found: is this the right distro (-d)?",
                self.program()
            )));
        }
        match self.kind {
            PackageManagerKind::Apt => {
                let mut argv = vec![
                    "dpkg-query".to_owned(),
                    "-W".into(),
                    "-f=${Package}\t${db:Status-Abbrev}\n".into(),
                ];
                argv.extend(names.iter().cloned());
                // Exit 1 only means some names are unknown to dpkg; the output still lists the rest.
                let out = host.run(&Cmd::new(argv))?;
                let text = out.stdout_text();
                Ok(names
                    .iter()
                    .filter(|n| {
                        text.lines().any(|l| {
                            let mut f = l.split('\t');
                            let pkg = f.next().unwrap_or_default();
                            let pkg = pkg.split(':').next().unwrap_or_default();
                            pkg == n.as_str() && f.next().is_some_and(|s| s.starts_with("ii"))
                        })
                    })
                    .cloned()
                    .collect())
            }
            PackageManagerKind::Swupd => {
                let out = host.run(&Cmd::new(["swupd", "bundle-list", "--quiet"]))?;
                if !out.success() {
                    return Err(HostError(format!(
                        "swupd bundle-list failed: {}",
                        out.tail()
                    )));
                }
                let text = out.stdout_text();
                Ok(names
                    .iter()
                    .filter(|n| {
                        text.lines()
                            .any(|l| l.trim().trim_start_matches("- ").trim() == n.as_str())
                    })
                    .cloned()
                    .collect())
            }
            PackageManagerKind::Yum => {
                let mut argv = vec![
                    "rpm".to_owned(),
                    "-q".into(),
                    "--qf".into(),
                    "%{NAME}\n".into(),
                ];
                argv.extend(names.iter().cloned());
                let out = host.run(&Cmd::new(argv))?;
                let text = out.stdout_text();
                Ok(names
                    .iter()
                    .filter(|n| text.lines().any(|l| l.trim() == n.as_str()))
                    .cloned()
                    .collect())
            }
        }
    }

    /// Every package (bundle) installed on the host: the before/after difference of an install
    /// is what it pulled in, recorded so `-u` removes exactly that.
    pub fn all_installed(&self, host: &dyn Host) -> Result<BTreeSet<String>, HostError> {
        let (cmd, pick): (Cmd, fn(&str) -> Option<&str>) = match self.kind {
            PackageManagerKind::Apt => (
                Cmd::new(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\n"]),
                |l| {
                    l.split_once('\t')
                        .filter(|(_, s)| s.starts_with("ii"))
                        .map(|(p, _)| p)
                },
            ),
            PackageManagerKind::Yum => (Cmd::new(["rpm", "-qa", "--qf", "%{NAME}\n"]), |l| {
                Some(l.trim())
            }),
            PackageManagerKind::Swupd => (Cmd::new(["swupd", "bundle-list", "--quiet"]), |l| {
                Some(l.trim().trim_start_matches("- ").trim())
            }),
        };
        let out = host.run(&cmd)?;
        if !out.success() {
            return Err(HostError(format!(
                "`{}` failed: {}",
                cmd.display(),
                out.tail()
            )));
        }
        Ok(out
            .stdout_text()
            .lines()
            .filter_map(pick)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// What removing `names` would remove besides them (apt only: dependents go too).
    pub fn removal_collateral(
        &self,
        host: &dyn Host,
        names: &[String],
    ) -> Result<Vec<String>, HostError> {
        if self.kind != PackageManagerKind::Apt || names.is_empty() {
            return Ok(Vec::new());
        }
        let mut argv = vec!["apt-get".to_owned(), "-s".into(), "remove".into()];
        argv.extend(names.iter().cloned());
        let out = host.run(&Cmd::new(argv))?;
        Ok(out
            .stdout_text()
            .lines()
            .filter_map(|l| l.strip_prefix("Remv ")?.split_whitespace().next())
            .filter(|p| !names.iter().any(|n| n == p))
            .map(str::to_owned)
            .collect())
    }

    /// Commands that repair an interrupted previous run before installing (apt only).
    pub fn repair(&self, host: &dyn Host) -> Result<Option<Cmd>, HostError> {
        if self.kind != PackageManagerKind::Apt {
            return Ok(None);
        }
        let audit = host.run(&Cmd::new(["dpkg", "--audit"]))?;
        if audit.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        Ok(Some(apt_env(Cmd::new([
            "dpkg".to_owned(),
            "--configure".into(),
            "-a".into(),
            "--force-confold".into(),
        ]))))
    }

    /// Refresh the package index before an install (apt only); failure is not fatal.
    pub fn refresh(&self) -> Option<Cmd> {
        (self.kind == PackageManagerKind::Apt).then(|| {
            apt_env(Cmd::new(vec![
                "apt-get".to_owned(),
                "-q".into(),
                "-o".into(),
                format!("DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS}"),
                "update".into(),
            ]))
        })
    }

    pub fn install(&self, names: &[String]) -> Cmd {
        let mut argv: Vec<String> = match self.kind {
            PackageManagerKind::Apt => vec![
                "apt-get".into(),
                "install".into(),
                "-y".into(),
                "-q".into(),
                "-o".into(),
                format!("DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS}"),
                "-o".into(),
                "Dpkg::Options::=--force-confdef".into(),
                "-o".into(),
                "Dpkg::Options::=--force-confold".into(),
            ],
            PackageManagerKind::Swupd => vec!["swupd".into(), "bundle-add".into()],
            PackageManagerKind::Yum => vec!["yum".into(), "install".into(), "-y".into()],
        };
        argv.extend(names.iter().cloned());
        apt_env(Cmd::new(argv))
    }

    pub fn remove(&self, names: &[String]) -> Cmd {
        let mut argv: Vec<String> = match self.kind {
            PackageManagerKind::Apt => vec![
                "apt-get".into(),
                "remove".into(),
                "-y".into(),
                "-q".into(),
                "-o".into(),
                format!("DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS}"),
            ],
            PackageManagerKind::Swupd => vec!["swupd".into(), "bundle-remove".into()],
            PackageManagerKind::Yum => vec!["yum".into(), "remove".into(), "-y".into()],
        };
        argv.extend(names.iter().cloned());
        apt_env(Cmd::new(argv))
    }
}

fn apt_env(cmd: Cmd) -> Cmd {
    if cmd
        .argv
        .first()
        .is_some_and(|p| p == "apt-get" || p == "dpkg")
    {
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
    } else {
        cmd
    }
}
