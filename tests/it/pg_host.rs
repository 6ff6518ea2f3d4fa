//! The database host's step kinds (`issued_tls`, `postgres_settings`, `postgres_hba`) in a
//! recipe, on the fake Debian host: a copy of the built-in recipes with the three steps added
//! to `install` (as the lead wires them), run with a certificate authority of the test's own
//! (what an inventory names). Install converges (a second plan is all ok), the key is the
//! postgres user's 0600, pg_hba.conf keeps its lines below the block, the settings reach the
//! server with its restart, and nothing of a key reaches the plan or the output. Without a CA
//! the certificate step is blocked; bad values are refused with their path when compiled.

use std::path::Path;
use std::sync::Arc;

use telem_deploy::app::{run_cli_with, Io};
use telem_deploy::ca::Ca;
use telem_deploy::cli::Cli;

use crate::cli::recipes_copy;
use crate::fake_host::FakeHost;
use crate::fake_psql::HBA_FILE;
use crate::golden::password_file;

const CERT: &str = "/etc/postgresql/telem/server.crt";
const KEY: &str = "/etc/postgresql/telem/server.key";
const HBA: &str = "# the operator's own lines\r\nlocal   all   postgres   peer\nhost all all 127.0.0.1/32 scram-sha-256\n";

/// The three steps, after "Run PostgreSQL" in `install` (shared.yaml).
const SNIPPET: &str = r#"
    - name: Issue the database server's certificate
      issued_tls: { certificate: /etc/postgresql/telem/server.crt, key: /etc/postgresql/telem/server.key, names: ["10.77.0.11", "db.example"], owner: "{{ postgres.os_user }}", group: postgres, notify: [postgresql] }
    - name: Listen on the private address, with TLS
      postgres_settings:
        settings: { listen_addresses: "localhost,10.77.0.11", ssl: "on", ssl_cert_file: /etc/postgresql/telem/server.crt, ssl_key_file: /etc/postgresql/telem/server.key }
        notify: [postgresql]
    - name: Let the collectors in over TLS
      postgres_hba:
        entries:
          - { type: hostssl, database: "{{ database.name }}", user: "{{ database.role }}", address: 10.77.0.12, method: scram-sha-256 }
          - { type: host, database: all, user: all, address: 10.77.0.0/24, method: reject }
        notify: [postgresql]
"#;

const AFTER: &str = "      service: { name: postgresql, state: running, enabled: true }\n";

/// A copy of the recipes with `snippet` after "Run PostgreSQL" in install.
fn recipes(snippet: &str) -> tempfile::TempDir {
    let dir = recipes_copy();
    let shared = dir.path().join("shared.yaml");
    let src = std::fs::read_to_string(&shared).unwrap();
    assert!(src.contains(AFTER), "{AFTER:?} in shared.yaml");
    let src = src.replacen(AFTER, &format!("{AFTER}{}", &snippet[1..]), 1);
    std::fs::write(&shared, src).unwrap();
    dir
}

/// telem-deploy on the fake host with `ca`: (exit code, stdout, stderr).
fn run(host: &FakeHost, ca: Option<Arc<Ca>>, args: &[&str]) -> (u8, String, String) {
    let collector = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/telem-collector");
    let mut argv = vec![
        "telem-deploy".to_owned(),
        "--collector-bin".into(),
        collector.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let cli = Cli::try_parse_args(argv).expect("valid arguments");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = {
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        match run_cli_with(cli, host, ca, &mut io) {
            Ok(c) => c,
            Err(e) => {
                err.extend_from_slice(format!("error: {e}\n").as_bytes());
                e.exit_code()
            }
        }
    };
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn args<'a>(dir: &'a tempfile::TempDir, pw: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--recipes",
        dir.path().to_str().unwrap(),
        "--db-password-file",
        pw,
    ];
    a.extend_from_slice(extra);
    a
}

