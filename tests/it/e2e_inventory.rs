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
//! The hosts are the table [`HOSTS`]. Waits are bounded polls of a condition ([`wait_for`]).
//! Without sandbox support the test prints `skipped: <reason>` and passes, unless
//! `TELEM_E2E_REQUIRED=1`. Timings and SSH round trips go to stderr (`--nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::e2e_support::*;
use crate::lab_support::{Lab, RemoteRun};
use crate::target_watch::{listing_diff, root_listing};

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
// Records through the balancer

/// The captured requests (the repository's copies), sorted; each with its creation timestamp.
fn captured_requests(rep: &mut Report) -> Vec<(String, Vec<u8>, i64)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e/client");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/e2e/client")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 17, "the 17 replayable captured requests");
    // The copies are the captures, when the shared folder is there to compare.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/client");
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let raw = std::fs::read(f).expect("fixture");
            if let Ok(original) = std::fs::read(shared.join(&name)) {
                rep.check(
                    original == raw,
                    format!("{name} differs from ../shared/vectors/client/{name}"),
                );
            }
            let ts =
                creation_timestamp(&raw).unwrap_or_else(|| panic!("{name}: no creation_timestamp"));
            (name, raw, ts)
        })
        .collect()
}

/// `creation_timestamp` of a header-format or JSON request.
fn creation_timestamp(raw: &[u8]) -> Option<i64> {
    let s = String::from_utf8_lossy(raw);
    let at = s.find("creation_timestamp")? + "creation_timestamp".len();
    let digits: String = s[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// POST each captured request to the balancer from the controller: 201 each; then each is one
/// row of the primary (by the id its answer names and by its creation timestamp), nothing
/// else is, and the query API through the balancer lists exactly them.
fn records_through_the_balancer(lab: &Lab, rep: &mut Report) {
    let lb = &lab.targets[one("balancer")];
    let db = &lab.targets[one("db")].sb;
    let requests = captured_requests(rep);
    let before = sql(db, "telemetry", "select count(*) from records");
    rep.check(
        before.as_deref() == Ok("0"),
        format!("records before posting: {before:?}"),
    );
    // id -> (file, creation timestamp)
    let mut posted: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    let started = std::time::Instant::now();
    for (name, raw, ts) in &requests {
        let answer = Lab::request_from(&lab.netns(), &lb.addr, raw);
        let id = answer.as_ref().ok().and_then(|(_, _, body)| {
            serde_json::from_str::<serde_json::Value>(body).ok()?["id"].as_i64()
        });
        match (&answer, id) {
            (Ok((201, _, _)), Some(id)) => {
                rep.check(
                    posted.insert(id, (name.clone(), *ts)).is_none(),
                    format!("POST {name}: id {id} answered twice"),
                );
            }
            _ => rep.check(
                false,
                format!("POST {name} to the balancer {}: {answer:?}", lb.addr),
            ),
        }
    }
    rep.timing(
        &format!("POST {} captured requests to the balancer", requests.len()),
        started.elapsed().as_secs_f64(),
    );

    // The primary holds each once: by id, by creation timestamp, nothing else.
    let rows = sql(
        db,
        "telemetry",
        "select id, timestamp_client::bigint, machine_id from records order by id",
    );
    let stored: BTreeMap<i64, (i64, String)> = rows
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            let id = f.next()?.parse().ok()?;
            let ts = f.next()?.parse().ok()?;
            Some((id, (ts, f.next()?.to_owned())))
        })
        .collect();
    rep.check(
        stored.len() == requests.len() && posted.len() == requests.len(),
        format!(
            "rows in the primary: {} (posted {} with an id, {} requests): {rows:?}",
            stored.len(),
            posted.len(),
            requests.len()
        ),
    );
    for (id, (name, ts)) in &posted {
        let row = stored.get(id);
        rep.check(
            row == Some(&(*ts, CAPTURED_MACHINE.to_owned())),
            format!("{name}: answered id {id}, stored {row:?}, want ({ts}, {CAPTURED_MACHINE})"),
        );
    }
    for (_, _, ts) in &requests {
        let n = stored.values().filter(|(t, _)| t == ts).count();
        rep.check(n == 1, format!("creation_timestamp {ts}: {n} rows, want 1"));
    }

    // The query API through the balancer (whichever collector answers) lists them.
    let get = format!(
        "GET /api/records?machine_id={CAPTURED_MACHINE}&limit=1000 HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n"
    );
    for round in 0..2 {
        let answer = Lab::request_from(&lab.netns(), &lb.addr, get.as_bytes());
        let ids: Option<Vec<i64>> = answer.as_ref().ok().and_then(|(status, _, body)| {
            if *status != 200 {
                return None;
            }
            let doc: serde_json::Value = serde_json::from_str(body).ok()?;
            doc["records"]
                .as_array()?
                .iter()
                .map(|r| r["id"].as_i64())
                .collect()
        });
        let mut ids = ids.unwrap_or_default();
        ids.sort();
        let want: Vec<i64> = posted.keys().copied().collect();
        rep.check(
            ids == want,
            format!("GET /api/records through the balancer (#{round}): ids {ids:?}, want {want:?}: {answer:?}"),
        );
    }
}

