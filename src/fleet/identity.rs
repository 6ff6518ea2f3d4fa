//! Which machine a target is. Two names of one run can reach the same machine (a name and its
//! address, an alias in `~/.ssh/config`, `host` and `host:22`), and two jobs changing one
//! machine at once would race for its package manager and its state file, each recording
//! only its own changes. So every target says which machine it is while it plans, and a run
//! that names a machine twice stops before any change.
//!
//! A machine is the same when all three agree: the running kernel's boot id (random at every
//! boot: machines cloned from one image differ), the network namespace (containers on one
//! kernel have their own, or share the host's ports: then they are one machine for nginx and
//! PostgreSQL too) and the root directory (device and inode: chroots differ). Not the systemd
//! machine id nor the host name: images copied without changing them share both, and minimal
//! systems have no machine id. A target whose identity cannot be read is not compared.

use crate::host::{Cmd, Host};

/// Prints the boot id, the network namespace and the root directory's device and inode, a
/// line each (programs every supported system has: `cat`, `readlink` and `stat`).
pub const SCRIPT: &str =
    "cat /proc/sys/kernel/random/boot_id && readlink /proc/self/ns/net && stat -L -c '%d:%i' /";

/// What tells one machine from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity([String; 3]);

impl Identity {
    /// The identity of `host`'s machine; `None` when it cannot be read.
    pub fn read(host: &dyn Host) -> Option<Identity> {
        let out = host.run(&Cmd::new(["sh", "-c", SCRIPT])).ok()?;
        if !out.success() {
            return None;
        }
        Self::parse(&out.stdout_text())
    }

    fn parse(text: &str) -> Option<Identity> {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        match lines[..] {
            [boot, net, root] if [boot, net, root].iter().all(|l| !l.is_empty()) => {
                Some(Identity([boot.into(), net.into(), root.into()]))
            }
            _ => None,
        }
    }
}

/// The first pair of different names (`machines`: a name and its identity, if known) that
/// reach one machine, as a sentence for the error; `None` when every name is another machine.
/// A name given more than once (several jobs on one machine) is not a pair.
pub fn named_twice(machines: &[(&str, Option<&Identity>)]) -> Option<String> {
    machines.iter().enumerate().find_map(|(i, (a, ia))| {
        let ia = (*ia)?;
        machines[i + 1..].iter().find_map(|(b, ib)| {
            (a != b && *ib == Some(ia)).then(|| {
                format!(
                    "{a} and {b} are the same machine (the same boot id, network namespace \
                     and root directory): name each machine once in a run; no machine was changed"
                )
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(boot: &str, net: &str, root: &str) -> Identity {
        Identity::parse(&format!("{boot}\n{net}\n{root}\n")).expect("three lines")
    }

    #[test]
    fn the_same_machine_under_two_names_is_found() {
        let web = id("b1", "net:[1]", "2049:2");
        let other = id("b2", "net:[1]", "2049:2");
        let said = named_twice(&[
            ("web1", Some(&web)),
            ("web2", Some(&other)),
            ("10.0.0.21", Some(&web)),
        ])
        .expect("a pair");
        assert!(
            said.starts_with("web1 and 10.0.0.21 are the same machine"),
            "{said}"
        );
    }

    #[test]
    fn clones_containers_chroots_unknowns_and_repeated_names_are_not_pairs() {
        let a = id("b1", "net:[1]", "2049:2");
        let clone = id("b2", "net:[1]", "2049:2");
        let container = id("b1", "net:[7]", "77:2");
        let chroot = id("b1", "net:[1]", "2049:1234");
        assert_eq!(
            named_twice(&[
                ("a", Some(&a)),
                ("clone", Some(&clone)),
                ("container", Some(&container)),
                ("chroot", Some(&chroot)),
                ("unknown", None),
                ("unknown2", None),
                ("a", Some(&a)),
            ]),
            None
        );
    }

    #[test]
    fn anything_but_three_lines_is_unknown() {
        for text in [
            "",
            "b1\nnet:[1]\n",
            "b1\n\n2049:2\n",
            "b1\nnet:[1]\n2049:2\nmore\n",
        ] {
            assert_eq!(Identity::parse(text), None, "{text:?}");
        }
    }
}
