//! End to end, an inventory (issue 18, "Tests") on real machines: the SSH lab (lab_support.rs)
//! with one sandbox per inventory host — the primary `db`, two collectors `c1` and `c2`, the
//! balancer `lb`, the hot standby `sb` — and the real `telem-deploy --inventory FILE` as the
//! controller in its own network namespace. One test (a lab of five Debian roots takes minutes
//! on two cores), in phases sharing it:
//!
//! 1. install with a nasty password: every host ok; the 17 replayable captured client requests
//!    (tests/fixtures/e2e/client) posted to the balancer are each answered 201 and stored once
//!    in the primary, and the query API through the balancer shows them; the collectors'
//!    connections to PostgreSQL are TLS (pg_stat_ssl); the standby is in recovery and streams
//!    from the primary through the slot over TLS (pg_stat_wal_receiver on it,
//!    pg_stat_replication and pg_stat_ssl on the primary), the records reach it, and the API
//!    reads from it (a record posted while its replay is paused is not listed until it
//!    resumes);
//! 2. pg_hba admits only the collectors: the right password over TLS from the controller's and
//!    the balancer's namespaces is refused by pg_hba, the same from c1's is admitted (the
//!    positive control), and c1 without TLS is refused;
//! 3. a second install changes nothing on any host;
//! 4. a dry run of the converged inventory changes nothing on any host (root listings) nor the
//!    controller's CA;
//! 5. resetdb: every collector stopped before the primary drops the database; the records
//!    gone on the primary and the standby, the collectors ready, a new record through the
//!    balancer stored on the primary and replayed on the standby;
//! 6. a rolling deploy of another collector binary: each collector drained from the balancer
//!    (its upstream `server` marked `down`, nginx reloaded), changed, put back; the balancer's
//!    site as install wrote it, an install (dry run) changes nothing, both collectors ready;
//! 7. promote: the old primary fenced (stopped, `standby.signal` and the marker in its data
//!    directory), the standby out of recovery, the inventory it prints written and used from
//!    then on: new records through the balancer are stored on the new primary, a dry run
//!    changes nothing on the collectors;
//! 8. uninstall with that inventory: every host ok, the database gone from the new primary,
//!    the collectors' config and CA file gone, the balancer's site gone.
//!
//! This file holds the lab's inventory, the checks of a run's outcome and the test; the checks
//! of the phases are beside it: `records.rs` (1), `access.rs` (2), `standby.rs` (1, 7) and
//! `waves.rs` (5, 6). The hosts are the table [`HOSTS`]. Waits are bounded polls of a condition ([`wait_for`]).
//! Without sandbox support the test prints `skipped: <reason>` and passes, unless
//! `TELEM_E2E_REQUIRED=1`. Timings and SSH round trips go to stderr (`--nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::e2e_support::*;
use crate::lab_support::{Lab, RemoteRun};
use crate::target_watch::{listing_diff, root_listing};

mod access;
mod records;
mod standby;
mod waves;

use access::*;
use records::*;
use standby::*;
pub(crate) use waves::next_collector;
use waves::*;

/// Quotes, spaces, `$`, a backslash, a backtick and non-ASCII; the ASCII token finds it in
/// escaped forms too.
pub(crate) const PASSWORD: &str = "inv 'fleet' \"pw\" \\ $HOME ; grüße ✓ `id` Qx9Inv";
const TOKEN: &str = "Qx9Inv";

/// The inventory's hosts, in the lab's order (sandbox i is 10.77.0.(11+i)): name and roles.
pub(crate) const HOSTS: &[(&str, &[&str])] = &[
    ("db", &["db"]),
    ("c1", &["collector"]),
    ("c2", &["collector"]),
    ("lb", &["balancer"]),
    ("sb", &["standby"]),
];

const DB_CA: &str = "/etc/telemetry/db-ca.pem";
/// The machine id of every captured request.
const CAPTURED_MACHINE: &str = "05510b6cfbd41f2f7220d73f24a0a1ea";
/// The machine id of the records posted while the standby's replay is paused.
const PAUSED_MACHINE: &str = "feed0000000000000000000000000001";
/// The machine id of the record posted after resetdb.
const RESET_MACHINE: &str = "feed0000000000000000000000000003";
/// The machine id of the records posted after the promotion.
const PROMOTED_MACHINE: &str = "feed0000000000000000000000000002";
/// How long a row may take to reach the standby, or a state to be reached.
const CONVERGE: std::time::Duration = std::time::Duration::from_secs(60);