/// The primary's clients: the collectors (and a standby).
fn db_clients(lab: &Lab) -> Vec<&str> {
    let mut hosts = with_role("collector");
    hosts.extend(with_role("standby"));
    hosts
        .into_iter()
        .map(|i| lab.targets[i].addr.as_str())
        .collect()
}

/// The collectors' connections to the primary, as pg_stat_ssl sees them: each collector has
/// one at least, every one is TLS, and no other address than the primary's clients has any.
fn collectors_use_tls(lab: &Lab, rep: &mut Report) {
    let db = &lab.targets[one("db")].sb;
    let rows = sql(
        db,
        "postgres",
        "select host(a.client_addr), s.ssl, coalesce(s.version, '-') from pg_stat_activity a \
         join pg_stat_ssl s using (pid) where a.client_addr is not null order by 1",
    );
    eprintln!("[e2e_inventory] connections to the primary (address|ssl|version):\n{rows:?}");
    let rows: Vec<Vec<String>> = rows
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    let collectors: Vec<&str> = with_role("collector")
        .into_iter()
        .map(|i| lab.targets[i].addr.as_str())
        .collect();
    for addr in &collectors {
        rep.check(
            rows.iter().any(|r| r[0] == *addr),
            format!("no connection from the collector {addr} to the primary: {rows:?}"),
        );
    }
    let clients = db_clients(lab);
    for r in &rows {
        rep.check(
            clients.contains(&r[0].as_str()) && r[1] == "t",
            format!("a connection to the primary that is not a client's over TLS: {r:?}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// pg_hba

/// A libpq password file (0600) for the database role at the primary, `:` and `\` escaped.
fn passfile(lab: &Lab, db_addr: &str) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let escaped = PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    let path = lab.dir.path().join("pgpass");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .expect("pgpass");
    writeln!(f, "{db_addr}:5432:telemetry:telemetry:{escaped}").expect("write pgpass");
    path
}

/// This machine's psql in the network namespace `netns`, logging in to the primary as the
/// database role with the password from `pgpass` (never argv); Ok(whether the session is
/// TLS) or Err(psql's message).
fn psql_from(
    netns: &str,
    db_addr: &str,
    sslmode: &str,
    ca: &Path,
    pgpass: &Path,
) -> Result<String, String> {
    let conninfo = format!(
        "host={db_addr} port=5432 dbname=telemetry user=telemetry sslmode={sslmode} sslrootcert={} connect_timeout=10",
        ca.display()
    );
    let out = std::process::Command::new("timeout")
        .args(["30", "nsenter"])
        .arg(format!("--net={netns}"))
        .args(["psql", "-w", "-tAX", "-d", &conninfo, "-c"])
        .arg("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .env("PGPASSFILE", pgpass)
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(text(&out.stdout).trim().to_owned())
    } else {
        Err(text(&out.stderr).trim().to_owned())
    }
}

/// The primary admits exactly its collectors: from c1's namespace the password over TLS
/// logs in (verify-full against the inventory's CA), without TLS it is refused by pg_hba; from
/// the controller's and the balancer's namespaces the same password over TLS is refused by
/// pg_hba (PostgreSQL listens there: the connection is made, then refused).
fn pg_hba_admits_only_the_collectors(lab: &Lab, ca_dir: &Path, rep: &mut Report) {
    if crate::ssh_support::which("psql").is_none() {
        rep.check(
            false,
            "psql is needed on this machine for the pg_hba checks",
        );
        return;
    }
    let db_addr = lab.targets[one("db")].addr.clone();
    let ca = ca_dir.join("ca.pem");
    let pgpass = passfile(lab, &db_addr);
    let netns_of = |i: usize| {
        format!(
            "/proc/{}/ns/net",
            lab.targets[i].sb.pid().unwrap_or_else(|e| panic!("{e}"))
        )
    };
    let c1 = with_role("collector")[0];
    let admitted = psql_from(&netns_of(c1), &db_addr, "verify-full", &ca, &pgpass);
    rep.check(
        admitted.as_deref() == Ok("t"),
        format!(
            "positive control: from {} (a collector) over TLS: {admitted:?}",
            lab.targets[c1].addr
        ),
    );
    let plain = psql_from(&netns_of(c1), &db_addr, "disable", &ca, &pgpass);
    rep.check(
        plain
            .as_ref()
            .is_err_and(|e| e.contains("no pg_hba.conf entry")),
        format!(
            "from {} without TLS: {plain:?}, want refused by pg_hba",
            lab.targets[c1].addr
        ),
    );
    let others = [
        (
            "the controller",
            lab.netns(),
            crate::lab_support::CONTROLLER_ADDR.to_owned(),
        ),
        (
            "the balancer",
            netns_of(one("balancer")),
            lab.targets[one("balancer")].addr.clone(),
        ),
    ];
    for (who, netns, addr) in others {
        let refused = psql_from(&netns, &db_addr, "verify-full", &ca, &pgpass);
        eprintln!(
            "[e2e_inventory] from {who} ({addr}) with the right password over TLS: {refused:?}"
        );
        rep.check(
            refused.as_ref().is_err_and(|e| {
                e.contains("no pg_hba.conf entry") && e.contains(&format!("\"{addr}\""))
            }),
            format!("from {who} ({addr}) with the right password over TLS: {refused:?}, want refused by pg_hba"),
        );
    }
}

/// No process on any host holds the password in its argv or environment (the collectors'
/// config holds it, a 0640 file).
fn password_in_no_process(lab: &Lab, rep: &mut Report) {
    // `Qx9I[n]v`: the pattern does not match grep's own argv.
    let pattern = format!("{}[{}]{}", &TOKEN[..4], &TOKEN[4..5], &TOKEN[5..]);
    let probe = format!(
        "grep -l -a -e '{pattern}' /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; true"
    );
    for (i, t) in lab.targets.iter().enumerate() {
        let procs = sh(&t.sb, &probe);
        rep.check(
            procs.as_deref() == Ok(""),
            format!("processes on {} hold the password: {procs:?}", HOSTS[i].0),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The standby

/// Poll `probe` until it answers `want` or [`CONVERGE`] passes (a bounded wait on a
/// condition); the last answer and the time it took.
fn wait_for(
    want: &str,
    mut probe: impl FnMut() -> Result<String, String>,
) -> (Result<String, String>, f64) {
    let started = std::time::Instant::now();
    loop {
        let got = probe();
        if got.as_deref() == Ok(want) || started.elapsed() > CONVERGE {
            return (got, started.elapsed().as_secs_f64());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The first captured header-format request with `machine` as its machine id and
/// `creation_timestamp` moved by `n` seconds (same lengths: Content-Length holds).
fn new_record(machine: &str, n: i64) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e/client");
    let raw = std::fs::read_to_string(dir.join("v1.13.0-headers-rfv2.http")).expect("fixture");
    let ts = creation_timestamp(raw.as_bytes()).expect("creation_timestamp");
    assert_eq!(machine.len(), CAPTURED_MACHINE.len());
    raw.replace(CAPTURED_MACHINE, machine)
        .replace(
            &format!("creation_timestamp: {ts}"),
            &format!("creation_timestamp: {}", ts + n),
        )
        .into_bytes()
}

/// POST `count` new records of `machine` to the balancer: the ids answered (201 each).
fn post_new_records(lab: &Lab, rep: &mut Report, machine: &str, count: i64) -> Vec<i64> {
    let lb = &lab.targets[one("balancer")];
    let mut ids = Vec::new();
    for n in 1..=count {
        let answer = Lab::request_from(&lab.netns(), &lb.addr, &new_record(machine, n));
        let id = answer.as_ref().ok().and_then(|(status, _, body)| {
            (*status == 201)
                .then(|| serde_json::from_str::<serde_json::Value>(body).ok()?["id"].as_i64())?
        });
        match id {
            Some(id) => ids.push(id),
            None => rep.check(false, format!("POST a record of {machine}: {answer:?}")),
        }
    }
    ids
}

/// The ids the query API through the balancer lists for `machine`, or why not.
fn api_ids(lab: &Lab, machine: &str) -> Result<Vec<i64>, String> {
    let lb = &lab.targets[one("balancer")];
    let get = format!(
        "GET /api/records?machine_id={machine}&limit=1000 HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n"
    );
    let answer = Lab::request_from(&lab.netns(), &lb.addr, get.as_bytes())?;
    let ids = (answer.0 == 200)
        .then(|| {
            let doc: serde_json::Value = serde_json::from_str(&answer.2).ok()?;
            doc["records"]
                .as_array()?
                .iter()
                .map(|r| r["id"].as_i64())
                .collect::<Option<Vec<i64>>>()
        })
        .flatten();
    let mut ids = ids.ok_or_else(|| format!("{answer:?}"))?;
    ids.sort();
    Ok(ids)
}

/// The ids of `machine`'s rows in the database of `sb`, comma-separated.
fn stored_ids(sb: &crate::sandbox::Sandbox, machine: &str) -> Result<String, String> {
    sql(
        sb,
        "telemetry",
        &format!("select coalesce(string_agg(id::text, ',' order by id), '') from records where machine_id = '{machine}'"),
    )
}

fn joined(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// After the install: the standby is in recovery and streams from the primary (its WAL
/// receiver, the primary's pg_stat_replication with the standby's address over TLS); the
/// captured records reach it; the collectors read from it.
fn standby_streams(lab: &Lab, rep: &mut Report) {
    let (db, sb) = (&lab.targets[one("db")], &lab.targets[one("standby")]);
    let recovery = sql(&sb.sb, "postgres", "select pg_is_in_recovery()");
    rep.check(
        recovery.as_deref() == Ok("t"),
        format!("the standby in recovery: {recovery:?}"),
    );
    let (receiver, secs) = wait_for(&format!("streaming|{}|telem_standby", db.addr), || {
        sql(
            &sb.sb,
            "postgres",
            "select status, sender_host, slot_name from pg_stat_wal_receiver",
        )
    });
    rep.timing("the standby's WAL receiver streaming", secs);
    rep.check(
        receiver.as_deref() == Ok(&format!("streaming|{}|telem_standby", db.addr)),
        format!("pg_stat_wal_receiver on the standby: {receiver:?}"),
    );
    let senders = sql(
        &db.sb,
        "postgres",
        "select host(r.client_addr), r.state, r.usename, s.ssl from pg_stat_replication r \
         join pg_stat_ssl s using (pid) order by 1",
    );
    rep.check(
        senders.as_deref() == Ok(&format!("{}|streaming|telem_replicator|t", sb.addr)),
        format!("pg_stat_replication on the primary (address|state|user|ssl): {senders:?}"),
    );
    let slot = sql(
        &db.sb,
        "postgres",
        "select slot_name, active from pg_replication_slots",
    );
    rep.check(
        slot.as_deref() == Ok("telem_standby|t"),
        format!("the primary's replication slots: {slot:?}"),
    );

    // The captured records are on the standby, as on the primary.
    let all = "select coalesce(string_agg(id::text, ',' order by id), '') from records";
    let on_primary = sql(&db.sb, "telemetry", all).unwrap_or_default();
    let (on_standby, secs) = wait_for(&on_primary, || sql(&sb.sb, "telemetry", all));
    rep.timing("the captured records on the standby", secs);
    rep.check(
        on_primary.split(',').count() == 17 && on_standby.as_deref() == Ok(&on_primary),
        format!("records on the standby {on_standby:?}, on the primary {on_primary:?}"),
    );

    // The collectors read from the standby: their config names it, and a record written while
    // its replay is paused is on the primary, not in the API through the balancer, until the
    // replay resumes.
    for c in with_role("collector") {
        let config =
            std::fs::read_to_string(host_path(&lab.targets[c].sb, CONFIG)).unwrap_or_default();
        rep.check(
            config.contains(&format!(
                "read_database_url = \"postgres://telemetry@{}:5432/telemetry\"",
                sb.addr
            )),
            format!(
                "{}'s config does not read from the standby:\n{config}",
                HOSTS[c].0
            ),
        );
    }
    let paused = sql(
        &sb.sb,
        "postgres",
        "select pg_wal_replay_pause(); select pg_is_wal_replay_paused()",
    );
    let (paused_state, _) = wait_for("paused", || {
        sql(&sb.sb, "postgres", "select pg_get_wal_replay_pause_state()")
    });
    rep.check(
        paused.is_ok() && paused_state.as_deref() == Ok("paused"),
        format!("pause the standby's replay: {paused:?} {paused_state:?}"),
    );
    let ids = post_new_records(lab, rep, PAUSED_MACHINE, 1);
    let on_primary = stored_ids(&db.sb, PAUSED_MACHINE);
    rep.check(
        ids.len() == 1 && on_primary.as_deref() == Ok(joined(&ids).as_str()),
        format!("a record posted while the replay is paused: ids {ids:?}, on the primary {on_primary:?}"),
    );
    // Both collectors answer (round robin): two rounds each.
    for round in 0..4 {
        let api = api_ids(lab, PAUSED_MACHINE);
        rep.check(
            api == Ok(vec![]),
            format!("GET through the balancer while the standby's replay is paused (#{round}): {api:?}, want none (reads go to the standby)"),
        );
    }
    let resumed = sql(&sb.sb, "postgres", "select pg_wal_replay_resume()");
    rep.check(resumed.is_ok(), format!("resume the replay: {resumed:?}"));
    let (api, secs) = wait_for(&joined(&ids), || {
        api_ids(lab, PAUSED_MACHINE).map(|v| joined(&v))
    });
    rep.timing("the record in the API once the replay resumes", secs);
    rep.check(
        api.as_deref() == Ok(joined(&ids).as_str()),
        format!("GET through the balancer after the replay resumed: {api:?}, want {ids:?}"),
    );
    // The collectors' reader connections to the standby are TLS.
    let readers = sql(
        &sb.sb,
        "postgres",
        "select distinct host(a.client_addr), s.ssl from pg_stat_activity a \
         join pg_stat_ssl s using (pid) where a.client_addr is not null order by 1",
    );
    let want: Vec<String> = with_role("collector")
        .into_iter()
        .map(|c| format!("{}|t", lab.targets[c].addr))
        .collect();
    rep.check(
        readers.as_deref() == Ok(want.join("\n").as_str()),
        format!("connections to the standby (address|ssl): {readers:?}, want {want:?}"),
    );
}

/// The data directory of the cluster on `sb` (the one of the installed major version).
fn data_dir(sb: &crate::sandbox::Sandbox) -> Result<String, String> {
    sh(sb, "ls -d /var/lib/postgresql/*/main | tail -n 1")
}

/// After the promotion: the old primary is fenced (postgres stopped, `standby.signal` and the
/// marker in its data directory), the standby is out of recovery.
fn promoted(lab: &Lab, rep: &mut Report) {
    let (db, sb) = (&lab.targets[one("db")], &lab.targets[one("standby")]);
    let running = sh(&db.sb, "pgrep -x postgres || true");
    rep.check(
        running.as_deref() == Ok(""),
        format!("postgres still runs on the old primary: {running:?}"),
    );
    match data_dir(&db.sb) {
        Ok(dir) => {
            for file in ["standby.signal", "telem-deploy-fenced"] {
                rep.check(
                    exists(&db.sb, &format!("{dir}/{file}")),
                    format!("no {file} in the old primary's {dir}"),
                );
            }
        }
        Err(e) => rep.check(false, format!("the old primary's data directory: {e}")),
    }
    let recovery = sql(&sb.sb, "postgres", "select pg_is_in_recovery()");
    rep.check(
        recovery.as_deref() == Ok("f"),
        format!("the standby still in recovery after promote: {recovery:?}"),
    );
    for c in with_role("collector") {
        let config =
            std::fs::read_to_string(host_path(&lab.targets[c].sb, CONFIG)).unwrap_or_default();
        rep.check(
            config.contains(&format!("@{}:5432/telemetry", sb.addr))
                && !config.contains(&format!("@{}:5432/", db.addr)),
            format!("{}'s config after promote:\n{config}", HOSTS[c].0),
        );
    }
}

/// The inventory `promote` printed (on stderr with `--format json`), written to a file.
fn write_promoted_inventory(lab: &Lab, rep: &mut Report, run: &RemoteRun) -> Option<PathBuf> {
    let text = run
        .run
        .stderr
        .split_once("The inventory as it now is")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .map(|(_, yaml)| yaml.to_owned());
    let Some(yaml) = text else {
        rep.check(
            false,
            format!("promote printed no inventory: {}", run.context()),
        );
        return None;
    };
    eprintln!("[e2e_inventory] the inventory after promote:\n{yaml}");
    let sb_addr = &lab.targets[one("standby")].addr;
    rep.check(
        yaml.contains(&format!("address: {sb_addr}\n    roles: [db]"))
            && yaml.contains("  # - name: db"),
        format!("the printed inventory: the standby is not the db, or db not fenced:\n{yaml}"),
    );
    let file = lab.dir.path().join("inventory-promoted.yaml");
    std::fs::write(&file, yaml).expect("write the promoted inventory");
    Some(file)
}

// ---------------------------------------------------------------------------------------------
// resetdb and the rolling deploy

/// Each collector answers `/readyz` (its database reachable) on its own address.
fn collectors_ready(lab: &Lab, rep: &mut Report, phase: &str) {
    let get = format!("GET /readyz HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n");
    for c in with_role("collector") {
        let answer = Lab::request_from(&lab.netns(), &lab.targets[c].addr, get.as_bytes());
        rep.check(
            matches!(answer, Ok((200, _, _))),
            format!("{phase}: {} /readyz: {answer:?}", HOSTS[c].0),
        );
    }
}

/// After resetdb: no record on the primary nor (once replayed) on the standby; the collectors
/// ready; a record posted through the balancer stored on the primary and replayed on the
/// standby.
fn reset(lab: &Lab, rep: &mut Report) {
    let (db, sb) = (&lab.targets[one("db")].sb, &lab.targets[one("standby")].sb);
    let count = "select count(*) from records";
    let on_primary = sql(db, "telemetry", count);
    rep.check(
        on_primary.as_deref() == Ok("0"),
        format!("records on the primary after resetdb: {on_primary:?}"),
    );
    let (on_standby, secs) = wait_for("0", || sql(sb, "telemetry", count));
    rep.check(
        on_standby.as_deref() == Ok("0"),
        format!("records on the standby after resetdb: {on_standby:?}"),
    );
    rep.timing("resetdb replayed on the standby", secs);
    collectors_ready(lab, rep, "resetdb");
    let ids = post_new_records(lab, rep, RESET_MACHINE, 1);
    let stored = stored_ids(db, RESET_MACHINE);
    rep.check(
        ids.len() == 1 && stored.as_deref() == Ok(joined(&ids).as_str()),
        format!("a record after resetdb: ids {ids:?}, on the primary {stored:?}"),
    );
    let (replayed, _) = wait_for(&joined(&ids), || stored_ids(sb, RESET_MACHINE));
    rep.check(
        replayed.as_deref() == Ok(joined(&ids).as_str()),
        format!("the record after resetdb on the standby: {replayed:?}, want {ids:?}"),
    );
}

/// The lab's collector binary with bytes appended (an ELF runs the same): a binary that
/// differs from the installed one, for a deploy that changes every collector.
pub(crate) fn next_collector(path: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let (_, collector) = binaries();
    let mut bytes = std::fs::read(&collector).expect("the collector binary");
    bytes.extend_from_slice(b"\0telem-deploy e2e: the next collector\0");
    std::fs::write(path, bytes).expect("write the next collector");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_owned()
}

/// After the rolling deploy: every job ok, in its place; each collector got the binary; each
/// drain changed the balancer's site and reloaded nginx, each undrain put it back; the site is
/// `site` (install's); both collectors ready.
fn rolled(lab: &Lab, rep: &mut Report, run: &RemoteRun, site: &str) {
    let lb = HOSTS[one("balancer")].0;
    let collectors: Vec<&str> = with_role("collector")
        .into_iter()
        .map(|c| HOSTS[c].0)
        .collect();
    let mut names: Vec<String> = HOSTS.iter().map(|(n, _)| n.to_string()).collect();
    for c in &collectors {
        names.push(format!("{lb} (drain {c})"));
        names.push(format!("{lb} (undrain {c})"));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    expect_ok(rep, "rolling deploy", run, &names, &[]);
    for c in &collectors {
        let changed = run.target_run(c).steps("changed");
        rep.check(
            changed
                .iter()
                .any(|s| s.starts_with("Install the collector binary")),
            format!("rolling deploy: {c} changed {changed:?}, not its binary"),
        );
        let drained = run
            .target_run(&format!("{lb} (drain {c})"))
            .steps("changed");
        rep.check(
            drained.len() == 2,
            format!("rolling deploy: draining {c} changed {drained:?}, want the site and nginx"),
        );
        let back = run
            .target_run(&format!("{lb} (undrain {c})"))
            .steps("changed");
        rep.check(
            back.len() == 2,
            format!("rolling deploy: putting {c} back changed {back:?}, want the site and nginx"),
        );
    }
    let now = std::fs::read_to_string(host_path(&lab.targets[one("balancer")].sb, SITE))
        .unwrap_or_default();
    rep.check(
        now == site && !now.is_empty(),
        format!("the balancer's site after the rolling deploy differs from install's:\n{now}"),
    );
    collectors_ready(lab, rep, "rolling deploy");
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
