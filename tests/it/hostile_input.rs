//! Issue 10 items 6 and 9: passwords, user names and files the stack cannot use are refused
//! up front (exit 2, before anything is read from or done to the host), and a refused password
//! is never shown.

use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_telem-deploy"));
    c.env_remove("TELEM_DB_PASSWORD")
        .env_remove("TELEM_UI_PASSWORD")
        .env("NO_COLOR", "1");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const DRY_INSTALL: [&str; 7] = [
    "-a",
    "install",
    "-d",
    "debian",
    "-H",
    "localhost",
    "--dry-run",
];

/// A password made of the token `Zq6T` and `filler`, so every piece of it is recognisable.
fn token_password(filler: &str) -> String {
    format!("Zq6T{filler}Zq6T")
}

/// Issue 10 item 6: too long, NUL, line breaks and (with --webapp) what uWSGI would expand,
/// for the database and the web UI password, from a file and from the environment.
#[test]
fn passwords_the_stack_cannot_use_exit_2_without_being_shown() {
    let long = token_password(&"Zq6T".repeat(300)); // 1208 bytes
    let cases: Vec<(String, &[&str], &str)> = vec![
        (long.clone(), &[], "bytes long"),
        (token_password("a\0b"), &[], "NUL"),
        (token_password("a\rb"), &[], "line break"),
        (token_password("%(home)"), &["--webapp"], "uWSGI"),
        (token_password("$(HOME)"), &["--webapp"], "uWSGI"),
        (token_password("@(/etc/shadow)"), &["--webapp"], "uWSGI"),
        (
            format!(" {}", token_password("x")),
            &["--webapp"],
            "white space",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    let file_s = file.to_str().unwrap();
    for (pw, extra, why) in &cases {
        std::fs::write(&file, format!("{pw}\n")).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let env_ok = !pw.contains('\0');
        let mut runs: Vec<(&str, Output)> = vec![(
            "--db-password-file",
            bin()
                .args(DRY_INSTALL)
                .args(*extra)
                .args(["--db-password-file", file_s])
                .output()
                .unwrap(),
        )];
        if env_ok {
            runs.push((
                "TELEM_DB_PASSWORD",
                bin()
                    .args(DRY_INSTALL)
                    .args(*extra)
                    .env("TELEM_DB_PASSWORD", pw)
                    .output()
                    .unwrap(),
            ));
        }
        // The web UI password: the uWSGI limits are the database password's only.
        if extra.is_empty() {
            let ui = ["--webapp", "--ui-auth", "admin"];
            runs.push((
                "--ui-password-file",
                bin()
                    .args(DRY_INSTALL)
                    .args(ui)
                    .args(["--ui-password-file", file_s])
                    .output()
                    .unwrap(),
            ));
            if env_ok {
                runs.push((
                    "TELEM_UI_PASSWORD",
                    bin()
                        .args(DRY_INSTALL)
                        .args(ui)
                        .env("TELEM_UI_PASSWORD", pw)
                        .output()
                        .unwrap(),
                ));
            }
        }
        for (how, out) in runs {
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let label = format!("{why} password through {how}");
            assert_eq!(out.status.code(), Some(2), "{label}: {stderr}");
            assert!(stderr.contains(why), "{label}: {stderr}");
            assert!(
                !stdout.contains("Zq6T") && !stderr.contains("Zq6T"),
                "{label}: the password is shown:\n{stdout}\n{stderr}"
            );
            assert!(!stdout.contains("Plan"), "{label}: a plan was printed");
        }
    }
    // At the limit, and with '%' without --webapp, the password is fine.
    let max = "Zq6T".repeat(256);
    for pw in [max.as_str(), "100%-ok"] {
        let out = bin()
            .args(DRY_INSTALL)
            .env("TELEM_DB_PASSWORD", pw)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
}

/// Issue 10 item 9: an error about --ui-password-file names that flag.
#[test]
fn ui_password_file_errors_name_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for (path, what) in [
        (missing.to_str().unwrap(), "No such file"),
        (dir.path().to_str().unwrap(), "not a regular file"),
    ] {
        let out = bin()
            .args(DRY_INSTALL)
            .args(["--ui-auth", "admin", "--ui-password-file", path])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("--ui-password-file {path}")) && err.contains(what),
            "{err}"
        );
        assert!(!err.contains("--db-password-file"), "{err}");
    }
}

/// Issue 10 item 9: --collector-bin must be a regular file of bounded size; /dev/zero would
/// be read until memory runs out.
#[test]
fn collector_bin_must_be_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    for path in ["/dev/zero", "/dev/null", dir.path().to_str().unwrap()] {
        let started = std::time::Instant::now();
        let out = bin()
            .args(DRY_INSTALL)
            .args(["--collector-bin", path])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {err}");
        assert!(
            err.contains(&format!("--collector-bin {path}: not a regular file")),
            "{err}"
        );
        assert!(started.elapsed().as_secs() < 10, "{path}: took too long");
    }
}

/// Issue 10 item 9: a --ui-auth user name must fit nginx's user file and basic auth.
#[test]
fn ui_auth_user_names_with_separators_or_control_characters_are_refused() {
    for user in [
        "a:b",
        ":",
        "a\u{1b}[31m",
        "a\u{7}",
        "tab\tx",
        "nl\nx",
        "a\u{85}b",
        "",
    ] {
        let out = bin()
            .args(DRY_INSTALL)
            .args(["--ui-auth", user])
            .env("TELEM_UI_PASSWORD", "pw")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{user:?}: {err}");
        assert!(err.contains("--ui-auth"), "{user:?}: {err}");
        assert!(
            !err.contains('\u{1b}') && !err.contains('\u{7}'),
            "{user:?}: raw control characters echoed: {err:?}"
        );
    }
    let out = bin()
        .args(DRY_INSTALL)
        .args(["--ui-auth", "admin.ü-1"])
        .env("TELEM_UI_PASSWORD", "pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
