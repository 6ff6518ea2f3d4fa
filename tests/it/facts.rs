//! Plans that depend on facts of the target (`/etc/os-release`, firewalld, ufw), on the fake
//! host: what an operator of each release reads in the dry run.

use crate::fake_host::FakeHost;
use crate::golden::{run, WEBAPP};

/// The human dry run of `install` (with `extra` flags) on a fresh fake host of `distro` whose
/// /etc/os-release is `os_release` and which has `packages` installed.
fn plan(distro: &str, os_release: &str, packages: &[&str], extra: &[&str]) -> String {
    let host = FakeHost::fresh(distro, true);
    host.put("/etc/os-release", os_release);
    for p in packages {
        host.install_package(p);
    }
    let mut args = vec![
        "-a",
        "install",
        "-d",
        distro,
        "-H",
        "localhost",
        "--dry-run",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&host, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    out
}

fn has(plan: &str, want: &[&str], not: &[&str]) {
    for w in want {
        assert!(plan.contains(w), "the plan lacks {w:?}:\n{plan}");
    }
    for n in not {
        assert!(!plan.contains(n), "the plan has {n:?}:\n{plan}");
    }
}

#[test]
fn rhel_8_gets_postgresql_15_from_its_module_stream_and_opens_firewalld() {
    let plan = plan(
        "centos",
        "ID=\"rhel\"\nVERSION_ID=\"8.10\"\n",
        &["firewalld"],
        &[],
    );
    has(
        &plan,
        &[
            "EL 8: choose PostgreSQL 15",
            "run: dnf module enable -y postgresql:15",
            "Install nginx and PostgreSQL 15 (module stream postgresql:15)",
            "run: sh -c 'firewall-cmd --permanent --add-service=http",
        ],
        &["PostgreSQL 13", "--set-enabled crb", "add-service=https"],
    );
}

/// EL 8's python3 is 3.6, too old for any working pin set of the web UI: `--webapp` is refused
/// there before anything changes (tests/it/webapp_links.rs); on RHEL 9 it gets EPEL the way
/// Red Hat documents (CodeReady Builder by subscription-manager, EPEL's release RPM by URL).
#[test]
fn rhel_9_gets_epel_from_its_rpm_and_codeready_builder_for_the_web_ui() {
    let plan = plan(
        "centos",
        "ID=\"rhel\"\nVERSION_ID=\"9.4\"\n",
        &["firewalld"],
        &WEBAPP,
    );
    has(
        &plan,
        &[
            "Install nginx and PostgreSQL 13 (EL 9's AppStream)",
            "codeready-builder-for-rhel-9-$(arch)-rpms",
            "dnf install -y https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm",
            "run: sh -c 'firewall-cmd --permanent --add-service=http",
            "SELinux: load the policy module",
        ],
        &["module enable", "--set-enabled crb", "add-service=https"],
    );
}

#[test]
fn rocky_9_gets_postgresql_13_and_epel_release_with_crb_and_no_firewall_step_without_firewalld() {
    let plan = plan("centos", "ID=\"rocky\"\nVERSION_ID=\"9.4\"\n", &[], &WEBAPP);
    has(
        &plan,
        &[
            "Install nginx and PostgreSQL 13 (EL 9's AppStream)",
            "run: dnf config-manager --set-enabled crb",
            "from EPEL, whose epel-release is in the rebuild's extras",
        ],
        &[
            "module enable",
            "subscription-manager",
            "firewall-cmd --permanent",
        ],
    );
}

#[test]
fn ubuntu_with_ufw_active_allows_http_and_enables_universe_for_the_web_ui() {
    let plan = plan(
        "ubuntu",
        "ID=ubuntu\nVERSION_ID=\"24.04\"\n",
        &["ufw"],
        &WEBAPP,
    );
    has(
        &plan,
        &[
            "run: sh -c 'ufw allow 80/tcp && touch /var/lib/telem-deploy/ufw-http'",
            "run: add-apt-repository -y universe",
        ],
        &["ufw allow 443/tcp"],
    );
    // Without ufw, no firewall step at all.
    let plain = plan_without_ufw();
    assert!(!plain.contains("ufw allow"), "{plain}");
}

fn plan_without_ufw() -> String {
    plan("ubuntu", "ID=ubuntu\nVERSION_ID=\"22.04\"\n", &[], &[])
}
