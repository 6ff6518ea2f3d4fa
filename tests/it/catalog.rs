//! Every name and path of the recipes against the distributions' catalogues
//! (tests/shims/catalog/*.txt: data taken from the distributions' own metadata, with its source
//! and date, never from the recipes; recipes/SOURCES.md says where each came from).
//!
//! For each recipe and each release it supports: every package of every set (of alternatives,
//! one) exists; what `install --webapp` would install on that release (alternatives and
//! `{ available: ... }` resolved against its catalogue, `{ release: ... }` against its
//! version) provides every systemd unit the recipe starts, the binaries its daemons run, uWSGI
//! and its Python plugin, PostgreSQL's socket directory; and the PostgreSQL it installs (the
//! release's default, or the module stream the recipe enables) is one the collector supports.
//! A wrong name, unit or path fails here, on every test run, without a sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use telem_deploy::cli::Distro;
use telem_deploy::recipe::model::{Condition, Direct, PackageChoice, Recipe};

/// The oldest PostgreSQL the collector supports (server/src/store/version.rs).
const MIN_PG: u32 = 13;

#[derive(Debug, Default)]
struct Entry {
    attrs: BTreeMap<String, String>,
}

impl Entry {
    fn list(&self, key: &str) -> Vec<String> {
        self.attrs
            .get(key)
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Catalogue {
    file: String,
    entries: BTreeMap<String, Entry>,
    /// Module streams (EL 8): `postgresql` → [10, 12, ...], the first the default.
    modules: BTreeMap<String, Vec<String>>,
}

impl Catalogue {
    fn parse(file: &str, text: &str) -> Catalogue {
        let mut cat = Catalogue {
            file: file.to_owned(),
            ..Catalogue::default()
        };
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let name = words.next().unwrap();
            if name == "module" {
                for stream in words {
                    let (m, s) = stream.split_once(':').expect("module NAME:STREAM");
                    cat.modules.entry(m.into()).or_default().push(s.into());
                }
                continue;
            }
            let attrs = words
                .map(|w| {
                    let (k, v) = w
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{file}: `{w}` is not key=value"));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            cat.entries.insert(name.to_owned(), Entry { attrs });
        }
        cat
    }

    fn load(name: &str) -> Catalogue {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/shims/catalog")
            .join(format!("{name}.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Catalogue::parse(name, &text)
    }

    fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// `names` and everything they require.
    fn closure(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let mut all = names.clone();
        let mut todo: Vec<String> = names.iter().cloned().collect();
        while let Some(n) = todo.pop() {
            for r in self
                .entries
                .get(&n)
                .map(|e| e.list("requires"))
                .unwrap_or_default()
            {
                if all.insert(r.clone()) {
                    todo.push(r);
                }
            }
        }
        all
    }
}

/// A release a recipe supports, with its catalogue.
struct Release {
    distro: Distro,
    catalogue: &'static str,
    /// VERSION_ID of its /etc/os-release.
    version_id: &'static str,
    /// The collector runs on it (Clear Linux before August 2022 ships PostgreSQL 9.6: its
    /// names must still resolve, but nothing more is promised).
    supported: bool,
}

const RELEASES: [Release; 7] = [
    Release {
        distro: Distro::Clr,
        catalogue: "clr-2018",
        version_id: "27000",
        supported: false,
    },
    Release {
        distro: Distro::Clr,
        catalogue: "clr-2025",
        version_id: "43750",
        supported: true,
    },
    Release {
        distro: Distro::Centos,
        catalogue: "el8",
        version_id: "8.10",
        supported: true,
    },
    Release {
        distro: Distro::Centos,
        catalogue: "el9",
        version_id: "9.6",
        supported: true,
    },
    Release {
        distro: Distro::Debian,
        catalogue: "debian-12",
        version_id: "12",
        supported: true,
    },
    Release {
        distro: Distro::Ubuntu,
        catalogue: "ubuntu-22.04",
        version_id: "22.04",
        supported: true,
    },
    Release {
        distro: Distro::Ubuntu,
        catalogue: "ubuntu-24.04",
        version_id: "24.04",
        supported: true,
    },
];

/// The run `install --webapp` under systemd on `release` (a rebuild, no firewall; one machine
/// with the database and the collector): does `c` hold?
fn holds(c: &Condition, cat: &Catalogue, version_id: &str) -> bool {
    match c {
        Condition::Systemd
        | Condition::Webapp
        | Condition::Db
        | Condition::Postgres
        | Condition::Collector
        | Condition::Nginx
        | Condition::PostgresInstalled
        | Condition::PostgresLeft => true,
        Condition::Standby
        | Condition::Balancer
        | Condition::DbRemote
        | Condition::DbClients
        | Condition::Replicated => false,
        Condition::Direct
        | Condition::Purge
        | Condition::NoWebapp
        | Condition::Tls
        | Condition::TlsManaged
        | Condition::UiAuth
        | Condition::Firewalld
        | Condition::Ufw
        | Condition::Rhel => false,
        Condition::Release(r) => {
            version_id == r
                || version_id
                    .strip_prefix(r.as_str())
                    .is_some_and(|s| s.starts_with('.'))
        }
        Condition::Available(n) => cat.has(n),
        Condition::Not(inner) => !holds(inner, cat, version_id),
    }
}

/// Everything wrong with `recipe` on `release` (empty: nothing).
fn problems(recipe: &Recipe, release: &Release, cat: &Catalogue) -> Vec<String> {
    let mut p = Vec::new();
    let at = &cat.file;
    // Every set: each name, or one of the alternatives, exists.
    let mut chosen_by_set: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (set, entries) in &recipe.packages {
        for choice in entries {
            match choice.names().iter().find(|n| cat.has(n)) {
                Some(n) => chosen_by_set.entry(set).or_default().push(n.clone()),
                None => p.push(format!(
                    "{at}: package set `{set}`: {} unknown",
                    match choice {
                        PackageChoice::Name(n) => format!("`{n}`"),
                        PackageChoice::AnyOf { any_of } => format!("none of {any_of:?}"),
                    }
                )),
            }
        }
    }
    let install = &recipe.actions["install"];
    let applies = |when: &[Condition]| when.iter().all(|c| holds(c, cat, release.version_id));
    let mut installed = BTreeSet::new();
    let mut pg_stream: Option<String> = None;
    for step in install.iter().filter(|s| applies(&s.when)) {
        if let Some(pk) = &step.packages {
            for r in &pk.repositories {
                if !cat.has(r) {
                    p.push(format!("{at}: repository package `{r}` unknown"));
                }
                installed.insert(r.clone());
            }
            installed.extend(
                chosen_by_set
                    .get(pk.set.as_str())
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        if let Some(cmd) = &step.command {
            let run = cmd.run.join(" ");
            if let Some(stream) = run
                .split_whitespace()
                .find_map(|w| w.strip_prefix("postgresql:"))
            {
                if run.contains("module enable") {
                    if !cat
                        .modules
                        .get("postgresql")
                        .is_some_and(|s| s.iter().any(|x| x == stream))
                    {
                        p.push(format!("{at}: module stream postgresql:{stream} unknown"));
                    }
                    pg_stream = Some(stream.to_owned());
                }
            }
        }
    }
    for step in recipe.actions.values().flatten() {
        for n in &step.when_installed_by_us {
            if !cat.has(n)
                && !RELEASES
                    .iter()
                    .any(|r| r.distro == release.distro && Catalogue::load(r.catalogue).has(n))
            {
                p.push(format!(
                    "when_installed_by_us: `{n}` is in no catalogue of this distro"
                ));
            }
        }
    }
    let all = cat.closure(&installed);
    let provided = |key: &str| -> BTreeSet<String> {
        all.iter()
            .filter_map(|n| cat.entries.get(n))
            .flat_map(|e| e.list(key))
            .collect()
    };
    let units = provided("units");
    let files = provided("files");
    let has_binary = |b: &str| {
        if b.starts_with('/') {
            files.contains(b)
        } else {
            files.iter().any(|f| f.rsplit('/').next() == Some(b))
        }
    };
    // Units the recipe starts (not those it writes itself).
    let own_units: Vec<String> = {
        let mut v = vec![recipe.collector.unit_file.clone()];
        if let Some(w) = &recipe.webapp {
            v.push(w.emperor_unit_file.clone());
        }
        v
    };
    for step in install.iter().filter(|s| applies(&s.when)) {
        let Some(svc) = &step.service else { continue };
        let def = &recipe.services[&svc.name];
        let own = own_units
            .iter()
            .any(|f| f.ends_with(&format!("/{}.service", def.unit)));
        if !own && !units.contains(&def.unit) {
            p.push(format!(
                "{at}: step `{}` starts unit `{}`, which nothing installed provides (units: {units:?})",
                step.name, def.unit
            ));
        }
        if release.supported {
            if let Direct::Daemon { command, .. } = &def.direct {
                let bin = &command[0];
                if !bin.contains("{{") && !has_binary(bin) {
                    p.push(format!(
                        "{at}: service `{}` runs `{bin}` without systemd, which nothing installed provides",
                        svc.name
                    ));
                }
            }
        }
    }
    if release.supported {
        if let Some(w) = &recipe.webapp {
            if !has_binary(&w.uwsgi_bin) {
                p.push(format!(
                    "{at}: uwsgi_bin `{}` is not installed",
                    w.uwsgi_bin
                ));
            }
            let plugin_ok = if w.uwsgi_plugin.starts_with('/') {
                files.contains(&w.uwsgi_plugin)
            } else {
                files
                    .iter()
                    .any(|f| f.ends_with(&format!("/{}_plugin.so", w.uwsgi_plugin)))
            };
            if !plugin_ok {
                p.push(format!(
                    "{at}: the uWSGI plugin `{}` is not installed",
                    w.uwsgi_plugin
                ));
            }
        }
        let socket = provided("socket");
        if !socket.is_empty() && !socket.contains(&recipe.postgres.socket_dir) {
            p.push(format!(
                "{at}: PostgreSQL's socket is in {socket:?}, the recipe says {}",
                recipe.postgres.socket_dir
            ));
        }
        let version = pg_stream
            .clone()
            .or_else(|| provided("version").into_iter().next())
            .or_else(|| {
                cat.modules
                    .get("postgresql")
                    .and_then(|s| s.first().cloned())
            });
        match version
            .as_deref()
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
        {
            Some(v) if v >= MIN_PG => {}
            other => p.push(format!(
                "{at}: the PostgreSQL installed is {other:?}, the collector needs {MIN_PG} or newer"
            )),
        }
    }
    p
}

fn recipe(distro: Distro) -> Recipe {
    telem_deploy::recipe::load(distro, None)
        .expect("built-in recipe")
        .recipe
}

#[test]
fn every_recipe_name_unit_and_path_is_in_the_distributions_catalogues() {
    let mut all = Vec::new();
    for release in &RELEASES {
        let cat = Catalogue::load(release.catalogue);
        all.extend(problems(&recipe(release.distro), release, &cat));
    }
    assert!(
        all.is_empty(),
        "{} problem(s):\n- {}",
        all.len(),
        all.join("\n- ")
    );
}

/// The check bites: each mistake of the old recipe (deploy.sh's bundle names, the socket in
/// /tmp, `plugins = python3`, redis.service) fails against the last Clear Linux, and EL 8's
/// default PostgreSQL (no module stream enabled) is too old.
#[test]
fn wrong_names_units_and_paths_fail_the_check() {
    let cat = Catalogue::load("clr-2025");
    let release = &RELEASES[1];
    let check = |change: &dyn Fn(&mut Recipe), want: &str| {
        let mut r = recipe(Distro::Clr);
        change(&mut r);
        let found = problems(&r, release, &cat).join("\n");
        assert!(found.contains(want), "no problem mentions {want}:\n{found}");
    };
    check(
        &|r| {
            r.packages.insert(
                "base".into(),
                vec![
                    PackageChoice::Name("web-server-basic".into()),
                    PackageChoice::Name("postgresql".into()),
                ],
            );
        },
        "`web-server-basic` unknown",
    );
    check(&|r| r.postgres.socket_dir = "/tmp".into(), "socket");
    check(
        &|r| r.webapp.as_mut().unwrap().uwsgi_plugin = "python3".into(),
        "plugin `python3`",
    );
    check(
        &|r| {
            for step in r.actions.get_mut("install").unwrap() {
                if let Some(s) = step.service.as_mut().filter(|s| s.name == "valkey") {
                    s.name = "redis".into();
                }
            }
        },
        "unit `redis`",
    );

    let el8 = Catalogue::load("el8");
    let mut no_stream = recipe(Distro::Centos);
    for step in no_stream.actions.get_mut("install").unwrap() {
        if let Some(c) = step.command.as_mut() {
            c.run.retain(|w| !w.starts_with("postgresql:"));
        }
    }
    let found = problems(&no_stream, &RELEASES[2], &el8).join("\n");
    assert!(
        found.contains("Some(10)"),
        "EL 8's default stream passes:\n{found}"
    );
}
