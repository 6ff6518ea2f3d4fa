//! Applying on the fake host: bad configs never go live, bad recipes change nothing, queued
//! restarts still run after a failure.

use std::path::Path;

use crate::fake_host::FakeHost;
use crate::golden::{install, installed, password_file, run};

fn templates_with(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for t in [
        "nginx.conf.tera",
        "uwsgi.ini.tera",
        "collector.toml.tera",
        "telem-collector.service.tera",
    ] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("templates")
            .join(t);
        std::fs::copy(src, dir.path().join(t)).unwrap();
    }
    std::fs::write(dir.path().join(name), text).unwrap();
    dir
}

fn file(host: &FakeHost, path: &str) -> Vec<u8> {
    host.world.borrow().files[Path::new(path)].content.clone()
}

#[test]
fn a_site_nginx_rejects_never_goes_live() {
    let host = installed("debian");
    let site = "/etc/nginx/sites-available/telemetry.conf";
    let before = file(&host, site);
    host.world.borrow_mut().nginx_rejects = true;
    let tpl = templates_with("nginx.conf.tera", "server { listen 80; }}\n");
    let (code, out, err) = run(
        &host,
        &[
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--templates",
            tpl.path().to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        file(&host, site),
        before,
        "the previous site is back in place"
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed: Vec<&serde_json::Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[0]["name"], "Write the nginx site for localhost");
    assert_eq!(failed[0]["error"]["command"], "nginx -t -q");
    assert!(failed[0]["error"]["stderr"]
        .as_str()
        .unwrap()
        .contains("[emerg]"));
    assert!(failed[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("the previous file is back in place"));
    assert!(
        err.contains("step 'Write the nginx site for localhost' failed"),
        "{err}"
    );
    // Steps after the failure did not run.
    assert!(doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["status"] == "not_run"));
}

#[test]
fn a_bad_recipe_fails_before_changing_anything() {
    let host = FakeHost::fresh("debian", false);
    let before = host.world.borrow().clone();
    let dir = tempfile::tempdir().unwrap();
    let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    std::fs::copy(recipes.join("debian.yaml"), dir.path().join("debian.yaml")).unwrap();
    let src = std::fs::read_to_string(recipes.join("shared.yaml")).unwrap();
    // The health check, late in install, has a path nginx cannot serve.
    std::fs::write(
        dir.path().join("shared.yaml"),
        src.replace("health: { path: /healthz", "health: { path: healthz"),
    )
    .unwrap();
    let pw = password_file();
    let (code, _, err) = run(
        &host,
        &[
            "-a",
            "install",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--yes",
            "--recipes",
            dir.path().to_str().unwrap(),
            "--db-password-file",
            pw.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "shared.yaml: actions.install[33].health.path (step install[44]): must start with /"
        ),
        "{err}"
    );
    assert_eq!(*host.world.borrow(), before, "nothing changed");
    assert!(
        host.log.borrow().is_empty(),
        "no command ran: {:?}",
        host.log.borrow()
    );
}

#[test]
fn queued_restarts_run_even_when_a_later_step_fails() {
    let host = installed("debian");
    // A new collector config (notifies the collector), then a site nginx rejects.
    host.world.borrow_mut().nginx_rejects = true;
    let tpl = templates_with("nginx.conf.tera", "broken }\n");
    let cfg = "/etc/telemetry/collector.toml";
    let mut changed = file(&host, cfg);
    changed.extend_from_slice(b"# edited by hand\n");
    host.world
        .borrow_mut()
        .files
        .get_mut(Path::new(cfg))
        .unwrap()
        .content = changed;
    host.log.borrow_mut().clear();
    let (code, out, _) = run(
        &host,
        &[
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--templates",
            tpl.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    let log = host.log.borrow();
    let restarted = log.iter().any(|c| c.starts_with("signal "))
        || log.iter().filter(|c| c.starts_with("spawn ")).count() > 0;
    assert!(
        restarted,
        "the collector, notified before the failure, was restarted: {log:?}"
    );
}

/// A run killed between writing the collector's config and restarting the collector leaves
/// the restart owed in the state file; the next run, whose checks find the file up to date,
/// still shows and does the restart, then owes nothing.
#[test]
fn a_restart_owed_by_a_killed_run_is_done_by_the_next() {
    let host = installed("debian");
    let state_path = Path::new("/var/lib/telem-deploy/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&file(&host, state_path.to_str().unwrap())).unwrap();
    assert!(
        state.get("pending").is_none(),
        "a finished install owes nothing: {state}"
    );
    // What a kill right after the config write leaves behind (the debt is recorded before
    // the write, see Engine::owe).
    state["pending"] = serde_json::json!(["collector"]);
    host.world
        .borrow_mut()
        .files
        .get_mut(state_path)
        .unwrap()
        .content = serde_json::to_vec(&state).unwrap();
    let deploy = ["-a", "deploy", "-d", "debian", "-H", "localhost"];
    let (code, plan, _) = run(&host, &[&deploy[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("reload telem-collector (its configuration changed)"),
        "the plan shows the owed reload (the collector's in-place upgrade): {plan}"
    );
    host.log.borrow_mut().clear();
    let (code, out, _) = run(&host, &deploy);
    assert_eq!(code, 0, "{out}");
    let restarted = host
        .log
        .borrow()
        .iter()
        .any(|c| c.starts_with("signal ") || c.starts_with("spawn "));
    assert!(
        restarted,
        "the collector was restarted: {:?}",
        host.log.borrow()
    );
    let state: serde_json::Value =
        serde_json::from_slice(&file(&host, state_path.to_str().unwrap())).unwrap();
    assert!(
        state.get("pending").is_none(),
        "nothing owed afterwards: {state}"
    );
    let (_, plan, _) = run(
        &host,
        &[&deploy[..], &["--dry-run", "--detailed-exitcode"]].concat(),
    );
    assert!(!plan.contains("reload telem-collector"), "{plan}");
}

#[test]
fn deploy_on_a_host_without_install_says_to_run_install_first() {
    let host = FakeHost::fresh("ubuntu", false);
    let (code, _, err) = run(&host, &["-a", "deploy", "-d", "ubuntu", "-H", "localhost"]);
    assert_eq!(code, 1);
    assert!(err.contains("run the install action first"), "{err}");
    assert!(
        host.log.borrow().iter().all(|c| !c.contains("install")),
        "nothing was installed"
    );
}

#[test]
fn ui_auth_protects_the_ui_but_never_the_collector_paths() {
    let host = FakeHost::fresh("debian", false);
    let (db, ui) = (password_file(), tempfile::NamedTempFile::new().unwrap());
    std::fs::write(ui.path(), "ui pa$$ 'word\n").unwrap();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "-a",
            "install",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--yes",
            "--ui-auth",
            "admin",
        ];
        a.extend_from_slice(extra);
        a
    };
    let (db_s, ui_s) = (
        db.path().to_str().unwrap().to_owned(),
        ui.path().to_str().unwrap().to_owned(),
    );
    let (code, out, err) = run(
        &host,
        &[
            args(&[]).as_slice(),
            &["--db-password-file", &db_s, "--ui-password-file", &ui_s],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let line = String::from_utf8(file(&host, "/etc/nginx/telemetry.htpasswd")).unwrap();
    let hash = line
        .trim()
        .strip_prefix("admin:")
        .expect("a line for admin");
    assert!(sha_crypt_check("ui pa$$ 'word", hash), "{line}");
    let site = String::from_utf8(file(&host, "/etc/nginx/sites-available/telemetry.conf")).unwrap();
    for open in [
        "location = /v2/collector { proxy_pass",
        "location = /v3/collector { proxy_pass",
        "location = /healthz { proxy_pass",
    ] {
        assert!(site.contains(open), "{open} stays open:\n{site}");
    }
    assert!(
        site.contains("location /api/ { auth_basic \"telemetry\";"),
        "{site}"
    );
    assert!(
        site.contains("POST off;"),
        "POST / of old clients is never asked for a password"
    );
    // A re-run keeps the line (same password), and no output shows the password or the hash.
    let (code, out, err) = run(
        &host,
        &[
            args(&["--format", "json"]).as_slice(),
            &["--db-password-file", &db_s, "--ui-password-file", &ui_s],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["summary"]["changed"], 0, "{out}");
    let (_, plan, _) = run(
        &host,
        &[
            "-a",
            "deploy",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--dry-run",
            "--ui-auth",
            "admin",
            "--ui-password-file",
            &ui_s,
        ],
    );
    for secret in ["ui pa$$ 'word", hash] {
        assert!(!out.contains(secret) && !err.contains(secret) && !plan.contains(secret));
    }
}

fn sha_crypt_check(password: &str, hash: &str) -> bool {
    sha_crypt::sha512_check(password, hash).is_ok()
}

/// The rendered site passes a real `nginx -t` (with --ui-auth, whose `map` must sit at http level).
#[test]
fn the_rendered_site_passes_nginx_t() {
    let Ok(nginx) = which::which("nginx") else {
        if std::env::var_os("TELEM_E2E_REQUIRED").is_some() {
            panic!("nginx is not installed (scripts/test.sh installs nginx-light)");
        }
        eprintln!("skipped: nginx is not installed");
        return;
    };
    for ui_auth in [false, true] {
        let host = FakeHost::fresh("debian", false);
        let (db, ui) = (password_file(), password_file());
        let mut args = vec![
            "-a",
            "install",
            "-d",
            "debian",
            "-H",
            "telemetry.example.com",
            "--yes",
            "--db-password-file",
            db.path().to_str().unwrap(),
        ];
        if ui_auth {
            args.extend([
                "--ui-auth",
                "admin",
                "--ui-password-file",
                ui.path().to_str().unwrap(),
            ]);
        }
        let (code, _, err) = run(&host, &args);
        assert_eq!(code, 0, "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.conf"),
            file(&host, "/etc/nginx/sites-available/telemetry.conf"),
        )
        .unwrap();
        let main = format!(
            "events {{}}\nhttp {{ include {}/site.conf; }}\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let out = std::process::Command::new(&nginx)
            .args(["-t", "-q", "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "error_log stderr; pid nginx.pid;"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx -t (ui_auth={ui_auth}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn uninstall_u_removes_only_what_install_added() {
    for distro in ["debian", "clr", "centos"] {
        let host = FakeHost::fresh(distro, distro != "debian");
        host.world
            .borrow_mut()
            .packages
            .insert("operator-tool".into());
        install(&host, distro);
        assert!(host.world.borrow().packages.len() > 1);
        let (code, out, err) = run(
            &host,
            &[
                "-a",
                "uninstall",
                "-u",
                "-d",
                distro,
                "-H",
                "localhost",
                "--yes",
                "--no-backup",
            ],
        );
        assert_eq!(code, 0, "{distro}: {out}{err}");
        let left: Vec<String> = host.world.borrow().packages.iter().cloned().collect();
        assert_eq!(left, vec!["operator-tool".to_owned()], "{distro}");
        assert!(!host
            .world
            .borrow()
            .files
            .contains_key(Path::new("/etc/telemetry/collector.toml")));
    }
}

/// Debian's `/usr/bin/psql` is postgresql-common's Perl wrapper (17 ms of Perl per call): the
/// admin queries run the newest installed version's own psql (numeric order: 10 after 9.6; a
/// version without a client skipped), and psql from the PATH where there is none.
#[test]
fn admin_queries_run_the_newest_versions_own_psql() {
    let host = crate::golden::installed("debian");
    // The psql programs a converged re-run starts.
    let psqls = || -> Vec<String> {
        host.log.borrow_mut().clear();
        crate::golden::install(&host, "debian");
        let log = host.log.borrow();
        let found: Vec<String> = log
            .iter()
            .filter(|c| c.contains("psql --no-psqlrc"))
            .map(|c| c.split(" --no-psqlrc").next().unwrap().to_owned())
            .collect();
        assert!(!found.is_empty(), "no psql in {log:#?}");
        found
    };
    let only = |found: Vec<String>, want: &str| {
        assert!(found.iter().all(|p| p.ends_with(want)), "{found:?}");
    };
    only(psqls(), " psql");
    let version = |v: &str| {
        host.dir(&format!("/usr/lib/postgresql/{v}"));
        host.put(&format!("/usr/lib/postgresql/{v}/bin/psql"), "");
    };
    version("9.6");
    version("10");
    only(psqls(), " /usr/lib/postgresql/10/bin/psql");
    host.dir("/usr/lib/postgresql/16");
    host.dir("/usr/lib/postgresql/17beta");
    version("15");
    only(psqls(), " /usr/lib/postgresql/15/bin/psql");
}

/// Two runs changing one machine at once (two CI jobs, an operator and CI) would race for its
/// package manager and its state file: a run that finds the machine's run lock held by
/// another before its first change changes nothing and says so; a dry run does not lock (it
/// writes nothing) and still plans; once the other run has ended, the install goes through;
/// a run with nothing to change needs no lock.
#[test]
fn a_machine_another_run_is_changing_is_left_alone() {
    let host = FakeHost::fresh("debian", true);
    host.world.borrow_mut().locked_by_another_run = true;
    let before = host.world.borrow().clone();
    let pw = password_file();
    let args = [
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--db-password-file",
        pw.path().to_str().unwrap(),
    ];
    let (code, out, err) = run(&host, &args);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "another telem-deploy run is changing this machine (it holds \
             /var/lib/telem-deploy/run.lock); nothing was changed: run again once it has ended"
        ),
        "{err}"
    );
    assert!(*host.world.borrow() == before, "the machine changed");
    let (code, out, err) = run(&host, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Nothing was changed (dry run)"), "{out}");
    assert!(
        *host.world.borrow() == before,
        "the dry run changed the machine"
    );
    host.world.borrow_mut().locked_by_another_run = false;
    let (code, out, err) = run(&host, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(*host.world.borrow() != before);
    // A run with nothing to change takes no lock: a converged install goes through while
    // another run holds it, and asks for no lock.
    host.world.borrow_mut().locked_by_another_run = true;
    host.log.borrow_mut().clear();
    let converged = host.world.borrow().clone();
    let (code, out, err) = run(&host, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        *host.world.borrow() == converged,
        "the converged run changed something"
    );
    assert!(
        !host.log.borrow().iter().any(|l| l == "lock_run"),
        "a run with nothing to change asked for the lock"
    );
}
