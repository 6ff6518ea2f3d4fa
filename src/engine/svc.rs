//! Service managers: systemd when it is PID 1, else a direct manager that runs the daemons
//! itself (pg_ctlcluster / pg_ctl, nginx, a detached collector with pid and log files), so the
//! tool works in containers and CI runners.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::host::{Cmd, CmdOutput, Host, HostError, Signal};
use crate::recipe::model::{Direct, ServiceDef};

use super::StepError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Systemd,
    Direct,
}

impl Manager {
    pub fn name(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd",
            Manager::Direct => "direct",
        }
    }
}

pub struct Services<'a> {
    pub host: &'a dyn Host,
    pub manager: Manager,
}

/// Run a command; a non-zero exit is a step error carrying the command and its stderr.
pub fn run_ok(host: &dyn Host, cmd: &Cmd) -> Result<CmdOutput, StepError> {
    let out = host.run(cmd).map_err(StepError::host)?;
    if out.success() {
        Ok(out)
    } else {
        Err(StepError::command(cmd, &out))
    }
}

impl Services<'_> {
    pub fn is_running(&self, def: &ServiceDef) -> Result<bool, HostError> {
        match self.manager {
            Manager::Systemd => Ok(self
                .host
                .run(&Cmd::new(["systemctl", "is-active", "--quiet", &def.unit]))?
                .success()),
            Manager::Direct => match &def.direct {
                Direct::PgCtlcluster {} => {
                    let clusters = self.clusters()?;
                    Ok(!clusters.is_empty() && clusters.iter().all(|c| c.2))
                }
                Direct::PgCtl { data_dir, .. } => {
                    if self.host.which("pg_ctl").is_none() {
                        return Ok(false);
                    }
                    let cmd = Cmd::new(["pg_ctl", "status", "-D", data_dir]).user("postgres");
                    Ok(self.host.run(&cmd)?.success())
                }
                Direct::Nginx { pid_file, .. } => Ok(self.pid_alive(pid_file)?.is_some()),
                Direct::Daemon { pid_file, .. } => Ok(self.pid_alive(pid_file)?.is_some()),
            },
        }
    }

    /// `Some(enabled)` under systemd; `None` where boot-time start does not apply.
    pub fn is_enabled(&self, def: &ServiceDef) -> Result<Option<bool>, HostError> {
        match self.manager {
            Manager::Systemd => Ok(Some(
                self.host
                    .run(&Cmd::new(["systemctl", "is-enabled", "--quiet", &def.unit]))?
                    .success(),
            )),
            Manager::Direct => Ok(None),
        }
    }

    pub fn enable(&self, def: &ServiceDef) -> Result<(), StepError> {
        run_ok(self.host, &Cmd::new(["systemctl", "enable", &def.unit])).map(drop)
    }

    pub fn daemon_reload(&self) -> Result<(), StepError> {
        match self.manager {
            Manager::Systemd => {
                run_ok(self.host, &Cmd::new(["systemctl", "daemon-reload"])).map(drop)
            }
            Manager::Direct => Ok(()),
        }
    }

    pub fn start(&self, def: &ServiceDef) -> Result<(), StepError> {
        match self.manager {
            Manager::Systemd => {
                run_ok(self.host, &Cmd::new(["systemctl", "start", &def.unit])).map(drop)
            }
            Manager::Direct => match &def.direct {
                Direct::PgCtlcluster {} => self.each_cluster("start"),
                Direct::PgCtl { data_dir, log_file } => run_ok(
                    self.host,
                    &Cmd::new(["pg_ctl", "start", "-w", "-D", data_dir, "-l", log_file])
                        .user("postgres"),
                )
                .map(drop),
                Direct::Nginx {
                    error_log: Some(log),
                    ..
                } => run_ok(self.host, &Cmd::new(["nginx", "-e", log])).map(drop),
                Direct::Nginx { .. } => run_ok(self.host, &Cmd::new(["nginx"])).map(drop),
                Direct::Daemon {
                    command,
                    user,
                    pid_file,
                    log_file,
                    ..
                } => self.start_daemon(command, user, pid_file, log_file),
            },
        }
    }

    pub fn stop(&self, def: &ServiceDef) -> Result<(), StepError> {
        match self.manager {
            Manager::Systemd => {
                run_ok(self.host, &Cmd::new(["systemctl", "stop", &def.unit])).map(drop)
            }
            Manager::Direct => match &def.direct {
                Direct::PgCtlcluster {} => self.each_cluster("stop"),
                Direct::PgCtl { data_dir, .. } => run_ok(
                    self.host,
                    &Cmd::new(["pg_ctl", "stop", "-w", "-m", "fast", "-D", data_dir])
                        .user("postgres"),
                )
                .map(drop),
                Direct::Nginx { pid_file, .. } | Direct::Daemon { pid_file, .. } => {
                    self.stop_pid(pid_file)
                }
            },
        }
    }

    pub fn restart(&self, def: &ServiceDef) -> Result<(), StepError> {
        match (self.manager, &def.direct) {
            (Manager::Systemd, _) => {
                run_ok(self.host, &Cmd::new(["systemctl", "restart", &def.unit])).map(drop)
            }
            (Manager::Direct, Direct::PgCtlcluster {}) => self.each_cluster("restart"),
            (Manager::Direct, _) => {
                if self.is_running(def).map_err(StepError::host)? {
                    self.stop(def)?;
                }
                self.start(def)
            }
        }
    }

    pub fn reload(&self, def: &ServiceDef) -> Result<(), StepError> {
        match (self.manager, &def.direct) {
            (Manager::Systemd, _) => {
                run_ok(self.host, &Cmd::new(["systemctl", "reload", &def.unit])).map(drop)
            }
            (Manager::Direct, Direct::Nginx { .. }) => {
                run_ok(self.host, &Cmd::new(["nginx", "-s", "reload"])).map(drop)
            }
            (Manager::Direct, Direct::PgCtlcluster {}) => self.each_cluster("reload"),
            (
                Manager::Direct,
                Direct::Daemon {
                    handover: true,
                    pid_file,
                    ..
                },
            ) => super::handover::upgrade(self, def, pid_file),
            (Manager::Direct, _) => self.restart(def),
        }
    }

    /// (version, name, online) of each Debian cluster.
    fn clusters(&self) -> Result<Vec<(String, String, bool)>, HostError> {
        if self.host.which("pg_lsclusters").is_none() {
            return Ok(Vec::new());
        }
        let out = self.host.run(&Cmd::new(["pg_lsclusters", "--no-header"]))?;
        Ok(out
            .stdout_text()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4)
                    .then(|| (f[0].to_owned(), f[1].to_owned(), f[3].starts_with("online")))
            })
            .collect())
    }

    fn each_cluster(&self, verb: &str) -> Result<(), StepError> {
        let clusters = self.clusters().map_err(StepError::host)?;
        if clusters.is_empty() {
            return Err(StepError::msg(
                "no PostgreSQL cluster found (pg_lsclusters lists none)",
            ));
        }
        for (version, name, online) in clusters {
            if (verb == "start" && online) || (verb == "stop" && !online) {
                continue;
            }
            let verb = if verb == "reload" && !online {
                "start"
            } else {
                verb
            };
            let verb = if verb == "restart" && !online {
                "start"
            } else {
                verb
            };
            run_ok(
                self.host,
                &Cmd::new(["pg_ctlcluster", &version, &name, verb]),
            )?;
        }
        Ok(())
    }

    /// The pid in `pid_file` if that process is alive (zombies count as dead).
    pub(super) fn pid_alive(&self, pid_file: &str) -> Result<Option<u32>, HostError> {
        let Some(bytes) = self.host.read(Path::new(pid_file))? else {
            return Ok(None);
        };
        let Ok(pid) = String::from_utf8_lossy(&bytes).trim().parse::<u32>() else {
            return Ok(None);
        };
        Ok(self.process_alive(pid)?.then_some(pid))
    }

    pub(super) fn process_alive(&self, pid: u32) -> Result<bool, HostError> {
        let stat = self.host.read(Path::new(&format!("/proc/{pid}/stat")))?;
        Ok(stat.is_some_and(|s| {
            let s = String::from_utf8_lossy(&s);
            // state is the first field after the parenthesised command name.
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
        }))
    }

    fn start_daemon(
        &self,
        command: &[String],
        user: &str,
        pid_file: &str,
        log_file: &str,
    ) -> Result<(), StepError> {
        if self.pid_alive(pid_file).map_err(StepError::host)?.is_some() {
            return Ok(());
        }
        let cmd = Cmd::new(command.to_vec()).user(user);
        let pid = self
            .host
            .spawn_detached(&cmd, Path::new(log_file))
            .map_err(StepError::host)?;
        let root = crate::host::Owner {
            user: "root".into(),
            group: "root".into(),
            mode: 0o644,
        };
        self.host
            .write(Path::new(pid_file), format!("{pid}\n").as_bytes(), &root)
            .map_err(StepError::host)?;
        // Bounded poll: a daemon that dies at start-up is reported now, with its log.
        let deadline = Instant::now() + Duration::from_millis(700);
        while Instant::now() < deadline {
            if !self.process_alive(pid).map_err(StepError::host)? {
                return Err(StepError {
                    message: format!("{} exited right after starting", command[0]),
                    command: Some(cmd.display()),
                    stderr_tail: Some(self.log_tail(log_file)),
                });
            }
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The last ten lines of a daemon's log file (empty when it cannot be read).
    pub(crate) fn log_tail(&self, log_file: &str) -> String {
        let log = self
            .host
            .read(Path::new(log_file))
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    fn stop_pid(&self, pid_file: &str) -> Result<(), StepError> {
        let Some(pid) = self.pid_alive(pid_file).map_err(StepError::host)? else {
            return self
                .host
                .remove(Path::new(pid_file))
                .map_err(StepError::host);
        };
        self.host
            .signal(pid, Signal::Term)
            .map_err(StepError::host)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.process_alive(pid).map_err(StepError::host)? {
            if Instant::now() > deadline {
                self.host
                    .signal(pid, Signal::Kill)
                    .map_err(StepError::host)?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // nginx removes its own pid file; a daemon's is ours to remove.
        self.host
            .remove(Path::new(pid_file))
            .map_err(StepError::host)
    }
}
