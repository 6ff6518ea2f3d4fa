//! The collector binary is the controller's (`controller::Bundle`): on the target it is
//! checked with one `host::upload::inspect` (SHA-256 computed there, the installed binary
//! never read back), installed with `host::upload::upload`, refused before anything changes
//! when built for another machine; uninstall compares its path with the controller's only
//! when the target is this machine. Notes of the engine (a warning, a backup) reach the
//! report and the progress on stderr (fake host).

use std::path::Path;

use telem_deploy::app::{run_cli, Io};
use telem_deploy::cli::Cli;

use crate::fake_host::FakeHost;
use crate::golden::{install, password_file, run, PASSWORD};

const BIN: &str = "/usr/local/bin/telem-collector";
const STEP: &str = "Install the collector binary";

/// Run with exactly these arguments (no `--collector-bin` added); (code, stdout, stderr).
fn run_args(host: &FakeHost, args: &[&str]) -> (u8, String, String) {
    let argv = std::iter::once("telem-deploy").chain(args.iter().copied());
    let cli = Cli::try_parse_args(argv).expect("valid arguments");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = match run_cli(
        cli,
        host,
        &mut Io {
            out: &mut out,
            err: &mut err,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            err.extend_from_slice(format!("error: {e}\n").as_bytes());
            e.exit_code()
        }
    };
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn dry_install(host: &FakeHost) -> serde_json::Value {
    let args = [
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--dry-run",
        "--format",
        "json",
    ];
    let (code, out, err) = run(host, &args);
    assert!(code == 0 || code == 3, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

fn step<'d>(doc: &'d serde_json::Value, name: &str) -> &'d serde_json::Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {doc}"))
}

fn fixture() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/telem-collector"))
        .unwrap()
}

/// Host calls that name the collector binary's path.
fn calls_on_bin(host: &FakeHost) -> Vec<String> {
    let runs = host.log.borrow();
    let looked = host.looked_at.borrow();
    runs.iter()
        .chain(looked.iter())
        .filter(|c| c.contains(BIN))
        .cloned()
        .collect()
}

fn installed_debian() -> FakeHost {
    let host = FakeHost::fresh("debian", false);
    install(&host, "debian");
    host
}

#[test]
fn an_unchanged_collector_is_one_inspect_and_never_read_back() {
    let host = installed_debian();
    host.log.borrow_mut().clear();
    host.looked_at.borrow_mut().clear();
    let doc = dry_install(&host);
    let s = step(&doc, STEP);
    assert_eq!(s["status"], "ok", "{s}");
    assert_eq!(s["changes"][0], format!("{BIN} is up to date"));
    // Its one round trip; the other calls naming the path are the migrate step's (`stat`,
    // `migrate --check`).
    let calls = calls_on_bin(&host);
    let inspects = calls.iter().filter(|c| c.contains("sha256sum")).count();
    assert_eq!(inspects, 1, "{calls:?}");
    assert!(
        !calls.contains(&format!("read {BIN}")),
        "the installed binary is never read back: {calls:?}"
    );
    let unames = host
        .log
        .borrow()
        .iter()
        .filter(|c| *c == "uname -m")
        .count();
    assert_eq!(unames, 1, "the machine is asked once per run");
}

#[test]
fn a_changed_collector_is_a_change_and_is_uploaded() {
    let host = installed_debian();
    let old = b"an older collector\n".to_vec();
    {
        let mut w = host.world.borrow_mut();
        let node = w.files.get_mut(Path::new(BIN)).unwrap();
        node.content = old.clone();
        node.mode = 0o644;
    }
    let doc = dry_install(&host);
    let s = step(&doc, STEP);
    assert_eq!(s["status"], "change", "{s}");
    assert_eq!(
        s["changes"],
        serde_json::json!([
            format!("update {BIN}"),
            format!("binary differs ({} → {} bytes)", old.len(), fixture().len()),
            "mode 0644 → 0755",
        ])
    );
    assert!(s.get("diff").is_none(), "no diff of a binary: {s}");
    // Only the mode differs: a change of the mode, no update.
    host.world
        .borrow_mut()
        .files
        .get_mut(Path::new(BIN))
        .unwrap()
        .content = fixture();
    let s = step(&dry_install(&host), STEP).clone();
    assert_eq!(s["changes"], serde_json::json!(["mode 0644 → 0755"]), "{s}");
    // Applying puts the bundle's bytes and mode in place; the next check is ok.
    host.world
        .borrow_mut()
        .files
        .get_mut(Path::new(BIN))
        .unwrap()
        .content = old;
    install(&host, "debian");
    let node = host.world.borrow().files[Path::new(BIN)].clone();
    assert_eq!((node.content, node.mode), (fixture(), 0o755));
    assert_eq!(step(&dry_install(&host), STEP)["status"], "ok");
}

