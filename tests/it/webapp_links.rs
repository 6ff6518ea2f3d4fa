//! Issue 10 items 4 and 9: a web UI snapshot whose symlinks lead out of it is refused, naming
//! the link: exit 2 before anything changes when it can be read in place (a tarball, a local
//! git repository: checked with the real binary, `--dry-run`, real tar and git), exit 1 with
//! nothing staged left behind when it shows only after a remote clone (fake host). Git's
//! command-running transports are refused.

use std::path::Path;
use std::process::{Command, Output};

use crate::fake_host::FakeHost;
use crate::golden::{password_file, run};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `telem-deploy --dry-run --webapp` on this machine (a refusal happens before any check).
fn dry_run(extra: &[&str]) -> Output {
    let mut args = vec![
        "-d",
        "debian",
        "-H",
        "localhost",
        "--dry-run",
        "--webapp",
        "-a",
        "install",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_telem-deploy"))
        .args(&args)
        .env_remove("TELEM_DB_PASSWORD")
        .env("NO_COLOR", "1")
        .output()
        .expect("telem-deploy runs")
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .args(["-euc", script])
        .current_dir(dir)
        .output()
        .expect("bash");
    assert!(out.status.success(), "{script}: {}", text(&out.stderr));
}

/// A checkout of the web UI in `dir/tree`, with `link` (relative to `tree`) a symlink to `target`.
fn tree_with_link(dir: &Path, link: &str, target: &str) {
    sh(
        dir,
        &format!(
            "mkdir -p tree/telemetryui/telemetryui && echo 'from telemetryui import app' > tree/telemetryui/run.py \
             && echo 'app = None' > tree/telemetryui/telemetryui/__init__.py \
             && mkdir -p \"$(dirname tree/{link})\" && ln -sfn '{target}' tree/{link}"
        ),
    );
}

const CASES: [(&str, &str); 4] = [
    ("telemetryui/requirements.txt", "/etc/shadow"),
    (
        "telemetryui/requirements.txt",
        "../../../../../../etc/shadow",
    ),
    ("telemetryui/telemetryui/views.py", "/etc/passwd"),
    (
        "telemetryui/telemetryui/static/css/style.css",
        "../../../../utils/x.css",
    ),
];

fn assert_refused(out: &Output, link: &str, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit 2 before anything changes\n{err}"
    );
    assert!(
        err.contains(link) && err.contains("outside the snapshot"),
        "{what}: the refusal names {link}:\n{err}"
    );
    assert!(
        !text(&out.stdout).contains("root:"),
        "{what}: nothing of the linked file is shown"
    );
}

#[test]
fn tarballs_with_links_out_of_them_are_refused_before_anything_changes() {
    for (link, target) in CASES {
        let dir = tempfile::tempdir().unwrap();
        tree_with_link(dir.path(), link, target);
        // deploy.sh's tarballs: one top-level directory
        sh(
            dir.path(),
            "mv tree telemetrics-backend && tar -czf app.tar.gz telemetrics-backend",
        );
        let tar = dir.path().join("app.tar.gz");
        let out = dry_run(&["-t", "tarball", "-s", tar.to_str().unwrap()]);
        assert_refused(
            &out,
            link.trim_start_matches("telemetryui/"),
            &format!("tarball {link} -> {target}"),
        );
    }
}

#[test]
fn local_git_repositories_with_links_out_of_them_are_refused_before_anything_changes() {
    // git quotes such names unless asked not to
    let unicode = [(
        "telemetryui/telemetryui/gr\u{fc}\u{df}e.py",
        "../../utils/x.py",
    )];
    for (i, (link, target)) in CASES.iter().chain(&unicode).enumerate() {
        let dir = tempfile::tempdir().unwrap();
        tree_with_link(dir.path(), link, target);
        sh(
            dir.path(),
            "cd tree && git init -q -b main && git -c user.name=t -c user.email=t@localhost add -A \
             && git -c user.name=t -c user.email=t@localhost commit -qm x",
        );
        let repo = dir.path().join("tree");
        // a path, and a file:// URL
        let repo = match i % 2 {
            0 => repo.display().to_string(),
            _ => format!("file://{}", repo.display()),
        };
        let out = dry_run(&["-r", &repo, "-s", "main"]);
        assert_refused(&out, link, &format!("git {repo}: {link} -> {target}"));
    }
}

