//! The real binary: flags, help, exit codes, JSON on stdout, recipe errors with file:line:col.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_telem-deploy"));
    c.env_remove("TELEM_DB_PASSWORD").env("NO_COLOR", "1");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("telem-deploy runs")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A dry run (of the default action) with the recipes of `dir`.
pub(crate) fn dry_run_with_recipes(dir: &tempfile::TempDir, distro: &str) -> Output {
    run(&[
        "-d",
        distro,
        "-H",
        "localhost",
        "--dry-run",
        "--recipes",
        dir.path().to_str().unwrap(),
    ])
}

/// A copy of the built-in recipes to break (the distros' files and the shared one).
pub(crate) fn recipes_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["clr", "ubuntu", "centos", "debian", "shared"] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("recipes/{d}.yaml"));
        std::fs::copy(src, dir.path().join(format!("{d}.yaml"))).unwrap();
    }
    dir
}

/// Replace the first `from` of `dir`'s `file` by `to`; the file's text after the change.
fn break_recipe(dir: &tempfile::TempDir, file: &str, from: &str, to: &str) -> String {
    let path = dir.path().join(file);
    let src = std::fs::read_to_string(&path).unwrap();
    assert!(src.contains(from), "{from:?} in {file}");
    let broken = src.replacen(from, to, 1);
    std::fs::write(&path, &broken).unwrap();
    broken
}

