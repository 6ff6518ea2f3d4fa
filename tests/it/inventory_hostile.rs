//! An inventory attacked the way a careless operator or a hostile file would: on fake hosts,
//! through the real entry point (`run_inventory`). Each test names the README promise it
//! holds the tool to ("Many machines: an inventory").

use std::path::Path;

use crate::fake_basebackup::DATA_DIR;
use crate::fake_host::{FakeHost, World};
use crate::golden::{self, PASSWORD};
use crate::inventory::{targets, Setup};

/// db1 (db), sb (standby), web1 and web2 (collector), lb (balancer): inventory_standby.rs's.
use crate::inventory_standby::{FLEET as STANDBY_FLEET, HOSTS as STANDBY_HOSTS};

fn world(s: &Setup, host: &str) -> World {
    s.fleet.with(host, |h| h.world.borrow().clone())
}

fn worlds(s: &Setup, hosts: &[&str]) -> Vec<World> {
    hosts.iter().map(|h| world(s, h)).collect()
}

/// Every target's error message, by name.
fn errors(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["targets"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap_or_default().to_owned(),
                t["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// "Promote: fences the old primary, promotes the standby, points the collectors at it": a
/// standby that cannot even be reached must not leave the backend without any primary. Its
/// planning fails before anything changes; the old primary, planned fine, must stay as it is.
#[test]
fn promote_never_fences_the_primary_when_the_standby_cannot_be_planned() {
    let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
    s.install();
    let sb = s.fleet.replace("sb", None).expect("sb");
    let others = ["db1", "web1", "web2", "lb"];
    let before = worlds(&s, &others);
    let (code, doc, err) = s.run("promote", &["--yes"]);
    assert_eq!(code, 1, "{err}\n{doc:#}");
    assert!(
        worlds(&s, &others) == before,
        "a host changed although the standby it depends on could not be planned: {doc:#}"
    );
    s.fleet.with("db1", |h| {
        let w = h.world.borrow();
        assert!(w.running.contains("postgresql"), "db1 was stopped");
        assert!(
            !w.files
                .contains_key(&Path::new(DATA_DIR).join("telem-deploy-fenced")),
            "db1 was fenced with no standby to take over"
        );
    });
    for (name, message) in errors(&doc) {
        if name == "sb" {
            assert!(message.contains("known_hosts"), "{name}: {message}");
        } else {
            assert!(
                message.starts_with("not run:") && message.contains("sb"),
                "{name} does not say it did not run because of sb: {message}"
            );
        }
    }
    drop(sb);
}

/// The same mechanism for every action: "Every host is planned (reads only) before the first
/// one changes". A collector that cannot be planned (here: unreachable) leaves every host as it
/// was, the primary included, and the document says who failed and who did not run.
#[test]
fn a_host_that_cannot_be_planned_changes_nothing_anywhere() {
    let s = Setup::new(
        crate::inventory::FLEET,
        vec![
            ("db1", Some(FakeHost::fresh("debian", true))),
            ("web1", Some(FakeHost::fresh("debian", true))),
            ("web2", None),
            ("lb", Some(FakeHost::fresh("debian", true))),
        ],
    );
    let reachable = ["db1", "web1", "lb"];
    let before = worlds(&s, &reachable);
    let pw = golden::password_file();
    let (code, doc, err) = s.run(
        "install",
        &["--yes", "--db-password-file", pw.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}\n{doc:#}");
    assert!(
        worlds(&s, &reachable) == before,
        "a host changed although web2 could not be planned: {doc:#}"
    );
    let messages = errors(&doc);
    assert_eq!(messages.len(), 4, "{doc:#}");
    for (name, message) in messages {
        match name.as_str() {
            "web2" => assert!(message.contains("known_hosts"), "{message}"),
            _ => assert!(
                message.starts_with("not run:") && message.contains("web2"),
                "{name}: {message}"
            ),
        }
    }
    assert_eq!(doc["total"]["failed"], 1, "{doc:#}");
    assert_eq!(doc["total"]["not_run"], 3, "{doc:#}");
    // In words too.
    let (code, out, _) = s.run_raw("install", &["--dry-run"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("4 targets: 0 planned, 1 failed (web2), 3 not run (db1, web1, lb)"),
        "{out}"
    );
}

/// "When the old primary is unreachable, leave it out with `--limit` (the other hosts)": a
/// `--limit` that leaves out the standby would fence the primary with nothing promoted, or
/// point the collectors at a standby still in recovery. Refused before any change.
#[test]
fn promote_refuses_a_limit_that_leaves_out_the_standby() {
    let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
    s.install();
    let before = worlds(&s, &STANDBY_HOSTS);
    for limit in [
        vec!["--limit", "db1"],
        vec!["--limit", "web1"],
        vec!["--limit", "db1", "--limit", "web1", "--limit", "web2"],
    ] {
        let mut args = vec!["--yes"];
        args.extend(&limit);
        let (code, out, err) = s.run_raw("promote", &args);
        assert_eq!(code, 2, "{limit:?}: {out}\n{err}");
        assert!(
            err.contains("--limit") && err.contains("sb"),
            "{limit:?}: {err}"
        );
        assert!(
            !out.contains("The inventory as it now is") && !err.contains("as it now is"),
            "{limit:?}: printed an inventory for a promotion that did not happen"
        );
        assert!(
            worlds(&s, &STANDBY_HOSTS) == before,
            "{limit:?}: a host changed"
        );
    }
}

/// IPv6 targets in brackets (README, `--target`): an inventory of IPv6 machines wires the
/// collectors to the database with URLs the collector can parse (`[addr]:port`), the balancer
/// with upstreams nginx can parse, pg_hba with /128.
#[test]
fn an_ipv6_inventory_brackets_its_addresses_in_urls_and_upstreams() {
    const CONFIG: &str = "/etc/telemetry/collector.toml";
    const SITE: &str = "/etc/nginx/sites-available/telemetry.conf";
    let text = "\
domain: telemetry.example.com
hosts:
  - { name: db1, target: 'root@[2001:db8::11]', roles: [db] }
  - { name: sb, target: 'root@[2001:db8::12]:2222', roles: [standby] }
  - { name: web1, target: 'root@[2001:db8::21]', roles: [collector] }
  - { name: web2, target: root@web2.example, address: '2001:db8::22', roles: [collector] }
  - { name: lb, target: 'root@[2001:db8::30]', roles: [balancer] }
";
    let s = Setup::fresh_hosts(text, &STANDBY_HOSTS);
    s.install();
    for web in ["web1", "web2"] {
        let (config, _) = s.file(web, CONFIG).expect("collector config");
        assert!(
            config
                .contains("database_url = \"postgres://telemetry@[2001:db8::11]:5432/telemetry\""),
            "{web}:\n{config}"
        );
        assert!(
            config.contains(
                "read_database_url = \"postgres://telemetry@[2001:db8::12]:5432/telemetry\""
            ),
            "{web}:\n{config}"
        );
    }
    let (site, _) = s.file("lb", SITE).expect("balancer site");
    for server in ["server [2001:db8::21]:80 ", "server [2001:db8::22]:80 "] {
        assert!(site.contains(server), "{server:?} not in:\n{site}");
    }
    let hba = s
        .file("db1", crate::fake_psql::HBA_FILE)
        .expect("pg_hba.conf")
        .0;
    assert!(hba.contains("2001:db8::21/128"), "{hba}");
    // A rolling restart marks exactly the collector it changes `down`.
    let (code, doc, err) = s.run("restart", &[]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    let writes: Vec<String> = s
        .fleet
        .events()
        .into_iter()
        .filter(|e| e.host == "lb" && e.what == format!("write {SITE}"))
        .filter_map(|e| e.content)
        .collect();
    let down = |site: &str| -> Vec<String> {
        site.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("server ") && l.ends_with(" down;"))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
            .collect()
    };
    let drained: Vec<Vec<String>> = writes.iter().map(|w| down(w)).collect();
    assert_eq!(
        drained,
        [
            vec!["[2001:db8::21]:80".to_owned()],
            vec![],
            vec!["[2001:db8::22]:80".to_owned()],
            vec![]
        ],
        "{doc:#}"
    );
}

/// "prints the inventory as it now is (keep it: the next runs need it)": what promote prints
/// must read back as the same inventory, whatever its targets look like (an IPv6 target
/// without a user starts with `[`, a YAML flow sequence unless quoted) and wherever the file
/// was named from (a relative `--inventory` path: the printed `ca_dir` must still name the
/// same CA when read from the inventory's own directory).
#[test]
fn the_inventory_promote_prints_reads_back_with_the_same_hosts_and_ca() {
    let text = "\
domain: telemetry.example.com
hosts:
  - { name: db1, target: '[2001:db8::11]', roles: [db] }
  - { name: sb, target: '[2001:db8::12]:2222', roles: [standby] }
  - { name: 'null', target: root@10.0.0.21, roles: [collector] }
";
    // The inventory named by a path relative to the working directory, not its own.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fleet_dir = dir.path().join("fleet");
    std::fs::create_dir(&fleet_dir).unwrap();
    std::fs::write(fleet_dir.join("inventory.yaml"), text).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let relative = fleet_dir
        .join("inventory.yaml")
        .strip_prefix(&cwd)
        .expect("the target directory is under the working directory")
        .display()
        .to_string();
    let s = Setup {
        dir,
        fleet: crate::fake_fleet::Fleet::new(
            ["db1", "sb", "null"]
                .iter()
                .map(|n| (*n, Some(FakeHost::fresh("debian", true))))
                .collect(),
        ),
    };
    let run = |args: &[&str]| {
        let mut all = vec!["--inventory", relative.as_str()];
        all.extend(args);
        s.fleet.run_inventory(&all)
    };
    let pw = golden::password_file();
    let (code, out, err) = run(&[
        "-a",
        "install",
        "--yes",
        "--db-password-file",
        pw.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        fleet_dir.join("ca/ca.pem").exists(),
        "the CA beside the inventory"
    );
    let (code, out, err) = run(&["-a", "promote", "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let marker = "(write it over ";
    let at = out.find(marker).expect("the inventory is printed");
    let printed = &out[out[at..].find(":\n").unwrap() + at + 2..];
    std::fs::write(fleet_dir.join("inventory.yaml"), printed).unwrap();
    // Read back: the collector converged, the same CA; db1 fenced (commented out).
    let (code, out, err) = run(&["-a", "install", "--dry-run", "--format", "json"]);
    assert_eq!(code, 0, "{printed}\n{err}\n{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<String> = targets(&doc).into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["sb", "null"], "{printed}");
    assert_eq!(
        targets(&doc)[1].2,
        0,
        "the collector is not converged: {doc:#}"
    );
    assert!(
        !out.contains("created when applied"),
        "the printed inventory names another CA:\n{printed}"
    );
    let listing: Vec<String> = std::fs::read_dir(&fleet_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!listing.contains(&"fleet".to_owned()), "{listing:?}");
}

/// "Errors name the file, line and column": those about the whole host list too.
#[test]
fn errors_about_the_whole_host_list_name_its_line() {
    for (text, line, want) in [
        ("domain: t.example\nhosts: []\n", 2, "no host has the role db"),
        (
            "domain: t.example\n\nhosts:\n  - { name: a, target: root@10.0.0.1, roles: [db] }\n",
            3,
            "no host has the role collector",
        ),
        (
            "hosts:\n  - { name: a, target: root@10.0.0.1, roles: [db, collector] }\n  - { name: b, target: root@10.0.0.2, roles: [db] }\n",
            1,
            "2 hosts have the role db",
        ),
    ] {
        let s = Setup::new(text, vec![]);
        let inv = s.inventory();
        let (code, out, err) =
            s.fleet
                .run_inventory(&["-a", "install", "--inventory", &inv, "--dry-run"]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            err.contains(&format!("{inv}:{line}:1: hosts: {want}")),
            "want {inv}:{line}:1: hosts: {want} in:\n{err}"
        );
    }
}

/// An address no other machine can reach the host at (the wildcard, loopback, multicast) is
/// refused at its line: the primary would listen on every interface (`0.0.0.0`), or the
/// collectors would dial themselves (`127.0.0.1`).
#[test]
fn addresses_other_machines_cannot_reach_are_refused_at_their_line() {
    for (address, want) in [
        ("0.0.0.0", "not the address of one machine"),
        ("::", "not the address of one machine"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "not the address of one machine"),
    ] {
        let text = format!(
            "domain: t.example\nhosts:\n  - name: db1\n    target: root@db1.example\n    address: '{address}'\n    roles: [db]\n  - {{ name: web1, target: root@10.0.0.21, roles: [collector] }}\n"
        );
        let s = Setup::new(&text, vec![]);
        let inv = s.inventory();
        let (code, out, err) =
            s.fleet
                .run_inventory(&["-a", "install", "--inventory", &inv, "--dry-run"]);
        assert_eq!(code, 2, "{address}: {out}{err}");
        assert!(
            err.contains(&format!("{inv}:5:5: hosts[0].address:")) && err.contains(want),
            "{address}: {err}"
        );
    }
}

/// "a ca_dir ... Keep it": a `ca_dir` that is a symbolic link to a directory (a CA kept on
/// another volume) is that directory; one that dangles is an error naming it, exit 2, with
/// nothing created anywhere.
#[test]
fn a_ca_dir_that_is_a_symlink_is_followed_and_a_dangling_one_refused() {
    let s = Setup::fresh();
    let real = s.dir.path().join("vault");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, s.ca_dir()).unwrap();
    s.install();
    assert!(real.join("ca.pem").exists() && real.join("ca.key.pem").exists());
    assert!(
        std::fs::symlink_metadata(s.ca_dir())
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced"
    );

    let s = Setup::fresh();
    std::os::unix::fs::symlink(s.dir.path().join("gone"), s.ca_dir()).unwrap();
    let before = worlds(&s, &["db1", "web1", "web2", "lb"]);
    let pw = golden::password_file();
    let (code, out, err) = s.run_raw(
        "install",
        &["--yes", "--db-password-file", pw.path().to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains(&s.ca_dir().display().to_string()) && err.contains("gone"),
        "{err}"
    );
    assert!(!s.dir.path().join("gone").exists());
    assert!(worlds(&s, &["db1", "web1", "web2", "lb"]) == before);
}

/// "never puts the database password in an argv, a log or a plan" and "[the replication
/// password] reaches the machines only on stdin": every command (argv and environment) every
/// machine ran, through every action of an inventory with a standby, `-v` included; the
/// controller's secrets keep their value and their mode across the runs.
#[test]
fn no_action_of_an_inventory_puts_a_password_in_a_command_and_the_secrets_keep() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
    s.install();
    let key = s.ca_dir().join("ca.key.pem");
    let repl = s.ca_dir().join("replication.password");
    let kept = |p: &Path| {
        (
            std::fs::read(p).unwrap(),
            std::fs::metadata(p).unwrap().permissions().mode() & 0o7777,
        )
    };
    let (key_before, repl_before) = (kept(&key), kept(&repl));
    assert_eq!(key_before.1, 0o600);
    assert_eq!(repl_before.1, 0o600);
    let replication = s.replication_password();
    for (action, extra) in [
        ("install", vec!["-v"]),
        ("deploy", vec!["-v"]),
        ("restart", vec![]),
        ("migrate", vec![]),
        ("resetdb", vec!["--yes", "--no-backup"]),
        ("install", vec!["--dry-run", "-v"]),
        ("promote", vec!["--yes", "-v"]),
    ] {
        let (code, out, err) = s.run_raw(action, &extra);
        assert_eq!(code, 0, "{action}: {out}\n{err}");
        assert_eq!(kept(&key), key_before, "{action}: the CA key changed");
        assert_eq!(
            kept(&repl),
            repl_before,
            "{action}: the replication password changed"
        );
    }
    for host in STANDBY_HOSTS {
        s.fleet.with(host, |h| {
            for line in h.log.borrow().iter() {
                assert!(
                    !line.contains(PASSWORD) && !line.contains(&replication),
                    "{host} ran a command with a password: {line}"
                );
            }
        });
    }
}

/// The files of `dir` (`None`: no such directory).
fn listing(dir: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

/// "The CA ... created by the first `install` that applies": by no other action. On an inventory
/// never installed (its `ca_dir` missing, or made empty by the operator), `deploy` and
/// `promote`, which use the CA, refuse before any host changes (exit 2, saying to run install
/// first), their dry runs too; `restart`, `migrate`, `resetdb` and `uninstall` do not use it
/// and leave `ca_dir` as it was (uninstall succeeds, changing nothing).
#[test]
fn only_install_creates_the_ca_and_the_replication_password() {
    for premade in [false, true] {
        for (action, extra) in [
            ("deploy", vec![]),
            ("deploy", vec!["--dry-run"]),
            ("promote", vec!["--yes"]),
            ("promote", vec!["--dry-run"]),
            ("restart", vec![]),
            ("migrate", vec![]),
            ("resetdb", vec!["--yes", "--no-backup"]),
            ("uninstall", vec!["--yes", "--no-backup"]),
            ("uninstall", vec!["--dry-run", "--no-backup"]),
        ] {
            let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
            if premade {
                std::fs::create_dir(s.ca_dir()).unwrap();
            }
            let before = listing(&s.ca_dir());
            let hosts = worlds(&s, &STANDBY_HOSTS);
            let what = format!("{action} {extra:?} (ca_dir made: {premade})");
            let (code, out, err) = s.run_raw(action, &extra);
            assert_eq!(listing(&s.ca_dir()), before, "{what}: ca_dir changed");
            match action {
                "deploy" | "promote" => {
                    assert_eq!(code, 2, "{what}: {out}\n{err}");
                    let ca_dir = s.ca_dir().display().to_string();
                    assert!(
                        err.contains(&format!("{ca_dir}: the inventory's CA is not there"))
                            && err
                                .contains(&format!("run -a install --inventory {}", s.inventory())),
                        "{what}: {err}"
                    );
                    assert!(
                        worlds(&s, &STANDBY_HOSTS) == hosts,
                        "{what}: a host changed"
                    );
                }
                "uninstall" => {
                    assert_eq!(code, 0, "{what}: {out}\n{err}");
                    assert!(
                        worlds(&s, &STANDBY_HOSTS) == hosts,
                        "{what}: a host changed"
                    );
                }
                _ => {}
            }
        }
    }
}

/// The same for the replication password: `deploy` sets it as install does and refuses when
/// it is gone (exit 2, before any host changes) instead of making another one that the
/// standby does not have.
#[test]
fn deploy_refuses_when_the_replication_password_is_gone() {
    let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
    s.install();
    let path = s.ca_dir().join("replication.password");
    std::fs::remove_file(&path).unwrap();
    let before = worlds(&s, &STANDBY_HOSTS);
    for extra in [vec![], vec!["--dry-run"]] {
        let (code, out, err) = s.run_raw("deploy", &extra);
        assert_eq!(code, 2, "{extra:?}: {out}\n{err}");
        assert!(
            err.contains(&format!(
                "{}: the replication password is not there",
                path.display()
            )) && err.contains("run -a install --inventory"),
            "{extra:?}: {err}"
        );
        assert!(!path.exists(), "{extra:?}: a new replication password");
        assert!(
            worlds(&s, &STANDBY_HOSTS) == before,
            "{extra:?}: a host changed"
        );
    }
    // Actions that do not use it run without it.
    let (code, out, err) = s.run_raw("restart", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!path.exists(), "restart made a replication password");
}
