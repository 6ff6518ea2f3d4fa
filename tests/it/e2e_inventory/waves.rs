//! resetdb and the rolling deploy: the collectors stopped and ready again, each collector
//! drained from the balancer, changed and put back.

use super::*;

/// Each collector answers `/readyz` (its database reachable) on its own address.
pub(super) fn collectors_ready(lab: &Lab, rep: &mut Report, phase: &str) {
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
pub(super) fn reset(lab: &Lab, rep: &mut Report) {
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
pub(super) fn rolled(lab: &Lab, rep: &mut Report, run: &RemoteRun, site: &str) {
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
