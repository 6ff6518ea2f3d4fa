//! The replication step kinds on the fake host (`fake_psql.rs` runs their SQL against the
//! fake cluster): `postgres_role { replication: true }`, `postgres_slot`, `postgres_standby`'s
//! check, `postgres_promote`, `postgres_fence`, `postgres_password { secret: replication }`.
//! Each runs as the `restart` action of a copy of the Debian recipe whose steps are replaced
//! (the built-in recipes are the lead's to wire); plans, a converging second run, names that
//! break quoting, and what the compiler refuses.
//!
//! The replication password comes from the inventory (the lead's part): without one, the
//! steps that need it are blocked, which is what these runs see. The base backup itself is
//! tested against a real PostgreSQL (src/engine/standby_server_test.rs).

use std::path::Path;

use crate::fake_host::FakeHost;
use crate::golden::{installed, run};

/// A recipe directory: Debian's, with `restart` made of `steps` (YAML list items).
fn recipes_with(steps: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    std::fs::copy(recipes.join("debian.yaml"), dir.path().join("debian.yaml")).unwrap();
    let shared = std::fs::read_to_string(recipes.join("shared.yaml")).unwrap();
    let start = shared.find("\n  restart:\n").expect("a restart action") + 1;
    let end = shared
        .find("\n  uninstall:\n")
        .expect("an uninstall action")
        + 1;
    let replaced = format!(
        "{}  restart:\n{steps}\n{}",
        &shared[..start],
        &shared[end..]
    );
    std::fs::write(dir.path().join("shared.yaml"), replaced).unwrap();
    dir
}

/// `restart` with these steps: (code, stdout, stderr); a plan is JSON.
fn restart(host: &FakeHost, recipes: &tempfile::TempDir, dry: bool) -> (u8, String, String) {
    let mut args = vec![
        "-a",
        "restart",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--recipes",
        recipes.path().to_str().unwrap(),
        "--format",
        "json",
    ];
    if dry {
        args.extend(["--dry-run", "--detailed-exitcode"]);
    }
    run(host, &args)
}

/// Each step of a plan or result: (kind, status, changes joined by "; ").
fn steps(out: &str) -> Vec<(String, String, String)> {
    let doc: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let changes = s["changes"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|x| x.as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            (
                s["kind"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                changes,
            )
        })
        .collect()
}

const HOSTILE_ROLE: &str = "re'pl\"ica; DROP ROLE postgres; -- \\\\ :x";

#[test]
fn a_replication_role_and_a_slot_converge() {
    let host = installed("debian");
    host.world.borrow_mut().roles.insert("plain".into(), None);
    let recipes = recipes_with(&format!(
        "    - name: The replication role\n      postgres_role: {{ name: {HOSTILE_ROLE:?}, replication: true }}\n\
         \x20   - name: A plain role made a replication one\n      postgres_role: {{ name: plain, replication: true }}\n\
         \x20   - name: The standby's slot\n      postgres_slot: {{ name: standby_1 }}\n"
    ));
    let before = host.world.borrow().clone();
    let (code, out, err) = restart(&host, &recipes, true);
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(*host.world.borrow(), before, "a dry run changes nothing");
    assert_eq!(
        steps(&out),
        [
            (
                "postgres_role".into(),
                "change".into(),
                format!("create role {HOSTILE_ROLE} (LOGIN REPLICATION)")
            ),
            (
                "postgres_role".into(),
                "change".into(),
                "give role plain LOGIN REPLICATION (it lacks one of them)".into()
            ),
            (
                "postgres_slot".into(),
                "change".into(),
                "create physical replication slot standby_1 (reserving WAL from now on)".into()
            ),
        ]
    );
    let (code, out, err) = restart(&host, &recipes, false);
    assert_eq!(code, 0, "{out}{err}");
    {
        let w = host.world.borrow();
        assert!(w.roles.contains_key(HOSTILE_ROLE) && w.replication.contains(HOSTILE_ROLE));
        assert!(w.replication.contains("plain"));
        assert_eq!(w.slots.get("standby_1"), Some(&false));
    }
    let (code, out, err) = restart(&host, &recipes, true);
    assert_eq!(code, 0, "the second run changes nothing: {out}{err}");
    assert!(steps(&out).iter().all(|s| s.1 == "ok"), "{out}");
}

