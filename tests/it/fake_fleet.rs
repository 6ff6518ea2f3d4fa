//! A fleet of fake machines for runs of many targets or an inventory (targets.rs,
//! inventory*.rs): the connections to them, what each did in order, and the helpers those
//! tests share (command lines, the stored password, golden documents).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use telem_deploy::app::{run_inventory, run_targets, Io};
use telem_deploy::cli::Cli;
use telem_deploy::host::Host;

use crate::fake_host::FakeHost;
const CONFIG: &str = "/etc/telemetry/collector.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fake machines of a run, by label; a label without a machine fails to connect with
/// `why`. A machine may be connected to more than once in a run (an inventory's balancer
/// drains each collector in a job of its own): the connections share it.
pub(crate) struct Fleet {
    hosts: Mutex<Vec<(String, Option<Machine>)>>,
    /// What every machine did, in the order it happened across machines.
    events: Mutex<Vec<Event>>,
}

/// A fake machine, shared by the connections to it.
type Machine = Arc<Mutex<FakeHost>>;

/// One thing a machine did during a run: a command, or a file written (with its content).
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) host: String,
    /// `run CMD` or `write PATH`.
    pub(crate) what: String,
    pub(crate) content: Option<String>,
    /// The databases of the machine's PostgreSQL after it (commands only).
    pub(crate) databases: Vec<String>,
}

/// A connection to a fake machine: every call takes the machine for itself.
struct Connection<'a> {
    label: String,
    host: Arc<Mutex<FakeHost>>,
    fleet: &'a Fleet,
}

macro_rules! delegate {
    ($($name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret {
            self.host.lock().unwrap_or_else(|e| e.into_inner()).$name($($arg),*)
        })*
    };
}

impl Connection<'_> {
    fn event(&self, what: String, content: Option<String>, databases: Vec<String>) {
        self.fleet.events.lock().unwrap().push(Event {
            host: self.label.clone(),
            what,
            content,
            databases,
        });
    }
}

impl Host for Connection<'_> {
    fn is_local(&self) -> bool {
        false
    }

    fn run(
        &self,
        cmd: &telem_deploy::host::Cmd,
    ) -> telem_deploy::host::HostResult<telem_deploy::host::CmdOutput> {
        let host = self.host.lock().unwrap_or_else(|e| e.into_inner());
        let out = host.run(cmd);
        let databases = host.world.borrow().databases.keys().cloned().collect();
        drop(host);
        self.event(format!("run {}", cmd.display()), None, databases);
        out
    }

    fn write(
        &self,
        path: &Path,
        content: &[u8],
        owner: &telem_deploy::host::Owner,
    ) -> telem_deploy::host::HostResult<()> {
        let done = self
            .host
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(path, content, owner);
        self.event(
            format!("write {}", path.display()),
            Some(String::from_utf8_lossy(content).into_owned()),
            Vec::new(),
        );
        done
    }

    delegate! {
        spawn_detached(cmd: &telem_deploy::host::Cmd, log: &Path) -> telem_deploy::host::HostResult<u32>;
        lock_run() -> telem_deploy::host::HostResult<Option<telem_deploy::host::RunLock>>;
        signal(pid: u32, sig: telem_deploy::host::Signal) -> telem_deploy::host::HostResult<()>;
        which(program: &str) -> Option<PathBuf>;
        read(path: &Path) -> telem_deploy::host::HostResult<Option<Vec<u8>>>;
        stat(path: &Path) -> telem_deploy::host::HostResult<Option<telem_deploy::host::FileMeta>>;
        mkdir(path: &Path, owner: &telem_deploy::host::Owner) -> telem_deploy::host::HostResult<()>;
        chown(path: &Path, owner: &telem_deploy::host::Owner) -> telem_deploy::host::HostResult<()>;
        remove(path: &Path) -> telem_deploy::host::HostResult<()>;
        rename(from: &Path, to: &Path) -> telem_deploy::host::HostResult<()>;
        symlink(target: &Path, link: &Path) -> telem_deploy::host::HostResult<()>;
        list_dir(path: &Path) -> telem_deploy::host::HostResult<Vec<String>>;
        http_get(addr: &str, port: u16, host_header: &str, path: &str, timeout_secs: u64) -> telem_deploy::host::HostResult<u16>;
        pg_login(addr: &str, port: u16, user: &str, password: &str, database: &str) -> telem_deploy::host::HostResult<bool>;
    }
}

impl Fleet {
    pub(crate) fn new(hosts: Vec<(&str, Option<FakeHost>)>) -> Fleet {
        Fleet {
            hosts: Mutex::new(
                hosts
                    .into_iter()
                    .map(|(l, h)| (l.to_owned(), h.map(|h| Arc::new(Mutex::new(h)))))
                    .collect(),
            ),
            events: Mutex::new(Vec::new()),
        }
    }

    /// What the machines did in the last run, in order.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn labels(&self) -> Vec<String> {
        self.hosts
            .lock()
            .unwrap()
            .iter()
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// Run with `args` on every machine; (exit code, stdout, stderr).
    pub(crate) fn run(&self, args: &[&str]) -> (u8, String, String) {
        self.run_by(args, false)
    }

