//! dpkg's dependency graph of the installed packages, to tell without running apt once per
//! package what removing a set takes along: every installed package one of whose
//! `Depends`/`Pre-Depends` (any alternative, real or provided) is no longer satisfied. apt
//! itself (`apt-get -s remove`) confirms the answer before anything is removed.

use std::collections::{BTreeMap, BTreeSet};

use crate::host::{Cmd, Host, HostError};

pub struct DpkgGraph {
    /// Installed package → its dependencies: clauses of alternatives (names).
    depends: BTreeMap<String, Vec<Vec<String>>>,
    /// Name (a package or a virtual one) → the installed packages that are or provide it.
    providers: BTreeMap<String, BTreeSet<String>>,
}

/// `libc6 (>= 2.34), foo:any | bar` → [["libc6"], ["foo", "bar"]].
fn clauses(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|clause| {
            clause
                .split('|')
                .filter_map(|alt| {
                    let name = alt.split_whitespace().next()?;
                    let name = name.split(':').next().unwrap_or(name);
                    (!name.is_empty()).then(|| name.to_owned())
                })
                .collect::<Vec<String>>()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

impl DpkgGraph {
    pub fn load(host: &dyn Host) -> Result<DpkgGraph, HostError> {
        let cmd = Cmd::new([
            "dpkg-query",
            "-W",
            "-f=${db:Status-Abbrev}\t${Package}\t${Pre-Depends}\t${Depends}\t${Provides}\n",
        ]);
        let out = host.run(&cmd)?;
        if !out.success() {
            return Err(HostError(format!("`dpkg-query -W` failed: {}", out.tail())));
        }
        Ok(DpkgGraph::parse(&out.stdout_text()))
    }

    fn parse(text: &str) -> DpkgGraph {
        let mut g = DpkgGraph {
            depends: BTreeMap::new(),
            providers: BTreeMap::new(),
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 5 || !f[0].starts_with("ii") {
                continue;
            }
            let pkg = f[1].split(':').next().unwrap_or(f[1]).to_owned();
            let mut deps = clauses(f[2]);
            deps.extend(clauses(f[3]));
            g.providers
                .entry(pkg.clone())
                .or_default()
                .insert(pkg.clone());
            for p in clauses(f[4]).into_iter().flatten() {
                g.providers.entry(p).or_default().insert(pkg.clone());
            }
            g.depends.insert(pkg, deps);
        }
        g
    }

    /// What removing `names` removes: them and every installed package that would be left
    /// with a dependency nothing satisfies, transitively.
    pub fn closure(&self, names: &[String]) -> BTreeSet<String> {
        let mut gone: BTreeSet<String> = names
            .iter()
            .filter(|n| self.depends.contains_key(*n))
            .cloned()
            .collect();
        loop {
            let broken: Vec<String> = self
                .depends
                .iter()
                .filter(|(p, _)| !gone.contains(*p))
                .filter(|(_, deps)| {
                    deps.iter().any(|clause| {
                        // Broken when it was satisfied and no longer is (a clause nothing
                        // satisfied before is not this removal's doing).
                        let satisfied_by = |keep: &dyn Fn(&String) -> bool| {
                            clause.iter().any(|alt| {
                                self.providers
                                    .get(alt)
                                    .is_some_and(|ps| ps.iter().any(&keep))
                            })
                        };
                        satisfied_by(&|_| true) && !satisfied_by(&|p| !gone.contains(p))
                    })
                })
                .map(|(p, _)| p.clone())
                .collect();
            if broken.is_empty() {
                return gone;
            }
            gone.extend(broken);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "ii \tcurl\t\tlibcurl4 (= 7.88), libc6 (>= 2.34)\t\n\
ii \tlibcurl4:amd64\t\tlibldap-2.5-0 (>= 2.5.4), libc6\t\n\
ii \tlibldap-2.5-0\t\tlibc6\t\n\
ii \tlibpq5\t\tlibldap-2.5-0, libc6\t\n\
ii \tpostgresql-15\t\tlibpq5, postgresql-common | pg-common-alt\t\n\
ii \tpostgresql-common\t\tlibc6\tpg-common-alt\n\
ii \tmawk\t\t\tawk\n\
ii \tscript\t\tawk\t\n\
ii \tlibc6\t\t\t\n\
rc \told\t\tlibpq5\t\n";

    fn names(s: &BTreeSet<String>) -> Vec<&str> {
        s.iter().map(String::as_str).collect()
    }

    #[test]
    fn removal_takes_what_depends_on_it_transitively() {
        let g = DpkgGraph::parse(STATUS);
        assert_eq!(
            names(&g.closure(&["libldap-2.5-0".into()])),
            [
                "curl",
                "libcurl4",
                "libldap-2.5-0",
                "libpq5",
                "postgresql-15"
            ]
        );
        assert_eq!(
            names(&g.closure(&["libpq5".into()])),
            ["libpq5", "postgresql-15"]
        );
    }

    #[test]
    fn virtual_packages_and_alternatives_count() {
        let g = DpkgGraph::parse(STATUS);
        // mawk provides awk, which `script` needs.
        assert_eq!(names(&g.closure(&["mawk".into()])), ["mawk", "script"]);
        // postgresql-common is also the alternative pg-common-alt: both gone, postgresql-15 goes.
        assert_eq!(
            names(&g.closure(&["postgresql-common".into()])),
            ["postgresql-15", "postgresql-common"]
        );
        // A package not installed (rc) takes nothing.
        assert!(g.closure(&["old".into()]).is_empty());
    }
}
