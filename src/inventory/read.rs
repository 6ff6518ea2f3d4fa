//! Reading an inventory file: the YAML, then every host checked (targets, addresses, roles,
//! names), every problem with its file, line and column, all of them at once.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Host, Inventory, Role, Roles};
use crate::host::ssh::Target;
use crate::recipe::diag::{RecipeError, RecipeErrors};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    domain: Option<String>,
    ca_dir: Option<PathBuf>,
    hosts: Vec<RawHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    target: String,
    address: Option<String>,
    roles: Vec<Role>,
}

impl Inventory {
    /// Check the inventory `text` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, RecipeErrors> {
        let file = path.display().to_string();
        let raw: Raw = serde_yaml::from_str(text)
            .map_err(|e| RecipeErrors::from_yaml(file.clone(), text, &e))?;
        let mut errors = RecipeErrors::new(file.clone());
        let at = |errors: &mut RecipeErrors, index: usize, key: &str, message: String| {
            errors.errors.push(located(text, index, key, message));
        };
        let mut hosts: Vec<Host> = Vec::new();
        for (i, h) in raw.hosts.iter().enumerate() {
            let valid_name = !h.name.is_empty()
                && h.name.len() <= 64
                && h.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_name {
                at(
                    &mut errors,
                    i,
                    "name",
                    format!(
                        "hosts[{i}].name: {:?} is not a host name (letters, digits, '-', '_', '.')",
                        h.name
                    ),
                );
            }
            if raw.hosts[..i].iter().any(|o| o.name == h.name) {
                at(
                    &mut errors,
                    i,
                    "name",
                    format!("hosts[{i}].name: {} is named twice", h.name),
                );
            }
            let target = match h.target.parse::<Target>() {
                Ok(t) => Some(t),
                Err(e) => {
                    at(&mut errors, i, "target", format!("hosts[{i}].target: {e}"));
                    None
                }
            };
            let address = match (&h.address, &target) {
                (Some(a), _) => a.parse::<IpAddr>().map_err(|_| {
                    format!("hosts[{i}].address: {a:?} is not an IP address")
                }),
                (None, Some(t)) => t.host.parse::<IpAddr>().map_err(|_| {
                    format!(
                        "hosts[{i}].address: the target {} is a name; give the host's private IP address",
                        t.host
                    )
                }),
                (None, None) => Err(String::new()),
            };
            // The address other machines reach this one at: one machine's, not the wildcard
            // (the primary would listen everywhere), nor loopback when there are others (they
            // would dial themselves).
            let address = address.and_then(|a| match reachable(&a, raw.hosts.len() > 1) {
                Ok(()) => Ok(a),
                Err(why) => Err(format!("hosts[{i}].address: {a} is {why}")),
            });
            let address = match address {
                Ok(a) => Some(a),
                Err(m) if m.is_empty() => None,
                Err(m) => {
                    at(&mut errors, i, "address", m);
                    None
                }
            };
            let roles = Roles::of(&h.roles);
            if h.roles.is_empty() {
                at(
                    &mut errors,
                    i,
                    "roles",
                    format!("hosts[{i}].roles: a host needs at least one role (db, standby, collector, balancer)"),
                );
            }
            if roles.db && roles.standby {
                at(
                    &mut errors,
                    i,
                    "roles",
                    format!("hosts[{i}].roles: a standby on the primary's own machine protects nothing; give it another host"),
                );
            }
            if roles.balancer && roles.collector {
                at(
                    &mut errors,
                    i,
                    "roles",
                    format!("hosts[{i}].roles: balancer and collector both serve port 80; give them different hosts"),
                );
            }
            if let (Some(target), Some(address)) = (target, address) {
                for other in &hosts {
                    if other.address == address {
                        at(
                            &mut errors,
                            i,
                            "address",
                            format!("hosts[{i}]: {address} is also {}'s address", other.name),
                        );
                    }
                    if other.target == target {
                        at(
                            &mut errors,
                            i,
                            "target",
                            format!("hosts[{i}]: {target} is also {}'s target", other.name),
                        );
                    }
                }
                hosts.push(Host {
                    name: h.name.clone(),
                    target,
                    address,
                    roles,
                });
            }
        }
        let count = |role: Role| raw.hosts.iter().filter(|h| h.roles.contains(&role)).count();
        // Errors about the whole list: at the `hosts:` key.
        let top = |errors: &mut RecipeErrors, message: String| {
            let at = located_key(text, "hosts", String::new());
            errors.errors.push(RecipeError {
                file: None,
                path: Some("hosts".into()),
                step: None,
                message,
                position: at.position,
                source_line: at.source_line,
            })
        };
        match count(Role::Db) {
            1 => {}
            0 => top(
                &mut errors,
                "no host has the role db (the PostgreSQL primary)".into(),
            ),
            n => top(
                &mut errors,
                format!(
                    "{n} hosts have the role db; one primary (add a standby for a second copy)"
                ),
            ),
        }
        if count(Role::Collector) == 0 {
            top(&mut errors, "no host has the role collector".into());
        }
        if count(Role::Standby) > 1 {
            top(
                &mut errors,
                "more than one standby; one is supported".into(),
            );
        }
        if count(Role::Balancer) > 1 {
            top(
                &mut errors,
                "more than one balancer; one is supported".into(),
            );
        }
        if let Some(domain) = &raw.domain {
            if let Err(e) = crate::options::check_domain(domain) {
                errors
                    .errors
                    .push(located_key(text, "domain", format!("domain: {e}")));
            }
        }
        errors.into_result()?;
        let base = path.parent().unwrap_or(Path::new("."));
        let ca_dir = raw.ca_dir.clone().unwrap_or_else(|| PathBuf::from("ca"));
        Ok(Inventory {
            file: path.to_path_buf(),
            domain: raw.domain,
            ca_dir: if ca_dir.is_absolute() {
                ca_dir
            } else {
                base.join(ca_dir)
            },
            ca_dir_written: raw.ca_dir,
            hosts,
        })
    }
}

