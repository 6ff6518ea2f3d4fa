//! Package managers: what is installed, and the commands that install or remove packages
//! non-interactively. swupd (Clear Linux bundles), apt (Debian, Ubuntu), yum/dnf (EL).

use std::collections::BTreeSet;

use crate::host::{Cmd, Host, HostError};
use crate::recipe::model::PackageManagerKind;

/// How long apt waits for another dpkg/apt to release its lock.
const APT_LOCK_TIMEOUT_SECS: u32 = 300;

/// yum/dnf: never also remove "unused dependencies" (they may be the operator's orphans).
const NO_CLEAN_REQUIREMENTS: &str = "--setopt=clean_requirements_on_remove=False";

/// What `uninstall -u` removes of what the tool installed, and what it keeps and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalPlan {
    pub remove: Vec<String>,
    /// Installed by the tool but kept: (package, why).
    pub kept: Vec<(String, String)>,
}

/// Of `candidates`, those whose removal (by `takes`: what removing a set removes) takes only
/// other candidates that go too; the others are kept, each with what it would take along.
fn keep_what_takes_others(
    candidates: &BTreeSet<String>,
    takes: impl Fn(&[String]) -> Result<BTreeSet<String>, HostError>,
) -> Result<RemovalPlan, HostError> {
    let mut candidates = candidates.clone();
    let mut kept: Vec<(String, String)> = Vec::new();
    // Each round keeps the packages whose removal would take something that is not (or no
    // longer) a candidate; a round without collateral ends it (at most one per package).
    loop {
        let list: Vec<String> = candidates.iter().cloned().collect();
        let all = takes(&list)?;
        if all.is_subset(&candidates) {
            break;
        }
        let before = candidates.len();
        let mut next = BTreeSet::new();
        for p in &list {
            let alone = takes(std::slice::from_ref(p))?;
            let others: Vec<&str> = alone.difference(&candidates).map(String::as_str).collect();
            if others.is_empty() {
                next.insert(p.clone());
            } else {
                kept.push((
                    p.clone(),
                    format!("removing it would also remove {}", others.join(" ")),
                ));
            }
        }
        if next.len() == before {
            // Each alone is fine but not all together (alternatives): keep them all.
            let others: Vec<&str> = all.difference(&candidates).map(String::as_str).collect();
            for p in &list {
                kept.push((
                    p.clone(),
                    format!(
                        "removing them together would also remove {}",
                        others.join(" ")
                    ),
                ));
            }
            next.clear();
        }
        candidates = next;
    }
    kept.sort();
    Ok(RemovalPlan {
        remove: candidates.into_iter().collect(),
        kept,
    })
}

