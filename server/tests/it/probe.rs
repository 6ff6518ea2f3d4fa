//! `telem-collector probe`, the real binary: 200 from a running collector exits 0 (by URL, and
//! by default at the configured listen address), any other status exits 1 naming it (0 with
//! `--any-status`), and no answer (refused, closed, not HTTP, silent) exits 1 saying which.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

use crate::harness::{config, migrated_db, TestServer};
use crate::pg::PgCluster;

const BIN: &str = env!("CARGO_BIN_EXE_telem-collector");

/// The binary with no TELEM_COLLECTOR_* from this environment, plus `env`.
fn probe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("TELEM_COLLECTOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--config", "/nonexistent/collector.toml", "probe"])
        .args(args)
        .envs(env.iter().copied());
    cmd.output().expect("run telem-collector probe")
}

fn out(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_checks_a_running_collector() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let server = TestServer::start(config(&db)).await;
    let addr = server.addr.to_string();
    let (db2, addr2) = (db.clone(), addr.clone());
    tokio::task::spawn_blocking(move || {
        let healthz = format!("http://{addr2}/healthz");
        let (code, stdout, stderr) = out(&probe(&[&healthz], &[]));
        assert_eq!((code, stdout.as_str()), (Some(0), "200\n"), "{stderr}");

        let (code, _, stderr) = out(&probe(
            &["--host-header", "telemetry.example.org", &healthz],
            &[],
        ));
        assert_eq!(code, Some(0), "{stderr}");

        let missing = format!("http://{addr2}/no-such-path");
        let (code, stdout, stderr) = out(&probe(&[&missing], &[]));
        assert_eq!((code, stdout.as_str()), (Some(1), "404\n"));
        assert!(
            stderr.contains(&format!("probe {missing}: unhealthy, answered 404")),
            "{stderr}"
        );
        let (code, stdout, _) = out(&probe(&["--any-status", &missing], &[]));
        assert_eq!((code, stdout.as_str()), (Some(0), "404\n"));

        // No URL: /healthz at the configured listen address.
        let env = [
            ("TELEM_COLLECTOR_DATABASE_URL", db2.as_str()),
            ("TELEM_COLLECTOR_LISTEN", addr2.as_str()),
        ];
        let (code, stdout, stderr) = out(&probe(&[], &env));
        assert_eq!((code, stdout.as_str()), (Some(0), "200\n"), "{stderr}");
    })
    .await
    .unwrap();
    server.stop().await;

    // The collector gone: refused, said so.
    let (code, stdout, stderr) = out(&probe(&[&format!("http://{addr}/healthz")], &[]));
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        stderr.contains(&format!("cannot connect to {addr}")),
        "{stderr}"
    );
}

/// A one-connection server answering `reply` (None: accept, read, then say nothing until
/// the client gives up).
fn fake_server(reply: Option<&'static [u8]>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf);
        match reply {
            Some(bytes) => {
                let _ = conn.write_all(bytes);
            }
            // Held open until the client closes its end.
            None => while matches!(conn.read(&mut buf), Ok(n) if n > 0) {},
        }
    });
    (addr, handle)
}

#[test]
fn probe_without_a_proper_answer_fails_saying_why() {
    for (reply, args, why) in [
        (Some(&b""[..]), vec![], "closed without an answer"),
        (
            Some(&b"SSH-2.0-OpenSSH_9.2\r\n"[..]),
            vec![],
            "not an HTTP answer",
        ),
        (None, vec!["--timeout", "1"], "no answer within 1 s"),
    ] {
        let (addr, server) = fake_server(reply);
        let mut argv = args.clone();
        let url = format!("http://{addr}/healthz");
        argv.push(&url);
        let (code, stdout, stderr) = out(&probe(&argv, &[]));
        assert_eq!((code, stdout.as_str()), (Some(1), ""), "{why}: {stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        server.join().unwrap();
    }
    let (code, _, stderr) = out(&probe(&["https://localhost/healthz"], &[]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("only http:// URLs"), "{stderr}");
}
