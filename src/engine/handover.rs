//! The direct service manager's in-place upgrade of a daemon that hands its listening socket
//! over on SIGUSR2 (telem-collector, `handover: true` in a recipe): the running process starts
//! the binary at its path, and once that serves, stops accepting, drains its open connections
//! and exits. The new process then becomes the pid file's.
//!
//! The new process is found by what it inherits, not by catching it as the old one's child
//! (the old one may be gone, and the new one re-parented, between two looks): it is the
//! youngest live process of the old one's process group that started after it. While the old
//! one runs, a look at its children tells a new process that died (a failed upgrade).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::host::{HostError, Owner, Signal};
use crate::recipe::model::{Direct, ServiceDef};

use super::svc::Services;
use super::StepError;

/// How long the old process may take: 30 s for the new one to be ready, then its drain, bounded
/// by the collector's own drain limit (nginx lets its idle connections go after 3 s, so the
/// drain usually takes that long).
const UPGRADE_LIMIT: Duration = Duration::from_secs(120);

/// Upgrades the daemon whose pid is in `pid_file`; an old binary that dies of SIGUSR2 (or a
/// daemon that is not running) leaves no successor: it is started anew.
pub fn upgrade(svc: &Services, def: &ServiceDef, pid_file: &str) -> Result<(), StepError> {
    let Some(old) = svc.pid_alive(pid_file).map_err(StepError::host)? else {
        return svc.start(def);
    };
    let Some(old_stat) = stat(svc, old).map_err(StepError::host)? else {
        return svc.start(def);
    };
    svc.host
        .signal(old, Signal::Usr2)
        .map_err(StepError::host)?;
    let deadline = Instant::now() + UPGRADE_LIMIT;
    let mut seen = None;
    while svc.process_alive(old).map_err(StepError::host)? {
        // One read per look (a round trip over SSH); the whole /proc is scanned once, below.
        if let Some(new) = youngest_child(svc, old).map_err(StepError::host)? {
            seen = Some(new);
        }
        // A new process that died while the old one still runs: the upgrade failed (the old
        // one logs why and goes on serving).
        if let Some(new) = seen {
            if !svc.process_alive(new).map_err(StepError::host)? {
                return Err(failed(svc, def, new, old));
            }
        }
        if Instant::now() > deadline {
            return Err(StepError {
                message: format!(
                    "{}: the old process (pid {old}) still runs {} s after the upgrade signal",
                    def.unit,
                    UPGRADE_LIMIT.as_secs()
                ),
                command: None,
                stderr_tail: log_tail(svc, def),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match successor(svc, old, &old_stat).map_err(StepError::host)? {
        Some(new) => {
            let root = Owner {
                user: "root".into(),
                group: "root".into(),
                mode: 0o644,
            };
            svc.host
                .write(Path::new(pid_file), format!("{new}\n").as_bytes(), &root)
                .map_err(StepError::host)
        }
        None => {
            svc.host
                .remove(Path::new(pid_file))
                .map_err(StepError::host)?;
            svc.start(def)
        }
    }
}

fn failed(svc: &Services, def: &ServiceDef, new: u32, old: u32) -> StepError {
    StepError {
        message: format!(
            "{}: the new process (pid {new}) exited during the upgrade; the old one (pid {old}) \
             still serves",
            def.unit
        ),
        command: None,
        stderr_tail: log_tail(svc, def),
    }
}

/// What the upgrade needs of /proc/PID/stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pgrp: u32,
    /// Clock ticks after boot.
    pub start: u64,
    /// Not a zombie or dead.
    pub alive: bool,
}

/// Parses /proc/PID/stat: the state is the first field after the parenthesised command name
/// (which may hold spaces and parentheses), the process group the third, the start time the
/// twentieth.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        alive: !fields.first()?.starts_with(['Z', 'X']),
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn stat(svc: &Services, pid: u32) -> Result<Option<Stat>, HostError> {
    let text = svc.host.read(Path::new(&format!("/proc/{pid}/stat")))?;
    Ok(text.and_then(|t| parse_stat(&String::from_utf8_lossy(&t))))
}

/// The last child `pid` started, while it runs.
fn youngest_child(svc: &Services, pid: u32) -> Result<Option<u32>, HostError> {
    let list = svc
        .host
        .read(Path::new(&format!("/proc/{pid}/task/{pid}/children")))?;
    Ok(list.and_then(|l| {
        String::from_utf8_lossy(&l)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .next_back()
    }))
}

/// The youngest live process of `old`'s process group that started after it (the successor
/// inherits the group; an older process of the group is one still draining from an earlier
/// upgrade).
fn successor(svc: &Services, old: u32, old_stat: &Stat) -> Result<Option<u32>, HostError> {
    let mut best: Option<(u64, u32)> = None;
    for name in svc.host.list_dir(Path::new("/proc"))? {
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        if pid == old {
            continue;
        }
        // A process that ended between the listing and the read is no candidate.
        let Some(s) = stat(svc, pid)? else { continue };
        if s.alive && s.pgrp == old_stat.pgrp && s.start >= old_stat.start {
            best = best.max(Some((s.start, pid)));
        }
    }
    Ok(best.map(|(_, pid)| pid))
}

/// The last lines of the daemon's log file.
fn log_tail(svc: &Services, def: &ServiceDef) -> Option<String> {
    let Direct::Daemon { log_file, .. } = &def.direct else {
        return None;
    };
    Some(svc.log_tail(log_file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::svc::Manager;
    use crate::host::{Host, LocalHost};
    use crate::recipe::model::OnChange;

    /// Polls `cond` up to 10 s.
    fn within_10s(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// A real daemon whose SIGUSR2 forks its successor and exits at once: no look at the old
    /// process's children can be relied on to catch the successor, yet it must be the pid
    /// file's (the old code started a third process, which then could not listen).
    #[test]
    fn the_successor_of_an_old_process_that_exits_at_once_gets_the_pid_file() {
        if !std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        {
            eprintln!("skipped: runs its daemon as the named user root, so needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let script = format!("{d}/daemon.pl");
        std::fs::write(
            &script,
            r#"my $dir = $ARGV[0];
$SIG{USR2} = sub {
    my $pid = fork();
    if (defined $pid && $pid == 0) {
        open(my $f, '>', "$dir/successor.tmp") or die; print $f "$$\n"; close $f;
        rename("$dir/successor.tmp", "$dir/successor");
        exec('sleep', '60');
    }
    exit 0;
};
open(my $f, '>', "$dir/ready") or die; close $f;
sleep 1 while 1;
"#,
        )
        .unwrap();
        let pid_file = format!("{d}/daemon.pid");
        let def = ServiceDef {
            unit: "fake-daemon".into(),
            on_change: OnChange::Reload,
            direct: Direct::Daemon {
                command: vec!["perl".into(), script, d.clone()],
                user: "root".into(),
                pid_file: pid_file.clone(),
                log_file: format!("{d}/daemon.log"),
                handover: true,
            },
        };
        let host = LocalHost;
        let svc = Services {
            host: &host,
            manager: Manager::Direct,
        };
        svc.start(&def).unwrap();
        let old: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(within_10s(|| Path::new(&format!("{d}/ready")).exists()));
        let upgraded = upgrade(&svc, &def, &pid_file);
        let successor = within_10s(|| Path::new(&format!("{d}/successor")).exists())
            .then(|| std::fs::read_to_string(format!("{d}/successor")).unwrap());
        let recorded = std::fs::read_to_string(&pid_file).unwrap_or_default();
        // Whatever the outcome, no process of this test outlives it.
        for pid in [successor.as_deref(), Some(recorded.as_str())]
            .into_iter()
            .flatten()
        {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                let _ = host.signal(pid, Signal::Kill);
            }
        }
        upgraded.unwrap();
        let successor = successor.expect("the daemon forked its successor");
        assert_ne!(recorded.trim(), old.to_string());
        assert_eq!(
            recorded.trim(),
            successor.trim(),
            "the pid file names the successor"
        );
    }

    #[test]
    fn stat_fields_after_a_command_name_with_spaces_and_parentheses() {
        let text = "4242 (tel (em) x) S 1 4200 4200 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 \
                    987654 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                pgrp: 4200,
                start: 987_654,
                alive: true
            })
        );
        let zombie = text.replace(") S 1", ") Z 1");
        assert!(!parse_stat(&zombie).unwrap().alive);
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }
}
