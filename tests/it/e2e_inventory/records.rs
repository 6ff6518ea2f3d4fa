//! Records through the balancer: the captured client requests, each stored once in the primary
//! and listed by the query API; the collectors' connections to PostgreSQL are TLS.

use super::*;

/// The captured requests (the repository's copies), sorted; each with its creation timestamp.
pub(super) fn captured_requests(rep: &mut Report) -> Vec<(String, Vec<u8>, i64)> {
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
pub(super) fn creation_timestamp(raw: &[u8]) -> Option<i64> {
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
pub(super) fn records_through_the_balancer(lab: &Lab, rep: &mut Report) {
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
pub(super) fn db_clients(lab: &Lab) -> Vec<&str> {
    let mut hosts = with_role("collector");
    hosts.extend(with_role("standby"));
    hosts
        .into_iter()
        .map(|i| lab.targets[i].addr.as_str())
        .collect()
}

/// The collectors' connections to the primary, as pg_stat_ssl sees them: each collector has
/// one at least, every one is TLS, and no other address than the primary's clients has any.
pub(super) fn collectors_use_tls(lab: &Lab, rep: &mut Report) {
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
