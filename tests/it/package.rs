//! Issue 17 item 1: the Debian package (`scripts/package.sh`, cargo-deb) on a fresh Debian root,
//! as an operator uses it: `apt-get install ./telem-deploy_*.deb` (with man-db and
//! bash-completion, which a minimal root lacks, fetched through the sandbox's apt relay), the man
//! page renders, bash loads the completions, `telem-deploy -a install` works from /usr/bin, and
//! `apt-get remove telem-deploy` leaves the installed backend serving (the tool's removal is not
//! the backend's uninstall).
//!
//! The package is built by `scripts/package.sh` (scripts/test.sh builds it with the CI profile
//! before the tests run); without one the test says so and skips, unless TELEM_E2E_REQUIRED=1.

use crate::e2e_support::*;
use crate::sandbox::{Options, Sandbox};
use std::path::PathBuf;

/// The newest `target/debian/telem-deploy_*.deb` (or `$TELEM_DEB`).
fn package() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TELEM_DEB") {
        return Ok(PathBuf::from(p));
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let newest = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("telem-deploy_") && n.ends_with(".deb")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    newest
        .map(|e| e.path())
        .ok_or_else(|| format!("no telem-deploy_*.deb in {}", dir.display()))
}

#[test]
fn debian_package_installs_documents_and_leaves_the_backend_on_removal() {
    let required = std::env::var("TELEM_E2E_REQUIRED").as_deref() == Ok("1");
    let deb = match package().and_then(|p| Sandbox::available().map(|()| p)) {
        Ok(p) => p,
        Err(why) if required => panic!("TELEM_E2E_REQUIRED=1 but: {why} (run scripts/package.sh)"),
        Err(why) => return eprintln!("skipped: {why} (run scripts/package.sh)"),
    };
    let mut rep = Report::new("debian_package");
    let sb = rep.time("start sandbox (apt relay)", || {
        Sandbox::start_with(
            "package",
            Options {
                apt_relay: true,
                ..Options::default()
            },
        )
    });
    let sb = sb.unwrap_or_else(|e| panic!("cannot start the sandbox: {e}"));
    sb.copy_in(&deb, "/tmp/telem-deploy.deb")
        .unwrap_or_else(|e| panic!("{e}"));

    let installed = rep.time("apt-get install the .deb, man-db, bash-completion", || {
        sh(
            &sb,
            "export DEBIAN_FRONTEND=noninteractive
             apt-get install -y -q /tmp/telem-deploy.deb man-db bash-completion >/tmp/apt.log 2>&1 \
               || { tail -n 30 /tmp/apt.log; exit 1; }",
        )
    });
    if let Err(e) = installed {
        rep.check(false, format!("installing the package: {e}"));
        return rep.finish();
    }

    // The binaries, the man pages and the completions are where Debian keeps them.
    let man = sh(&sb, "MANWIDTH=100 man -P cat telem-deploy 2>&1");
    rep.check(
        man.as_ref().is_ok_and(|m| {
            m.contains("telem-deploy") && m.contains("--dry-run") && m.contains("EXIT STATUS")
        }),
        format!("`man telem-deploy` renders the page: {man:?}"),
    );
    let man = sh(&sb, "MANWIDTH=100 man -P cat telem-collector 2>&1");
    rep.check(
        man.as_ref().is_ok_and(|m| m.contains("migrate")),
        format!("`man telem-collector` renders the page: {man:?}"),
    );
    // bash-completion loads a command's completion on demand from its directory.
    let completion = sh(
        &sb,
        "source /usr/share/bash-completion/bash_completion
         _completion_loader telem-deploy
         complete -p telem-deploy",
    );
    rep.check(
        completion
            .as_ref()
            .is_ok_and(|c| c.contains("telem-deploy")),
        format!("bash loads telem-deploy's completion: {completion:?}"),
    );
    let words = sh(
        &sb,
        "source /usr/share/bash-completion/bash_completion
         _completion_loader telem-deploy
         COMP_WORDS=(telem-deploy --dry); COMP_CWORD=1; COMP_LINE='telem-deploy --dry'; COMP_POINT=${#COMP_LINE}
         $(complete -p telem-deploy | sed -E 's/.* -F ([^ ]+) .*/\\1/') telem-deploy --dry telem-deploy
         printf '%s\\n' \"${COMPREPLY[@]}\"",
    );
    rep.check(
        words
            .as_ref()
            .is_ok_and(|w| w.lines().any(|l| l == "--dry-run")),
        format!("completing `telem-deploy --dry` offers --dry-run: {words:?}"),
    );
    let docs = sh(
        &sb,
        "ls /usr/share/doc/telem-deploy/recipes /usr/share/doc/telem-deploy/templates",
    );
    rep.check(
        docs.as_ref().is_ok_and(|d| {
            d.contains("debian.yaml") && d.contains("shared.yaml") && d.contains("nginx.conf.tera")
        }),
        format!("recipes and templates as documentation: {docs:?}"),
    );
    let version = sh(&sb, "telem-deploy --version");
    rep.check(
        version
            .as_ref()
            .is_ok_and(|v| v.contains("ships telem-collector")),
        format!("telem-deploy --version: {version:?}"),
    );

    // The main job from /usr/bin, as the README says.
    password_file(&sb, "pkg 'pässword' $x");
    let install = rep.time("telem-deploy -a install (from /usr/bin)", || {
        sb.exec(&[
            "telem-deploy",
            "-a",
            "install",
            "-H",
            DOMAIN,
            "--db-password-file",
            PASSWORD_FILE,
        ])
    });
    rep.check(
        install.status.success(),
        format!(
            "telem-deploy -a install from /usr/bin exited {:?}: {}",
            install.status.code(),
            text(&install.stderr)
        ),
    );
    rep.check(healthy(&sb).is_ok(), "healthy after install");
    rep.check(
        post_fixture(&sb, "v2-headers.http") == Ok(201),
        "a record posted after install is stored (201)",
    );

    // Removing the tool is not uninstalling the backend.
    let removed = sh(
        &sb,
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q telem-deploy >/tmp/rm.log 2>&1 || { tail /tmp/rm.log; exit 1; }
         test ! -e /usr/bin/telem-deploy",
    );
    rep.check(
        removed.is_ok(),
        format!("apt-get remove telem-deploy: {removed:?}"),
    );
    rep.check(healthy(&sb).is_ok(), "healthy after apt-get remove");
    rep.check(
        post_fixture(&sb, "v3-json.http") == Ok(201),
        "a record posted after the package's removal is stored (201)",
    );
    let count = sql(
        &sb,
        "telemetry",
        "SELECT count(*) FROM records WHERE machine_id IN ('e2e-v2-headers-machine', 'e2e-v3-json-machine')",
    );
    rep.check(
        count.as_deref() == Ok("2"),
        format!("both records stored: {count:?}"),
    );
    drop(sb);
    rep.finish();
}
