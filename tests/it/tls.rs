//! TLS the operator controls: `--tls-cert`/`--tls-key` pairs made by openssl (RSA and EC, every
//! PEM form openssl writes) are accepted, an expired, not-yet-valid or mismatched pair is refused
//! with exit 2 before anything changes, the key is installed 0600 and never shown, a renewed
//! certificate is the plan's only change, and `--tls-self-signed` converges.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fake_host::FakeHost;
use crate::golden::{install_with, run};

const CERT: &str = "/etc/nginx/ssl/telemetry.cert.pem";
const KEY: &str = "/etc/nginx/ssl/telemetry.key.pem";
const SITE: &str = "/etc/nginx/sites-available/telemetry.conf";

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs (the tests make their certificates with it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed pair for localhost made by `openssl req -x509 -newkey <newkey>`; (cert, key).
fn openssl_pair(dir: &Path, name: &str, newkey: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let mut args = vec!["req", "-x509", "-newkey"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&[
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "90",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
    ]);
    openssl(&args);
    (cert, key)
}

/// A new certificate for the same key (a renewal).
fn renew(dir: &Path, key: &Path, days: &str) -> PathBuf {
    let cert = dir.join(format!("renewed-{days}.crt"));
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        days,
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
    ]);
    cert
}

/// The base64 body of a PEM key, line by line (none may appear in any output).
fn key_lines(key: &Path) -> Vec<String> {
    std::fs::read_to_string(key)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_owned)
        .collect()
}