#[test]
fn bad_flag_values_exit_2_naming_the_flag_and_the_choices() {
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["-a", "bogus", "-H", "localhost"],
            &["'--action <ACTION>'", "deploy", "install", "uninstall"],
        ),
        (
            &["-d", "arch", "-H", "localhost"],
            &["'--distro <DISTRO>'", "clr", "ubuntu", "centos", "debian"],
        ),
        (
            &["-t", "zip", "-H", "localhost"],
            &["'--type <SOURCE_TYPE>'", "git", "tarball"],
        ),
        (
            &["--format", "yaml", "-H", "localhost"],
            &["--format", "human", "json"],
        ),
        (&["-a", "install"], &["--host <DOMAIN>"]),
    ];
    for (args, needles) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        for n in needles {
            assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
        }
        assert!(err.contains("Usage:"), "{args:?}: no usage:\n{err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_domain_nginx_would_reject_is_a_usage_error() {
    for bad in ["bad;host", "a b", "x}"] {
        let out = run(&["-H", bad, "--dry-run"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            text(&out.stderr).contains("-H <DOMAIN>"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn help_never_shows_the_password_from_the_environment() {
    let out = bin()
        .arg("--help")
        .env("TELEM_DB_PASSWORD", "s3cret-in-env")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("TELEM_DB_PASSWORD"),
        "help documents the variable"
    );
    assert!(help.contains("--dry-run") && help.contains("--db-password-file"));
    assert!(!help.contains("s3cret-in-env"));
}

#[test]
fn completions_need_no_host() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("telem-deploy"));
    }
}

#[test]
fn json_dry_run_prints_exactly_one_document_and_the_summary_on_stderr() {
    let out = run(&[
        "-a",
        "install",
        "-d",
        "centos",
        "-H",
        "localhost",
        "--dry-run",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["format"], "telem-deploy/plan");
    assert_eq!(doc["version"], 1);
    let err = text(&out.stderr);
    for line in [
        "Options:",
        "  host: localhost",
        "  distro: centos",
        "  action: install",
        "  repo: https://github.com/clearlinux/telemetrics-backend",
        "  source: master",
        "  type: git",
    ] {
        assert!(err.contains(line), "summary lacks {line:?}:\n{err}");
    }
    let all = out.stdout.iter().map(|b| *b as char).collect::<String>();
    assert!(
        all.contains("postgresql-setup") && all.contains("yum install -y"),
        "the centos plan names yum and postgresql-setup"
    );
}

#[test]
fn human_dry_run_prints_the_summary_then_the_plan() {
    let out = run(&["-a", "install", "-d", "clr", "-H", "localhost", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.starts_with("Options:\n  host: localhost\n  distro: clr\n  action: install\n"),
        "{plan}"
    );
    assert!(plan.contains("swupd bundle-add nginx postgresql"), "{plan}");
    assert!(plan.contains("Nothing was changed (dry run)."), "{plan}");
}

#[test]
fn detailed_exitcode_needs_dry_run() {
    let out = run(&["-H", "localhost", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--detailed-exitcode only applies with --dry-run"));
}

#[test]
fn destructive_actions_without_a_terminal_or_yes_change_nothing() {
    for action in ["resetdb", "uninstall"] {
        let out = run(&["-a", action, "-d", "debian", "-H", "localhost"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{action}: {}",
            text(&out.stderr)
        );
        // On a machine telem-deploy never installed (this one, as a rule), resetdb is refused
        // before it would be confirmed (not_installed.rs): exit 2 too, nothing changed.
        let err = text(&out.stderr);
        assert!(
            err.contains("pass --yes to confirm")
                || action == "resetdb"
                    && err.contains("; run -a install first; nothing was changed"),
            "{err}"
        );
    }
}

#[test]
fn a_missing_password_file_is_a_usage_error() {
    let out = run(&[
        "-a",
        "install",
        "-H",
        "localhost",
        "--dry-run",
        "--db-password-file",
        "/nonexistent/pw",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--db-password-file /nonexistent/pw"));
}

#[test]
fn a_world_readable_password_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "pw\n").unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&[
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--dry-run",
        "--db-password-file",
        f.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is readable by every user"));
}

#[test]
fn a_corrupted_recipe_reports_file_line_column_and_the_line() {
    let dir = recipes_copy();
    let file = dir.path().join("debian.yaml");
    let src = std::fs::read_to_string(&file).unwrap().replace(
        "      packages: { set: base }\n",
        "      pakages: { set: base }\n",
    );
    std::fs::write(&file, &src).unwrap();
    let line = src.lines().position(|l| l.contains("pakages")).unwrap() + 1;
    let out = run(&[
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--dry-run",
        "--recipes",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let expected = format!(
        "error: {}:{line}:7: slots.prepare[0]: unknown field `pakages`, expected one of",
        file.display()
    );
    assert!(err.contains(&expected), "want {expected:?} in:\n{err}");
    assert!(
        err.contains(&format!("{line} |       pakages: {{ set: base }}")),
        "{err}"
    );
    assert!(err.contains("  |       ^"), "caret under column 7:\n{err}");
}

#[test]
fn every_semantic_problem_of_a_recipe_is_reported_at_once() {
    let dir = recipes_copy();
    // One in Ubuntu's own file, two in the Debian file it builds on, one in the shared file;
    // a step that two actions use is reported for each.
    break_recipe(
        &dir,
        "ubuntu.yaml",
        "packages: { set: webapp }",
        "packages: { set: basics }",
    );
    break_recipe(&dir, "debian.yaml", "mode: \"0755\"", "mode: \"rwx\"");
    break_recipe(&dir, "debian.yaml", "slots:\n", "slots:\n  unused: []\n");
    break_recipe(
        &dir,
        "shared.yaml",
        "service: { name: nginx, state: running, enabled: true }",
        "service: { name: apache, state: running }",
    );
    let out = dry_run_with_recipes(&dir, "ubuntu");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let (ubuntu, debian, shared) = (
        dir.path().join("ubuntu.yaml"),
        dir.path().join("debian.yaml"),
        dir.path().join("shared.yaml"),
    );
    let (u, d, s) = (ubuntu.display(), debian.display(), shared.display());
    for want in [
        format!("error: {d}: slots.unused: no action uses this slot"),
        format!("error: {u}: slots.webapp_packages[1].packages.set (step install[46]): unknown package set `basics`"),
        // A step written once and used by two actions is reported where each uses it.
        format!("error: {u}: slots.deploy_webapp_packages[1].packages.set (step deploy[29]): unknown package set `basics`"),
        format!("error: {s}: actions.install[32].service.name (step install[43]): unknown service `apache`"),
        format!("error: {s}: actions.deploy[26].service.name: unknown service `apache`"),
        format!("error: {s}: actions.balance[1].service.name: unknown service `apache`"),
        format!("error: {d}: slots.webapp_services[0].directory.mode (step install[55]): `rwx` is not an octal mode"),
        format!("8 problems in {u}"),
    ] {
        assert!(err.contains(&want), "want {want:?} in:\n{err}");
    }
}

#[test]
fn a_problem_of_the_schema_names_the_file_line_and_column_shared_or_distro() {
    let dir = recipes_copy();
    let src = break_recipe(
        &dir,
        "shared.yaml",
        "  backup_dir: /var",
        "  backup_dri: /var",
    );
    let line = src.lines().position(|l| l.contains("backup_dri")).unwrap() + 1;
    let out = dry_run_with_recipes(&dir, "centos");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let want = format!(
        "error: {}:{line}:3: database: unknown field `backup_dri`",
        dir.path().join("shared.yaml").display()
    );
    assert!(err.contains(&want), "want {want:?} in:\n{err}");
    assert!(
        err.contains(&format!("{line} |   backup_dri: /var")),
        "{err}"
    );

    let dir = recipes_copy();
    let src = break_recipe(
        &dir,
        "ubuntu.yaml",
        "      when: [webapp]\n      command:",
        "      when: [webapp]\n      comand:",
    );
    let line = src.lines().position(|l| l.contains("comand:")).unwrap() + 1;
    let out = dry_run_with_recipes(&dir, "ubuntu");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let want = format!(
        "error: {}:{line}:7: slots.webapp_packages[0]: unknown field `comand`",
        dir.path().join("ubuntu.yaml").display()
    );
    assert!(err.contains(&want), "want {want:?} in:\n{err}");
}

#[test]
fn slots_are_declared_and_a_recipe_builds_on_files_of_its_own_directory() {
    let dir = recipes_copy();
    break_recipe(
        &dir,
        "shared.yaml",
        "    - slot: firewall\n",
        "    - slot: firewalls\n",
    );
    let out = dry_run_with_recipes(&dir, "clr");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let s = dir.path().join("shared.yaml");
    for want in [
        format!("error: {}: actions.install[31].slot: unknown slot `firewalls` (declare it under `slots`;", s.display()),
        format!("error: {}: slots.firewall: no action uses this slot", s.display()),
    ] {
        assert!(err.contains(&want), "want {want:?} in:\n{err}");
    }

    // --recipes DIR: the files a recipe builds on come from DIR too, never from the built-in ones.
    let dir = recipes_copy();
    std::fs::remove_file(dir.path().join("shared.yaml")).unwrap();
    let out = dry_run_with_recipes(&dir, "debian");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "error: {}: (file): cannot read",
            dir.path().join("shared.yaml").display()
        )),
        "{err}"
    );
    break_recipe(&dir, "debian.yaml", "base: shared", "base: ../shared");
    let out = dry_run_with_recipes(&dir, "debian");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("base: `../shared`: a file name without"),
        "{}",
        text(&out.stderr)
    );
    break_recipe(&dir, "debian.yaml", "base: ../shared", "base: ubuntu");
    let out = dry_run_with_recipes(&dir, "debian");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("base: `debian`: builds on itself"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_undefined_variable_in_a_recipe_names_its_path() {
    let dir = recipes_copy();
    break_recipe(
        &dir,
        "shared.yaml",
        "{{ collector.config_dir }}",
        "{{ collector.confdir }}",
    );
    let out = dry_run_with_recipes(&dir, "clr");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    // Where it is written (the shared file), and where the run uses it (clr's install[30]).
    let want = format!(
        "error: {}: actions.install[16].directory.path (step install[30]): ",
        dir.path().join("shared.yaml").display()
    );
    assert!(
        err.contains(&want) && err.contains("collector.confdir"),
        "want {want:?} in:\n{err}"
    );
}

#[test]
fn a_recipe_that_is_not_utf8_or_is_a_directory_is_refused() {
    let dir = recipes_copy();
    std::fs::write(
        dir.path().join("debian.yaml"),
        b"distro: debian\n\xff\xfe\n",
    )
    .unwrap();
    let out = dry_run_with_recipes(&dir, "debian");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not valid UTF-8 (line 2)"),
        "{}",
        text(&out.stderr)
    );

    std::fs::remove_file(dir.path().join("centos.yaml")).unwrap();
    std::fs::create_dir(dir.path().join("centos.yaml")).unwrap();
    let out = dry_run_with_recipes(&dir, "centos");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is a directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn json_output_is_one_document_even_when_the_options_are_refused() {
    // Refused while resolving the options (before the recipe, the plan or any step).
    let out = run(&["-H", "bad host", "--dry-run", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["format"], "telem-deploy/error");
    assert_eq!(doc["error"]["exit_code"], 2);
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("'-H <DOMAIN>'"), "{message}");
    assert!(text(&out.stderr).contains("error: invalid value 'bad host'"));
}
