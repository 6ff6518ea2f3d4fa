//! `uninstall` removes only what telem-deploy created (fake host): the users it made, the paths
//! it recorded (a directory only with nothing foreign in it), never telemetrics-client's user
//! and directories, nor the collector binary the running tool installs from; an older
//! installation moves to the collector's own user. Packages (`-u`): uninstall_packages.rs.

use crate::fake_host::FakeHost;
use crate::golden::{install, run};

fn state(host: &FakeHost) -> serde_json::Value {
    let w = host.world.borrow();
    serde_json::from_slice(
        &w.files[std::path::Path::new("/var/lib/telem-deploy/state.json")].content,
    )
    .unwrap()
}

fn gid(host: &FakeHost, group: &str) -> Option<u32> {
    telem_deploy::host::lookup_group(host, group)
}

fn node_gid(host: &FakeHost, path: &str) -> u32 {
    host.world.borrow().files[std::path::Path::new(path)].gid
}

fn uninstall(host: &FakeHost, distro: &str) -> (u8, String, String) {
    uninstall_with(host, distro, &[])
}

/// `-a uninstall --yes --no-backup --format json` and `extra`.
fn uninstall_with(host: &FakeHost, distro: &str, extra: &[&str]) -> (u8, String, String) {
    let mut args = vec![
        "-a",
        "uninstall",
        "-d",
        distro,
        "-H",
        "localhost",
        "--yes",
        "--no-backup",
        "--format",
        "json",
    ];
    args.extend(extra);
    run(host, &args)
}

/// telemetrics-client's layout (as its tmpfiles.d and units make it): user `telemetry`, its
/// journal and records under /var/log/telemetry, its spool.
fn telemetrics_client(host: &FakeHost) {
    host.add_user("telemetry");
    for d in [
        "/var/log/telemetry",
        "/var/log/telemetry/records",
        "/var/spool/telemetry",
        "/var/lib/telemetry",
    ] {
        host.dir(d);
    }
    host.put("/var/log/telemetry/journal", "client journal\n");
}

#[test]
fn telemetrics_clients_user_and_directories_are_never_the_collectors() {
    for distro in ["debian", "centos", "clr"] {
        let host = FakeHost::fresh(distro, distro != "debian");
        telemetrics_client(&host);
        install(&host, distro);
        // The collector has a user, a group and a log directory of its own...
        assert!(host.has_user("telem-collector"), "{distro}");
        let config = "/etc/telemetry/collector.toml";
        assert_eq!(
            Some(node_gid(&host, config)),
            gid(&host, "telem-collector"),
            "{distro}"
        );
        assert_ne!(
            gid(&host, "telem-collector"),
            gid(&host, "telemetry"),
            "{distro}"
        );
        assert!(
            host.exists("/var/log/telem-collector"),
            "{distro}: its log directory"
        );
        assert_eq!(
            state(&host)["users"],
            serde_json::json!(["telem-collector"]),
            "{distro}"
        );
        // ...and the client's are untouched.
        assert!(!host.exists("/var/log/telemetry/collector.log"), "{distro}");

        let (code, out, err) = uninstall(&host, distro);
        assert_eq!(code, 0, "{distro}: {out}{err}");
        assert!(
            host.has_user("telemetry"),
            "{distro}: the client's user is kept"
        );
        assert!(
            !host.has_user("telem-collector"),
            "{distro}: the collector's user goes"
        );
        for p in [
            "/var/log/telemetry/journal",
            "/var/log/telemetry/records",
            "/var/spool/telemetry",
            "/var/lib/telemetry",
        ] {
            assert!(host.exists(p), "{distro}: {p} is kept");
        }
    }
}

