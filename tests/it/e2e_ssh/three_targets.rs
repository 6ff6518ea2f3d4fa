//! Three targets at once: an unknown host key, a link cut at a step boundary, converged
//! re-runs, one machine named twice, a machine whose run lock another run holds.

use super::*;

/// Where the cut happens: a `command` step ([`cut_step`]) added to a copy of the recipes (first in the
/// `firewall` slot, after the site is enabled, before nginx is (re)loaded) that, on a target
/// holding [`CUT_MARKER`], kills the sshd session processes it runs under: the SSH connection
/// is gone at that step boundary, deterministically.
const CUT_MARKER: &str = "/root/telem-cut-link";
/// The shell script of [`CUT_STEP`]: kill -KILL every sshd process it descends from but the
/// listener (the session's privileged monitor and its child).
pub(super) const CUT_SCRIPT: &str = r#"l=$(cat /run/sshd.pid); p=$$; k=
while [ "$p" -gt 1 ]; do
  [ "$(cat /proc/$p/comm)" = sshd ] && [ "$p" != "$l" ] && k="$k $p"
  n=; while read -r key val; do [ "$key" = PPid: ] && n=$val; done < /proc/$p/status
  p=${n:-1}
done
kill -KILL $k"#;

/// The step (YAML, indented for the slot's list) running [`CUT_SCRIPT`] when [`CUT_MARKER`]
/// exists on the target.
fn cut_step() -> String {
    let script: String = CUT_SCRIPT
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    format!(
        "    - name: \"test: cut this target's SSH link here (when {CUT_MARKER} exists)\"\n      command:\n        run:\n          - sh\n          - -c\n          - |\n{script}        only_if: [sh, -c, \"test -e {CUT_MARKER}\"]\n"
    )
}

/// A copy of recipes/ with [`cut_step`] (debian.yaml); its directory.
pub(super) fn recipes_with_a_cut(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let dst = dir.join("recipes");
    std::fs::create_dir_all(&dst).expect("mkdir recipes");
    for e in std::fs::read_dir(&src).expect("recipes/").flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy recipe");
    }
    let debian = dst.join("debian.yaml");
    let yaml = std::fs::read_to_string(&debian).expect("debian.yaml");
    let anchor = "\n  firewall:\n";
    assert!(yaml.contains(anchor), "debian.yaml has no firewall slot");
    let yaml = yaml.replacen(anchor, &format!("{anchor}{}", cut_step()), 1);
    std::fs::write(&debian, yaml).expect("write debian.yaml");
    dst
}

/// Another run is changing target a (it holds the run lock, as telem-deploy does: `flock` in a
/// session of its own): an install of a and b leaves a as it was (its collector config,
/// removed for the test, not written back) and says why, b goes on; once that run has ended
/// (its session closed), the next install completes a.
fn another_run_holds_the_lock(lab: &Lab, install: &[&str], rep: &mut Report) {
    use std::io::BufRead;
    let a = &lab.targets[0];
    let config = "/etc/telemetry/collector.toml";
    let out = a.sb.exec(&["rm", config]);
    assert!(out.status.success(), "rm {config}");
    let lock = telem_deploy::host::RUN_LOCK;
    let mut holder = lab
        .ssh_command(
            0,
            &["flock", "-n", lock, "sh", "-c", "'echo held; exec cat'"],
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start ssh");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the holder's line");
    assert_eq!(
        line.trim_end(),
        "held",
        "the other run could not take the lock"
    );
    let run = lab.deploy(&[0, 1], install, None);
    figures(rep, "install while another run holds a's lock", &run);
    let said = run.outcome(&a.target()).ok().and_then(|o| o.error);
    rep.check(
        run.code() == Some(1)
            && said
                .as_deref()
                .is_some_and(|e| e.contains("another telem-deploy run is changing this machine")),
        format!(
            "a's lock held by another run: a said {said:?}; {}",
            run.context()
        ),
    );
    expect_target_ok(rep, "install while a is locked", &run, &lab.targets[1]);
    rep.check(
        !host_path(&a.sb, config).exists(),
        format!("{config} was written back on a while another run held its lock"),
    );
    drop(holder.stdin.take());
    let status = holder.wait().expect("wait for the holder");
    assert!(status.success(), "the holder's session: {status}");
    let run = lab.deploy(&[0], install, None);
    figures(rep, "install once the other run has ended", &run);
    expect_target_ok(rep, "install once the other run has ended", &run, a);
    rep.check(
        host_path(&a.sb, config).exists(),
        format!("{config} not written back once the lock was free"),
    );
}

