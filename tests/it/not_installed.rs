//! `restart`, `migrate` and `resetdb` where telem-deploy never installed (no state file, or
//! one that records no installation): one clear refusal ("run -a install first"), exit 2 as the
//! refusal of `deploy` without the inventory's CA, before any machine changes. Their dry runs
//! do not fail (DESIGN.md: a precondition an earlier action sets up is a blocked step): every
//! step is blocked with "run the install action first", none is shown as a change. On one
//! machine and on an inventory (fake hosts), also when only one of the inventory's hosts was
//! never installed.

use crate::fake_host::{FakeHost, World};
use crate::golden;
use crate::inventory::{targets, Setup};
use crate::inventory_standby::{FLEET, HOSTS};

/// The actions that need an install, with what each needs to run unattended.
const ACTIONS: [(&str, &[&str]); 3] = [
    ("restart", &[]),
    ("migrate", &[]),
    ("resetdb", &["--yes", "--no-backup"]),
];

fn worlds(s: &Setup) -> Vec<World> {
    HOSTS
        .iter()
        .map(|h| s.fleet.with(h, |h| h.world.borrow().clone()))
        .collect()
}

#[test]
fn one_machine_never_installed_refuses_with_install_first() {
    for (action, extra) in ACTIONS {
        {
            let host = FakeHost::fresh("debian", true);
            let before = host.world.borrow().clone();
            let mut args = vec!["-a", action, "-d", "debian", "-H", "localhost"];
            args.extend(extra);
            let what = format!("{args:?}");
            let (code, out, err) = golden::run(&host, &args);
            assert_eq!(code, 2, "{what}: {out}\n{err}");
            assert!(
                err.contains(&format!(
                    "error: telem-deploy has not installed this machine (its state file \
                     /var/lib/telem-deploy/state.json records no installation): -a {action} \
                     needs what install sets up; run -a install first; nothing was changed"
                )),
                "{what}: {err}"
            );
            assert!(*host.world.borrow() == before, "{what}: the host changed");

            // The JSON document says the same.
            args.extend(["--format", "json"]);
            let (code, out, _) = golden::run(&host, &args);
            assert_eq!(code, 2, "{what}: {out}");
            let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(doc["format"], "telem-deploy/error", "{what}: {doc:#}");
            assert_eq!(doc["error"]["exit_code"], 2, "{what}: {doc:#}");
            let message = doc["error"]["message"].as_str().unwrap();
            assert!(message.contains("run -a install first"), "{message}");
        }
        // The dry run: every step blocked, nothing changed.
        let host = FakeHost::fresh("debian", true);
        let before = host.world.borrow().clone();
        let mut args = vec!["-a", action, "-d", "debian", "-H", "localhost", "--dry-run"];
        args.extend(extra);
        let (code, out, err) = golden::run(&host, &args);
        assert_eq!(code, 0, "{action} dry run: {out}\n{err}");
        assert!(
            out.contains("Blocked steps need an earlier action: run `-a install` first."),
            "{action} dry run: {out}"
        );
        args.extend(["--format", "json"]);
        let (code, out, err) = golden::run(&host, &args);
        assert_eq!(code, 0, "{action} dry run: {out}\n{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(all_blocked(&doc, action) > 0, "{action}: {doc:#}");
        assert!(
            *host.world.borrow() == before,
            "{action} dry run: the host changed"
        );
    }
}

/// Every step of a plan blocked for want of an installation: how many steps it has.
fn all_blocked(plan: &serde_json::Value, what: &str) -> usize {
    let steps = plan["steps"].as_array().expect("a plan's steps");
    for step in steps {
        assert_eq!(step["status"], "blocked", "{what}: {step:#}");
        assert!(
            step["changes"][0]
                .as_str()
                .is_some_and(|c| c.contains("run the install action first")),
            "{what}: {step:#}"
        );
    }
    steps.len()
}

#[test]
fn an_inventory_never_installed_refuses_once_before_any_host_changes() {
    for (action, extra) in ACTIONS {
        {
            let s = Setup::fresh_hosts(FLEET, &HOSTS);
            let before = worlds(&s);
            let args = extra.to_vec();
            let what = format!("{action} {args:?}");
            let (code, out, err) = s.run_raw(action, &args);
            assert_eq!(code, 2, "{what}: {out}\n{err}");
            let want = format!(
                "db1, sb, web1, web2, lb: telem-deploy has not installed these machines (their \
                 state file /var/lib/telem-deploy/state.json records no installation): -a \
                 {action} needs what install sets up; run -a install --inventory {} first; nothing was changed \
                 on any host",
                s.inventory()
            );
            assert!(err.contains(&want), "{what}: want {want:?} in\n{err}");
            // One error, not one low-level failure per host.
            assert_eq!(err.matches("error:").count(), 1, "{what}: {err}");
            assert!(worlds(&s) == before, "{what}: a host changed");
            assert!(!s.ca_dir().exists(), "{what}: a CA was made");
        }
        // The dry run plans every host, each step blocked; nothing changes.
        let s = Setup::fresh_hosts(FLEET, &HOSTS);
        let before = worlds(&s);
        let mut args = extra.to_vec();
        args.push("--dry-run");
        let (code, doc, err) = s.run(action, &args);
        assert_eq!(code, 0, "{action} dry run: {err}\n{doc:#}");
        let reports = doc["targets"].as_array().expect("targets");
        assert!(!reports.is_empty(), "{doc:#}");
        // A host the action has nothing for (the balancer on `migrate`) plans no step.
        let steps: usize = reports
            .iter()
            .map(|target| all_blocked(&target["report"], action))
            .sum();
        assert!(steps > 0, "{action}: {doc:#}");
        assert!(worlds(&s) == before, "{action} dry run: a host changed");
        assert!(!s.ca_dir().exists(), "{action} dry run: a CA was made");
    }
}

/// A collector added to the inventory and never installed: the whole run refuses, naming it;
/// the hosts that were installed do not change either.
#[test]
fn one_host_never_installed_stops_the_whole_inventory() {
    let s = Setup::fresh_hosts(FLEET, &HOSTS);
    s.install();
    s.fleet
        .replace("web2", Some(FakeHost::fresh("debian", true)));
    for (action, extra) in ACTIONS {
        let before = worlds(&s);
        let (code, doc, err) = s.run(action, extra);
        assert_eq!(code, 2, "{action}: {err}\n{doc:#}");
        assert_eq!(doc["format"], "telem-deploy/error", "{action}: {doc:#}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("web2: telem-deploy has not installed this machine")
                && message.ends_with("nothing was changed on any host"),
            "{action}: {message}"
        );
        assert!(worlds(&s) == before, "{action}: a host changed");
    }
    // Once web2 is installed too, they run.
    s.install();
    let (code, doc, err) = s.run("restart", &[]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert!(targets(&doc).iter().all(|(_, ok, _)| *ok), "{doc:#}");
}

/// After a plain `uninstall` only the packages telem-deploy installed stay (recorded, for a
/// later `-u`): nothing of the installation is left for these actions to act on, so they are
/// refused as where it never installed; after `install` again they run.
#[test]
fn one_machine_after_a_plain_uninstall_refuses_with_install_first() {
    for (action, extra) in ACTIONS {
        let host = FakeHost::fresh("debian", true);
        golden::install(&host, "debian");
        let uninstall = [
            "-a",
            "uninstall",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--yes",
            "--no-backup",
        ];
        let (code, out, err) = golden::run(&host, &uninstall);
        assert_eq!(code, 0, "uninstall: {out}\n{err}");
        let before = host.world.borrow().clone();
        let mut args = vec!["-a", action, "-d", "debian", "-H", "localhost"];
        args.extend(extra);
        let (code, out, err) = golden::run(&host, &args);
        assert_eq!(code, 2, "{action} after uninstall: {out}\n{err}");
        assert!(err.contains("run -a install first"), "{action}: {err}");
        assert!(*host.world.borrow() == before, "{action}: the host changed");

        golden::install(&host, "debian");
        let (code, out, err) = golden::run(&host, &args);
        assert_eq!(code, 0, "{action} after install again: {out}\n{err}");
    }
}

/// A machine the operator uses: their own PostgreSQL and nginx installed and running, no
/// telem-deploy record. `restart` must not restart (or start, or stop) anything of theirs.
#[test]
fn an_operators_machine_never_installed_is_left_as_it_is() {
    for (action, extra) in ACTIONS {
        let host = FakeHost::fresh("debian", true);
        {
            let mut w = host.world.borrow_mut();
            for p in ["postgresql", "postgresql-common", "nginx"] {
                w.packages.insert(p.to_owned());
            }
            for s in ["postgresql", "nginx"] {
                w.running.insert(s.to_owned());
            }
        }
        let before = host.world.borrow().clone();
        let mut args = vec!["-a", action, "-d", "debian", "-H", "localhost"];
        args.extend(extra);
        let (code, out, err) = golden::run(&host, &args);
        assert_eq!(code, 2, "{action}: {out}\n{err}");
        assert!(err.contains("run -a install first"), "{action}: {err}");
        assert!(
            *host.world.borrow() == before,
            "{action}: the machine changed"
        );
        let log = host.log.borrow().join("\n");
        for verb in ["restart", "reload", "start", "stop"] {
            assert!(
                !log.lines()
                    .any(|l| l.contains("systemctl") && l.contains(verb)),
                "{action}: a service was touched:\n{log}"
            );
        }
    }
}