#[test]
fn uninstall_removes_every_path_it_recorded_and_forgets_nothing() {
    for (distro, systemd) in [
        ("debian", false),
        ("ubuntu", false),
        ("centos", true),
        ("clr", true),
    ] {
        let host = FakeHost::fresh(distro, systemd);
        install(&host, distro);
        let created: Vec<String> = state(&host)["created"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        assert!(!created.is_empty());
        let (code, out, err) = uninstall(&host, distro);
        assert_eq!(code, 0, "{distro}: {out}{err}");
        let st = state(&host);
        assert_eq!(
            st["created"],
            serde_json::json!([]),
            "{distro}: still recorded: {}",
            st["created"]
        );
        assert!(st.get("users").is_none(), "{distro}: {st}");
        for p in &created {
            assert!(
                !host.exists(p),
                "{distro}: {p} was created by install and is still there"
            );
        }
    }
}

#[test]
fn a_directory_it_created_keeps_what_others_put_there() {
    let host = FakeHost::fresh("debian", false);
    install(&host, "debian");
    host.put("/var/log/telem-collector/collector.log.1", "rotated\n");
    host.put("/var/log/telem-collector/operator-notes.txt", "mine\n");
    host.put("/etc/telemetry/README.operator", "mine\n");
    let (code, plan, err) = run(
        &host,
        &[
            "-a",
            "uninstall",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{plan}{err}");
    assert!(plan.contains("keep /var/log/telem-collector (no longer recorded as telem-deploy's): it holds what telem-deploy did not create: operator-notes.txt"), "{plan}");
    let (code, out, err) = uninstall(&host, "debian");
    assert_eq!(code, 0, "{out}{err}");
    for p in [
        "/var/log/telem-collector/operator-notes.txt",
        "/etc/telemetry/README.operator",
    ] {
        assert!(host.exists(p), "{p} is kept");
    }
    for p in [
        "/var/log/telem-collector/collector.log",
        "/var/log/telem-collector/collector.log.1",
        "/etc/telemetry/collector.toml",
    ] {
        assert!(!host.exists(p), "{p} (the tool's) is removed");
    }
    assert_eq!(state(&host)["created"], serde_json::json!([]));
}

#[test]
fn uninstall_keeps_the_collector_binary_the_running_tool_installs_from() {
    let host = FakeHost::fresh("debian", false);
    install(&host, "debian");
    // As when telem-deploy was copied to /usr/local/bin after an install from a build
    // directory: its bundled collector is then the installed one.
    let bin = "/usr/local/bin/telem-collector";
    let run_from_bin = |extra: &str| {
        let args = [
            "-a",
            "uninstall",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--yes",
            "--no-backup",
            "--collector-bin",
            bin,
            extra,
        ];
        let cli =
            telem_deploy::cli::Cli::try_parse_args(std::iter::once("telem-deploy").chain(args))
                .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = telem_deploy::app::run_cli(
            cli,
            &host,
            &mut telem_deploy::app::Io {
                out: &mut out,
                err: &mut err,
            },
        );
        assert!(code.is_ok(), "{}", String::from_utf8_lossy(&err));
        String::from_utf8(out).unwrap()
    };
    let plan = run_from_bin("--dry-run");
    assert!(
        plan.contains(&format!(
            "keep {bin}: it is the collector this telem-deploy installs from"
        )),
        "{plan}"
    );
    run_from_bin("--verbose");
    assert!(host.exists(bin), "the collector the tool needs is kept");
    assert!(
        state(&host)["created"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == bin),
        "still the tool's"
    );
    // Run from elsewhere (the build directory), uninstall removes it.
    let (code, out, err) = uninstall(&host, "debian");
    assert_eq!(code, 0, "{out}{err}");
    assert!(!host.exists(bin));
}

/// The recipe of an older telem-deploy: the collector ran as `telemetry` (adopted when it
/// existed, never recorded) and logged to /var/log/telemetry.
fn older_recipe(distro: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str| {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("recipes/{name}.yaml")),
        )
        .unwrap()
    };
    // The collector's user and log directory, and the step that moves off the old one, are
    // in the shared file.
    let once = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "{from:?}");
        text.replacen(from, to, 1)
    };
    let old_shared = [
        ("  user: telem-collector\n  group: telem-collector\n", "  user: telemetry\n  group: telemetry\n"),
        ("  log_dir: /var/log/telem-collector\n", "  log_dir: /var/log/telemetry\n"),
        (
            "    - name: Remove the collector's log directory of an older telem-deploy (/var/log/telemetry, telemetrics-client's)\n      when: [collector]\n      remove: { path: /var/log/telemetry, daemon_files: [\"collector.log*\"] }\n",
            "",
        ),
    ]
    .into_iter()
    .fold(read("shared"), |text, (from, to)| once(text, from, to));
    // The user step is the distro's.
    let src = read(distro);
    let shell = if distro == "debian" {
        "/usr/sbin/nologin"
    } else {
        "/sbin/nologin"
    };
    let old = src.replace(
        &format!("      user: {{ name: \"{{{{ collector.user }}}}\", shell: {shell} }}\n"),
        &format!("      command:\n        run: [useradd, --system, --user-group, --home-dir, /nonexistent, --no-create-home, --shell, {shell}, \"{{{{ collector.user }}}}\"]\n        unless: [id, -u, \"{{{{ collector.user }}}}\"]\n"),
    );
    assert!(old.contains("useradd"), "the old user step");
    std::fs::write(dir.path().join("shared.yaml"), old_shared).unwrap();
    std::fs::write(dir.path().join(format!("{distro}.yaml")), old).unwrap();
    dir
}