/// The plan's steps by name: (kind, status, changes).
fn plan(out: &str) -> Vec<(String, String, String, Vec<String>)> {
    let doc: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["kind"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn ours(plan: &[(String, String, String, Vec<String>)]) -> Vec<(String, String, Vec<String>)> {
    plan.iter()
        .filter(|s| {
            matches!(
                s.1.as_str(),
                "issued_tls" | "postgres_settings" | "postgres_hba"
            )
        })
        .map(|s| (s.1.clone(), s.2.clone(), s.3.clone()))
        .collect()
}

fn no_key_in(text: &str, host: &FakeHost) {
    assert!(
        !text.contains("PRIVATE KEY"),
        "a key in the output:\n{text}"
    );
    if let Some(key) = host.world.borrow().files.get(Path::new(KEY)) {
        let key = String::from_utf8_lossy(&key.content);
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(
            !text.contains(&body[..40.min(body.len())]),
            "the key in the output"
        );
    }
}

#[test]
fn install_issues_the_certificate_sets_tls_and_hba_and_converges() {
    let dir = recipes(SNIPPET);
    let host = FakeHost::fresh("debian", false);
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(Ca::load_or_create(&ca_dir.path().join("ca"), false).unwrap());
    let pw = password_file();
    let pw = pw.path().to_str().unwrap();
    // The cluster's pg_hba.conf (the package's, on a real host).
    host.put(HBA_FILE, HBA);
    let (code, out, err) = run(&host, Some(ca.clone()), &args(&dir, pw, &["--yes"]));
    assert_eq!(code, 0, "{out}\n{err}");
    no_key_in(&format!("{out}{err}"), &host);

    {
        let w = host.world.borrow();
        let key = &w.files[Path::new(KEY)];
        let cert = &w.files[Path::new(CERT)];
        let passwd =
            String::from_utf8_lossy(&w.files[Path::new("/etc/passwd")].content).into_owned();
        let uid: u32 = passwd
            .lines()
            .find(|l| l.starts_with("postgres:"))
            .and_then(|l| l.split(':').nth(2))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!((key.uid, key.mode), (uid, 0o600));
        assert_eq!((cert.uid, cert.mode), (uid, 0o644));
        assert!(ca.signed(&cert.content));
        let info = telem_deploy::tls::info(&cert.content).unwrap();
        assert_eq!(info.names, ["10.77.0.11", "db.example"]);
        let hba = String::from_utf8(w.files[Path::new(HBA_FILE)].content.clone()).unwrap();
        let (block, rest) = hba.split_once("# END telem-deploy\n").unwrap();
        assert_eq!(rest, HBA, "the operator's lines kept byte for byte");
        assert!(block.starts_with("# BEGIN telem-deploy\n"), "{hba}");
        assert!(
            block.contains("hostssl\ttelemetry\ttelemetry\t10.77.0.12/32\tscram-sha-256\n"),
            "{block}"
        );
        assert!(
            block.contains("host\tall\tall\t10.77.0.0/24\treject\n"),
            "{block}"
        );
        assert_eq!(w.pg_auto_conf["listen_addresses"], "localhost,10.77.0.11");
        assert_eq!(w.pg_auto_conf["ssl"], "on");
        // The restart the steps notified applied them.
        assert_eq!(w.pg_settings, w.pg_auto_conf);
    }

    // A second plan: all three ok.
    let (code, out, err) = run(
        &host,
        Some(ca.clone()),
        &args(&dir, pw, &["--dry-run", "--format", "json"]),
    );
    assert!(code == 0, "{out}\n{err}");
    let steps = ours(&plan(&out));
    assert_eq!(steps.len(), 3, "{steps:?}");
    for (kind, status, changes) in &steps {
        assert_eq!(status, "ok", "{kind}: {changes:?}");
    }
    assert!(
        steps[0].2[0].contains("subject CN=10.77.0.11, issuer CN=telem-deploy CA"),
        "{steps:?}"
    );
    no_key_in(&format!("{out}{err}"), &host);

    // The certificate goes stale (another CA's): replaced, the key too, never shown.
    let other = Ca::load_or_create(&ca_dir.path().join("other"), false).unwrap();
    let foreign = other
        .issue(&["10.77.0.11".into(), "db.example".into()])
        .unwrap();
    host.put(CERT, std::str::from_utf8(&foreign.cert_pem).unwrap());
    let (_, out, _) = run(
        &host,
        Some(ca.clone()),
        &args(&dir, pw, &["--dry-run", "--format", "json"]),
    );
    let steps = ours(&plan(&out));
    assert_eq!(steps[0].1, "change");
    assert!(
        steps[0].2[0].starts_with(&format!(
            "replace certificate {CERT}: was subject CN=10.77.0.11, issuer CN=telem-deploy CA"
        )),
        "{steps:?}"
    );
    assert!(steps[0].2[0].contains("(not issued by the CA"), "{steps:?}");
    assert!(steps[0].2[1].contains("(not shown)"), "{steps:?}");
    no_key_in(&out, &host);
    let (code, out, err) = run(&host, Some(ca.clone()), &args(&dir, pw, &["--yes"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let key_pem = {
        let w = host.world.borrow();
        let cert = &w.files[Path::new(CERT)].content;
        assert!(ca.signed(cert), "a new certificate of the run's CA");
        assert_ne!(*cert, foreign.cert_pem);
        w.files[Path::new(KEY)].content.clone()
    };
    no_key_in(&format!("{out}{err}"), &host);

    // Only the key's mode is off: fixed in place, the pair kept.
    host.world
        .borrow_mut()
        .files
        .get_mut(Path::new(KEY))
        .unwrap()
        .mode = 0o644;
    let (_, out, _) = run(
        &host,
        Some(ca.clone()),
        &args(&dir, pw, &["--dry-run", "--format", "json"]),
    );
    let steps = ours(&plan(&out));
    assert_eq!(
        (steps[0].1.as_str(), steps[0].2.clone()),
        ("change", vec![format!("{KEY}: mode 0644 → 0600")])
    );
    let (code, out, err) = run(&host, Some(ca.clone()), &args(&dir, pw, &["--yes"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let w = host.world.borrow();
    assert_eq!(w.files[Path::new(KEY)].mode, 0o600);
    assert_eq!(w.files[Path::new(KEY)].content, key_pem, "the same key");
}

#[test]
fn without_a_ca_the_certificate_step_is_blocked_and_a_new_ca_is_only_planned() {
    let dir = recipes(SNIPPET);
    let host = FakeHost::fresh("debian", false);
    let pw = password_file();
    let pw = pw.path().to_str().unwrap();
    let (_, out, err) = run(
        &host,
        None,
        &args(&dir, pw, &["--dry-run", "--format", "json"]),
    );
    let steps = ours(&plan(&out));
    assert_eq!(steps[0].1, "blocked", "{steps:?}\n{err}");
    assert!(
        steps[0].2[0].contains("no certificate authority"),
        "{steps:?}"
    );

    // A dry run with a CA not created yet: the plan says so, nothing is written.
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&ca_dir.path().join("ca"), true).unwrap();
    let (_, out, _) = run(
        &host,
        Some(Arc::new(ca)),
        &args(&dir, pw, &["--dry-run", "--format", "json"]),
    );
    let steps = ours(&plan(&out));
    assert_eq!(steps[0].1, "change");
    assert!(
        steps[0].2[0].starts_with("create a new CA in "),
        "{steps:?}"
    );
    assert!(
        steps[0].2[0].ends_with("(created when applied)"),
        "{steps:?}"
    );
    assert!(!ca_dir.path().join("ca").exists());
}

#[test]
fn bad_values_are_refused_with_their_path() {
    let bad = SNIPPET
        .replace(
            "\"10.77.0.11\", \"db.example\"",
            "\"10.77.0.11\", \"db example\"",
        )
        .replace("ssl: \"on\"", "\"Bad-Name\": \"on\"")
        .replace("address: 10.77.0.12,", "address: 10.77.0.12/33,")
        .replace("method: reject", "method: trust");
    let dir = recipes(&bad);
    let host = FakeHost::fresh("debian", false);
    let pw = password_file();
    let pw = pw.path().to_str().unwrap();
    let (code, _, err) = run(&host, None, &args(&dir, pw, &["--dry-run"]));
    assert_eq!(code, 2, "{err}");
    for (path, problem) in [
        (
            "issued_tls.names[1]",
            "`db example` is neither an IP address nor a DNS name",
        ),
        (
            "postgres_settings.settings.Bad-Name",
            "is not a setting name",
        ),
        (
            "postgres_hba.entries[0].address",
            "`10.77.0.12/33` is not an IP address or a CIDR block",
        ),
        (
            "postgres_hba.entries[1].method",
            "`trust` is not an authentication method",
        ),
    ] {
        assert!(
            err.lines().any(|l| l.contains(path) && l.contains(problem)),
            "want {path}: {problem} in:\n{err}"
        );
    }
    // A line break in a setting's value.
    let newline = SNIPPET.replace("ssl: \"on\"", "ssl: \"on\\nlisten_addresses = '*'\"");
    let dir = recipes(&newline);
    let (code, _, err) = run(&host, None, &args(&dir, pw, &["--dry-run"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("postgres_settings.settings.ssl") && err.contains("line break"),
        "{err}"
    );
}
