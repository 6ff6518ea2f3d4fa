//! Load through an inventory's balancer (not in CI: `TELEM_INVENTORY_LOAD=1`): records/s with
//! two collectors, one collector stopped under load (only 2xx or 5xx, rows stored = 2xx, no
//! event id twice), the standby's replication lag, a rolling `deploy --serial 1` of another
//! collector binary (0 non-2xx; a client resends a record after a socket error, same event id;
//! rows stored = records acknowledged, no event id twice). The lab and its inventory are
//! e2e_inventory/'s.

use crate::e2e_support::*;
use crate::lab_support::Lab;
use std::path::Path;

use crate::e2e_inventory::{
    expect_all_ok, next_collector, one, with_role, write_inventory, HOSTS, PASSWORD,
};

/// Clients of the load through the balancer.
const LOAD_CLIENTS: u32 = 16;
/// Seconds of each load.
const LOAD_SECS: u64 = 10;

/// What one load through the balancer gave: the generator's line and error notes, its length,
/// the largest replication lag seen on the primary (seconds, bytes).
struct Load {
    line: String,
    notes: String,
    secs: f64,
    lag: (f64, i64),
}

impl Load {
    fn field(&self, key: &str) -> i64 {
        self.line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    }
}

/// `e2e_load.pl` from the controller's namespace to the balancer for [`LOAD_SECS`], `during`
/// run once the clients are connected; the primary's replication lag sampled meanwhile.
fn load_through_the_balancer(lab: &Lab, tag: &str, during: impl FnOnce()) -> Result<Load, String> {
    load_with(lab, tag, false, during)
}

