//! Issue 10 item 5: `-a deploy` with an explicitly given password sets the role's password
//! before the config holds it, as install does: the database and the config never disagree.

use std::path::Path;

use crate::golden::{installed, run};

#[test]
fn deploy_with_a_new_password_sets_the_role_and_the_config() {
    for distro in ["debian", "clr", "centos", "ubuntu"] {
        let host = installed(distro);
        let verifier = || host.world.borrow().roles["telemetry"].clone();
        let before = verifier();
        assert!(before.is_some(), "{distro}: install set no verifier");
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "Deploy-New-Pw-e10\n").unwrap();
        let pw = pw.to_str().unwrap();
        let deploy = [
            "-a",
            "deploy",
            "-d",
            distro,
            "-H",
            "localhost",
            "--db-password-file",
            pw,
        ];

        let (code, plan, err) = run(&host, &[&deploy[..], &["--dry-run"]].concat());
        assert_eq!(code, 0, "{distro}: {err}");
        assert!(
            plan.contains("set the password of role telemetry"),
            "{distro}: the deploy plan does not set the role's password:\n{plan}"
        );
        let (code, out, err) = run(&host, &[&deploy[..], &["--format", "json"]].concat());
        assert_eq!(code, 0, "{distro}: {out}\n{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let set = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "postgres_password" && s["status"] == "changed");
        assert!(set, "{distro}: deploy did not set the password:\n{out}");
        let after = verifier();
        assert!(
            after
                .as_deref()
                .is_some_and(|v| v.starts_with("SCRAM-SHA-256$"))
                && after != before,
            "{distro}: the role's verifier did not change: {before:?} -> {after:?}"
        );
        let config = host.world.borrow().files[Path::new("/etc/telemetry/collector.toml")]
            .content
            .clone();
        let config: toml::Table = toml::from_str(&String::from_utf8_lossy(&config)).unwrap();
        assert_eq!(
            config["database_password"].as_str(),
            Some("Deploy-New-Pw-e10")
        );

        // Without an explicit password deploy keeps the stored one (login succeeds: ok).
        let host = installed(distro);
        let (code, plan, err) = run(
            &host,
            &["-a", "deploy", "-d", distro, "-H", "localhost", "--dry-run"],
        );
        assert_eq!(code, 0, "{distro}: {err}");
        assert!(
            plan.contains("role telemetry logs in with the password"),
            "{distro}: {plan}"
        );
    }
}
