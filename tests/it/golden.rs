//! Golden plans: the JSON plan of every action × distro, against a fresh host and against a
//! host where `install` was applied (on the fake host). Regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test it golden`.

use std::path::{Path, PathBuf};

use telem_deploy::app::{run_cli, Io};
use telem_deploy::cli::Cli;

use crate::fake_host::FakeHost;

pub const PASSWORD: &str = "golden 'pa$$word\" ;ü";
const DISTROS: [&str; 4] = ["clr", "ubuntu", "centos", "debian"];
const ACTIONS: [&str; 6] = [
    "deploy",
    "install",
    "migrate",
    "resetdb",
    "restart",
    "uninstall",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run telem-deploy against the fake host; (exit code, stdout, stderr).
pub fn run(host: &FakeHost, args: &[&str]) -> (u8, String, String) {
    let collector = root().join("tests/fixtures/telem-collector");
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
        match run_cli(cli, host, &mut io) {
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

pub fn password_file() -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "{PASSWORD}").unwrap();
    f
}

/// A host of `distro` after a real `install` (applied to the fake).
pub fn installed(distro: &str) -> FakeHost {
    let host = FakeHost::fresh(distro, matches!(distro, "clr" | "centos"));
    install(&host, distro);
    host
}

/// Apply `install` to the fake host; it must succeed.
pub fn install(host: &FakeHost, distro: &str) {
    install_with(host, distro, &[]);
}

/// Apply `install` with `extra` arguments to the fake host; it must succeed.
pub fn install_with(host: &FakeHost, distro: &str, extra: &[&str]) {
    let pw = password_file();
    let pw = pw.path().to_str().unwrap();
    let mut args = vec![
        "-a",
        "install",
        "-d",
        distro,
        "-H",
        "localhost",
        "--yes",
        "--db-password-file",
        pw,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(host, &args);
    assert_eq!(
        code, 0,
        "install on the fake {distro} host failed:\n{out}\n{err}"
    );
}

fn compare(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .header("golden", "actual")
            .to_string();
        panic!("{name} differs from its golden file (UPDATE_GOLDEN=1 to accept):\n{diff}");
    }
}

fn plan(host: &FakeHost, distro: &str, action: &str) -> (u8, serde_json::Value, String) {
    plan_with(host, distro, action, &[])
}

/// The web UI's options of the golden plans (the fake git answers any repository).
pub const WEBAPP: [&str; 5] = ["--webapp", "-r", "/srv/telemetryui.git", "-s", "release"];

fn plan_with(
    host: &FakeHost,
    distro: &str,
    action: &str,
    extra: &[&str],
) -> (u8, serde_json::Value, String) {
    let before = host.world.borrow().clone();
    let mut args = vec![
        "-a",
        action,
        "-d",
        distro,
        "-H",
        "localhost",
        "--dry-run",
        "--format",
        "json",
        "--detailed-exitcode",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(host, &args);
    assert_eq!(
        *host.world.borrow(),
        before,
        "a dry run of {action} on {distro} changed the host"
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("{distro} {action}: stdout is not one JSON document ({e}):\n{out}\n{err}")
    });
    (code, doc, out)
}

#[test]
fn golden_plans_of_a_fresh_host() {
    for distro in DISTROS {
        for action in ACTIONS {
            let host = FakeHost::fresh(distro, matches!(distro, "clr" | "centos"));
            let (code, doc, out) = plan(&host, distro, action);
            // Nothing was installed: uninstall has nothing to do (no PostgreSQL, no database).
            let pending = if action == "uninstall" { 0 } else { 3 };
            assert_eq!(
                code, pending,
                "{distro} {action}: on a fresh host, changes pending (3) or none (0)"
            );
            assert_eq!(doc["format"], "telem-deploy/plan");
            compare(&format!("{distro}/fresh-{action}.json"), &out);
        }
    }
}

#[test]
fn golden_plans_of_an_installed_host() {
    for distro in DISTROS {
        let host = installed(distro);
        for action in ACTIONS {
            let (_, doc, out) = plan(&host, distro, action);
            compare(&format!("{distro}/installed-{action}.json"), &out);
            if action == "install" || action == "deploy" || action == "migrate" {
                let s = &doc["summary"];
                assert_eq!(
                    (
                        s["change"].as_u64(),
                        s["unknown"].as_u64(),
                        s["blocked"].as_u64()
                    ),
                    (Some(0), Some(0), Some(0)),
                    "{distro}: {action} right after install must change nothing:\n{out}"
                );
            }
        }
    }
}

#[test]
fn a_second_install_changes_nothing_and_reports_it() {
    for distro in DISTROS {
        let host = installed(distro);
        let (code, _, _) = plan(&host, distro, "install");
        assert_eq!(
            code, 0,
            "{distro}: --detailed-exitcode is 0 when nothing would change"
        );
        let pw = password_file();
        host.log.borrow_mut().clear();
        let (code, out, err) = run(
            &host,
            &[
                "-a",
                "install",
                "-d",
                distro,
                "-H",
                "localhost",
                "--yes",
                "--db-password-file",
                pw.path().to_str().unwrap(),
                "--format",
                "json",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["summary"]["changed"], 0, "{out}");
        let mutating: Vec<String> = host
            .log
            .borrow()
            .iter()
            .filter(|c| {
                c.contains("install -y") || c.contains("bundle-add") || c.contains("useradd")
            })
            .cloned()
            .collect();
        assert!(
            mutating.is_empty(),
            "{distro}: a converged re-run ran {mutating:?}"
        );
    }
}

#[test]
fn plans_never_contain_the_password() {
    for distro in DISTROS {
        let host = installed(distro);
        for action in ACTIONS {
            for format in ["json", "human"] {
                let (_, out, err) = run(
                    &host,
                    &[
                        "-a",
                        action,
                        "-d",
                        distro,
                        "-H",
                        "localhost",
                        "--dry-run",
                        "--format",
                        format,
                    ],
                );
                assert!(
                    !out.contains(PASSWORD) && !err.contains(PASSWORD),
                    "{distro} {action} {format} leaked the password"
                );
                assert!(
                    !out.contains("pa$$word"),
                    "{distro} {action} {format} leaked part of the password"
                );
            }
        }
        let w = host.world.borrow();
        let config =
            String::from_utf8_lossy(&w.files[Path::new("/etc/telemetry/collector.toml")].content)
                .into_owned();
        let parsed: toml::Table = toml::from_str(&config).unwrap();
        assert_eq!(
            parsed["database_password"].as_str(),
            Some(PASSWORD),
            "the config holds the password intact"
        );
        assert_eq!(
            w.files[Path::new("/etc/telemetry/collector.toml")].mode,
            0o640
        );
    }
}

/// Issue 7: plans with the legacy web UI (--webapp) for debian (direct) and clr (systemd),
/// on a fresh host and on one where `install --webapp` was applied.
#[test]
fn golden_webapp_plans() {
    for distro in ["debian", "clr"] {
        let fresh = FakeHost::fresh(distro, distro == "clr");
        for action in ["install", "deploy"] {
            let (code, _, out) = plan_with(&fresh, distro, action, &WEBAPP);
            assert_eq!(code, 3, "{distro} {action} --webapp: changes pending");
            compare(&format!("{distro}/webapp-fresh-{action}.json"), &out);
        }
        let host = FakeHost::fresh(distro, distro == "clr");
        install_with(&host, distro, &WEBAPP);
        for action in ACTIONS {
            let (_, doc, out) = plan_with(&host, distro, action, &WEBAPP);
            compare(&format!("{distro}/webapp-installed-{action}.json"), &out);
            if action == "install" || action == "deploy" {
                let s = &doc["summary"];
                assert_eq!(
                    (s["change"].as_u64(), s["unknown"].as_u64()),
                    (Some(0), Some(0)),
                    "{distro}: {action} --webapp right after install --webapp must change nothing:\n{out}"
                );
            }
            for format in ["json", "human"] {
                let mut args = vec!["-a", action, "-d", distro, "-H", "localhost"];
                args.extend_from_slice(&["--dry-run", "--format", format]);
                args.extend_from_slice(&WEBAPP);
                let (_, out, err) = run(&host, &args);
                assert!(
                    !out.contains("pa$$word") && !err.contains("pa$$word"),
                    "{distro} {action} --webapp {format} leaked the password"
                );
            }
        }
        let w = host.world.borrow();
        let vassal = &w.files[Path::new("/etc/uwsgi/vassals/telemetryui.ini")];
        assert_eq!(vassal.mode, 0o640, "the vassal holds the password");
        assert!(String::from_utf8_lossy(&vassal.content)
            .contains(&format!("env = POSTGRES_PASSWORD={PASSWORD}\n")));
    }
}