/// The same; with `resend`, a client sends a record again after a socket error (same event
/// id: idempotent), counted as `resent`.
fn load_with(lab: &Lab, tag: &str, resend: bool, during: impl FnOnce()) -> Result<Load, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = lab.dir.path();
    let (ready, stop) = (
        dir.join(format!("{tag}.ready")),
        dir.join(format!("{tag}.stop")),
    );
    let (out, err) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let prefix: String = format!(
        "{:0>16}",
        tag.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut child = std::process::Command::new("timeout")
        .args(["-k", "10", "300", "nsenter"])
        .arg(format!("--net={}", lab.netns()))
        .arg("perl")
        .arg(here.join("tests/it/e2e_load.pl"))
        .arg(LOAD_CLIENTS.to_string())
        .arg(here.join("tests/fixtures/e2e/v3-json.http"))
        .arg(&prefix[prefix.len() - 16..])
        .args([&ready, &stop])
        .arg(&lab.targets[one("balancer")].addr)
        .env("TMPDIR", dir)
        .env("E2E_LOAD_RESEND", if resend { "1" } else { "0" })
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&err).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("start e2e_load.pl: {e}"))?;
    if !wait_until(std::time::Duration::from_secs(60), || ready.exists()) {
        let _ = std::fs::write(&stop, "");
        let _ = child.wait();
        return Err(format!(
            "the load never started: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        ));
    }
    let started = std::time::Instant::now();
    during();
    // The load lasts LOAD_SECS (the measurement's window); the lag is sampled meanwhile.
    let db = &lab.targets[one("db")].sb;
    let mut lag = (0.0f64, 0i64);
    while started.elapsed() < std::time::Duration::from_secs(LOAD_SECS) {
        let row = sql(
            db,
            "postgres",
            "select coalesce(extract(epoch from replay_lag), 0), \
             pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint from pg_stat_replication",
        )
        .unwrap_or_default();
        if let Some((s, b)) = row.split_once('|') {
            lag.0 = lag.0.max(s.parse().unwrap_or(0.0));
            lag.1 = lag.1.max(b.parse().unwrap_or(0));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    std::fs::write(&stop, "").map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let notes = std::fs::read_to_string(&err).unwrap_or_default();
    let line = text.lines().last().unwrap_or("").to_owned();
    if !status.success() || !line.contains("errors=") {
        return Err(format!("the load failed ({status}): {text}{notes}"));
    }
    Ok(Load {
        line,
        notes,
        secs,
        lag,
    })
}

/// (rows, distinct event ids) of the load's machine on the primary.
fn load_rows(lab: &Lab) -> (i64, i64) {
    let row = sql(
        &lab.targets[one("db")].sb,
        "telemetry",
        "select count(*), count(distinct event_id) from records where machine_id = 'e2e-v3-json-machine'",
    )
    .unwrap_or_default();
    let mut f = row.split('|').map(|v| v.parse().unwrap_or(-1));
    (f.next().unwrap_or(-1), f.next().unwrap_or(-1))
}

/// Issue 18's load figures, by hand (README, Reliability): `TELEM_INVENTORY_LOAD=1`. The lab of
/// [`HOSTS`] installed; [`LOAD_CLIENTS`] keep-alive clients post records through the balancer
/// for [`LOAD_SECS`] s (records/s with both collectors); then again while one collector's nginx
/// and collector are stopped: only 2xx or retryable 5xx, rows stored = 2xx, no event id twice;
/// the replication lag under load (pg_stat_replication).
#[test]
fn e2e_inventory_load_through_the_balancer() {
    if std::env::var("TELEM_INVENTORY_LOAD").as_deref() != Ok("1") {
        eprintln!(
            "skipped: the load through the balancer is a measurement by hand (minutes of a five-sandbox lab); set TELEM_INVENTORY_LOAD=1"
        );
        return;
    }
    let mut rep = Report::new("e2e_inventory_load");
    let Some(lab) = Lab::start("invload", HOSTS.len(), &mut rep) else {
        return;
    };
    lab.check(&mut rep);
    let (inventory, _) = write_inventory(&lab);
    let pw = lab.password_file(PASSWORD);
    let run = lab.deploy_inventory(
        &inventory,
        &[
            "-a",
            "install",
            "--yes",
            "--db-password-file",
            pw.to_str().unwrap(),
        ],
        None,
    );
    expect_all_ok(&mut rep, "install", &run, false);
    if run.code() != Some(0) {
        return rep.finish();
    }

    // 1. Both collectors.
    let load = match load_through_the_balancer(&lab, "both", || {}) {
        Ok(l) => l,
        Err(e) => {
            rep.check(false, e);
            return rep.finish();
        }
    };
    let (rows, distinct) = load_rows(&lab);
    eprintln!(
        "[e2e_inventory_load] both collectors, {LOAD_CLIENTS} clients, {:.1} s: {} ({:.0} records/s); rows {rows}, distinct event ids {distinct}; max replication lag {:.3} s, {} bytes",
        load.secs,
        load.line,
        load.field("2xx") as f64 / load.secs,
        load.lag.0,
        load.lag.1
    );
    rep.check(
        load.field("2xx") > 0
            && load.field("503") == 0
            && load.field("other") == 0
            && load.field("errors") == 0,
        format!(
            "the load with both collectors: {}\n{}",
            load.line, load.notes
        ),
    );
    rep.check(
        rows == load.field("2xx") && distinct == rows,
        format!(
            "rows {rows}, distinct event ids {distinct}, 2xx {}",
            load.field("2xx")
        ),
    );

    // 2. One collector's nginx and collector stopped under load.
    let c2 = &lab.targets[with_role("collector")[1]].sb;
    let mut stopped = Ok(String::new());
    let load = match load_through_the_balancer(&lab, "one-down", || {
        // A service stop: nginx's graceful one (QUIT: it closes its listener and finishes the
        // requests it has), then the collector's (TERM), each waited for (bounded).
        stopped = sh(
            c2,
            "gone() { for _ in $(seq 300); do kill -0 $1 2>/dev/null || return 0; sleep 0.1; done; return 1; }
             n=$(cat /run/nginx.pid) && kill -QUIT $n && gone $n &&              c=$(cat /run/telemetry/collector.pid) && kill -TERM $c && gone $c && echo stopped",
        );
    }) {
        Ok(l) => l,
        Err(e) => {
            rep.check(false, e);
            return rep.finish();
        }
    };
    rep.check(
        stopped.as_deref() == Ok("stopped"),
        format!("stop c2's nginx and collector: {stopped:?}"),
    );
    let (all, distinct) = load_rows(&lab);
    let new_rows = all - rows;
    eprintln!(
        "[e2e_inventory_load] c2 stopped under load, {LOAD_CLIENTS} clients, {:.1} s: {} ({:.0} records/s); new rows {new_rows}, distinct event ids {distinct} of {all}; max replication lag {:.3} s, {} bytes\n{}",
        load.secs,
        load.line,
        load.field("2xx") as f64 / load.secs,
        load.lag.0,
        load.lag.1,
        load.notes
    );
    // Retryable: 502/503/504 (the generator counts 503 with Retry-After apart, the others as
    // "other" with a note each); never a socket error, never another status.
    let not_retryable: Vec<&str> = load
        .notes
        .lines()
        .filter(|l| {
            !["HTTP 502", "HTTP 503", "HTTP 504"]
                .iter()
                .any(|s| l.contains(s))
        })
        .collect();
    rep.check(
        load.field("2xx") > 0 && load.field("errors") == 0 && not_retryable.is_empty(),
        format!(
            "under load with c2 stopped: {}: {not_retryable:?}",
            load.line
        ),
    );
    rep.check(
        new_rows == load.field("2xx") && distinct == all,
        format!(
            "with c2 stopped: new rows {new_rows}, 2xx {}, distinct event ids {distinct} of {all}",
            load.field("2xx")
        ),
    );

    // 3. A rolling deploy (`--serial 1`) of another collector binary under load: each
    // collector drained from the balancer, changed, put back. c2 first started again.
    let run = lab.deploy_inventory(&inventory, &["-a", "install", "--yes"], None);
    expect_all_ok(&mut rep, "install (c2 back)", &run, false);
    let next = next_collector(&lab.dir.path().join("telem-collector.next"));
    let mut deployed = None;
    let load = match load_with(&lab, "rolling", true, || {
        deployed = Some(lab.deploy_inventory(
            &inventory,
            &[
                "-a",
                "deploy",
                "--yes",
                "--serial",
                "1",
                "--collector-bin",
                next.to_str().unwrap(),
            ],
            None,
        ));
    }) {
        Ok(l) => l,
        Err(e) => {
            rep.check(false, e);
            return rep.finish();
        }
    };
    let deployed = deployed.expect("the deploy ran");
    rep.check(
        deployed.code() == Some(0) && deployed.total("failed") == 0,
        format!("the rolling deploy under load: {}", deployed.context()),
    );
    let (now, distinct_now) = load_rows(&lab);
    let rolled_rows = now - all;
    eprintln!(
        "[e2e_inventory_load] rolling deploy (--serial 1) under load, {LOAD_CLIENTS} clients, {:.1} s (deploy {:.1} s): {} ({:.0} records/s); new rows {rolled_rows}, distinct event ids {distinct_now} of {now}\n{}",
        load.secs,
        deployed.run.secs,
        load.line,
        load.field("2xx") as f64 / load.secs,
        load.notes
    );
    rep.check(
        load.field("2xx") > 0 && load.field("503") == 0 && load.field("other") == 0,
        format!(
            "non-2xx during the rolling deploy: {}\n{}",
            load.line, load.notes
        ),
    );
    rep.check(
        rolled_rows == load.field("2xx") && distinct_now == now,
        format!(
            "during the rolling deploy: new rows {rolled_rows}, 2xx {} (resent {}), distinct event ids {distinct_now} of {now}",
            load.field("2xx"),
            load.field("resent")
        ),
    );
    rep.finish();
}
