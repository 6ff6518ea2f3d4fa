//! An inventory (`--inventory FILE`) on fake hosts: the roles decide what each machine gets,
//! the waves their order (a failed primary stops the collectors), one database password for
//! all, the inventory's CA (created by the first apply, never by a dry run), a second run
//! changes nothing; usage errors name the file, line and column. The same over real SSH into
//! fresh Debian roots: e2e_inventory/.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fake_fleet::{stored_password, Fleet};
use crate::fake_host::FakeHost;
use crate::golden::{self, PASSWORD};

const CONFIG: &str = "/etc/telemetry/collector.toml";

/// db1 (db), web1 and web2 (collector), lb (balancer); its CA beside it.
pub(crate) const FLEET: &str = "\
domain: telemetry.example.com
hosts:
  - name: db1
    target: root@10.0.0.11
    roles: [db]
  - name: web1
    target: root@10.0.0.21
    roles: [collector]
  - name: web2
    target: root@10.0.0.22
    roles: [collector]
  - name: lb
    target: root@10.0.0.30
    roles: [balancer]
";

/// An inventory file in a temporary directory (its CA beside it) and its fake machines.
pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) fleet: Fleet,
}

impl Setup {
    /// `-a install` of the whole inventory, unattended; every host must succeed.
    pub(crate) fn install(&self) {
        let pw = crate::golden::password_file();
        let (code, doc, err) = self.run(
            "install",
            &["--yes", "--db-password-file", pw.path().to_str().unwrap()],
        );
        assert_eq!(code, 0, "{err}\n{doc:#}");
        for (name, ok, _) in targets(&doc) {
            assert!(ok, "{name}: {doc:#}");
        }
    }

    pub(crate) fn new(text: &str, hosts: Vec<(&str, Option<FakeHost>)>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inventory.yaml"), text).unwrap();
        Setup {
            dir,
            fleet: Fleet::new(hosts),
        }
    }

    /// `text` with a fresh Debian machine for each of `names`.
    pub(crate) fn fresh_hosts(text: &str, names: &[&str]) -> Setup {
        Setup::new(
            text,
            names
                .iter()
                .map(|n| (*n, Some(FakeHost::fresh("debian", true))))
                .collect(),
        )
    }

    pub(crate) fn fresh() -> Setup {
        Setup::fresh_hosts(FLEET, &["db1", "web1", "web2", "lb"])
    }

    pub(crate) fn inventory(&self) -> String {
        self.dir.path().join("inventory.yaml").display().to_string()
    }

    pub(crate) fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The replication password the first apply kept beside the CA.
    pub(crate) fn replication_password(&self) -> String {
        let text = std::fs::read_to_string(self.ca_dir().join("replication.password"))
            .expect("replication.password");
        text.trim_end().to_owned()
    }

    /// `-a ACTION --inventory FILE` and `extra`: (code, stdout, stderr); neither holds the
    /// database password (nor the replication password, once there is one).
    pub(crate) fn run_raw(&self, action: &str, extra: &[&str]) -> (u8, String, String) {
        let inventory = self.inventory();
        let mut args = vec!["-a", action, "--inventory", &inventory];
        args.extend(extra);
        let (code, out, err) = self.fleet.run_inventory(&args);
        assert!(
            !out.contains(PASSWORD) && !err.contains(PASSWORD),
            "the password leaked:\n{out}\n{err}"
        );
        if self.ca_dir().join("replication.password").exists() {
            let pw = self.replication_password();
            assert!(
                !out.contains(&pw) && !err.contains(&pw),
                "the replication password leaked:\n{out}\n{err}"
            );
        }
        (code, out, err)
    }

    /// The same in JSON: (code, document, stderr).
    pub(crate) fn run(&self, action: &str, extra: &[&str]) -> (u8, serde_json::Value, String) {
        let mut args = vec!["--format", "json"];
        args.extend(extra);
        let (code, out, err) = self.run_raw(action, &args);
        let doc = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
        (code, doc, err)
    }

    pub(crate) fn file(&self, host: &str, path: &str) -> Option<(String, u32)> {
        self.fleet.with(host, |h| {
            h.world
                .borrow()
                .files
                .get(Path::new(path))
                .map(|n| (String::from_utf8_lossy(&n.content).into_owned(), n.mode))
        })
    }

    fn packages(&self, host: &str) -> Vec<String> {
        self.fleet.with(host, |h| {
            h.world.borrow().packages.iter().cloned().collect()
        })
    }
}

