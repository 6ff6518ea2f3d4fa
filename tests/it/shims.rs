//! Clear Linux and EL scenarios with recording shims (see tests/shims/): Clear Linux's last
//! releases and EL 8 and 9 under systemd, Clear Linux and EL 9 without it. The shims know only
//! the names of the release's catalogue (tests/shims/catalog/), so each scenario first proves
//! that a name the distribution lacks fails as there.
//!
//! Neither distro's userland exists here, so each scenario runs on a fresh Debian sandbox whose
//! PATH starts with the shims of tests/shims/bin: `swupd`, `yum`/`dnf`, `rpm`, `systemctl`,
//! `postgresql-setup`, `selinuxenabled`, `getsebool`, `setsebool`. They record every call, keep
//! state between calls and make the real effect happen (Debian packages from the offline cache,
//! initdb/pg_ctl, nginx, the collector), so the whole install works end to end. The same
//! directory holds guards named `apt-get`, `apt`, `dpkg`, `dpkg-query`, `aptitude` that fail
//! and record the call: the shims themselves run the real tools with a PATH without them. And
//! `setup` replaces the sandbox's real apt-get, apt, apt-cache, dpkg and dpkg-query with guards
//! that let only the shims' apt (marked by an environment variable it passes on to dpkg) through,
//! so a call by absolute path is caught too; each scenario first proves the guard bites.
//!
//! Each scenario: `install` (exit 0, the exact shim calls of tests/shims/expected-DISTRO.txt,
//! health check passed, a record POSTed through nginx is stored, the password works over TCP and
//! a wrong one does not), a second `install` (0 changed, no mutating shim call), `restart`,
//! `resetdb --yes` (backup written, records gone), `deploy` (a record is stored again) and
//! `uninstall -u` (removes exactly what install added, leaves nothing running or enabled). With `TELEM_SHIMS_STRACE=1` the first
//! install also runs under strace (3-5 times slower): every real apt-get must carry the shims'
//! marker and every dpkg must run inside such an apt-get.
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test --test it shims`.

use std::path::PathBuf;
use std::time::Instant;

use crate::shims_support::*;

fn scenario(release: &'static str, manager: &'static str) {
    let t_all = Instant::now();
    let Some(mut sc) = prepare(release, manager, &format!("shims-{release}-{manager}")) else {
        return;
    };
    let distro = sc.distro;
    let systemd = manager == "systemd";
    let el = distro == "centos";
    // The golden file of the run: the release, and `-direct` without systemd.
    let golden_name = if systemd {
        release.to_owned()
    } else {
        format!("{release}-direct")
    };
    let mut p = Problems::default();

    // The shims know the release's catalogue only: a name the distribution does not have fails
    // as its own tool would (here deploy.sh's bundle, PGDG's package name, a unit no installed
    // package provides).
    let bogus: &[(&str, &str)] = if el {
        &[
            (
                "yum install -y postgresql15-server",
                "No match for argument: postgresql15-server",
            ),
            ("systemctl start redis", "Unit redis.service not found."),
        ]
    } else {
        &[
            (
                "swupd bundle-add web-server-basic",
                "Bundle \"web-server-basic\" is invalid",
            ),
            ("systemctl start redis", "Unit redis.service not found."),
        ]
    };
    for (cmd, message) in bogus {
        let out = sc.sh(&format!("PATH={SHIMS}/bin:$PATH {cmd}"));
        p.check(
            !out.status.success() && text(&out.stderr).contains(message),
            || {
                format!(
                    "`{cmd}` on {release} should fail with {message:?}: {}",
                    show(&out)
                )
            },
        );
    }
    sc.seen = sc.calls().len();

    let mut golden = String::new();
    let pw = ["--db-password-file", "/root/pw"];

    // 1. install (traced with TELEM_SHIMS_STRACE=1).
    let trace = (std::env::var("TELEM_SHIMS_STRACE").as_deref() == Ok("1")).then(|| {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("shims-{distro}-{}.strace", std::process::id()))
    });
    let install = [["-a", "install"].as_slice(), &pw].concat();
    let run = sc.deploy("install", &install, trace.as_deref());
    assert!(
        run.out.status.success(),
        "[{distro}] install failed: {}\nshim calls:\n{}",
        show(&run.out),
        run.calls.join("\n")
    );
    golden += &format!(
        "# telem-deploy -a install -d {distro} --service-manager {manager} (fresh {release} machine)\n"
    );
    golden += &(run.calls.join("\n") + "\n");
    p.check(run.step_status("health") == ["ok"], || {
        format!("health check of install: {:?}", run.step_status("health"))
    });
    if let Some(trace) = &trace {
        check_trace(trace, &mut p);
        let _ = std::fs::remove_file(trace);
    }

    // The deployed backend works.
    let status = post_record(&sc);
    p.check(status.starts_with("HTTP/1.1 201"), || {
        format!("POST /v2/collector through nginx answered: {status}")
    });
    let stored = psql_tcp(
        &sc,
        PASSWORD,
        &format!(
            "select count(*) from records where classification = 'org.clearlinux/shims/{distro}'"
        ),
    );
    p.check(stored.as_deref() == Ok("1"), || {
        format!("the posted record in the database (password login over TCP): {stored:?}")
    });
    let wrong = psql_tcp(&sc, "not the password", "select 1");
    p.check(wrong.is_err(), || {
        "a wrong password logs in over TCP".to_owned()
    });
    let hba = std::fs::read_to_string(sc.sb.root().join("var/lib/pgsql/data/pg_hba.conf"))
        .unwrap_or_default();
    let loose: Vec<&str> = hba
        .lines()
        .filter(|l| l.starts_with("host") || l.starts_with("local"))
        .filter(|l| {
            ["trust", "ident", "reject", "md5"]
                .iter()
                .any(|m| l.ends_with(m))
        })
        .collect();
    p.check(loose.is_empty(), || {
        format!("pg_hba.conf still has {loose:?}")
    });
    let pid_file = if systemd {
        "/run/telem-shims/telem-collector.pid"
    } else {
        "/run/telemetry/collector.pid"
    };
    let owner = sc.sh(&format!("stat -c %U /proc/$(cat {pid_file})"));
    p.check(text(&owner.stdout).trim() == "telem-collector", || {
        format!(
            "the collector does not run as telem-collector: {}",
            show(&owner)
        )
    });
    let firewalld = |sc: &crate::shims_support::Scenario, which: &str| {
        std::fs::read_to_string(
            sc.sb
                .root()
                .join(format!("var/lib/telem-shims/firewalld-{which}")),
        )
        .unwrap_or_default()
    };
    if el {
        // firewalld runs: http is open now and at the next boot.
        for which in ["runtime", "permanent"] {
            let open = firewalld(&sc, which);
            p.check(open.lines().any(|l| l == "http"), || {
                format!("firewalld ({which}) after install: {open:?}")
            });
        }
    }
    if release == "el8" {
        let module =
            std::fs::read_to_string(sc.sb.root().join("etc/dnf/modules.d/postgresql.module"))
                .unwrap_or_default();
        p.check(module.lines().any(|l| l == "stream=15"), || {
            format!("EL 8's postgresql module stream: {module:?}")
        });
    }
    if distro == "centos" {
        let b = std::fs::read_to_string(
            sc.sb
                .root()
                .join("var/lib/telem-shims/sebool/httpd_can_network_connect"),
        )
        .unwrap_or_default();
        p.check(b.trim() == "on", || {
            format!("httpd_can_network_connect is {b:?}")
        });
    }

    // 2. install again: nothing to do.
    let run = sc.deploy("second install", &install, None);
    p.check(run.out.status.success(), || {
        format!("second install: {}", show(&run.out))
    });
    golden += "# telem-deploy -a install (again)\n";
    golden += &(run.calls.join("\n") + "\n");
    p.check(run.summary("changed") == Some(0), || {
        format!(
            "second install changed {:?} step(s): {:?}",
            run.summary("changed"),
            run.steps_with("changed")
        )
    });
    let mutating: Vec<&String> = run.calls.iter().filter(|c| !is_query(c)).collect();
    p.check(mutating.is_empty(), || {
        format!("second install made mutating shim calls: {mutating:?}")
    });
    p.check(run.step_status("health") == ["ok"], || {
        format!(
            "health check of the second install: {:?}",
            run.step_status("health")
        )
    });

    // 3. restart, resetdb --yes and deploy, through the shims as well.
    let run = sc.deploy("restart", &["-a", "restart"], None);
    p.check(run.out.status.success(), || {
        format!("restart: {}", show(&run.out))
    });
    golden += "# telem-deploy -a restart\n";
    golden += &(run.calls.join("\n") + "\n");
    p.check(run.step_status("health") == ["ok"], || {
        format!("health check of restart: {:?}", run.step_status("health"))
    });
    let run = sc.deploy("resetdb --yes", &["-a", "resetdb"], None);
    p.check(run.out.status.success(), || {
        format!("resetdb --yes: {}", show(&run.out))
    });
    golden += "# telem-deploy -a resetdb --yes\n";
    golden += &(run.calls.join("\n") + "\n");
    let backups = sc.sh("ls /var/backups/telemetry/ | grep -c '^telemetry-.*\\.dump$'");
    p.check(text(&backups.stdout).trim() == "1", || {
        format!("backups after resetdb: {}", show(&backups))
    });
    let count = psql_tcp(&sc, PASSWORD, "select count(*) from records");
    p.check(count.as_deref() == Ok("0"), || {
        format!("records after resetdb: {count:?}")
    });
    let run = sc.deploy("deploy", &["-a", "deploy"], None);
    p.check(run.out.status.success(), || {
        format!("deploy: {}", show(&run.out))
    });
    golden += "# telem-deploy -a deploy\n";
    golden += &(run.calls.join("\n") + "\n");
    p.check(run.step_status("health") == ["ok"], || {
        format!("health check of deploy: {:?}", run.step_status("health"))
    });
    let status = post_record(&sc);
    p.check(status.starts_with("HTTP/1.1 201"), || {
        format!("POST /v2/collector after resetdb and deploy answered: {status}")
    });

    // What the shims noticed on the way: daemons that died at once, units started without
    // the daemon-reload that systemd needs after a unit file changed.
    let effects = std::fs::read_to_string(sc.sb.root().join("var/log/telem-shims/effects.log"))
        .unwrap_or_default();
    let noticed: Vec<&str> = effects
        .lines()
        .filter(|l| l.contains("exited right after starting") || l.contains("old unit definition"))
        .collect();
    p.check(noticed.is_empty(), || {
        format!("the shims noticed: {noticed:?}")
    });

    // 4. uninstall -u: removes what install added, keeps what the machine had.
    let run = sc.deploy("uninstall -u", &["-a", "uninstall", "-u"], None);
    p.check(run.out.status.success(), || {
        format!("uninstall -u: {}", show(&run.out))
    });
    golden += "# telem-deploy -a uninstall -u\n";
    golden += &(run.calls.join("\n") + "\n");
    let installed = std::fs::read_to_string(sc.sb.root().join("var/lib/telem-shims/installed"))
        .unwrap_or_default();
    let before = match distro {
        "clr" => "os-core\nos-core-update\n",
        _ => "policycoreutils-python-utils\nfirewalld\n",
    };
    p.check(installed == before, || {
        format!("after uninstall -u the machine has {installed:?}, before install {before:?}")
    });
    let removes = removals(&run.calls);
    let expected_remove = match release {
        "clr-2025" => "swupd bundle-remove nginx postgresql",
        // EL 8's nginx and postgresql pull in less than EL 9's (catalog/el8.txt).
        "el8" => {
            "yum remove nginx nginx-filesystem postgresql postgresql-contrib postgresql-server"
        }
        // The package the recipe names and what they pulled in (rpm -qa before/after).
        _ => {
            "yum remove nginx nginx-core nginx-filesystem postgresql postgresql-contrib \
              postgresql-private-libs postgresql-server"
        }
    };
    p.check(removes == [expected_remove], || {
        format!("package removals: {removes:?}, want [{expected_remove:?}]")
    });
    let left = sc.sh(
        "for f in /usr/sbin/nginx /usr/lib/postgresql/*/bin/postgres /usr/local/bin/telem-collector \
         /etc/telemetry /etc/nginx/conf.d/telemetry.conf /etc/systemd/system/telem-collector.service; \
         do [ ! -e \"$f\" ] || echo \"$f\"; done; \
         for f in /run/telem-shims/*.pid /run/nginx.pid; do \
           [ -s \"$f\" ] && [ -d /proc/$(cat \"$f\") ] && echo \"running: $f\"; done; \
         ls /var/lib/telem-shims/enabled 2>/dev/null | sed 's/^/enabled: /'; true",
    );
    let mut left = text(&left.stdout);
    if el {
        // What install opened in firewalld is closed again.
        for which in ["runtime", "permanent"] {
            let open = firewalld(&sc, which);
            p.check(!open.lines().any(|l| l == "http"), || {
                format!("firewalld ({which}) after uninstall -u: {open:?}")
            });
        }
    }
    if distro == "clr" {
        // swupd runs no scriptlets: the bundles' units stay enabled (dangling wants links on a
        // real Clear Linux) after bundle-remove. telem-deploy cannot disable them only when it
        // removes the package (the operator's own nginx must stay), so this is accepted here.
        left = left
            .lines()
            .filter(|l| !matches!(*l, "enabled: nginx" | "enabled: postgresql"))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    p.check(left.trim().is_empty(), || {
        format!("left behind after uninstall -u:\n{left}")
    });
    golden = golden.replace("\n\n", "\n");
    check_golden(&golden_name, &golden, &mut p);

    let forbidden = std::fs::read_to_string(sc.sb.root().join(FORBIDDEN)).unwrap_or_default();
    p.check(forbidden.is_empty(), || {
        format!("telem-deploy ran the sandbox's real package tools:\n{forbidden}")
    });

    let timings: Vec<String> = sc
        .timings
        .iter()
        .map(|(l, s)| format!("{l} {s:.1} s"))
        .collect();
    eprintln!(
        "[{release} {manager}] timings: {}; whole scenario {:.1} s",
        timings.join(", "),
        t_all.elapsed().as_secs_f64()
    );
    assert!(
        p.0.is_empty(),
        "[{release} {manager}] {} problem(s):\n- {}",
        p.0.len(),
        p.0.join("\n- ")
    );
}

/// Clear Linux's last releases: bundles nginx and postgresql.
#[test]
fn clr_install_reinstall_uninstall() {
    scenario("clr-2025", "systemd");
}

/// No systemd (a container): the tool runs PostgreSQL (initdb, /run/postgresql made first),
/// nginx and the collector itself.
#[test]
fn clr_without_systemd_install_reinstall_uninstall() {
    scenario("clr-2025", "direct");
}

/// EL 9 (CentOS Stream 9): PostgreSQL 13 from AppStream, SELinux boolean, firewalld's http.
#[test]
fn centos_install_reinstall_uninstall() {
    scenario("el9", "systemd");
}

/// EL 8 (AlmaLinux 8.10): the postgresql:15 module stream is enabled before the install.
#[test]
fn el8_install_reinstall_uninstall() {
    scenario("el8", "systemd");
}

/// EL 9 without systemd: initdb directly (postgresql-setup before 8.10 needs systemd).
#[test]
fn centos_without_systemd_install_reinstall_uninstall() {
    scenario("el9", "direct");
}

/// An operator who already runs nginx (installed, enabled, running) keeps it through `install`
/// and `uninstall -u`: the package stays (only what telem-deploy installed is removed), the
/// main config is given back as it was, and the service the operator ran still runs.
#[test]
fn centos_uninstall_u_keeps_the_operators_nginx() {
    let Some(mut sc) = prepare("el9", "systemd", "shims-centos-own-nginx") else {
        return;
    };
    let mut p = Problems::default();
    let out = sc.sh(&format!(
        "export PATH={SHIMS}/bin:$PATH && yum install -y nginx && systemctl enable --now nginx \
         && cp -p /etc/nginx/nginx.conf /root/nginx.conf.operator"
    ));
    assert!(out.status.success(), "the operator's nginx: {}", show(&out));
    sc.seen = sc.calls().len();

    let install = ["-a", "install", "--db-password-file", "/root/pw"];
    let run = sc.deploy("install", &install, None);
    assert!(run.out.status.success(), "install: {}", show(&run.out));
    p.check(
        !run.calls
            .iter()
            .any(|c| c.starts_with("yum\tinstall\t-y\tnginx")),
        || format!("install reinstalled nginx: {:?}", run.calls),
    );

    let run = sc.deploy("uninstall -u", &["-a", "uninstall", "-u"], None);
    p.check(run.out.status.success(), || {
        format!("uninstall -u: {}", show(&run.out))
    });
    let removes = removals(&run.calls);
    p.check(
        removes
            == ["yum remove postgresql postgresql-contrib postgresql-private-libs postgresql-server"],
        || format!("package removals: {removes:?}"),
    );
    let installed = std::fs::read_to_string(sc.sb.root().join("var/lib/telem-shims/installed"))
        .unwrap_or_default();
    let mut installed: Vec<&str> = installed.lines().collect();
    installed.sort_unstable();
    let kept = [
        "firewalld",
        "nginx",
        "nginx-core",
        "nginx-filesystem",
        "policycoreutils-python-utils",
    ];
    p.check(installed == kept, || {
        format!("packages after uninstall -u: {installed:?}")
    });
    let conf = sc.sh("cmp /etc/nginx/nginx.conf /root/nginx.conf.operator");
    p.check(conf.status.success(), || {
        format!(
            "the operator's nginx.conf is not given back: {}",
            show(&conf)
        )
    });
    let running = sc.sh("[ -s /run/nginx.pid ] && [ -d /proc/$(cat /run/nginx.pid) ]");
    p.check(running.status.success(), || {
        let stops: Vec<&String> = run
            .calls
            .iter()
            .filter(|c| c.contains("\tstop\t"))
            .collect();
        format!("uninstall -u stopped the operator's nginx, whose package it keeps: {stops:?}")
    });
    p.check(
        sc.sb
            .root()
            .join("var/lib/telem-shims/enabled/nginx")
            .exists(),
        || "the operator's nginx is no longer enabled".to_owned(),
    );
    let forbidden = std::fs::read_to_string(sc.sb.root().join(FORBIDDEN)).unwrap_or_default();
    p.check(forbidden.is_empty(), || {
        format!("telem-deploy ran the sandbox's real package tools:\n{forbidden}")
    });
    assert!(
        p.0.is_empty(),
        "[centos, the operator's nginx] {} problem(s):\n- {}",
        p.0.len(),
        p.0.join("\n- ")
    );
}

#[test]
fn query_calls_are_told_from_mutating_ones() {
    assert!(is_query("systemctl\tis-active\t--quiet\tnginx"));
    assert!(is_query("swupd\tbundle-list\t--quiet"));
    assert!(is_query(
        "swupd\tbundle-list\t--quiet\t--has-dep=database-basic"
    ));
    assert!(is_query(
        "yum\tremove\t--assumeno\t--setopt=clean_requirements_on_remove=False\tnginx"
    ));
    assert!(!is_query(
        "yum\tremove\t-y\t--setopt=clean_requirements_on_remove=False\tnginx"
    ));
    assert!(is_query("rpm\t-q\t--qf\t%{NAME}\\n\tnginx"));
    assert!(!is_query("systemctl\tstart\tnginx"));
    assert!(!is_query("systemctl\tdaemon-reload"));
    assert!(!is_query("swupd\tbundle-add\tdatabase-basic"));
    assert!(!is_query("yum\tinstall\t-y\tnginx"));
    assert!(!is_query("postgresql-setup\t--initdb"));
    assert_eq!(
        removals(&["yum\tremove\t-y\tnginx\tpostgresql-server".to_owned()]),
        ["yum remove nginx postgresql-server"]
    );
    assert!(removals(&["yum\tinstall\t-y\tnginx".to_owned()]).is_empty());
}