#[test]
fn an_active_slot_is_never_dropped() {
    let host = installed("debian");
    host.world
        .borrow_mut()
        .slots
        .extend([("busy".to_owned(), true), ("idle".to_owned(), false)]);
    let recipes = recipes_with(
        "    - name: Drop the idle slot\n      postgres_slot: { name: idle, state: absent }\n\
         \x20   - name: Drop the busy slot\n      postgres_slot: { name: busy, state: absent }\n",
    );
    let (code, out, _) = restart(&host, &recipes, true);
    assert_eq!(code, 3);
    let plan = steps(&out);
    assert_eq!(plan[0].1, "change");
    assert_eq!(plan[1].1, "blocked", "{plan:?}");
    assert!(
        plan[1].2.contains("replication slot busy is active"),
        "{plan:?}"
    );
    let (code, out, err) = restart(&host, &recipes, false);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        (out.clone() + &err).contains(
            "replication slot busy is active (a standby streams through it): it is not dropped"
        ),
        "{out}{err}"
    );
    let w = host.world.borrow();
    assert_eq!(w.slots.get("busy"), Some(&true), "kept");
    assert!(!w.slots.contains_key("idle"), "the idle one went");
}

#[test]
fn a_standby_check_without_and_with_streaming() {
    let host = installed("debian");
    let recipes = recipes_with(
        "    - name: A standby of the primary\n      postgres_standby: { primary: 10.77.0.11, role: replicator, slot: standby_1, ca_file: /etc/telemetry/db-ca.pem }\n\
         \x20   - name: The replication password\n      postgres_password: { role: replicator, secret: replication }\n",
    );
    // A fresh install's cluster is a primary; without the inventory's replication password
    // the step cannot make it a standby.
    let (code, out, err) = restart(&host, &recipes, true);
    assert_eq!(code, 3, "blocked is pending: {out}{err}");
    let plan = steps(&out);
    assert_eq!(plan[0].0, "postgres_standby");
    assert_eq!(plan[0].1, "blocked", "{plan:?}");
    assert!(
        plan[0].2.contains("it is a primary, not a standby")
            && plan[0].2.contains("no replication password"),
        "{plan:?}"
    );
    assert_eq!(plan[1].1, "blocked", "{plan:?}");
    assert!(plan[1].2.contains("no replication password"), "{plan:?}");
    // An apply refuses at the first step, having changed nothing.
    let before = host.world.borrow().clone();
    let (code, out, err) = restart(&host, &recipes, false);
    assert_ne!(code, 0, "{out}{err}");
    assert_eq!(*host.world.borrow(), before);

    // Streaming from another primary, or through another slot: a change (still blocked here).
    host.world.borrow_mut().in_recovery = true;
    host.world.borrow_mut().receiver = Some(("10.77.0.99".into(), 5432, "standby_1".into()));
    let (_, out, _) = restart(&host, &recipes, true);
    assert!(
        steps(&out)[0]
            .2
            .contains("a standby of 10.77.0.99:5432 through slot \"standby_1\" (streaming, sslmode \"prefer\")"),
        "{out}"
    );
    // From that primary through that slot, but not verifying it with the CA: a change.
    host.world.borrow_mut().receiver = Some(("10.77.0.11".into(), 5432, "standby_1".into()));
    let (_, out, _) = restart(&host, &recipes, true);
    assert!(
        steps(&out)[0].2.contains("(streaming, sslmode \"prefer\")"),
        "{out}"
    );
    // Verifying it with that CA: ok, nothing needed.
    host.world.borrow_mut().receiver_ca = Some("/etc/telemetry/db-ca.pem".into());
    let (_, out, _) = restart(&host, &recipes, true);
    assert_eq!(
        steps(&out)[0],
        (
            "postgres_standby".into(),
            "ok".into(),
            "a standby streaming from 10.77.0.11:5432 through slot standby_1 (TLS verified with /etc/telemetry/db-ca.pem)".into()
        )
    );
    // PostgreSQL stopped: still a change to make (blocked without the password).
    host.world.borrow_mut().running.remove("postgresql");
    let (_, out, _) = restart(&host, &recipes, true);
    assert!(
        steps(&out)[0].2.starts_with("PostgreSQL is not running"),
        "{out}"
    );
}

