//! Many targets in one run (`--target`), on fake hosts: the multi-target JSON document
//! (golden), one target's failure leaving the others alone, passwords across targets, and the
//! flags' usage errors, one machine named twice, a machine another run is changing. The fake
//! fleet is fake_fleet.rs; the same runs over real SSH into fresh Debian roots: e2e_ssh/.

use std::path::Path;

use telem_deploy::app::{run_cli, Io};
use telem_deploy::cli::Cli;

use crate::fake_fleet::{golden_compare, normalized, stored_password, Fleet};
use crate::fake_host::FakeHost;
use crate::golden::{self, PASSWORD};

/// Gives a fake machine what tells machines apart (fleet/identity.rs): its boot id, network
/// namespace and root directory.
fn identify(h: &FakeHost, boot_id: &str, netns: &str, root: &str) {
    h.world.borrow_mut().identity = Some([boot_id.into(), netns.into(), root.into()]);
}

#[test]
fn the_multi_target_document_holds_every_target_and_a_total() {
    let fleet = Fleet::new(vec![
        ("root@fresh.example", Some(FakeHost::fresh("debian", true))),
        ("root@installed.example", Some(golden::installed("debian"))),
        ("root@unknown-key.example", None),
    ]);
    let (code, out, err) = fleet.run(&[
        "-a",
        "install",
        "-H",
        "localhost",
        "--dry-run",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "one target failed to connect: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["format"], "telem-deploy/targets");
    assert_eq!(doc["total"]["targets"], 3);
    assert_eq!(doc["total"]["ok"], 2);
    assert_eq!(doc["total"]["failed"], 1);
    let t = &doc["targets"];
    assert_eq!(t[0]["report"]["format"], "telem-deploy/plan");
    assert!(t[0]["report"]["summary"]["change"].as_u64().unwrap() > 0);
    assert_eq!(t[1]["report"]["summary"]["change"], 0, "{}", t[1]);
    assert_eq!(t[2]["ok"], false);
    assert!(t[2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not in known_hosts"));
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    golden_compare("targets/install-dry-run.json", &normalized(&out));
}

#[test]
fn one_failing_target_leaves_the_others_converged_and_a_rerun_completes_it() {
    let fleet = Fleet::new(vec![
        ("root@a", Some(FakeHost::fresh("debian", true))),
        ("root@b", Some(FakeHost::fresh("debian", false))),
        ("root@c", Some(FakeHost::fresh("ubuntu", true))),
    ]);
    // b's nginx rejects its configuration: b fails at that step, a and c go on.
    fleet.with("root@b", |h| h.world.borrow_mut().nginx_rejects = true);
    let pw = golden::password_file();
    let pw = pw.path().to_str().unwrap();
    let args = [
        "-a",
        "install",
        "-H",
        "localhost",
        "--db-password-file",
        pw,
        "--parallel",
        "2",
    ];
    let (code, out, err) = fleet.run(&args);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("== root@a =="), "{out}");
    assert!(
        out.trim_end()
            .ends_with("3 targets: 2 done, 1 failed (root@b)"),
        "{out}"
    );
    // Progress lines name their target; nothing else is interleaved inside a line.
    for line in err.lines().filter(|l| l.contains("nginx")) {
        assert!(
            line.starts_with("[root@a] ")
                || line.starts_with("[root@b] ")
                || line.starts_with("[root@c] "),
            "{line}"
        );
    }
    for label in ["root@a", "root@c"] {
        assert_eq!(
            fleet.with(label, stored_password).as_deref(),
            Some(PASSWORD)
        );
    }
    fleet.with("root@b", |h| h.world.borrow_mut().nginx_rejects = false);
    let (code, out, err) = fleet.run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = fleet.run(&[
        "-a",
        "install",
        "-H",
        "localhost",
        "--dry-run",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    for t in doc["targets"].as_array().unwrap() {
        assert_eq!(t["report"]["summary"]["change"], 0, "converged: {t}");
        assert_eq!(t["report"]["summary"]["unknown"], 0, "converged: {t}");
    }
}

#[test]
fn each_target_keeps_its_stored_password_and_new_ones_get_their_own() {
    let fleet = Fleet::new(vec![
        ("root@old", Some(golden::installed("debian"))),
        ("root@new1", Some(FakeHost::fresh("debian", true))),
        ("root@new2", Some(FakeHost::fresh("debian", true))),
    ]);
    // No password given, no terminal: the installed machine keeps its own, each new one gets
    // a generated one.
    let (code, out, err) = fleet.run(&["-a", "install", "-H", "localhost"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        fleet.with("root@old", stored_password).as_deref(),
        Some(PASSWORD)
    );
    let new1 = fleet.with("root@new1", stored_password).expect("stored");
    let new2 = fleet.with("root@new2", stored_password).expect("stored");
    assert_eq!(new1.len(), 32);
    assert_ne!(new1, new2, "generated passwords are per machine");
    assert!(!out.contains(&new1) && !err.contains(&new1));
    // An explicit password is applied to every target.
    let pw = golden::password_file();
    let (code, _, err) = fleet.run(&[
        "-a",
        "install",
        "-H",
        "localhost",
        "--db-password-file",
        pw.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for label in ["root@old", "root@new1", "root@new2"] {
        assert_eq!(
            fleet.with(label, stored_password).as_deref(),
            Some(PASSWORD)
        );
    }
}

#[test]
fn a_destructive_action_without_yes_touches_no_target() {
    let fleet = Fleet::new(vec![
        ("root@a", Some(golden::installed("debian"))),
        ("root@b", Some(golden::installed("debian"))),
    ]);
    let before: Vec<_> = ["root@a", "root@b"]
        .iter()
        .map(|l| fleet.with(l, |h| h.world.borrow().clone()))
        .collect();
    let (code, _, err) = fleet.run(&["-a", "uninstall", "-H", "localhost"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pass --yes"), "{err}");
    for (l, b) in ["root@a", "root@b"].iter().zip(before) {
        fleet.with(l, |h| assert!(*h.world.borrow() == b, "{l} changed"));
    }
}

/// Two names of one run that reach one machine (its name and its address, say) would race
/// for its package manager and state file: the run stops before any change, naming both.
/// Containers on one kernel (the same boot id, their own network namespace and root) and
/// machines cloned from one image (their own boot) are other machines.
#[test]
fn a_machine_named_twice_stops_the_run_before_any_change() {
    let machines = || {
        let fleet = Fleet::new(vec![
            ("root@web1", Some(FakeHost::fresh("debian", true))),
            ("root@container", Some(FakeHost::fresh("debian", true))),
            ("root@clone", Some(FakeHost::fresh("debian", true))),
        ]);
        fleet.with("root@web1", |h| identify(h, "boot-1", "net:[1]", "2049:2"));
        fleet.with("root@container", |h| {
            identify(h, "boot-1", "net:[2]", "45:2")
        });
        fleet.with("root@clone", |h| identify(h, "boot-2", "net:[1]", "2049:2"));
        fleet
    };
    let pw = golden::password_file();
    let args = [
        "-a",
        "install",
        "-H",
        "localhost",
        "--db-password-file",
        pw.path().to_str().unwrap(),
    ];
    let fleet = machines();
    fleet.alias("root@10.0.0.21", "root@web1");
    let labels = ["root@web1", "root@container", "root@clone"];
    let before: Vec<_> = labels
        .iter()
        .map(|l| fleet.with(l, |h| h.world.borrow().clone()))
        .collect();
    for extra in [&[][..], &["--dry-run"][..]] {
        let (code, out, err) = fleet.run(&[&args[..], extra].concat());
        assert_eq!(code, 2, "{out}\n{err}");
        assert!(
            err.contains(
                "root@web1 and root@10.0.0.21 are the same machine (the same boot id, network \
                 namespace and root directory): name each machine once in a run; no machine was \
                 changed"
            ),
            "{err}"
        );
        for (l, b) in labels.iter().zip(&before) {
            fleet.with(l, |h| assert!(*h.world.borrow() == *b, "{l} changed"));
        }
    }
    // Without the second name: three machines, all installed, each asked which it is.
    let fleet = machines();
    let (code, out, err) = fleet.run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    for l in labels {
        assert_eq!(fleet.with(l, stored_password).as_deref(), Some(PASSWORD));
    }
    let asked = |fleet: &Fleet| {
        fleet
            .events()
            .iter()
            .filter(|e| e.what.contains("random/boot_id"))
            .count()
    };
    assert_eq!(asked(&fleet), 3);
    // One machine has nothing to be compared with: it is not asked.
    let solo = Fleet::new(vec![("root@web1", Some(FakeHost::fresh("debian", true)))]);
    let (code, out, err) = solo.run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(asked(&solo), 0);
}

/// A target another run is changing (its run lock held) fails before any change and says
/// so; the other targets are installed.
#[test]
fn a_target_another_run_is_changing_fails_alone_and_unchanged() {
    let fleet = Fleet::new(vec![
        ("root@a", Some(FakeHost::fresh("debian", true))),
        ("root@b", Some(FakeHost::fresh("debian", true))),
    ]);
    fleet.with("root@b", |h| {
        h.world.borrow_mut().locked_by_another_run = true
    });
    let b_before = fleet.with("root@b", |h| h.world.borrow().clone());
    let pw = golden::password_file();
    let (code, out, err) = fleet.run(&[
        "-a",
        "install",
        "-H",
        "localhost",
        "--db-password-file",
        pw.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("another telem-deploy run is changing this machine")
            && out
                .trim_end()
                .ends_with("2 targets: 1 done, 1 failed (root@b)"),
        "{out}\n{err}"
    );
    fleet.with("root@b", |h| {
        assert!(*h.world.borrow() == b_before, "b changed")
    });
    assert_eq!(
        fleet.with("root@a", stored_password).as_deref(),
        Some(PASSWORD)
    );
}

/// Usage errors of the remote flags: exit 2 before any connection.
#[test]
fn bad_targets_and_ssh_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets");
    std::fs::write(&file, "root@a\nroot@b;reboot\n").unwrap();
    let file = file.to_str().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "# nobody yet\n").unwrap();
    let empty = empty.to_str().unwrap();
    for (args, says) in [
        (vec!["--target", "root@host;reboot"], "invalid value"),
        (vec!["--target=-oProxyCommand=x"], "invalid value"),
        (vec!["--target", "::1"], "invalid value"),
        (vec!["--target", "a", "--target", "a"], "given twice"),
        (vec!["--targets", file], ":2:"),
        (vec!["--targets", empty], "no target"),
        (vec!["--ssh-option", "ProxyJump=b"], "only with --target"),
        (
            vec!["--target", "a", "--ssh-option", "StrictHostKeyChecking=no"],
            "never accepted silently",
        ),
        (
            vec!["--target", "a", "--ssh-option", "ControlPath=/tmp/x"],
            "set by telem-deploy itself",
        ),
        (vec!["--target", "a", "--parallel", "0"], "invalid value"),
    ] {
        let mut argv = vec!["telem-deploy", "-a", "install", "-H", "localhost"];
        argv.extend(&args);
        let (code, err) = match Cli::try_parse_args(&argv) {
            Err(e) => (e.exit_code(), e.to_string()),
            Ok(cli) => {
                let host = FakeHost::fresh("debian", true);
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let mut io = Io {
                    out: &mut out,
                    err: &mut err,
                };
                match run_cli(cli, &host, &mut io) {
                    Ok(c) => (i32::from(c), String::new()),
                    Err(e) => {
                        assert!(host.log.borrow().is_empty(), "{args:?} touched the host");
                        (i32::from(e.exit_code()), e.to_string())
                    }
                }
            }
        };
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `-t tarball -s PATH` names the controller's file: on a remote target it is hashed and
/// listed here, and sent over only when applying.
#[test]
fn a_tarball_snapshot_is_read_on_the_controller_and_sent_to_a_remote_target() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("telemetrics-backend/telemetryui");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("requirements.txt"), "Flask==2.2.5\n").unwrap();
    let tarball = dir.path().join("ui.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .arg("telemetrics-backend")
        .status()
        .unwrap();
    assert!(st.success());
    let sha = {
        use sha2::Digest;
        format!(
            "{:x}",
            sha2::Sha256::digest(std::fs::read(&tarball).unwrap())
        )
    };
    let fleet = Fleet::new(vec![("root@ui", Some(FakeHost::fresh("debian", false)))]);
    let pw = golden::password_file();
    let tar = tarball.to_str().unwrap();
    let args = [
        "-a",
        "install",
        "-H",
        "localhost",
        "--db-password-file",
        pw.path().to_str().unwrap(),
        "--webapp",
        "-t",
        "tarball",
        "-s",
        tar,
    ];
    let before = fleet.with("root@ui", |h| h.world.borrow().clone());
    let (code, out, err) = fleet.run(&[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("tarball {tar}")), "{out}");
    fleet.with("root@ui", |h| {
        assert!(
            *h.world.borrow() == before,
            "the dry run changed the target"
        );
    });
    let (code, out, err) = fleet.run(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    fleet.with("root@ui", |h| {
        let w = h.world.borrow();
        let marker = &w.files[Path::new("/var/www/telemetry/telemetryui/.telem-snapshot")];
        let text = String::from_utf8_lossy(&marker.content);
        assert!(text.starts_with(&format!("sha256:{sha}")), "{text}");
        assert!(
            !w.files.contains_key(Path::new(tar)),
            "the tarball is not looked for on the target"
        );
    });
    let (code, out, err) = fleet.run(&[&args[..], &["--dry-run", "--format", "json"]].concat());
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["report"]["summary"]["change"], 0, "{out}");
}