/// The first 20 bytes of an x86-64 ELF executable's header (all `host::elf` reads).
fn x86_64_elf() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    (h[4], h[5], h[6]) = (2, 1, 1); // 64-bit, little endian, version 1
    h[16] = 2; // ET_EXEC
    h[18] = 62; // EM_X86_64
    h
}

#[test]
fn a_collector_for_another_machine_is_refused_before_anything_changes() {
    let host = FakeHost::fresh("debian", false);
    host.world.borrow_mut().machine = "aarch64".into();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("telem-collector");
    std::fs::write(&bin, x86_64_elf()).unwrap();
    let bin = bin.to_str().unwrap();
    let want = format!(
        "the bundled collector {bin} is built for x86_64 but the machine is aarch64 (`uname -m`): \
         build the collector for aarch64"
    );
    // The plan shows the step blocked, with both architectures.
    let (_, out, err) = run_args(
        &host,
        &[
            "--collector-bin",
            bin,
            "-a",
            "install",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    let s = step(&doc, STEP);
    assert_eq!(s["status"], "blocked", "{s}");
    assert!(s["changes"][0].as_str().unwrap().contains(&want), "{s}");
    // Applying fails before the first step changed anything.
    let before = host.world.borrow().clone();
    let pw = password_file();
    let (code, out, err) = run_args(
        &host,
        &[
            "--collector-bin",
            bin,
            "-a",
            "install",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--yes",
            "--db-password-file",
            pw.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&want), "{err}");
    assert_eq!(*host.world.borrow(), before, "nothing was changed");
    assert!(
        host.log.borrow().iter().all(|c| !c.contains("install -y")),
        "no package was installed"
    );
}

#[test]
fn uninstall_on_a_remote_host_never_compares_local_paths() {
    let host = installed_debian();
    host.local.set(false);
    // The same path on the controller as on the target: on a remote target they are two
    // different files, so the target's is removed like any other it created.
    let args = [
        "--collector-bin",
        BIN,
        "-a",
        "uninstall",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--yes",
        "--no-backup",
    ];
    let (code, plan, err) = run_args(&host, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{plan}{err}");
    assert!(plan.contains(&format!("remove {BIN}")), "{plan}");
    assert!(!plan.contains("installs from"), "{plan}");
    let (code, out, err) = run_args(&host, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!host.exists(BIN), "the target's collector is removed");
}

/// What a failing `apt-get update` leaves in the JSON result: a note on the packages step.
fn install_with_a_failing_refresh(format: &str) -> (u8, String, String) {
    let host = FakeHost::fresh("debian", false);
    host.world.borrow_mut().refresh_fails = true;
    let pw = password_file();
    run(
        &host,
        &[
            "-a",
            "install",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--yes",
            "--db-password-file",
            pw.path().to_str().unwrap(),
            "--format",
            format,
        ],
    )
}

const WARNING: &str = "warning: `DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update` failed; installing from the current package lists";

#[test]
fn notes_are_in_the_json_result() {
    let (code, out, err) = install_with_a_failing_refresh("json");
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let noted: Vec<&serde_json::Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("notes").is_some())
        .collect();
    assert_eq!(noted.len(), 1, "{out}");
    assert_eq!(noted[0]["kind"], "packages");
    assert_eq!(noted[0]["notes"], serde_json::json!([WARNING]));
    assert!(!out.contains(PASSWORD));
}

/// The progress goes to the run's stderr (`Io.err`), each note under its step.
#[test]
fn notes_are_shown_under_their_step_while_applying() {
    let (code, out, stderr) = install_with_a_failing_refresh("human");
    assert_eq!(code, 0, "{out}{stderr}");
    let line = |what: &str| {
        stderr
            .lines()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} on stderr:\n{stderr}"))
    };
    let (step, note, next) = (
        line("Install nginx and PostgreSQL"),
        line(WARNING),
        line("Look for an installation of the old deploy.sh"),
    );
    assert!(
        step < note && note < next,
        "the note is shown under its step:\n{stderr}"
    );
}