#[test]
fn promote_then_fence() {
    let host = installed("debian");
    host.world.borrow_mut().in_recovery = true;
    host.world.borrow_mut().receiver = Some(("10.77.0.11".into(), 5432, "standby_1".into()));
    let promote = recipes_with("    - name: Promote\n      postgres_promote: {}\n");
    let (code, out, _) = restart(&host, &promote, true);
    assert_eq!(code, 3);
    assert_eq!(
        steps(&out)[0].2,
        "promote the standby to primary (pg_promote, waiting up to 60 s until it accepts writes)"
    );
    let (code, out, err) = restart(&host, &promote, false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!host.world.borrow().in_recovery);
    let (code, out, _) = restart(&host, &promote, true);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        steps(&out)[0].2,
        "not in recovery: a primary, accepting writes"
    );

    // The old primary: fenced (the fake runs the direct manager: pg_ctlcluster).
    let data = "/var/lib/postgresql/15/main";
    let fence = recipes_with(
        "    - name: Fence the old primary\n      postgres_fence: { reason: \"10.77.0.12 was promoted\" }\n",
    );
    let (code, out, _) = restart(&host, &fence, true);
    assert_eq!(code, 3);
    assert_eq!(
        steps(&out)[0].2,
        format!("stop postgresql; write standby.signal and telem-deploy-fenced into {data} (it can only start as a standby)")
    );
    let (code, out, err) = restart(&host, &fence, false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!host.pg_running());
    let marker =
        host.world.borrow().files[Path::new(&format!("{data}/telem-deploy-fenced"))].clone();
    let text = String::from_utf8(marker.content).unwrap();
    assert!(
        text.starts_with("fenced by telem-deploy at 20")
            && text.contains("Z: 10.77.0.12 was promoted\n"),
        "{text}"
    );
    assert_eq!(marker.mode, 0o600);
    assert!(host.exists(&format!("{data}/standby.signal")));
    // Fenced: a second run changes nothing (the cluster is found on disk while stopped).
    let (code, out, _) = restart(&host, &fence, true);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        steps(&out)[0].2,
        format!("fenced: postgresql stopped, {data} holds standby.signal and telem-deploy-fenced")
    );
}

#[test]
fn the_compiler_refuses_what_cannot_be_a_slot_or_an_address() {
    let host = FakeHost::fresh("debian", false);
    for (step, path, message) in [
        (
            "postgres_slot: { name: \"Bad-Slot\" }",
            "postgres_slot.name",
            "is not a replication slot name",
        ),
        (
            "postgres_standby: { primary: \"10.0.0.1 host=evil\", role: r, slot: s }",
            "postgres_standby.primary",
            "is not an IP address or a host name",
        ),
        (
            "postgres_standby: { primary: 10.0.0.1, role: r, slot: \"s;x\" }",
            "postgres_standby.slot",
            "is not a replication slot name",
        ),
        (
            "postgres_standby: { primary: 10.0.0.1, role: r, slot: s, ca_file: ca.pem }",
            "postgres_standby.ca_file",
            "is not an absolute path",
        ),
        (
            "postgres_standby: { primary: 10.0.0.1, role: r, slot: s, service: nope }",
            "postgres_standby.service",
            "nope",
        ),
        (
            "postgres_role: { name: r, state: absent, replication: true }",
            "postgres_role.replication",
            "an absent role has no attributes",
        ),
        (
            "postgres_password: { role: r, secret: nope }",
            "postgres_password",
            "unknown variant",
        ),
    ] {
        let recipes = recipes_with(&format!("    - name: A step\n      {step}\n"));
        let (code, out, err) = restart(&host, &recipes, true);
        assert_eq!(code, 2, "{step}: {out}{err}");
        assert!(err.contains(path) && err.contains(message), "{step}: {err}");
    }
}

#[test]
fn fencing_under_systemd_disables_the_unit() {
    let host = FakeHost::fresh("debian", true);
    crate::golden::install(&host, "debian");
    assert!(host.pg_running());
    assert!(host.world.borrow().enabled.contains("postgresql"));
    let fence = recipes_with("    - name: Fence\n      postgres_fence: {}\n");
    let (code, out, _) = restart(&host, &fence, true);
    assert_eq!(code, 3);
    let plan = steps(&out);
    assert!(
        plan[0]
            .2
            .starts_with("stop postgresql; disable postgresql at boot; write standby.signal"),
        "{plan:?}"
    );
    let (code, out, err) = restart(&host, &fence, false);
    assert_eq!(code, 0, "{out}{err}");
    {
        let w = host.world.borrow();
        assert!(!w.running.contains("postgresql") && !w.enabled.contains("postgresql"));
    }
    let marker = String::from_utf8(
        host.world.borrow().files[Path::new("/var/lib/postgresql/15/main/telem-deploy-fenced")]
            .content
            .clone(),
    )
    .unwrap();
    assert!(
        marker.contains(": a standby was promoted to primary in its place\n"),
        "{marker}"
    );
    let (code, out, _) = restart(&host, &fence, true);
    assert_eq!(code, 0, "fenced: {out}");
}
