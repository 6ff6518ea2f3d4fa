//! Recipe values are compiled after expansion: a templated mode, snapshot type or validator
//! that expands to garbage is refused with its path before anything runs (it used to fall back
//! silently: any type but `tarball` meant git), and one that expands to a valid value is used.

use std::path::{Path, PathBuf};

use crate::cli::{dry_run_with_recipes, recipes_copy, text};
use crate::fake_host::FakeHost;
use crate::golden::run;

/// Edit `<name>.yaml` of `dir` (a distro's file or `shared`); every replacement must apply.
fn edit(dir: &Path, name: &str, replacements: &[(&str, &str)]) -> PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    let mut src = std::fs::read_to_string(&file).unwrap();
    for (from, to) in replacements {
        assert!(src.contains(from), "{from:?} not in {}", file.display());
        src = src.replacen(from, to, 1);
    }
    std::fs::write(&file, src).unwrap();
    file
}

#[test]
fn templated_values_that_expand_to_garbage_are_refused_with_their_path() {
    let dir = recipes_copy();
    // The steps are written in the shared file that debian.yaml builds on.
    let file = edit(
        dir.path(),
        "shared",
        &[
            // -t is git: "gitball" is neither (it used to be cloned as git).
            (
                "type: \"{{ source_type }}\"",
                "type: \"{{ source_type }}ball\"",
            ),
            (
                "group: \"{{ collector.group }}\", mode: \"0750\"",
                "group: \"{{ collector.group }}\", mode: \"{{ distro }}\"",
            ),
            ("validate: nginx,", "validate: \"{{ distro }}\","),
        ],
    );
    let out = dry_run_with_recipes(&dir, "debian");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let f = file.display();
    for (kind, problem) in [
        ("snapshot.type", "`gitball` is not git or tarball"),
        (
            "directory.mode",
            "`debian` is not an octal mode like \"0644\"",
        ),
        (
            "file.validate",
            "unknown validator `debian`, expected nginx",
        ),
    ] {
        let found = err.lines().any(|l| {
            // `error: FILE: actions.install[I].KIND (step install[J]): PROBLEM`
            l.starts_with(&format!("error: {f}: actions.install["))
                && l.contains(&format!("].{kind} (step install["))
                && l.ends_with(&format!("]): {problem}"))
        });
        assert!(found, "want {kind}: {problem} with its path in:\n{err}");
    }
}

#[test]
fn a_file_with_two_sources_or_a_wrong_distro_is_refused() {
    let dir = recipes_copy();
    let file = edit(
        dir.path(),
        "shared",
        &[(
            "template: nginx.conf.tera,",
            "template: nginx.conf.tera, collector_binary: true,",
        )],
    );
    let out = dry_run_with_recipes(&dir, "ubuntu");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("error: {}: actions.install[", file.display()))
            && err.contains("].file (step install[")
            && err.contains(
                "]): needs exactly one of `template`, `copy_from`, `collector_binary: true`"
            ),
        "{err}"
    );

    // The collector binary is compared by its SHA-256 on the host: no backup copy, no
    // config test.
    let dir = recipes_copy();
    edit(
        dir.path(),
        "shared",
        &[(
            "collector_binary: true, mode: \"0755\"",
            "collector_binary: true, backup: true, mode: \"0755\"",
        )],
    );
    let out = dry_run_with_recipes(&dir, "ubuntu");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`backup` and `validate` are for config files, not `collector_binary: true`"),
        "{err}"
    );

    // A distro that is none is a schema error, with its line and column.
    let file = edit(dir.path(), "clr", &[("distro: clr", "distro: clear")]);
    let out = dry_run_with_recipes(&dir, "clr");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("error: {}:", file.display()))
            && err.contains("distro: unknown variant `clear`, expected one of"),
        "{err}"
    );
    // Another distro's name: the recipe is for the wrong one.
    edit(dir.path(), "clr", &[("distro: clear", "distro: debian")]);
    let err = text(&dry_run_with_recipes(&dir, "clr").stderr);
    assert!(
        err.contains("distro: says `debian` but this is the recipe for `clr`"),
        "{err}"
    );
}

#[test]
fn a_templated_mode_is_used_once_expanded() {
    let dir = recipes_copy();
    edit(
        dir.path(),
        "shared",
        &[(
            "group: \"{{ collector.group }}\", mode: \"0750\"",
            "group: \"{{ collector.group }}\", mode: \"{{ '07' ~ '11' }}\"",
        )],
    );
    let host = FakeHost::fresh("debian", true);
    let recipes = dir.path().to_str().unwrap();
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
            "--recipes",
            recipes,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("create /etc/telemetry (root:telem-collector 0711)"),
        "{out}"
    );
}