/// Each target's (name, ok, changes) in the document.
pub(crate) fn targets(doc: &serde_json::Value) -> Vec<(String, bool, i64)> {
    doc["targets"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap_or_default().to_owned(),
                t["ok"].as_bool().unwrap_or(false),
                t["report"]["summary"]["change"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn an_inventory_installs_each_role_in_its_wave_with_one_password_then_converges() {
    let s = Setup::fresh();
    let pw = golden::password_file();
    let pw = pw.path().to_str().unwrap();
    let (code, doc, err) = s.run("install", &["--yes", "--db-password-file", pw]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    let names: Vec<String> = targets(&doc).into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["db1", "web1", "web2", "lb"]);

    // The CA: created on the controller by the apply, its key for root alone.
    let ca_pem = std::fs::read_to_string(s.ca_dir().join("ca.pem")).expect("the CA was created");
    let key_mode = std::fs::metadata(s.ca_dir().join("ca.key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o077, 0, "CA key mode {key_mode:o}");

    // The primary: PostgreSQL only, listening on its address, admitting the collectors.
    let db = s.packages("db1");
    assert!(
        db.contains(&"postgresql".to_owned()) && !db.contains(&"nginx".to_owned()),
        "{db:?}"
    );
    assert!(
        s.file("db1", CONFIG).is_none(),
        "no collector on the primary"
    );
    let (_, key_mode) = s.file("db1", "/etc/telem-db-tls/server.key").expect("key");
    assert_eq!(key_mode, 0o600);
    let (cert, _) = s
        .file("db1", "/etc/telem-db-tls/server.crt")
        .expect("certificate");
    assert!(cert.contains("BEGIN CERTIFICATE"));
    let auto = s
        .fleet
        .with("db1", |h| h.world.borrow().pg_auto_conf.clone());
    assert_eq!(
        auto.get("listen_addresses").map(String::as_str),
        Some("localhost,10.0.0.11")
    );
    assert_eq!(auto.get("ssl").map(String::as_str), Some("on"));
    let hba = s.fleet.with("db1", |h| {
        h.world
            .borrow()
            .files
            .iter()
            .find(|(p, _)| p.ends_with("pg_hba.conf"))
            .map(|(_, n)| String::from_utf8_lossy(&n.content).into_owned())
            .unwrap_or_default()
    });
    for client in ["10.0.0.21/32", "10.0.0.22/32"] {
        assert!(
            hba.lines().any(|l| l.starts_with("hostssl")
                && l.contains(client)
                && l.contains("scram-sha-256")),
            "{client} not admitted:\n{hba}"
        );
    }
    assert!(
        !hba.contains("10.0.0.30"),
        "the balancer is no database client:\n{hba}"
    );

    // The collectors: nginx and the collector, the database over TLS against the CA.
    for web in ["web1", "web2"] {
        let p = s.packages(web);
        assert!(
            p.contains(&"nginx".to_owned()) && !p.contains(&"postgresql".to_owned()),
            "{web}: {p:?}"
        );
        let (config, mode) = s.file(web, CONFIG).expect("collector config");
        assert_eq!(mode, 0o640);
        assert!(
            config.contains("database_url = \"postgres://telemetry@10.0.0.11:5432/telemetry\""),
            "{config}"
        );
        assert!(
            config.contains("database_ca_file = \"/etc/telemetry/db-ca.pem\""),
            "{config}"
        );
        let (ca_there, _) = s
            .file(web, "/etc/telemetry/db-ca.pem")
            .expect("CA on the collector");
        assert_eq!(
            ca_there.trim(),
            ca_pem.trim(),
            "{web} has the inventory's CA"
        );
        let stored = s.fleet.with(web, stored_password);
        assert_eq!(
            stored.as_deref(),
            Some(PASSWORD),
            "{web}: one password for all"
        );
    }

    // The balancer: nginx in front of both collectors, no database, no collector.
    let lb = s.packages("lb");
    assert!(
        lb.contains(&"nginx".to_owned()) && !lb.contains(&"postgresql".to_owned()),
        "{lb:?}"
    );
    let (site, _) = s
        .file("lb", "/etc/nginx/sites-available/telemetry.conf")
        .expect("site");
    for upstream in ["server 10.0.0.21:80", "server 10.0.0.22:80"] {
        assert!(site.contains(upstream), "{site}");
    }
    let retry: Vec<&str> = site
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("proxy_next_upstream "))
        .collect();
    assert_eq!(
        retry,
        ["proxy_next_upstream error timeout;"],
        "a sent POST is never resent:\n{site}"
    );
    assert!(s.file("lb", CONFIG).is_none());

    // A second run, without the password: each host converges, nothing changes.
    let (code, doc, err) = s.run("install", &["--yes"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    for (name, ok, changes) in targets(&doc) {
        assert!(ok, "{name}: {doc:#}");
        assert_eq!(changes, 0, "{name} changed again: {doc:#}");
    }
}

#[test]
fn a_dry_run_of_an_inventory_changes_nothing_and_creates_no_ca() {
    let s = Setup::fresh();
    let before: Vec<_> = ["db1", "web1", "web2", "lb"]
        .iter()
        .map(|n| s.fleet.with(n, |h| h.world.borrow().clone()))
        .collect();
    let (code, doc, err) = s.run("install", &["--dry-run"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert_eq!(doc["format"], "telem-deploy/targets");
    assert_eq!(doc["dry_run"], true);
    for (name, ok, changes) in targets(&doc) {
        assert!(ok && changes > 0, "{name}: {doc:#}");
    }
    assert!(!s.ca_dir().exists(), "a dry run created the CA");
    let plan = doc.to_string();
    assert!(plan.contains("(created when applied)"), "{plan}");
    for (n, was) in ["db1", "web1", "web2", "lb"].iter().zip(before) {
        let now = s.fleet.with(n, |h| h.world.borrow().clone());
        assert!(now == was, "the dry run changed {n}");
    }
}

#[test]
fn a_primary_that_fails_stops_the_collectors_before_they_change() {
    let s = Setup::new(
        FLEET,
        vec![
            ("db1", None),
            ("web1", Some(FakeHost::fresh("debian", true))),
            ("web2", Some(FakeHost::fresh("debian", true))),
            ("lb", Some(FakeHost::fresh("debian", true))),
        ],
    );
    let before = s.fleet.with("web1", |h| h.world.borrow().clone());
    let pw = golden::password_file();
    let (code, doc, err) = s.run(
        "install",
        &["--yes", "--db-password-file", pw.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}\n{doc:#}");
    let t = &doc["targets"];
    assert!(
        t[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("known_hosts"),
        "{doc:#}"
    );
    for i in 1..4 {
        let message = t[i]["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("not run: db1 could not be planned; nothing was changed on any host"),
            "{doc:#}"
        );
    }
    let after = s.fleet.with("web1", |h| h.world.borrow().clone());
    assert!(
        after == before,
        "a collector changed although its primary failed"
    );
}

#[test]
fn inventory_usage_errors_exit_2_before_any_connection() {
    let s = Setup::fresh();
    let inv = s.inventory();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "-a",
                "install",
                "--inventory",
                &inv,
                "--limit",
                "web9",
                "--dry-run",
            ],
            "--limit web9: no such host",
        ),
        (
            vec![
                "-a",
                "install",
                "--inventory",
                &inv,
                "-H",
                "other.example",
                "--dry-run",
            ],
            "differs from the inventory's domain",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = s.fleet.run_inventory(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    }
    // A bad inventory: file, line, column.
    let bad = Setup::new(
        &FLEET.replace("roles: [balancer]", "roles: [balancer, collector]"),
        vec![],
    );
    let inv = bad.inventory();
    let (code, _, err) =
        bad.fleet
            .run_inventory(&["-a", "install", "--inventory", &inv, "--dry-run"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{inv}:14:5: hosts[3].roles: balancer and collector"
        )),
        "{err}"
    );
    // The roles split only on the Debian family's recipes.
    let clr = Setup::new(
        FLEET,
        ["db1", "web1", "web2", "lb"]
            .into_iter()
            .map(|n| (n, Some(FakeHost::fresh("clr", true))))
            .collect(),
    );
    let (code, doc, err) = clr.run("install", &["--dry-run"]);
    assert_eq!(code, 2, "{err}\n{doc:#}");
    assert!(
        doc.to_string()
            .contains("only the debian and ubuntu recipes split a backend"),
        "{doc:#}"
    );
}

/// What varies from run to run in a plan: the temporary directory, a new CA's fingerprints
/// and validity, wall times.
fn stable(doc: &serde_json::Value, dir: &Path) -> String {
    let text = crate::fake_fleet::normalized(&doc.to_string());
    let text = text.replace(&dir.display().to_string(), "<dir>");
    // "SHA-256 AB:CD:..." (32 pairs), "expires 2029-03-07 16:20:00 UTC"
    let fingerprint = |w: &str| {
        w.len() >= 95
            && w.as_bytes()[..95]
                .iter()
                .all(|c| c.is_ascii_hexdigit() || *c == b':')
    };
    let date = |w: &str| {
        w.len() >= 23
            && w.as_bytes()[..23].iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 | 19 => *c == b' ',
                13 | 16 => *c == b':',
                20..=22 => b"UTC"[i - 20] == *c,
                _ => c.is_ascii_digit(),
            })
    };
    // A new CA's certificate (in the collectors' diffs) and its size.
    let mut text = text;
    let (begin, end) = ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----");
    while let (Some(b), Some(e)) = (text.find(begin), text.find(end)) {
        text.replace_range(b..e + end.len(), "<certificate>");
    }
    let size = "create /etc/telemetry/db-ca.pem (";
    let mut from = 0;
    while let Some(at) = text[from..].find(size).map(|i| i + from) {
        let start = at + size.len();
        let digits = text[start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(0);
        text.replace_range(start..start + digits, "<n>");
        from = start;
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("SHA-256 ").filter(|a| fingerprint(a)) {
            out.push_str("SHA-256 <fingerprint>");
            rest = &after[95..];
        } else if date(rest) {
            out.push_str("<date>");
            rest = &rest[23..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[test]
fn the_inventory_document_holds_every_hosts_plan() {
    let s = Setup::fresh();
    let (code, doc, err) = s.run("install", &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    crate::fake_fleet::golden_compare(
        "inventory/install-dry-run.json",
        &stable(&doc, s.dir.path()),
    );
}