#[test]
fn an_older_installation_is_moved_to_the_collectors_own_user_and_log_directory() {
    for client_after in [false, true] {
        let host = FakeHost::fresh("debian", false);
        let old = older_recipe("debian");
        crate::golden::install_with(
            &host,
            "debian",
            &["--recipes", old.path().to_str().unwrap()],
        );
        assert!(
            host.exists("/var/log/telemetry/collector.log"),
            "the old layout: {:?}",
            host.world
                .borrow()
                .files
                .keys()
                .filter(|p| p.starts_with("/var/log"))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            Some(node_gid(&host, "/etc/telemetry/collector.toml")),
            gid(&host, "telemetry")
        );
        if client_after {
            // telemetrics-client installed later: it shares the user and the log directory.
            host.put("/var/log/telemetry/journal", "client journal\n");
        }

        let (code, plan, err) = run(
            &host,
            &[
                "-a",
                "install",
                "-d",
                "debian",
                "-H",
                "localhost",
                "--dry-run",
            ],
        );
        assert_eq!(code, 0, "{plan}{err}");
        install(&host, "debian");
        assert_eq!(
            Some(node_gid(&host, "/etc/telemetry/collector.toml")),
            gid(&host, "telem-collector")
        );
        assert!(
            host.exists("/var/log/telem-collector/collector.log"),
            "the collector logs to its own directory"
        );
        assert!(
            !host.exists("/var/log/telemetry/collector.log"),
            "its old log is gone"
        );
        assert_eq!(
            host.exists("/var/log/telemetry"),
            client_after,
            "client_after={client_after}"
        );
        assert!(host.exists("/var/log/telemetry/journal") == client_after);
        let daemons: Vec<String> = host
            .log
            .borrow()
            .iter()
            .filter(|l| l.starts_with("spawn"))
            .cloned()
            .collect();
        assert!(
            daemons.last().unwrap().contains("telem-collector"),
            "{daemons:?}"
        );
        // A second install changes nothing.
        let (code, plan, err) = run(
            &host,
            &[
                "-a",
                "install",
                "-d",
                "debian",
                "-H",
                "localhost",
                "--dry-run",
                "--detailed-exitcode",
            ],
        );
        assert_eq!(code, 0, "converged: {plan}{err}");

        let (code, out, err) = uninstall(&host, "debian");
        assert_eq!(code, 0, "{out}{err}");
        // The older telem-deploy did not record whether it created `telemetry`: it stays.
        assert!(host.has_user("telemetry"));
        assert!(!host.has_user("telem-collector"));
        assert_eq!(state(&host)["created"], serde_json::json!([]));
    }
}

/// One machine: uninstall again (after a plain uninstall, or after `uninstall -u`) changes
/// nothing and succeeds, its plan neither, and leaves the machine as it was.
#[test]
fn uninstall_again_on_one_machine_changes_nothing() {
    for (distro, systemd) in [("debian", false), ("centos", true)] {
        for first in [&[][..], &["-u"]] {
            let host = FakeHost::fresh(distro, systemd);
            install(&host, distro);
            let (code, out, err) = uninstall_with(&host, distro, first);
            assert_eq!(code, 0, "{distro} {first:?}: {out}{err}");
            let before = host.world.borrow().clone();
            for extra in [&["--dry-run"][..], &[]] {
                let what = format!("{distro} uninstall {first:?}, then uninstall {extra:?}");
                let (code, out, err) = uninstall_with(&host, distro, extra);
                assert_eq!(code, 0, "{what}: {out}{err}");
                let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
                let s = &doc["summary"];
                assert_eq!(
                    (
                        s["change"].as_u64(),
                        s["changed"].as_u64(),
                        s["unknown"].as_u64()
                    ),
                    (Some(0), Some(0), Some(0)),
                    "{what}: {out}"
                );
                assert!(
                    *host.world.borrow() == before,
                    "{what}: the machine changed"
                );
            }
        }
    }
}
