//! The inventory (`--inventory FILE`): the machines of one telemetry backend, their SSH
//! targets, private addresses and roles. Read on the controller and checked whole before any
//! connection: every problem with its file, line and column, like a recipe's.
//!
//! ```yaml
//! domain: telemetry.example.com
//! ca_dir: ca                 # the CA that signs the database's certificate (beside this file)
//! hosts:
//!   - name: db1
//!     target: root@10.0.0.11
//!     roles: [db]
//!   - name: web1
//!     target: root@web1.example.com
//!     address: 10.0.0.21     # needed when the target is a name
//!     roles: [collector]
//! ```

mod placement;
mod read;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use placement::{insert_vars, Placement, Role, Roles};

use crate::error::Error;
use crate::host::ssh::Target;

/// One machine of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub target: Target,
    pub address: IpAddr,
    pub roles: Roles,
}

/// A checked inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub file: PathBuf,
    pub domain: Option<String>,
    /// Where the inventory's certificate authority lives on the controller.
    pub ca_dir: PathBuf,
    /// `ca_dir` as the file wrote it (relative to the file's directory, or absolute), for
    /// [`Inventory::to_yaml`]; `None`: the default, `ca` beside the file.
    pub ca_dir_written: Option<PathBuf>,
    /// In the file's order.
    pub hosts: Vec<Host>,
}

/// The waves of a run, in order: the primary, the standby, the collectors, the balancer. A
/// host with several roles runs once, in the wave of its first role.
pub const WAVES: [Role; 4] = [Role::Db, Role::Standby, Role::Collector, Role::Balancer];

