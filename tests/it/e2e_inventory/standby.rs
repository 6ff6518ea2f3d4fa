//! The hot standby: streaming over TLS through its slot, the records replayed and read by the
//! API; promote and the inventory it prints.

use super::*;

/// Poll `probe` until it answers `want` or [`CONVERGE`] passes (a bounded wait on a
/// condition); the last answer and the time it took.
pub(super) fn wait_for(
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
pub(super) fn new_record(machine: &str, n: i64) -> Vec<u8> {
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
pub(super) fn post_new_records(lab: &Lab, rep: &mut Report, machine: &str, count: i64) -> Vec<i64> {
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
pub(super) fn api_ids(lab: &Lab, machine: &str) -> Result<Vec<i64>, String> {
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
pub(super) fn stored_ids(sb: &crate::sandbox::Sandbox, machine: &str) -> Result<String, String> {
    sql(
        sb,
        "telemetry",
        &format!("select coalesce(string_agg(id::text, ',' order by id), '') from records where machine_id = '{machine}'"),
    )
}

pub(super) fn joined(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// After the install: the standby is in recovery and streams from the primary (its WAL
/// receiver, the primary's pg_stat_replication with the standby's address over TLS); the
/// captured records reach it; the collectors read from it.
pub(super) fn standby_streams(lab: &Lab, rep: &mut Report) {
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
pub(super) fn data_dir(sb: &crate::sandbox::Sandbox) -> Result<String, String> {
    sh(sb, "ls -d /var/lib/postgresql/*/main | tail -n 1")
}

/// After the promotion: the old primary is fenced (postgres stopped, `standby.signal` and the
/// marker in its data directory), the standby is out of recovery.
pub(super) fn promoted(lab: &Lab, rep: &mut Report) {
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
pub(super) fn write_promoted_inventory(
    lab: &Lab,
    rep: &mut Report,
    run: &RemoteRun,
) -> Option<PathBuf> {
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