/// The lab's indexes of the hosts holding `role`.
pub(crate) fn with_role(role: &str) -> Vec<usize> {
    (0..HOSTS.len())
        .filter(|&i| HOSTS[i].1.contains(&role))
        .collect()
}

pub(crate) fn one(role: &str) -> usize {
    let hosts = with_role(role);
    assert_eq!(hosts.len(), 1, "one {role} in HOSTS");
    hosts[0]
}

/// The inventory file of the lab (its CA in the lab's directory), written there.
pub(crate) fn write_inventory(lab: &Lab) -> (PathBuf, PathBuf) {
    let ca_dir = lab.dir.path().join("ca");
    let mut yaml = format!("domain: {DOMAIN}\nca_dir: {}\nhosts:\n", ca_dir.display());
    for (i, (name, roles)) in HOSTS.iter().enumerate() {
        yaml.push_str(&format!(
            "  - name: {name}\n    target: {}\n    roles: [{}]\n",
            lab.targets[i].target(),
            roles.join(", ")
        ));
    }
    let file = lab.dir.path().join("inventory.yaml");
    std::fs::write(&file, yaml).expect("write the inventory");
    (file, ca_dir)
}

// ---------------------------------------------------------------------------------------------
// The runs

/// The run's wall time, each host's own time and SSH round trips into the report; returns
/// them as `name: N round trips, S s` lines for the final figures.
pub(crate) fn figures(rep: &mut Report, phase: &str, run: &RemoteRun) -> String {
    rep.timing(&format!("{phase} (whole inventory)"), run.run.secs);
    let mut lines = format!("{phase}: {:.1} s wall", run.run.secs);
    for o in run.outcomes().unwrap_or_default() {
        let (secs, trips) = (o.seconds.unwrap_or(-1.0), o.round_trips.unwrap_or(-1));
        rep.timing(
            &format!("{phase}: {} ({trips} SSH round trips)", o.target),
            secs,
        );
        lines.push_str(&format!("; {} {trips} round trips {secs:.1} s", o.target));
    }
    lines
}

/// Every host of the run succeeded (exit 0, all hosts in the document, none failed); with
/// `converged`, none changed or would change anything.
pub(crate) fn expect_all_ok(rep: &mut Report, phase: &str, run: &RemoteRun, converged: bool) {
    let names: Vec<&str> = HOSTS.iter().map(|(n, _)| *n).collect();
    let quiet = if converged { names.clone() } else { vec![] };
    expect_ok(rep, phase, run, &names, &quiet);
}

/// Every host of `names` succeeded in the run (exit 0, exactly those in the document, none
/// failed); those of `converged` changed or would change nothing.
fn expect_ok(rep: &mut Report, phase: &str, run: &RemoteRun, names: &[&str], converged: &[&str]) {
    rep.check(
        run.code() == Some(0),
        format!("{phase}: exit {:?}: {}", run.code(), run.context()),
    );
    let n = names.len() as i64;
    let totals = (run.total("targets"), run.total("ok"), run.total("failed"));
    rep.check(
        totals == (n, n, 0),
        format!("{phase}: totals (targets, ok, failed) {totals:?}, want ({n}, {n}, 0)"),
    );
    for name in names {
        let r = run.target_run(name);
        rep.check(
            r.ok() && r.summary("failed") == 0,
            format!("{phase} on {name}: {}", r.context()),
        );
        if converged.contains(name) {
            let (changed, change) = (r.summary("changed"), r.summary("change"));
            rep.check(
                changed == 0 && change == 0,
                format!(
                    "{phase} on {name}: changed {changed}, change {change}, want 0: {:?} {:?}",
                    r.steps("changed"),
                    r.steps("change")
                ),
            );
        }
    }
    for out in [&run.run.stdout, &run.run.stderr] {
        rep.check(!out.contains(TOKEN), format!("{phase} prints the password"));
    }
}

// ---------------------------------------------------------------------------------------------
// The test