#[test]
fn git_transports_that_run_commands_are_refused() {
    for repo in [
        "fd::3",
        "ext::sh -c id",
        "--upload-pack=touch /tmp/x",
        "ftp://host/x",
    ] {
        let flag = format!("--repo={repo}");
        let out = dry_run(&[&flag, "-s", "main"]);
        assert_eq!(out.status.code(), Some(2), "{repo}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("invalid repository"),
            "{repo}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_remote_clone_with_a_link_out_of_it_fails_the_step_and_leaves_nothing_staged() {
    let host = FakeHost::fresh("debian", false);
    let pw = password_file();
    let args = [
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--yes",
        "--db-password-file",
        pw.path().to_str().unwrap(),
        "--webapp",
        "-r",
        "https://example.invalid/evil-link.git",
        "-s",
        "master",
    ];
    let (code, out, err) = run(&host, &args);
    assert_eq!(code, 1, "a failed step:\n{out}\n{err}");
    assert!(
        err.contains("telemetryui/requirements.txt") && err.contains("outside the snapshot"),
        "the failure names the link:\n{err}"
    );
    let world = host.world.borrow();
    let staged: Vec<_> = world
        .files
        .keys()
        .filter(|p| p.to_string_lossy().contains(".telem-stage"))
        .collect();
    assert!(staged.is_empty(), "left behind: {staged:?}");
    assert!(
        !world
            .files
            .contains_key(Path::new("/var/www/telemetry/telemetryui")),
        "the snapshot was not installed"
    );
    // the collector came first and is running
    assert!(
        world.running.contains("telem-collector"),
        "collector: {:?}",
        world.running
    );
}

/// Issue 12: where the distro's Python is too old for the web UI (EL8's 3.6), `--webapp` is
/// refused before anything changes, dry run and apply alike.
#[test]
fn el8_refuses_the_web_ui_before_anything_changes() {
    for dry in [true, false] {
        let host = FakeHost::fresh("centos", true);
        host.put("/etc/os-release", "ID=\"centos\"\nVERSION_ID=\"8\"\n");
        let before = host.world.borrow().files.len();
        let pw = password_file();
        let mut args = vec![
            "-a",
            "install",
            "-d",
            "centos",
            "-H",
            "localhost",
            "--yes",
            "--db-password-file",
            pw.path().to_str().unwrap(),
            "--webapp",
        ];
        if dry {
            args.push("--dry-run");
        }
        let (code, out, err) = run(&host, &args);
        assert_eq!(code, 2, "dry run {dry}:\n{out}\n{err}");
        assert!(err.contains("Python 3.9 or later"), "{err}");
        assert!(
            host.log.borrow().iter().all(|l| !l.contains("install")),
            "{:?}",
            host.log.borrow()
        );
        assert_eq!(
            host.world.borrow().files.len(),
            before,
            "nothing was written"
        );
    }
}

/// Issue 12: the plan says which requirements the web UI gets: `--webapp-requirements`, else
/// the snapshot's own, else telem-deploy's pins for the snapshot's layout.
#[test]
fn the_plan_says_which_requirements() {
    let host = FakeHost::fresh("debian", false);
    crate::golden::install_with(&host, "debian", &crate::golden::WEBAPP);
    let venv_changes = |extra: &[&str]| -> String {
        let pw = password_file();
        let mut args = vec![
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--dry-run",
            "--format",
            "json",
            "--db-password-file",
            pw.path().to_str().unwrap(),
        ];
        args.extend_from_slice(&crate::golden::WEBAPP);
        args.extend_from_slice(extra);
        let (_, out, err) = run(&host, &args);
        let doc: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        let step = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "venv")
            .unwrap()
            .clone();
        step["changes"].to_string()
    };
    let own = venv_changes(&[]);
    assert!(
        own.contains("the snapshot's own /var/www/telemetry/telemetryui/requirements.txt"),
        "{own}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "fixture-flask==0.2\n").unwrap();
    host.put(file.path().to_str().unwrap(), "fixture-flask==0.2\n");
    let flag = venv_changes(&["--webapp-requirements", file.path().to_str().unwrap()]);
    assert!(
        flag.contains("requirements: --webapp-requirements"),
        "{flag}"
    );
    // without a file of its own: the pins for its layout
    host.world
        .borrow_mut()
        .files
        .remove(Path::new("/var/www/telemetry/telemetryui/requirements.txt"));
    let pins = venv_changes(&[]);
    assert!(
        pins.contains("telem-deploy's pins for master's layout"),
        "{pins}"
    );
}

/// Issue 10 item 9: a tarball that fails to unpack leaves no staging directory behind.
#[test]
fn a_failed_extraction_leaves_nothing_staged() {
    let host = FakeHost::fresh("debian", false);
    host.put("/srv/corrupt.tar.gz", "not a tarball");
    let pw = password_file();
    let args = [
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--yes",
        "--db-password-file",
        pw.path().to_str().unwrap(),
        "--webapp",
        "-t",
        "tarball",
        "-s",
        "/srv/corrupt.tar.gz",
    ];
    let (code, out, err) = run(&host, &args);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("tar"), "{err}");
    let world = host.world.borrow();
    let staged: Vec<_> = world
        .files
        .keys()
        .filter(|p| p.to_string_lossy().contains(".telem-stage"))
        .collect();
    assert!(staged.is_empty(), "left behind: {staged:?}");
}