    /// Run with `args` (which name an `--inventory` whose hosts are these machines).
    pub(crate) fn run_inventory(&self, args: &[&str]) -> (u8, String, String) {
        self.run_by(args, true)
    }

    fn run_by(&self, args: &[&str], inventory: bool) -> (u8, String, String) {
        let cli = Cli::try_parse_args(argv(args)).expect("valid arguments");
        self.run_with(|connect, io| {
            if inventory {
                run_inventory(cli, connect, io)
            } else {
                run_targets(cli, self.labels(), connect, io)
            }
        })
    }

    /// Run `jobs` (their `host` names a machine of this fleet) with `args` as the run's own.
    pub(crate) fn run_jobs(
        &self,
        args: &[&str],
        jobs: Vec<telem_deploy::fleet::Job>,
    ) -> (u8, String, String) {
        let cli = Cli::try_parse_args(argv(args)).expect("valid arguments");
        self.run_with(|connect, io| {
            let fleet = telem_deploy::fleet::Fleet::independent(jobs);
            telem_deploy::fleet::run_jobs(&cli, fleet, connect, io)
        })
    }

    /// Run `run` with a connection to these machines; (exit code, stdout, stderr).
    fn run_with(
        &self,
        run: impl FnOnce(
            telem_deploy::fleet::Connect<'_, '_>,
            &mut Io,
        ) -> Result<u8, telem_deploy::Error>,
    ) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        self.events.lock().unwrap().clear();
        let connect = |label: &str| -> Result<Box<dyn Host + Send + '_>, String> {
            let hosts = self.hosts.lock().unwrap();
            let slot = hosts.iter().find(|(l, _)| l == label).expect("label");
            match &slot.1 {
                Some(host) => Ok(Box::new(Connection {
                    label: label.to_owned(),
                    host: Arc::clone(host),
                    fleet: self,
                })),
                None => Err(format!(
                    "the host key of {label} is not in known_hosts, and unknown keys are never accepted silently; nothing was done"
                )),
            }
        };
        // A panic (a bug in a step, or the fake refusing what it sees) still leaves the
        // machines, for the test to look at.
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut io = Io {
                out: &mut out,
                err: &mut err,
            };
            match run(&connect, &mut io) {
                Ok(c) => c,
                Err(e) => {
                    err.extend_from_slice(format!("error: {e}\n").as_bytes());
                    e.exit_code()
                }
            }
        }));
        let code = code.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// Put `host` in `label`'s slot (None: the machine cannot be reached); the one there
    /// before.
    pub(crate) fn replace(&self, label: &str, host: Option<FakeHost>) -> Option<FakeHost> {
        let mut hosts = self.hosts.lock().unwrap();
        let slot = hosts.iter_mut().find(|(l, _)| l == label).expect("label");
        let was = std::mem::replace(&mut slot.1, host.map(|h| Arc::new(Mutex::new(h))));
        was.map(|h| {
            Arc::try_unwrap(h)
                .ok()
                .expect("no run holds the machine")
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
        })
    }

    pub(crate) fn with<T>(&self, label: &str, f: impl FnOnce(&FakeHost) -> T) -> T {
        let host = {
            let hosts = self.hosts.lock().unwrap();
            hosts
                .iter()
                .find(|(l, _)| l == label)
                .and_then(|(_, h)| h.clone())
                .expect("machine")
        };
        let host = host.lock().unwrap_or_else(|e| e.into_inner());
        f(&host)
    }

    /// Another name (`label`, last in the run) for the machine of `of`: both reach it.
    pub(crate) fn alias(&self, label: &str, of: &str) {
        let mut hosts = self.hosts.lock().unwrap();
        let machine = hosts
            .iter()
            .find(|(l, _)| l == of)
            .and_then(|(_, h)| h.clone())
            .expect("machine");
        hosts.push((label.to_owned(), Some(machine)));
    }
}

/// The command line of a run with `args` (the fixture collector binary first).
pub(crate) fn argv(args: &[&str]) -> Vec<String> {
    let collector = root().join("tests/fixtures/telem-collector");
    let mut argv = vec![
        "telem-deploy".to_owned(),
        "--collector-bin".into(),
        collector.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

pub(crate) fn stored_password(host: &FakeHost) -> Option<String> {
    let w = host.world.borrow();
    let node = w.files.get(Path::new(CONFIG))?;
    let doc: toml::Table = toml::from_str(&String::from_utf8_lossy(&node.content)).ok()?;
    doc.get("database_password")?.as_str().map(str::to_owned)
}

/// Wall times vary: zeroed before comparing.
pub(crate) fn normalized(json: &str) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(json).expect("one JSON document");
    for t in doc["targets"].as_array_mut().expect("targets") {
        assert!(t["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{t}");
        t["seconds"] = serde_json::json!(0.0);
    }
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

pub(crate) fn golden_compare(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; UPDATE_GOLDEN=1 creates it", path.display()));
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .header("golden", "actual")
            .to_string();
        panic!("{name} differs from its golden file (UPDATE_GOLDEN=1 to accept):\n{diff}");
    }
}
