//! pg_hba admits only the collectors, and the password is in no process's argv or environment.

use super::*;

/// A libpq password file (0600) for the database role at the primary, `:` and `\` escaped.
pub(super) fn passfile(lab: &Lab, db_addr: &str) -> PathBuf {
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
pub(super) fn psql_from(
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
pub(super) fn pg_hba_admits_only_the_collectors(lab: &Lab, ca_dir: &Path, rep: &mut Report) {
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
pub(super) fn password_in_no_process(lab: &Lab, rep: &mut Report) {
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