impl Inventory {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Inventory, Error> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("--inventory {file}: {e}")))?;
        Inventory::parse(path, &text).map_err(Error::Recipe)
    }

    /// The hosts `--limit` names (all without it); an unknown name is a usage error.
    pub fn limited(&self, limit: &[String]) -> Result<Vec<&Host>, Error> {
        for name in limit {
            if !self.hosts.iter().any(|h| &h.name == name) {
                return Err(Error::Usage(format!(
                    "--limit {name}: no such host in {} (hosts: {})",
                    self.file.display(),
                    self.hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(self
            .hosts
            .iter()
            .filter(|h| limit.is_empty() || limit.contains(&h.name))
            .collect())
    }

    /// The primary.
    pub fn db(&self) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.roles.db)
            .expect("a checked inventory has a db host")
    }

    /// Does any host reach the primary over the network (so it needs TLS and the CA)?
    pub fn networked(&self) -> bool {
        let db = self.db();
        self.hosts
            .iter()
            .any(|h| h.name != db.name && (h.roles.collector || h.roles.standby))
    }

    /// Where `host` stands, with the CA's certificate when the database is networked.
    pub fn placement(&self, host: &Host, ca_certificate: Option<&str>) -> Placement {
        Placement {
            name: host.name.clone(),
            roles: host.roles,
            address: host.address,
            db_address: self.db().address,
            standby_address: self
                .hosts
                .iter()
                .find(|h| h.roles.standby)
                .map(|h| h.address),
            collectors: self
                .hosts
                .iter()
                .filter(|h| h.roles.collector)
                .map(|h| h.address)
                .collect(),
            drained: Vec::new(),
            ca_certificate: ca_certificate.map(str::to_owned),
        }
    }

    /// The inventory once its standby is the primary: the standby has the role db, the old
    /// primary loses it (and leaves the inventory when it had no other role).
    pub fn promoted(&self) -> Result<Inventory, String> {
        if !self.hosts.iter().any(|h| h.roles.standby) {
            return Err(format!(
                "{}: no host has the role standby; nothing to promote",
                self.file.display()
            ));
        }
        let hosts = self
            .hosts
            .iter()
            .filter_map(|h| {
                let mut h = h.clone();
                if h.roles.standby {
                    h.roles.standby = false;
                    h.roles.db = true;
                } else if h.roles.db {
                    h.roles.db = false;
                }
                let any = h.roles.db || h.roles.collector || h.roles.balancer;
                any.then_some(h)
            })
            .collect();
        Ok(Inventory {
            hosts,
            ..self.clone()
        })
    }

    /// The inventory as YAML (what `promote` prints: the inventory as it now is), with the
    /// hosts `fenced` commented out. Read back from the same file it is the same inventory:
    /// `ca_dir` as the file wrote it (relative to the file, not to the working directory), and
    /// every value that YAML would read as something else (`[::1]:22`, `null`, `123`) quoted.
    pub fn to_yaml(&self, fenced: &[&Host]) -> String {
        let mut out = String::from("# telem-deploy inventory\n");
        if let Some(d) = &self.domain {
            out.push_str(&format!("domain: {}\n", scalar(d)));
        }
        if let Some(dir) = &self.ca_dir_written {
            out.push_str(&format!("ca_dir: {}\n", scalar(&dir.display().to_string())));
        }
        out.push_str("hosts:\n");
        let host = |h: &Host| {
            let roles: Vec<&str> = [Role::Db, Role::Standby, Role::Collector, Role::Balancer]
                .into_iter()
                .filter(|r| h.roles.has(*r))
                .map(Role::as_str)
                .collect();
            format!(
                "  - name: {}\n    target: {}\n    address: {}\n    roles: [{}]\n",
                scalar(&h.name),
                scalar(&h.target.to_string()),
                scalar(&h.address.to_string()),
                roles.join(", ")
            )
        };
        for h in &self.hosts {
            out.push_str(&host(h));
        }
        for h in fenced {
            out.push_str(&format!(
                "  # {} was the primary: fenced (stopped, marked never to start as a primary)\n",
                h.name
            ));
            for line in host(h).lines() {
                out.push_str(&format!("  #{}\n", &line[1..]));
            }
        }
        out
    }

    /// The wave (index into [`WAVES`]) a host runs in: the one of its first role.
    pub fn wave(host: &Host) -> usize {
        WAVES
            .iter()
            .position(|r| host.roles.has(*r))
            .unwrap_or(WAVES.len())
    }
}

/// `text` as a YAML scalar that reads back as this string: plain when it does, else quoted.
fn scalar(text: &str) -> String {
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::String(s)) if s == text && !text.contains(['#', '\'', '"']) => {
            text.to_owned()
        }
        _ => serde_json::to_string(text).expect("a string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, String> {
        Inventory::parse(Path::new("/etc/fleet/inv.yaml"), text).map_err(|e| e.to_string())
    }

    const FLEET: &str = "\
domain: telemetry.example.com
hosts:
  - name: db1
    target: root@10.0.0.11
    roles: [db]
  - name: standby1
    target: root@10.0.0.12
    roles: [standby]
  - name: web1
    target: root@web1.example.com
    address: 10.0.0.21
    roles: [collector]
  - name: web2
    target: root@10.0.0.22:2222
    roles: [collector]
  - name: lb
    target: root@10.0.0.30
    roles: [balancer]
";

    #[test]
    fn a_fleet_is_read_in_order_with_its_addresses() {
        let inv = parse(FLEET).unwrap();
        assert_eq!(inv.ca_dir, Path::new("/etc/fleet/ca"));
        let names: Vec<_> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["db1", "standby1", "web1", "web2", "lb"]);
        assert_eq!(inv.hosts[2].address.to_string(), "10.0.0.21");
        assert!(inv.networked());
        let waves: Vec<_> = inv.hosts.iter().map(Inventory::wave).collect();
        assert_eq!(waves, [0, 1, 2, 2, 3]);
        let p = inv.placement(&inv.hosts[0], None);
        let clients: Vec<String> = p.db_clients().iter().map(|a| a.to_string()).collect();
        assert_eq!(clients, ["10.0.0.21", "10.0.0.22"]);
    }

    #[test]
    fn one_host_with_db_and_collector_is_not_networked() {
        let inv =
            parse("hosts:\n  - name: a\n    target: root@10.0.0.1\n    roles: [db, collector]\n")
                .unwrap();
        assert!(!inv.networked());
        assert!(inv.placement(&inv.hosts[0], None).db_clients().is_empty());
        // Alone, it may be reached at loopback (no other host dials it).
        parse("hosts:\n  - name: a\n    target: root@127.0.0.1\n    roles: [db, collector]\n")
            .unwrap();
    }

    #[test]
    fn problems_name_the_file_line_and_column() {
        let bad = FLEET.replace("roles: [balancer]", "roles: [balancer, collector]");
        let err = parse(&bad).unwrap_err();
        assert!(
            err.contains("/etc/fleet/inv.yaml:18:5: hosts[4].roles: balancer and collector"),
            "{err}"
        );
        let bad = FLEET.replace("roles: [standby]", "roles: [standby, db]");
        let err = parse(&bad).unwrap_err();
        assert!(
            err.contains("inv.yaml:8:5: hosts[1].roles: a standby"),
            "{err}"
        );
        assert!(err.contains("2 hosts have the role db"), "{err}");
        let bad = FLEET.replace("roles: [db]", "roles: [database]");
        let err = parse(&bad).unwrap_err();
        assert!(err.contains("inv.yaml:5:"), "{err}");
        assert!(err.contains("unknown variant `database`"), "{err}");
        let bad = FLEET.replace("    address: 10.0.0.21\n", "");
        let err = parse(&bad).unwrap_err();
        assert!(
            err.contains("inv.yaml:9:3: hosts[2].address: the target web1.example.com is a name"),
            "{err}"
        );
        let bad = FLEET.replace("10.0.0.22:2222", "10.0.0.11");
        let err = parse(&bad).unwrap_err();
        assert!(err.contains("10.0.0.11 is also db1's address"), "{err}");
        let bad = FLEET.replace("domain: telemetry.example.com", "domain: 'bad domain'");
        let err = parse(&bad).unwrap_err();
        assert!(err.contains("inv.yaml:1:1: domain:"), "{err}");
        let err = parse("hosts:\n  - name: a\n    target: root@10.0.0.1\n    roles: [collector]\n    colour: red\n").unwrap_err();
        assert!(err.contains("inv.yaml:5:"), "{err}");
        assert!(
            err.contains("no host has the role db") || err.contains("unknown field"),
            "{err}"
        );
    }

    #[test]
    fn promoted_the_standby_is_the_primary_and_the_yaml_reads_back() {
        let inv = parse(FLEET).unwrap();
        let now = inv.promoted().unwrap();
        let names: Vec<_> = now.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["standby1", "web1", "web2", "lb"]);
        assert!(now.hosts[0].roles.db && !now.hosts[0].roles.standby);
        let text = now.to_yaml(&[&inv.hosts[0]]);
        assert!(
            text.contains("  #   name: db1") || text.contains("  # - name: db1"),
            "{text}"
        );
        let back = Inventory::parse(Path::new("/etc/fleet/inv.yaml"), &text).unwrap();
        assert_eq!(back.hosts, now.hosts);
        assert_eq!(back.ca_dir, inv.ca_dir);
        // Named from another directory, with values YAML reads as something else.
        let odd = "domain: t.example\nca_dir: keys/ca\nhosts:\n  - { name: 'null', target: '[2001:db8::1]:2222', roles: [db] }\n  - { name: '123', target: 'root@10.0.0.2', roles: [standby] }\n  - { name: '.inf', target: 'root@10.0.0.3', roles: [collector] }\n";
        let path = Path::new("fleet/inv.yaml");
        let inv = Inventory::parse(path, odd).unwrap();
        assert_eq!(inv.ca_dir, Path::new("fleet/keys/ca"));
        let now = inv.promoted().unwrap();
        let text = now.to_yaml(&[&inv.hosts[0]]);
        let back = Inventory::parse(path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.hosts, now.hosts, "{text}");
        assert_eq!(back.ca_dir, inv.ca_dir, "{text}");
        let err = now.promoted().unwrap_err();
        assert!(err.contains("no host has the role standby"), "{err}");
    }

    #[test]
    fn limit_names_hosts_of_the_inventory() {
        let inv = parse(FLEET).unwrap();
        let some = inv.limited(&["web2".into(), "db1".into()]).unwrap();
        assert_eq!(
            some.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
            ["db1", "web2"]
        );
        let err = inv.limited(&["web3".into()]).unwrap_err().to_string();
        assert!(err.contains("--limit web3: no such host"), "{err}");
        assert!(err.contains("db1, standby1, web1, web2, lb"), "{err}");
    }
}