/// Issue 16, three targets: an unknown host key refused (nothing changed there); a parallel
/// install with one target's link cut at a step boundary (that target fails, the others
/// succeed); a re-run completes it; converged re-runs of three and of one timed.
#[test]
fn three_targets_in_parallel_one_cut() {
    let mut rep = Report::new("three_targets_in_parallel_one_cut");
    let Some(lab) = Lab::start("ssh-three", 3, &mut rep) else {
        return;
    };
    lab.check(&mut rep);
    let recipes = recipes_with_a_cut(lab.dir.path());
    let recipes = recipes.to_str().expect("utf-8 path");
    let pw = lab.password_file(PASSWORD);
    let pw = pw.to_str().expect("utf-8 path");
    let (a, b, c) = (&lab.targets[0], &lab.targets[1], &lab.targets[2]);
    let install = [
        "-a",
        "install",
        "-d",
        "debian",
        "--yes",
        "--recipes",
        recipes,
        "--parallel",
        "3",
        "--db-password-file",
        pw,
    ];

    // An unknown host key: refused before anything is done there.
    lab.write_known_hosts(&[0, 1]);
    let before = root_listing(&c.sb);
    let run = lab.deploy(&[2], &install, None);
    figures(&mut rep, "unknown host key (one target)", &run);
    rep.check(
        run.code().is_some_and(|c| c != 0),
        format!("an unknown host key: exit {:?}", run.code()),
    );
    let said = run
        .outcome(&c.target())
        .ok()
        .and_then(|o| o.error)
        .unwrap_or_else(|| run.run.stderr.clone());
    rep.check(
        said.contains("not in known_hosts") && said.contains(&c.addr),
        format!(
            "an unknown host key: the error says {said:?}; {}",
            run.context()
        ),
    );
    let diff = listing_diff(&before, &root_listing(&c.sb));
    rep.check(
        diff.is_empty(),
        format!("refused, yet the target changed:\n  {}", diff.join("\n  ")),
    );
    lab.write_known_hosts(&[0, 1, 2]);

    // Three installs at once; b's link is cut at the marked step.
    let out = b.sb.exec(&["touch", CUT_MARKER]);
    assert!(out.status.success(), "touch {CUT_MARKER}");
    let run = lab.deploy(&[0, 1, 2], &install, None);
    figures(&mut rep, "install (fresh, three targets, one cut)", &run);
    expect_totals(&mut rep, "install with a cut", &run, 1, 2, 3);
    for t in [a, c] {
        expect_target_ok(&mut rep, "install with a cut", &run, t);
    }
    let cut = run.outcome(&b.target());
    rep.check(
        cut.as_ref().is_ok_and(|o| {
            !o.ok
                && o.exit_code == Some(1)
                && o.error.as_ref().is_some_and(|e| {
                    e.contains("lost the SSH connection") && e.contains(&b.target())
                })
        }),
        format!("the cut target: {cut:?}"),
    );
    rep.check(
        run.run
            .stderr
            .lines()
            .any(|l| l.starts_with(&format!("[{}] ", a.target()))),
        format!("no progress line prefixed [{}]", a.target()),
    );

    // The link back (no marker): a re-run completes b, the others stay converged.
    let out = b.sb.exec(&["rm", CUT_MARKER]);
    assert!(out.status.success(), "rm {CUT_MARKER}");
    let run = lab.deploy(&[0, 1, 2], &install, None);
    figures(
        &mut rep,
        "install (re-run after the cut, three targets)",
        &run,
    );
    expect_totals(&mut rep, "re-run after the cut", &run, 0, 3, 3);
    for t in [a, c] {
        expect_target_converged(&mut rep, "re-run after the cut", &run, t);
    }
    expect_target_ok(&mut rep, "re-run after the cut", &run, b);

    // Converged: three at once (named in a --targets file this time), then one alone (the
    // figures of issue 16).
    let list = lab.dir.path().join("targets");
    let lines: String = lab
        .targets
        .iter()
        .map(|t| format!("# {}\n{}\n\n", t.sb.name(), t.target()))
        .collect();
    std::fs::write(&list, lines).expect("write the targets file");
    let from_file = [&install[..], &["--targets", list.to_str().expect("utf-8")]].concat();
    let run = lab.deploy(&[], &from_file, None);
    figures(
        &mut rep,
        "remote converged re-run (three targets in parallel)",
        &run,
    );
    expect_totals(&mut rep, "converged (three)", &run, 0, 3, 3);
    for t in [a, b, c] {
        expect_target_converged(&mut rep, "converged (three)", &run, t);
    }
    let run = lab.deploy(&[0], &install, None);
    figures(&mut rep, "remote converged re-run (one target)", &run);
    expect_totals(&mut rep, "converged (one)", &run, 0, 1, 1);
    expect_target_converged(&mut rep, "converged (one)", &run, a);

    // One machine under two names (its address, and with sshd's port): the run stops before
    // any change and names both (fleet/identity.rs); three machines sharing one kernel are
    // not taken for one (the runs above).
    let again = format!("{}:22", a.target());
    let twice = [&install[..], &["--target", &again]].concat();
    let before = root_listing(&a.sb);
    let run = lab.deploy(&[0, 1], &twice, None);
    let said = format!("{} and {again} are the same machine", a.target());
    rep.check(
        run.code() == Some(2) && run.run.stderr.contains(&said),
        format!(
            "one machine named twice: want exit 2 and {said:?}; {}",
            run.context()
        ),
    );
    let diff = listing_diff(&before, &root_listing(&a.sb));
    rep.check(
        diff.is_empty(),
        format!(
            "named twice, yet the target changed:\n  {}",
            diff.join("\n  ")
        ),
    );

    another_run_holds_the_lock(&lab, &install, &mut rep);

    for (i, t) in lab.targets.iter().enumerate() {
        check_installed(&t.sb, &mut rep, PASSWORD);
        post_records_over_the_link(&lab, i, &mut rep);
    }
    rep.check(
        lab.tmp_left().is_empty(),
        format!("left in the controller's TMPDIR: {:?}", lab.tmp_left()),
    );
    rep.finish();
}