/// Issue 18 on real machines: an inventory of a primary, a standby, two collectors and a
/// balancer installed over SSH with a nasty password, records through the balancer, pg_hba,
/// TLS, replication, convergence, a dry run, promote, uninstall (see the module's doc).
#[test]
fn e2e_inventory_primary_collectors_balancer_whole_life() {
    let mut rep = Report::new("e2e_inventory");
    let Some(lab) = Lab::start("inventory", HOSTS.len(), &mut rep) else {
        return;
    };
    lab.check(&mut rep);
    let (inventory, ca_dir) = write_inventory(&lab);
    let pw = lab.password_file(PASSWORD);
    let pw = pw.to_str().expect("utf-8 path");
    let mut figures_out = Vec::new();

    // 1. Install.
    let run = lab.deploy_inventory(
        &inventory,
        &["-a", "install", "--yes", "--db-password-file", pw],
        None,
    );
    figures_out.push(figures(&mut rep, "install (fresh)", &run));
    expect_all_ok(&mut rep, "install", &run, false);
    rep.check(
        ca_dir.join("ca.pem").is_file() && ca_dir.join("ca.key.pem").is_file(),
        format!("the install created no CA in {}", ca_dir.display()),
    );
    if run.code() != Some(0) {
        return rep.finish();
    }
    let db_addr = &lab.targets[one("db")].addr;
    for c in with_role("collector") {
        let sb = &lab.targets[c].sb;
        let config = std::fs::read_to_string(host_path(sb, CONFIG)).unwrap_or_default();
        rep.check(
            config.contains(&format!("@{db_addr}:5432/telemetry"))
                && config.contains(&format!("database_ca_file = \"{DB_CA}\"")),
            format!(
                "{}'s config does not name the primary and the CA:\n{config}",
                HOSTS[c].0
            ),
        );
        let ca_there = std::fs::read_to_string(host_path(sb, DB_CA)).unwrap_or_default();
        let ca_here = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap_or_default();
        rep.check(
            !ca_here.is_empty() && ca_there.trim() == ca_here.trim(),
            format!("{} lacks the inventory's CA at {DB_CA}", HOSTS[c].0),
        );
    }
    let lb = one("balancer");
    let site = std::fs::read_to_string(host_path(&lab.targets[lb].sb, SITE)).unwrap_or_default();
    for c in with_role("collector") {
        rep.check(
            site.contains(&format!("server {}:80 ", lab.targets[c].addr)),
            format!("the balancer's site lacks {}:\n{site}", HOSTS[c].0),
        );
    }
    records_through_the_balancer(&lab, &mut rep);
    collectors_use_tls(&lab, &mut rep);
    standby_streams(&lab, &mut rep);

    // 2. pg_hba.
    pg_hba_admits_only_the_collectors(&lab, &ca_dir, &mut rep);
    password_in_no_process(&lab, &mut rep);

    // 3. A second install changes nothing (the password is the one stored there).
    let run = lab.deploy_inventory(&inventory, &["-a", "install", "--yes"], None);
    figures_out.push(figures(&mut rep, "install (converged)", &run));
    expect_all_ok(&mut rep, "second install", &run, true);

    // 4. A dry run of the converged inventory: nothing changes on any host, nor the CA.
    let before: Vec<_> = lab.targets.iter().map(|t| root_listing(&t.sb)).collect();
    let ca_before = std::fs::read(ca_dir.join("ca.pem")).ok();
    let run = lab.deploy_inventory(&inventory, &["-a", "install", "--dry-run"], None);
    figures_out.push(figures(&mut rep, "dry run (converged)", &run));
    expect_all_ok(&mut rep, "dry run", &run, true);
    rep.check(
        run.run.json["dry_run"] == true,
        format!(
            "the dry run's document says dry_run {}",
            run.run.json["dry_run"]
        ),
    );
    for (i, t) in lab.targets.iter().enumerate() {
        let diff = listing_diff(&before[i], &root_listing(&t.sb));
        rep.check(
            diff.is_empty() && !before[i].is_empty(),
            format!(
                "the dry run changed {}'s root:\n  {}",
                HOSTS[i].0,
                diff.join("\n  ")
            ),
        );
    }
    rep.check(
        ca_before.is_some() && std::fs::read(ca_dir.join("ca.pem")).ok() == ca_before,
        "the dry run changed the CA",
    );

    // 5. resetdb: the records gone on the primary and the standby, the collectors healthy, a
    // new record through the balancer on both.
    let run = lab.deploy_inventory(&inventory, &["-a", "resetdb", "--yes"], None);
    figures_out.push(figures(&mut rep, "resetdb", &run));
    let mut names: Vec<String> = HOSTS.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(
        with_role("collector")
            .into_iter()
            .map(|c| format!("{} (stop)", HOSTS[c].0)),
    );
    expect_ok(
        &mut rep,
        "resetdb",
        &run,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    reset(&lab, &mut rep);

    // 6. A rolling deploy of another collector binary: each collector drained from the
    // balancer, changed, put back; the balancer's site as install wrote it, both healthy.
    let next = lab.dir.path().join("telem-collector.next");
    let next = next_collector(&next);
    let next = next.to_str().expect("utf-8 path");
    let run = lab.deploy_inventory(
        &inventory,
        &["-a", "deploy", "--yes", "--collector-bin", next],
        None,
    );
    figures_out.push(figures(&mut rep, "rolling deploy", &run));
    rolled(&lab, &mut rep, &run, &site);
    let run = lab.deploy_inventory(
        &inventory,
        &["-a", "install", "--dry-run", "--collector-bin", next],
        None,
    );
    expect_all_ok(&mut rep, "install after the rolling deploy", &run, true);

    // 7. Promote: the old primary fenced, the standby the primary, the collectors pointed at
    // it; the printed inventory is the one from now on.
    let run = lab.deploy_inventory(&inventory, &["-a", "promote", "--yes"], None);
    figures_out.push(figures(&mut rep, "promote", &run));
    let (targets, failed) = (run.total("targets"), run.total("failed"));
    rep.check(
        run.code() == Some(0) && failed == 0 && run.total("ok") == targets && targets > 0,
        format!(
            "promote: exit {:?}, {targets} targets, {failed} failed: {}",
            run.code(),
            run.context()
        ),
    );
    for out in [&run.run.stdout, &run.run.stderr] {
        rep.check(!out.contains(TOKEN), "promote prints the password");
    }
    promoted(&lab, &mut rep);
    let Some(inventory) = write_promoted_inventory(&lab, &mut rep, &run) else {
        return rep.finish();
    };
    let now: Vec<&str> = HOSTS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != HOSTS[one("db")].0)
        .collect();
    let collectors: Vec<&str> = with_role("collector")
        .into_iter()
        .map(|c| HOSTS[c].0)
        .collect();
    // New records through the balancer are stored on the new primary.
    let sb = &lab.targets[one("standby")].sb;
    let ids = post_new_records(&lab, &mut rep, PROMOTED_MACHINE, 3);
    let stored = stored_ids(sb, PROMOTED_MACHINE);
    rep.check(
        ids.len() == 3 && stored.as_deref() == Ok(joined(&ids).as_str()),
        format!("records posted after promote: ids {ids:?}, on the new primary {stored:?}"),
    );
    let api = api_ids(&lab, PROMOTED_MACHINE);
    rep.check(
        api.as_ref() == Ok(&ids),
        format!("GET through the balancer after promote: {api:?}, want {ids:?}"),
    );
    // A dry run of the new inventory: the collectors are already pointed at the new primary.
    let run = lab.deploy_inventory(
        &inventory,
        &["-a", "install", "--dry-run", "--collector-bin", next],
        None,
    );
    figures_out.push(figures(&mut rep, "dry run (promoted inventory)", &run));
    expect_ok(
        &mut rep,
        "dry run of the promoted inventory",
        &run,
        &now,
        &collectors,
    );
    for name in &now {
        let r = run.target_run(name);
        eprintln!(
            "[e2e_inventory] dry run of the promoted inventory on {name}: would change {:?}",
            r.steps("change")
        );
    }

    // 8. Uninstall, with the inventory as it now is.
    let db = &lab.targets[one("standby")].sb;
    let hba_file = sql(db, "postgres", "show hba_file").unwrap_or_default();
    let run = lab.deploy_inventory(&inventory, &["-a", "uninstall", "--yes"], None);
    figures_out.push(figures(&mut rep, "uninstall", &run));
    expect_ok(&mut rep, "uninstall", &run, &now, &[]);
    let dbs = sql(
        db,
        "postgres",
        "select count(*) from pg_database where datname = 'telemetry'",
    );
    rep.check(
        dbs.as_deref() == Ok("0"),
        format!("the database is still on the new primary: {dbs:?}"),
    );
    let hba = std::fs::read_to_string(host_path(db, &hba_file)).unwrap_or_default();
    rep.check(
        !hba_file.is_empty() && !hba.is_empty() && !hba.contains("telem-deploy"),
        format!("{hba_file} keeps telem-deploy's block:\n{hba}"),
    );
    for c in with_role("collector") {
        for path in [CONFIG, DB_CA] {
            rep.check(
                !exists(&lab.targets[c].sb, path),
                format!("{path} is left on {}", HOSTS[c].0),
            );
        }
    }
    for path in [SITE, SITE_LINK] {
        rep.check(
            !exists(&lab.targets[lb].sb, path),
            format!("{path} is left on the balancer"),
        );
    }
    rep.check(
        lab.tmp_left().is_empty(),
        format!("left in the controller's TMPDIR: {:?}", lab.tmp_left()),
    );
    eprintln!("[e2e_inventory] figures:\n  {}", figures_out.join("\n  "));
    rep.finish();
}