fn assert_no_key(key: &Path, outputs: &[&str]) {
    for line in key_lines(key) {
        for o in outputs {
            assert!(!o.contains(&line), "a line of the private key leaked:\n{o}");
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn node(host: &FakeHost, path: &str) -> crate::fake_host::Node {
    host.world.borrow().files[Path::new(path)].clone()
}

#[test]
fn pairs_openssl_writes_are_accepted_in_every_pem_form() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa_cert, rsa_key) = openssl_pair(dir.path(), "rsa", &["rsa:2048"]);
    let (ec_cert, ec_key) = openssl_pair(
        dir.path(),
        "ec",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let pkcs1 = dir.path().join("rsa-pkcs1.key");
    openssl(&["rsa", "-in", s(&rsa_key), "-traditional", "-out", s(&pkcs1)]);
    let sec1 = dir.path().join("ec-sec1.key");
    openssl(&["ec", "-in", s(&ec_key), "-out", s(&sec1)]);
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    for (cert, key) in [
        (&rsa_cert, &rsa_key),
        (&rsa_cert, &pkcs1),
        (&ec_cert, &ec_key),
        (&ec_cert, &sec1),
    ] {
        let host = FakeHost::fresh("debian", false);
        let (code, out, err) = run(
            &host,
            &[
                "-a",
                "install",
                "-d",
                "debian",
                "-H",
                "localhost",
                "--dry-run",
                "-v",
                "--tls-cert",
                s(cert),
                "--tls-key",
                s(key),
            ],
        );
        assert_eq!(code, 0, "{key:?}: {out}{err}");
        assert!(out.contains("install certificate"), "{out}");
        assert_no_key(key, &[&out, &err]);
    }
}

#[test]
fn mismatched_expired_and_future_pairs_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa_cert, rsa_key) = openssl_pair(dir.path(), "a", &["rsa:2048"]);
    let (ec_cert, ec_key) = openssl_pair(
        dir.path(),
        "b",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let (_, other_rsa_key) = openssl_pair(dir.path(), "c", &["rsa:2048"]);
    // openssl 3.0 cannot back-date a certificate; the tool's own generator can.
    let write = |name: &str, m: &telem_deploy::tls::Material| {
        let (c, k) = (
            dir.path().join(format!("{name}.crt")),
            dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, &m.cert_pem).unwrap();
        std::fs::write(&k, m.key_pem.expose()).unwrap();
        (c, k)
    };
    let now = telem_deploy::tls::now();
    let expired = write(
        "expired",
        &telem_deploy::tls::generate("localhost", now - 900 * 86_400).unwrap(),
    );
    let future = write(
        "future",
        &telem_deploy::tls::generate("localhost", now + 10 * 86_400).unwrap(),
    );
    let cases: [(&Path, &Path, &str); 5] = [
        (&rsa_cert, &other_rsa_key, "does not match"),
        (&rsa_cert, &ec_key, "does not match"),
        (&ec_cert, &rsa_key, "does not match"),
        (&expired.0, &expired.1, "expired on"),
        (&future.0, &future.1, "not valid before"),
    ];
    for (cert, key, why) in cases {
        for format in ["human", "json"] {
            let out = Command::new(env!("CARGO_BIN_EXE_telem-deploy"))
                .args([
                    "-a",
                    "install",
                    "-H",
                    "localhost",
                    "--yes",
                    "-v",
                    "--format",
                    format,
                ])
                .args(["--tls-cert", s(cert), "--tls-key", s(key)])
                .env("NO_COLOR", "1")
                .env_remove("TELEM_DB_PASSWORD")
                .output()
                .unwrap();
            let (o, e) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert_eq!(out.status.code(), Some(2), "{cert:?} {key:?}: {o}{e}");
            assert!(e.contains(why), "{why}: {e}");
            // Refused while resolving options: not even the options summary is printed.
            assert!(!o.contains("Options:") && !e.contains("Options:"), "{o}{e}");
            assert_no_key(key, &[&o, &e]);
        }
    }
    // Each flag needs the other.
    let out = Command::new(env!("CARGO_BIN_EXE_telem-deploy"))
        .args(["-H", "localhost", "--dry-run", "--tls-cert", s(&rsa_cert)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[test]
fn an_installed_pair_is_private_and_a_renewal_is_the_only_change() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_pair(dir.path(), "site", &["rsa:2048"]);
    let host = FakeHost::fresh("debian", false);
    install_with(
        &host,
        "debian",
        &["--tls-cert", s(&cert), "--tls-key", s(&key)],
    );
    let (c, k) = (node(&host, CERT), node(&host, KEY));
    assert_eq!((c.mode, c.uid, c.gid), (0o644, 0, 0));
    assert_eq!((k.mode, k.uid, k.gid), (0o600, 0, 0));
    assert_eq!(k.content, std::fs::read(&key).unwrap());
    assert_eq!(c.content, std::fs::read(&cert).unwrap());
    let site = String::from_utf8(node(&host, SITE).content).unwrap();
    for l in [
        "listen 80 default_server;",
        "listen 443 ssl default_server;",
        &format!("ssl_certificate_key {KEY};"),
    ] {
        assert!(site.contains(l), "{l}:\n{site}");
    }

    let plan = |cert: &Path, key: &Path| {
        let (code, out, err) = run(
            &host,
            &[
                "-a",
                "deploy",
                "-d",
                "debian",
                "-H",
                "localhost",
                "--dry-run",
                "-v",
                "--format",
                "json",
                "--tls-cert",
                s(cert),
                "--tls-key",
                s(key),
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert_no_key(key, &[&out, &err]);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let changed: Vec<serde_json::Value> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] != "ok")
            .cloned()
            .collect();
        changed
    };
    assert_eq!(
        plan(&cert, &key),
        Vec::<serde_json::Value>::new(),
        "a re-run changes nothing"
    );

    let renewed = renew(dir.path(), &key, "400");
    let old = telem_deploy::tls::info(&std::fs::read(&cert).unwrap()).unwrap();
    let new = telem_deploy::tls::info(&std::fs::read(&renewed).unwrap()).unwrap();
    // A renewed certificate (same key): the tls step is the only change, and the nginx reload
    // it notifies.
    let changed = plan(&renewed, &key);
    assert_eq!(changed.len(), 2, "{changed:#?}");
    assert_eq!(changed[0]["kind"], "tls", "{changed:#?}");
    assert_eq!(
        changed[1]["changes"],
        serde_json::json!(["reload nginx (its configuration changed)"])
    );
    assert_eq!(
        changed[0]["changes"],
        serde_json::json!([format!(
            "replace certificate {CERT}: was {}; now {}",
            old.describe(),
            new.describe()
        )])
    );
    assert!(new.describe().contains(&new.fingerprint) && new.describe().contains("CN=localhost"));
    // The fingerprint is the one openssl shows.
    let fp = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            s(&renewed),
        ])
        .output()
        .unwrap();
    let fp = String::from_utf8(fp.stdout).unwrap();
    assert_eq!(
        fp.trim().rsplit('=').next(),
        Some(new.fingerprint.as_str()),
        "{fp}"
    );

    // A new key: said, never shown.
    let (other_cert, other_key) = openssl_pair(dir.path(), "other", &["rsa:2048"]);
    let changed = plan(&other_cert, &other_key);
    assert_eq!(changed.len(), 2, "{changed:#?}");
    let changes = changed[0]["changes"].as_array().unwrap();
    assert!(
        changes.contains(&serde_json::json!(format!(
            "private key changed (not shown): {KEY}"
        ))),
        "{changes:?}"
    );
    assert!(changed[0].get("diff").is_none());

    // Applying the renewal writes it and reloads nginx.
    let (code, out, err) = run(
        &host,
        &[
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "localhost",
            "-v",
            "--tls-cert",
            s(&renewed),
            "--tls-key",
            s(&key),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_no_key(&key, &[&out, &err]);
    assert_eq!(node(&host, CERT).content, std::fs::read(&renewed).unwrap());
    let log = host.log.borrow().join("\n");
    assert!(
        log.contains("nginx -s reload") || log.contains("reload nginx"),
        "{log}"
    );
}

#[test]
fn a_self_signed_certificate_is_made_once_and_reused() {
    let host = FakeHost::fresh("debian", false);
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--tls-self-signed",
            "--tls-only",
        ];
        a.extend_from_slice(extra);
        a
    };
    install_with(&host, "debian", &["--tls-self-signed", "--tls-only"]);
    let pem = node(&host, CERT).content;
    let info = telem_deploy::tls::info(&pem).unwrap();
    assert!(
        info.covers("localhost") && info.subject == info.issuer,
        "{info:?}"
    );
    assert_eq!(node(&host, KEY).mode, 0o600);
    let site = String::from_utf8(node(&host, SITE).content).unwrap();
    assert!(
        !site.contains("listen 80"),
        "--tls-only: no plain HTTP:\n{site}"
    );
    assert!(site.contains("listen 443 ssl"), "{site}");

    // Converged: the dry run of a re-run has nothing to do, and says where the certificate is.
    let (code, out, err) = run(&host, &args(&["--dry-run", "--detailed-exitcode"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!(
            "self-signed certificate (kept: still valid) for localhost at {CERT}"
        )),
        "{err}"
    );
    assert!(out.contains("the collector directly: --tls-only"), "{out}");
    let (code, _, _) = run(&host, &args(&[]));
    assert_eq!(code, 0);
    assert_eq!(node(&host, CERT).content, pem, "the certificate is kept");

    // Another domain: a new certificate for it.
    let (code, out, err) = run(
        &host,
        &[
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "telemetry.example.com",
            "--tls-self-signed",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("new self-signed certificate for telemetry.example.com"),
        "{err}"
    );
    assert!(out.contains("replace certificate"), "{out}");

    // --tls-only without any certificate is refused.
    let fresh = FakeHost::fresh("debian", false);
    let (code, _, err) = run(
        &fresh,
        &[
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--tls-only",
            "--dry-run",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-only needs a certificate"), "{err}");
}

/// Uninstall removes the pair telem-deploy installed (and the directory it made for it), and
/// never a pair the operator had put at the recipe's path before.
#[test]
fn uninstall_removes_the_pair_it_installed_and_keeps_an_operators() {
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
    // Installed by telem-deploy: gone after uninstall, directory included.
    let host = FakeHost::fresh("debian", false);
    install_with(&host, "debian", &["--tls-self-signed"]);
    assert!(host.exists(CERT) && host.exists(KEY));
    let (code, out, err) = run(&host, &uninstall);
    assert_eq!(code, 0, "{out}{err}");
    for p in [CERT, KEY, "/etc/nginx/ssl"] {
        assert!(
            !host.exists(p),
            "{p} (telem-deploy's) is removed by uninstall"
        );
    }

    // The operator's own pair, in place before install (TLS on from it): kept.
    let host = FakeHost::fresh("debian", false);
    host.put(CERT, "operator's certificate\n");
    host.put(KEY, "operator's key\n");
    install_with(&host, "debian", &[]);
    let (code, out, err) = run(&host, &uninstall);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(node(&host, CERT).content, b"operator's certificate\n");
    assert_eq!(node(&host, KEY).content, b"operator's key\n");
}
