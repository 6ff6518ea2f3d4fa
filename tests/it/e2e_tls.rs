//! End-to-end TLS on a fresh Debian root (issue 17 item 2), one sandbox for the whole scenario:
//! `install --tls-self-signed`, records posted over HTTPS through nginx with curl verifying
//! against the generated certificate (and over plain HTTP, for old clients) are stored, a re-run
//! converges, then the operator's own openssl pair with `--tls-only` replaces it: nginx serves
//! the new certificate (reloaded), port 80 is closed, the health check still passes, the key is
//! root's 0600 and never in any output.

use crate::e2e_support::*;
use crate::sandbox::Sandbox;
use std::path::Path;
use std::process::Command;

const CERT: &str = "/etc/nginx/ssl/telemetry.cert.pem";
const KEY: &str = "/etc/nginx/ssl/telemetry.key.pem";

/// POST the JSON fixture record over HTTPS with `curl --cacert CA`; the status code.
fn post_https(sb: &Sandbox, ca: &str, machine: &str) -> Result<String, String> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e/v3-json.http");
    let raw = std::fs::read_to_string(&fixture).unwrap();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap();
    let body = body.replace(MACHINES[1], machine);
    let mut argv = vec![
        "curl".to_owned(),
        "-sS".into(),
        "--max-time".into(),
        "20".into(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        "--cacert".into(),
        ca.into(),
    ];
    for h in head.lines().skip(1) {
        let name = h.split(':').next().unwrap_or_default().to_ascii_lowercase();
        if ["x-telemetry-tid", "content-type"].contains(&name.as_str()) {
            argv.extend(["-H".to_owned(), h.trim().to_owned()]);
        }
    }
    argv.extend([
        "--data-binary".to_owned(),
        "@-".into(),
        format!("https://{DOMAIN}/v3/collector"),
    ]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    outcome(sb.exec_with_stdin(&argv, body.as_bytes()), "curl https")
}

fn rows(sb: &Sandbox, machine: &str) -> Result<String, String> {
    sql(
        sb,
        "telemetry",
        &format!("select count(*) from records where machine_id = '{machine}'"),
    )
}

fn no_key_in(rep: &mut Report, key_pem: &str, what: &str, outputs: &[&str]) {
    for line in key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
    {
        for o in outputs {
            rep.check(
                !o.contains(line),
                format!("{what}: a line of the private key leaked"),
            );
        }
    }
}

#[test]
fn debian_https_self_signed_then_operator_pair_tls_only() {
    let mut rep = Report::new("debian_https");
    let Some(sb) = sandbox("tls-e2e", false, &mut rep) else {
        return;
    };
    password_file(&sb, "tls e2e password");
    let curl = rep.time("apt-get install curl", || {
        sh(&sb, "apt-get install -y -q curl")
    });
    rep.check(curl.is_ok(), format!("installing curl: {curl:?}"));

    // 1. A self-signed certificate for -H, generated and said where it is.
    let mut install = DEBIAN_INSTALL.to_vec();
    install.push("--tls-self-signed");
    let run = rep.expect_ok("install --tls-self-signed", deploy(&sb, &install));
    if !run.ok() {
        return rep.finish();
    }
    rep.check(
        run.stderr.contains(&format!(
            "new self-signed certificate for localhost at {CERT}"
        )),
        format!("where the certificate is: {}", run.stderr),
    );
    let key_pem = sh(&sb, &format!("cat {KEY}")).unwrap_or_default();
    rep.check(key_pem.contains("PRIVATE KEY"), "the key is installed");
    no_key_in(&mut rep, &key_pem, "install", &[&run.stdout, &run.stderr]);
    let mode = sh(&sb, &format!("stat -c '%U:%G %a' {KEY} {CERT}"));
    rep.check(
        mode.as_deref() == Ok("root:root 600\nroot:root 644"),
        format!("key and certificate modes: {mode:?}"),
    );

    // Over HTTPS, verified against the certificate; over HTTP for old clients.
    let status = post_https(&sb, CERT, "e2e-https-self-signed");
    rep.check(
        status.as_deref() == Ok("201"),
        format!("POST over HTTPS: {status:?}"),
    );
    let n = rows(&sb, "e2e-https-self-signed");
    rep.check(
        n.as_deref() == Ok("1"),
        format!("rows after the HTTPS POST: {n:?}"),
    );
    post_records(&sb, &mut rep);
    // curl refuses a server it cannot verify (the check is not vacuous).
    let unverified = sh(
        &sb,
        &format!("curl -sS -o /dev/null https://{DOMAIN}/healthz"),
    );
    rep.check(
        unverified.is_err(),
        "curl without the CA refuses the self-signed certificate",
    );

    // A re-run keeps the certificate: nothing changes.
    let rerun = rep.expect_converged("install --tls-self-signed (again)", deploy(&sb, &install));
    rep.check(
        rerun.stderr.contains("kept: still valid"),
        format!("re-run: {}", rerun.stderr),
    );

    // 2. The operator's own pair (openssl, RSA), HTTPS only.
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("op.crt"), dir.path().join("op.key"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", text(&made.stderr));
    for f in [&crt, &key] {
        sb.copy_in(f, "/root/").unwrap();
    }
    let op_key = std::fs::read_to_string(&key).unwrap();
    let deploy_args = [
        "-a",
        "deploy",
        "-d",
        "debian",
        "-v",
        "--tls-only",
        "--tls-cert",
        "/root/op.crt",
        "--tls-key",
        "/root/op.key",
    ];
    let plan = deploy(&sb, &[&deploy_args[..], &["--dry-run"]].concat());
    rep.check(
        plan.steps("change").len() >= 2 && plan.stdout.contains("private key changed (not shown)"),
        format!("plan of the operator's pair: {}", plan.stdout),
    );
    let run = rep.expect_ok(
        "deploy --tls-only with the operator's pair",
        deploy(&sb, &deploy_args),
    );
    no_key_in(
        &mut rep,
        &op_key,
        "deploy",
        &[&run.stdout, &run.stderr, &plan.stdout, &plan.stderr],
    );
    // nginx reloaded: it serves the new certificate (verified with it as the only CA).
    // `nginx -s reload` only signals the master, which re-reads its config on its own time:
    // wait (bounded) until a handshake with the new certificate succeeds.
    let served = wait_until(std::time::Duration::from_secs(20), || {
        sh(
            &sb,
            &format!("curl -sS -o /dev/null --cacert /root/op.crt https://{DOMAIN}/healthz"),
        )
        .is_ok()
    });
    rep.check(
        served,
        "nginx serves the operator's certificate after the deploy",
    );
    let status = post_https(&sb, "/root/op.crt", "e2e-https-operator");
    rep.check(
        status.as_deref() == Ok("201"),
        format!("POST over HTTPS (operator's certificate): {status:?}"),
    );
    let n = rows(&sb, "e2e-https-operator");
    rep.check(
        n.as_deref() == Ok("1"),
        format!("rows after the second HTTPS POST: {n:?}"),
    );
    let plain = get(&sb, DOMAIN, "/healthz");
    rep.check(
        plain.is_err(),
        format!("--tls-only: port 80 still answers: {plain:?}"),
    );
    rep.expect_converged("deploy --tls-only (again)", deploy(&sb, &deploy_args));
    rep.finish();
}