/// Why other machines cannot reach a host at `a` (`others`: the inventory has other hosts).
fn reachable(a: &IpAddr, others: bool) -> Result<(), &'static str> {
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    if a.is_unspecified() || broadcast {
        Err("not the address of one machine (give the host's private IP address)")
    } else if a.is_multicast() {
        Err("a multicast address (give the host's private IP address)")
    } else if a.is_loopback() && others {
        Err("a loopback address: the other hosts cannot reach it there (give its private IP address)")
    } else {
        Ok(())
    }
}

/// An error at `hosts[index].key`, at the key's line when it can be found.
fn located(text: &str, index: usize, key: &str, message: String) -> RecipeError {
    let position = host_key_line(text, index, key);
    RecipeError {
        file: None,
        path: None,
        step: None,
        message,
        position: position.as_ref().map(|(l, c, _)| (*l, *c)),
        source_line: position.map(|(_, _, s)| s),
    }
}

fn located_key(text: &str, key: &str, message: String) -> RecipeError {
    let found = text.lines().enumerate().find_map(|(n, line)| {
        line.strip_prefix(key)
            .filter(|rest| rest.trim_start().starts_with(':'))
            .map(|_| (n + 1, 1, line.to_owned()))
    });
    RecipeError {
        file: None,
        path: None,
        step: None,
        message,
        position: found.as_ref().map(|(l, c, _)| (*l, *c)),
        source_line: found.map(|(_, _, s)| s),
    }
}

/// Line, column and text of `key:` in the `index`th item of the top-level `hosts` list.
fn host_key_line(text: &str, index: usize, key: &str) -> Option<(usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == "hosts:" || l.starts_with("hosts:"))?;
    let mut item = None;
    let mut seen = 0usize;
    for (n, line) in lines.iter().enumerate().skip(start + 1) {
        let trimmed = line.trim_start();
        if trimmed.starts_with("- ") || trimmed == "-" {
            if seen == index {
                item = Some(n);
            } else if item.is_some() {
                break;
            }
            seen += 1;
        }
        if let Some(first) = item {
            let body = trimmed.trim_start_matches("- ");
            if body.starts_with(&format!("{key}:")) {
                let col = line.len() - body.len() + 1;
                return Some((n + 1, col, line.to_string()));
            }
            let _ = first;
        }
    }
    item.map(|n| {
        let indent = lines[n].len() - lines[n].trim_start().len();
        (n + 1, indent + 1, lines[n].to_string())
    })
}