/// The package names of a dnf transaction table ("Removing:", "Removing dependent packages:",
/// "Removing unused dependencies:" sections; one package per indented line).
fn parse_dnf_transaction(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_section = false;
    for line in text.lines() {
        if line.starts_with("Removing") && line.trim_end().ends_with(':') {
            in_section = true;
        } else if in_section && line.starts_with(' ') && !line.trim().is_empty() {
            if let Some(name) = line.split_whitespace().next() {
                out.insert(name.to_owned());
            }
        } else {
            in_section = false;
        }
    }
    out
}

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

    /// What removing all of `names` at once would remove (them and whatever goes with them),
    /// asked of the package manager itself without changing anything: `apt-get -s remove`,
    /// `yum remove --assumeno` (dnf), and for swupd the installed bundles that include one
    /// of them (`swupd bundle-list --has-dep`, what makes `bundle-remove` refuse).
    pub fn simulate_removal(
        &self,
        host: &dyn Host,
        names: &[String],
    ) -> Result<BTreeSet<String>, HostError> {
        if names.is_empty() {
            return Ok(BTreeSet::new());
        }
        match self.kind {
            PackageManagerKind::Apt => {
                let mut argv = vec!["apt-get".to_owned(), "-s".into(), "remove".into()];
                argv.extend(names.iter().cloned());
                let cmd = apt_env(Cmd::new(argv));
                let out = host.run(&cmd)?;
                if !out.success() {
                    return Err(HostError(format!(
                        "`apt-get -s remove` (the simulation of what -u would remove) failed: {}",
                        out.tail()
                    )));
                }
                Ok(out
                    .stdout_text()
                    .lines()
                    .filter_map(|l| l.strip_prefix("Remv ")?.split_whitespace().next())
                    .map(|p| p.split(':').next().unwrap_or(p).to_owned())
                    .collect())
            }
            PackageManagerKind::Yum => {
                let mut argv = vec!["yum".to_owned(), "remove".into(), "--assumeno".into()];
                argv.push(NO_CLEAN_REQUIREMENTS.into());
                argv.extend(names.iter().cloned());
                let out = host.run(&Cmd::new(argv))?;
                let text = out.stdout_text();
                // --assumeno answers "no": exit 1 with "Operation aborted." is the normal end.
                if !(text.contains("Operation aborted") || text.contains("Nothing to do")) {
                    return Err(HostError(format!(
                        "`yum remove --assumeno` (the simulation of what -u would remove) failed: {}",
                        out.tail()
                    )));
                }
                Ok(parse_dnf_transaction(&text))
            }
            PackageManagerKind::Swupd => {
                let mut gone: BTreeSet<String> = names.iter().cloned().collect();
                for b in names {
                    let cmd = Cmd::new([
                        "swupd".to_owned(),
                        "bundle-list".into(),
                        "--quiet".into(),
                        format!("--has-dep={b}"),
                    ]);
                    let out = host.run(&cmd)?;
                    if !out.success() {
                        return Err(HostError(format!(
                            "`{}` failed: {}",
                            cmd.display(),
                            out.tail()
                        )));
                    }
                    gone.extend(
                        out.stdout_text()
                            .lines()
                            .map(|l| l.trim().trim_start_matches("- ").trim())
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                }
                Ok(gone)
            }
        }
    }

    /// Which of `recorded` (what this tool installed) `-u` removes: those installed whose
    /// removal, alone and all together, takes nothing else. The rest is kept, with the reason.
    /// apt: worked out on dpkg's dependency graph, then confirmed by `apt-get -s remove` (if
    /// apt disagrees, asked of apt one package at a time); yum and swupd: asked of them.
    pub fn removal_plan(
        &self,
        host: &dyn Host,
        recorded: &BTreeSet<String>,
    ) -> Result<RemovalPlan, HostError> {
        if recorded.is_empty() {
            return Ok(RemovalPlan::default());
        }
        let installed = self.all_installed(host)?;
        let candidates: BTreeSet<String> = recorded.intersection(&installed).cloned().collect();
        let simulate = |names: &[String]| self.simulate_removal(host, names);
        if self.kind == PackageManagerKind::Apt {
            let graph = super::pkg_graph::DpkgGraph::load(host)?;
            let plan = keep_what_takes_others(&candidates, |names| Ok(graph.closure(names)))?;
            let all = simulate(&plan.remove)?;
            if all.iter().all(|p| plan.remove.contains(p)) {
                return Ok(plan);
            }
        }
        keep_what_takes_others(&candidates, simulate)
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
            PackageManagerKind::Yum => vec![
                "yum".into(),
                "remove".into(),
                "-y".into(),
                NO_CLEAN_REQUIREMENTS.into(),
            ],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnf_transaction_lists_every_removed_package() {
        let text = "Dependencies resolved.\n\
================================================================================\n \
Package            Arch      Version            Repository       Size\n\
================================================================================\n\
Removing:\n \
nginx              x86_64    1:1.20.1-14.el9    @appstream       108 k\n\
Removing dependent packages:\n \
nginx-mod-stream   x86_64    1:1.20.1-14.el9    @appstream        20 k\n\
Removing unused dependencies:\n \
nginx-core         x86_64    1:1.20.1-14.el9    @appstream       1.5 M\n\
\n\
Transaction Summary\n\
================================================================================\n\
Remove  3 Packages\n\
\n\
Freed space: 1.6 M\n\
Operation aborted.\n";
        let got: Vec<String> = parse_dnf_transaction(text).into_iter().collect();
        assert_eq!(got, ["nginx", "nginx-core", "nginx-mod-stream"]);
    }
}
