//! Facts about the target, read once before the plan is made: its release and whether it is
//! RHEL itself or a rebuild (`/etc/os-release`), whether firewalld or ufw filters traffic, and
//! which bundles its package manager knows (swupd's catalogue). Reading them changes nothing,
//! so a dry run gathers them too. Recipes use them through `when` conditions
//! (`rhel`, `{ release: "8" }`, `firewalld`, `ufw`, `{ available: valkey }`), through the
//! alternatives of a package set (`{ any_of: [nginx, web-server-basic] }`), and as the `os`
//! variable (`{{ os.major }}`).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::host::{Cmd, Host};
use crate::recipe::model::{Condition, PackageChoice, PackageManagerKind, Recipe};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `ID` of /etc/os-release (`rhel`, `centos`, `rocky`, `almalinux`, `ubuntu`, ...).
    pub os_id: String,
    /// `VERSION_ID` of /etc/os-release (`8.10`, `9`, `22.04`, `43750`); empty when unknown.
    pub version_id: String,
    /// firewalld is running.
    pub firewalld: bool,
    /// ufw is active.
    pub ufw: bool,
    /// What the package manager's catalogue knows (swupd: every bundle of the release); None
    /// when it was not asked or could not tell, and then the first of alternatives is used.
    pub catalogue: Option<BTreeSet<String>>,
}

/// The `os` variable of recipes and templates.
#[derive(Debug, Clone, Serialize)]
pub struct OsVars {
    pub id: String,
    pub version_id: String,
    /// The major release: `8` for 8.10, `22` for 22.04.
    pub major: String,
}

impl Facts {
    /// Read the facts `recipe` may ask about from `host`.
    pub fn gather(host: &dyn Host, recipe: &Recipe) -> Facts {
        let (os_id, version_id) = os_release(host);
        Facts {
            os_id,
            version_id,
            firewalld: host.which("firewall-cmd").is_some()
                && run_ok(host, &["firewall-cmd", "--state"]).is_some(),
            ufw: host.which("ufw").is_some()
                && run_ok(host, &["ufw", "status"])
                    .is_some_and(|out| out.lines().any(|l| l.trim() == "Status: active")),
            catalogue: catalogue(host, recipe),
        }
    }

    /// Is the target this release, or a point release of it (`8` holds for `8.10`)?
    pub fn release_is(&self, release: &str) -> bool {
        self.version_id == release
            || self
                .version_id
                .strip_prefix(release)
                .is_some_and(|rest| rest.starts_with('.'))
    }

    pub fn rhel(&self) -> bool {
        self.os_id == "rhel"
    }

    /// Does the package manager know `name`? Without a catalogue every name counts as known
    /// (the first of alternatives is then the one used).
    pub fn available(&self, name: &str) -> bool {
        self.catalogue.as_ref().is_none_or(|c| c.contains(name))
    }

    /// The name an entry of a package set stands for on this target: the first alternative
    /// the catalogue knows, else the first one (whose install then fails as the tool's would).
    pub fn choose(&self, choice: &PackageChoice) -> String {
        let names = choice.names();
        names
            .iter()
            .find(|n| self.available(n))
            .or(names.first())
            .cloned()
            .unwrap_or_default()
    }

    pub fn os_vars(&self) -> OsVars {
        OsVars {
            id: self.os_id.clone(),
            version_id: self.version_id.clone(),
            major: self
                .version_id
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

fn run_ok(host: &dyn Host, argv: &[&str]) -> Option<String> {
    let out = host.run(&Cmd::new(argv.iter().copied())).ok()?;
    out.success().then(|| out.stdout_text())
}

/// `ID` and `VERSION_ID` of /etc/os-release (quotes removed).
fn os_release(host: &dyn Host) -> (String, String) {
    let text = host
        .read(Path::new("/etc/os-release"))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
            .unwrap_or_default()
    };
    (field("ID"), field("VERSION_ID"))
}

/// swupd's catalogue, asked only when the recipe has alternatives or `available` conditions.
fn catalogue(host: &dyn Host, recipe: &Recipe) -> Option<BTreeSet<String>> {
    if recipe.package_manager != PackageManagerKind::Swupd || !asks_catalogue(recipe) {
        return None;
    }
    host.which("swupd")?;
    let out = run_ok(host, &["swupd", "bundle-list", "--all", "--quiet"])?;
    let names: BTreeSet<String> = out
        .lines()
        .map(|l| l.trim().trim_start_matches("- ").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    (!names.is_empty()).then_some(names)
}

fn asks_catalogue(recipe: &Recipe) -> bool {
    recipe
        .packages
        .values()
        .flatten()
        .any(|c| matches!(c, PackageChoice::AnyOf { .. }))
        || recipe
            .actions
            .values()
            .flatten()
            .any(|s| s.when.iter().any(asks_available))
}

fn asks_available(c: &Condition) -> bool {
    match c {
        Condition::Available(_) => true,
        Condition::Not(inner) => asks_available(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version_id: &str, catalogue: Option<&[&str]>) -> Facts {
        Facts {
            version_id: version_id.into(),
            catalogue: catalogue.map(|c| c.iter().map(|s| s.to_string()).collect()),
            ..Facts::default()
        }
    }

    #[test]
    fn releases_match_their_point_releases_only() {
        assert!(facts("8.10", None).release_is("8"));
        assert!(facts("8", None).release_is("8"));
        assert!(!facts("8.10", None).release_is("9"));
        assert!(!facts("80", None).release_is("8"));
        assert!(facts("22.04", None).release_is("22.04"));
        assert!(!facts("", None).release_is("8"));
        assert_eq!(facts("9.4", None).os_vars().major, "9");
    }

    #[test]
    fn the_first_alternative_the_catalogue_knows_is_chosen() {
        let choice = PackageChoice::AnyOf {
            any_of: vec!["nginx".into(), "web-server-basic".into()],
        };
        let old = facts("", Some(&["os-core", "web-server-basic"]));
        assert_eq!(old.choose(&choice), "web-server-basic");
        let new = facts("", Some(&["os-core", "nginx"]));
        assert_eq!(new.choose(&choice), "nginx");
        // Neither known: the first, whose install fails as swupd's would.
        let neither = facts("", Some(&["os-core"]));
        assert_eq!(neither.choose(&choice), "nginx");
        // No catalogue: the first.
        assert_eq!(facts("", None).choose(&choice), "nginx");
        assert!(!old.available("nginx"));
        assert!(facts("", None).available("nginx"));
    }
}
