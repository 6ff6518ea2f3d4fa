//! The man pages and shell completions the Debian package ships (`doc/`), generated from the
//! real clap definitions of both binaries. They are committed so that `cargo deb` needs nothing
//! but a build; this test fails when a flag changes and they were not regenerated
//! (`UPDATE_GOLDEN=1 cargo test --test it docs`).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn man_page(cmd: clap::Command) -> Vec<u8> {
    let extra = match cmd.get_name() {
        "telem-deploy" => DEPLOY_SECTIONS,
        _ => COLLECTOR_SECTIONS,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("render a man page");
    out.extend_from_slice(extra.as_bytes());
    out
}

/// Sections clap does not know about, appended in roff.
const DEPLOY_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
0
success (with \fB\-\-dry\-run \-\-detailed\-exitcode\fR: nothing would change)
.TP
1
a step failed; the report names the step, the command and the tail of its stderr; a re\-run converges
.TP
2
usage, recipe or template error, or a destructive action not confirmed
.TP
3
changes pending (\fB\-\-dry\-run \-\-detailed\-exitcode\fR)
.SH ENVIRONMENT
.TP
TELEM_DB_PASSWORD
the database password (after \fB\-\-db\-password\-file\fR and \fB\-\-db\-password\-stdin\fR); removed from every child's environment
.TP
TELEM_UI_PASSWORD
the web UI password for \fB\-\-ui\-auth\fR; removed from every child's environment
.TP
TELEM_DEPLOY_YES
as \fB\-\-yes\fR
.TP
NO_COLOR
no colour with \fB\-\-color auto\fR
.SH FILES
.TP
/var/lib/telem\-deploy/state.json
what the tool installed, created and set aside, and the restarts it owes
.TP
/etc/telemetry/collector.toml
the collector's configuration (holds the database password)
.TP
/usr/share/doc/telem\-deploy/recipes, /usr/share/doc/telem\-deploy/templates
copies of the built\-in recipes and templates (the binary embeds them; \fB\-\-recipes\fR and \fB\-\-templates\fR take a directory of your own)
.SH "SEE ALSO"
\fBtelem\-collector\fR(1)
"#;

const COLLECTOR_SECTIONS: &str = r#".SH FILES
.TP
/etc/telemetry/collector.toml
the default configuration file (\fB\-\-config\fR)
.SH "SEE ALSO"
\fBtelem\-deploy\fR(1)
"#;

fn completion(mut cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// (path under doc/, generated content) of everything the package ships from the CLIs.
fn generated() -> Vec<(String, Vec<u8>)> {
    let deploy = telem_deploy::cli::Cli::command;
    let collector = telem_collector::cli::Cli::command;
    let mut files = vec![
        ("man/telem-deploy.1".to_owned(), man_page(deploy())),
        ("man/telem-collector.1".to_owned(), man_page(collector())),
    ];
    for (name, cmd) in [
        ("telem-deploy", deploy as fn() -> clap::Command),
        ("telem-collector", collector),
    ] {
        files.push((
            format!("completions/{name}.bash"),
            completion(cmd(), Shell::Bash),
        ));
        files.push((
            format!("completions/_{name}"),
            completion(cmd(), Shell::Zsh),
        ));
        files.push((
            format!("completions/{name}.fish"),
            completion(cmd(), Shell::Fish),
        ));
    }
    files
}

#[test]
fn shipped_man_pages_and_completions_match_the_cli() {
    let doc = root().join("doc");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (rel, content) in generated() {
        let path = doc.join(&rel);
        if update {
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir doc/");
            std::fs::write(&path, &content).expect("write a generated file");
            continue;
        }
        if std::fs::read(&path).ok().as_deref() != Some(&content[..]) {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "doc/ is out of date with the CLI (run UPDATE_GOLDEN=1 cargo test --test it docs): {stale:?}"
    );
}

#[test]
fn man_pages_name_every_flag() {
    let page = String::from_utf8(man_page(telem_deploy::cli::Cli::command())).expect("utf-8");
    for arg in telem_deploy::cli::Cli::command().get_arguments() {
        if arg.is_hide_set() {
            continue;
        }
        if let Some(long) = arg.get_long() {
            // roff escapes the dashes of a long flag.
            assert!(
                page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                "the man page lacks --{long}"
            );
        }
    }
}

/// The package's assets (Cargo.toml's `[package.metadata.deb]`) name files that exist.
#[test]
fn package_assets_exist() {
    let manifest: toml::Value = std::fs::read_to_string(root().join("Cargo.toml"))
        .expect("read Cargo.toml")
        .parse()
        .expect("Cargo.toml parses");
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets");
    let mut missing = Vec::new();
    for asset in assets {
        let source = asset[0].as_str().expect("asset source");
        if source.starts_with("target/") {
            continue; // built by cargo
        }
        let matches = glob_count(&root(), source);
        if matches == 0 {
            missing.push(source.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "package assets without files: {missing:?}"
    );
}

/// Files matching `pattern` (a path whose last component may be `*` or `*.ext`).
fn glob_count(root: &Path, pattern: &str) -> usize {
    let path = root.join(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name.strip_prefix('*') {
        Some(suffix) => std::fs::read_dir(path.parent().expect("a parent"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                    .count()
            })
            .unwrap_or(0),
        None => usize::from(path.is_file()),
    }
}

/// `telem-deploy --version` names the collector it ships: the binary built beside it.
#[test]
fn version_names_the_shipped_collector() {
    let deploy = PathBuf::from(env!("CARGO_BIN_EXE_telem-deploy"));
    let collector = deploy.with_file_name("telem-collector");
    let version = |bin: &Path| {
        let out = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("run {} --version: {e}", bin.display()));
        assert!(out.status.success(), "{} --version failed", bin.display());
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    };
    let shipped = version(&collector); // "telem-collector X.Y.Z"
    let shipped = shipped
        .strip_prefix("telem-collector ")
        .unwrap_or_else(|| panic!("unexpected collector version line {shipped:?}"));
    let own = version(&deploy);
    assert!(
        own.ends_with(&format!("(ships telem-collector {shipped})")),
        "telem-deploy --version ({own:?}) does not name the collector it ships ({shipped})"
    );
}
