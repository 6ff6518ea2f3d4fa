//! `uninstall -u` on a machine the operator keeps using (fake host): only the packages the tool
//! installed whose removal takes nothing else go; the rest is kept and the plan says why; what
//! would refuse does so before anything is changed, and the dry run says so too.

use std::collections::BTreeSet;

use crate::fake_host::FakeHost;
use crate::golden::{install, run};

fn uninstall_u(host: &FakeHost, distro: &str, extra: &[&str]) -> (u8, String, String) {
    let mut args = vec![
        "-a",
        "uninstall",
        "-u",
        "-d",
        distro,
        "-H",
        "localhost",
        "--yes",
        "--no-backup",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    run(host, &args)
}

fn packages(host: &FakeHost) -> BTreeSet<String> {
    host.world.borrow().packages.clone()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The `changes` of the plan's steps whose kind is `kind`.
fn changes_of(doc: &serde_json::Value, kind: &str) -> Vec<Vec<String>> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .map(|s| {
            s["changes"]
                .as_array()
                .map(|c| c.iter().map(|c| c.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// Per distro: (a package of the operator's installed after telem-deploy that shares a
/// dependency with what telem-deploy installed, what -u must keep of the tool's for it,
/// what it must still remove).
const CASES: [(&str, &str, &[&str], &[&str]); 3] = [
    (
        "debian",
        "curl",
        &["libldap-2.5-0", "libssl3"],
        &[
            "nginx",
            "nginx-common",
            "postgresql",
            "postgresql-15",
            "libpq5",
            "postgresql-common",
        ],
    ),
    (
        "centos",
        "pgadmin-tools",
        &["postgresql-private-libs"],
        &[
            "nginx",
            "nginx-core",
            "nginx-filesystem",
            "postgresql-server",
            "postgresql",
        ],
    ),
    ("clr", "operator-bundle", &["postgresql"], &["nginx"]),
];

#[test]
fn uninstall_u_keeps_what_the_operators_later_packages_need_and_says_why() {
    for (distro, later, keep, gone) in CASES {
        let host = FakeHost::fresh(distro, distro != "debian");
        host.world
            .borrow_mut()
            .packages
            .insert("operator-tool".into());
        install(&host, distro);
        for k in keep.iter().chain(gone) {
            assert!(
                packages(&host).contains(*k),
                "{distro}: install brought {k}"
            );
        }
        host.install_package(later);
        let with_later = packages(&host);

        // The dry run shows the outcome: what goes, what stays and why; no refusal.
        let (code, plan, err) = uninstall_u(&host, distro, &["--dry-run"]);
        assert_eq!(code, 0, "{distro}: {plan}{err}");
        assert_eq!(
            packages(&host),
            with_later,
            "{distro}: a dry run removes nothing"
        );
        let doc: serde_json::Value = serde_json::from_str(&plan).unwrap();
        let absent: Vec<Vec<String>> = changes_of(&doc, "packages");
        assert_eq!(absent.len(), 1, "{distro}: one removal step: {absent:?}");
        let lines = &absent[0];
        for k in keep {
            assert!(
                lines.iter().any(|l| l.starts_with("keep ")
                    && l.contains(&format!(" {k} "))
                    && l.contains(later)),
                "{distro}: the plan says {k} is kept for {later}: {lines:?}"
            );
        }
        let remove_line = lines.iter().find(|l| l.starts_with("remove ")).unwrap();
        for g in gone {
            assert!(
                remove_line.contains(g),
                "{distro}: {g} is removed: {remove_line}"
            );
        }
        assert_eq!(doc["summary"]["blocked"], 0, "{distro}: {plan}");

        // Applying does what the plan said, and succeeds.
        let (code, out, err) = uninstall_u(&host, distro, &[]);
        assert_eq!(code, 0, "{distro}: {out}{err}");
        let mut expected = set(&["operator-tool", later]);
        expected.extend(keep.iter().map(|k| k.to_string()));
        // What the later package pulled in itself stays, of course.
        for p in with_later.iter() {
            if !keep.contains(&p.as_str())
                && !gone.contains(&p.as_str())
                && packages(&host).contains(p)
            {
                expected.insert(p.clone());
            }
        }
        assert_eq!(packages(&host), expected, "{distro}: {out}");
        for g in gone {
            assert!(!packages(&host).contains(*g), "{distro}: {g} removed");
        }
        // The database and role went too: nothing refused half-way.
        assert!(host.world.borrow().databases.is_empty(), "{distro}");

        // uninstall -u again: nothing left to do, nothing fails (PostgreSQL is gone, so
        // there is no database to drop).
        let (code, out, err) = uninstall_u(&host, distro, &[]);
        assert_eq!(code, 0, "{distro}: a second uninstall -u: {out}{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["summary"]["changed"], 0, "{distro}: {out}");
        assert_eq!(packages(&host), expected, "{distro}");

        // Installing again converges: what was kept is not installed twice, the rest comes back.
        install(&host, distro);
        for g in gone {
            assert!(
                packages(&host).contains(*g),
                "{distro}: {g} installed again"
            );
        }
    }
}

#[test]
fn a_removal_that_cannot_be_simulated_refuses_before_anything_changes() {
    for distro in ["debian", "centos", "clr"] {
        let host = FakeHost::fresh(distro, distro != "debian");
        install(&host, distro);
        host.world.borrow_mut().simulation_fails = true;
        let before = (
            packages(&host),
            host.world.borrow().databases.clone(),
            host.world.borrow().roles.clone(),
        );
        let files = host
            .world
            .borrow()
            .files
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        let running = host.world.borrow().running.clone();

        let (code, plan, err) = uninstall_u(&host, distro, &["--dry-run"]);
        assert_eq!(code, 0, "{distro}: {plan}{err}");
        let doc: serde_json::Value = serde_json::from_str(&plan).unwrap();
        let blocked: Vec<&serde_json::Value> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "blocked")
            .collect();
        assert_eq!(
            blocked.len(),
            1,
            "{distro}: the dry run shows the refusal: {plan}"
        );
        assert_eq!(blocked[0]["kind"], "packages");

        let (code, out, err) = uninstall_u(&host, distro, &[]);
        assert_eq!(code, 1, "{distro}: {out}{err}");
        assert!(out.contains("nothing was changed"), "{distro}: {out}");
        let after = (
            packages(&host),
            host.world.borrow().databases.clone(),
            host.world.borrow().roles.clone(),
        );
        assert_eq!(
            after, before,
            "{distro}: packages, database and role untouched"
        );
        assert_eq!(
            host.world
                .borrow()
                .files
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
            files,
            "{distro}: no file touched"
        );
        assert_eq!(
            host.world.borrow().running,
            running,
            "{distro}: no service stopped"
        );
    }
}

#[test]
fn without_webapp_the_uninstall_plan_lists_each_package_once() {
    for distro in ["debian", "ubuntu", "centos", "clr"] {
        let host = FakeHost::fresh(distro, distro != "debian");
        install(&host, distro);
        let (code, plan, err) = uninstall_u(&host, distro, &["--dry-run"]);
        assert_eq!(code, 0, "{distro}: {plan}{err}");
        let doc: serde_json::Value = serde_json::from_str(&plan).unwrap();
        let listing: Vec<String> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["changes"].as_array().is_some_and(|c| {
                    c.iter().any(|l| {
                        l.as_str().unwrap().starts_with("remove packages")
                            || l.as_str().unwrap().starts_with("remove bundles")
                    })
                })
            })
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listing.len(), 1, "{distro}: {listing:?}");
        assert!(!listing[0].contains("web UI"), "{distro}: {listing:?}");
    }
}
