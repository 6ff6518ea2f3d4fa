//! The waves of an inventory's run, as a list of stages (each a wave: its jobs, and how many
//! of them change at once). Every host has its own job in the wave of its first role: the
//! primary, the standby, the first collector (it migrates the schema, once), the other
//! collectors, the balancer; `uninstall` goes the other way. Two actions add jobs of their own
//! on machines that already have one:
//!
//! - `resetdb`: every collector on another machine than the primary is stopped
//!   (`stop-collector`) in a wave before the primary's, so none holds a connection or writes
//!   while the database is dropped; the first collector then migrates and starts, then the
//!   others.
//! - `deploy`/`restart` behind a balancer (in the run) with two collectors or more: the
//!   collectors change in chunks (the first collector alone, then `--serial N` of the others,
//!   1 by default), each chunk taken out of the balancer before (`balance` with the chunk
//!   marked `down`, nginx reloaded) and put back after its health check (`balance` with none
//!   marked: what install writes). So at least one collector always serves.

use std::net::IpAddr;

use crate::cli::{Action, Cli};
use crate::inventory::{Host, Placement};

use super::Job;

/// Makes the job of `host` for `action` (its placement with `drained` marked down).
pub(super) type MakeJob<'a> = dyn Fn(&Host, Action, &[IpAddr], String) -> Job + 'a;

/// One wave: its jobs and how many of them change at once.
struct Stage {
    jobs: Vec<Job>,
    serial: usize,
}

impl Stage {
    fn all(jobs: Vec<Job>) -> Stage {
        Stage {
            jobs,
            serial: usize::MAX,
        }
    }
}

/// The hosts of a run by the wave of their own job.
struct Waves<'h> {
    primary: Vec<&'h Host>,
    standby: Vec<&'h Host>,
    first_collector: Vec<&'h Host>,
    collectors: Vec<&'h Host>,
    balancer: Vec<&'h Host>,
}

fn split<'h>(hosts: &[&'h Host]) -> Waves<'h> {
    let first = hosts.iter().find(|h| h.roles.collector).map(|h| &h.name);
    let mut w = Waves {
        primary: Vec::new(),
        standby: Vec::new(),
        first_collector: Vec::new(),
        collectors: Vec::new(),
        balancer: Vec::new(),
    };
    for h in hosts {
        match crate::inventory::Inventory::wave(h) {
            0 => w.primary.push(h),
            1 => w.standby.push(h),
            2 if Some(&h.name) == first => w.first_collector.push(h),
            2 => w.collectors.push(h),
            _ => w.balancer.push(h),
        }
    }
    w
}

/// The jobs of `cli` on `hosts` (those of `--limit`; `all_collectors`: how many collectors
/// the inventory has; `balanced`: it has a balancer), each with its wave, in the inventory's
/// order; and how many of each wave change at once.
pub(super) fn jobs(
    cli: &Cli,
    hosts: &[&Host],
    all_collectors: usize,
    balanced: bool,
    make: &MakeJob,
) -> (Vec<Job>, Vec<usize>) {
    let w = split(hosts);
    let own = |hs: &[&Host]| -> Vec<Job> {
        hs.iter()
            .map(|h| make(h, cli.action, &[], h.name.clone()))
            .collect()
    };
    let mut stages = Vec::new();
    if cli.action == Action::Resetdb {
        // Every collector that is not the primary's machine stops before the drop (the
        // primary's own collector stops in its resetdb, before its drop).
        let stop: Vec<Job> = hosts
            .iter()
            .filter(|h| h.roles.collector && !h.roles.db)
            .map(|h| make(h, Action::StopCollector, &[], format!("{} (stop)", h.name)))
            .collect();
        stages.push(Stage::all(stop));
    }
    stages.push(Stage::all(own(&w.primary)));
    stages.push(Stage::all(own(&w.standby)));
    let rolling = matches!(cli.action, Action::Deploy | Action::Restart);
    let serial = cli.serial.map(usize::from);
    if rolling && !w.balancer.is_empty() && all_collectors >= 2 {
        let mut chunks: Vec<Vec<&Host>> = Vec::new();
        if !w.first_collector.is_empty() {
            chunks.push(w.first_collector.clone());
        }
        chunks.extend(w.collectors.chunks(serial.unwrap_or(1)).map(<[_]>::to_vec));
        for chunk in chunks {
            // Never every collector out of the balancer at once (the first collector is a
            // chunk of its own, so this holds whenever the inventory has two).
            let drain = chunk.len() < all_collectors;
            let names: Vec<&str> = chunk.iter().map(|h| h.name.as_str()).collect();
            let names = names.join(", ");
            let out: Vec<IpAddr> = chunk.iter().map(|h| h.address).collect();
            let drain_label = |b: &Host| format!("{} (drain {names})", b.name);
            if drain {
                stages.push(Stage::all(
                    w.balancer
                        .iter()
                        .map(|b| make(b, Action::Balance, &out, drain_label(b)))
                        .collect(),
                ));
            }
            stages.push(Stage::all(own(&chunk)));
            if drain {
                stages.push(Stage::all(
                    w.balancer
                        .iter()
                        .map(|b| {
                            let mut job =
                                make(b, Action::Balance, &[], format!("{} (undrain {names})", b.name));
                            job.stranded = Some((
                                drain_label(b),
                                format!(
                                    "{names} stays out of the balancer {} (marked `down` in its upstream): the next deploy, restart or install of {} puts it back",
                                    b.name, b.name
                                ),
                            ));
                            job
                        })
                        .collect(),
                ));
            }
        }
    } else {
        stages.push(Stage::all(own(&w.first_collector)));
        let at_once = match serial {
            Some(n) => n,
            // The balancer is left out (--limit) but still sends to the collectors: one at a
            // time.
            None if rolling && balanced => 1,
            None => usize::MAX,
        };
        stages.push(Stage {
            jobs: own(&w.collectors),
            serial: at_once,
        });
    }
    stages.push(Stage::all(own(&w.balancer)));
    if cli.action == Action::Uninstall {
        stages.reverse();
    }
    let mut jobs = Vec::new();
    let mut serial = Vec::new();
    for (wave, stage) in stages.into_iter().enumerate() {
        serial.push(stage.serial);
        for mut job in stage.jobs {
            job.wave = wave;
            jobs.push(job);
        }
    }
    // Reported in the inventory's order, a machine's jobs together in the order they run.
    let at = |job: &Job| hosts.iter().position(|h| h.name == job.host);
    jobs.sort_by_key(|j| (at(j), j.wave));
    (jobs, serial)
}

/// `placement` with the collectors at `drained` marked down in the balancer's upstream.
pub(super) fn drained(mut placement: Placement, drained: &[IpAddr]) -> Placement {
    placement.drained = drained.to_vec();
    placement
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

    const FOUR: &str = "\
domain: t.example
hosts:
  - { name: db, target: root@10.0.0.1, roles: [db] }
  - { name: c1, target: root@10.0.0.2, roles: [collector] }
  - { name: c2, target: root@10.0.0.3, roles: [collector] }
  - { name: c3, target: root@10.0.0.4, roles: [collector] }
  - { name: lb, target: root@10.0.0.5, roles: [balancer] }
";

    /// The jobs of `args` on `text`: (wave, label, drained) each, in wave order.
    fn waves(text: &str, args: &[&str]) -> Vec<(usize, String, Vec<String>)> {
        let inv = Inventory::parse(std::path::Path::new("i.yaml"), text).unwrap();
        let mut argv = vec!["telem-deploy", "--inventory", "i.yaml"];
        argv.extend(args);
        let cli = Cli::try_parse_args(argv).unwrap();
        let hosts = inv.limited(&cli.limit).unwrap();
        let make = |h: &Host, action: Action, drained: &[IpAddr], label: String| Job {
            label,
            host: h.name.clone(),
            cli: Cli {
                action,
                placement: Some(self::drained(inv.placement(h, None), drained)),
                ..cli.clone()
            },
            wave: 0,
            stranded: None,
        };
        let collectors = inv.hosts.iter().filter(|h| h.roles.collector).count();
        let (mut jobs, _) = jobs(&cli, &hosts, collectors, true, &make);
        jobs.sort_by_key(|j| j.wave);
        jobs.into_iter()
            .map(|j| {
                let out = j.cli.placement.unwrap().drained;
                (j.wave, j.label, out.iter().map(|a| a.to_string()).collect())
            })
            .collect()
    }

    fn labels(w: &[(usize, String, Vec<String>)]) -> Vec<String> {
        w.iter().map(|(n, l, _)| format!("{n} {l}")).collect()
    }

    #[test]
    fn a_rolling_deploy_drains_the_first_collector_alone_then_serial_n_of_the_others() {
        let w = waves(FOUR, &["-a", "deploy", "--serial", "2"]);
        assert_eq!(
            labels(&w),
            [
                "0 db",
                "2 lb (drain c1)",
                "3 c1",
                "4 lb (undrain c1)",
                "5 lb (drain c2, c3)",
                "6 c2",
                "6 c3",
                "7 lb (undrain c2, c3)",
                "8 lb"
            ]
        );
        assert_eq!(w[1].2, ["10.0.0.2"]);
        assert_eq!(w[4].2, ["10.0.0.3", "10.0.0.4"]);
        assert!(w[3].2.is_empty() && w[8].2.is_empty());
    }

    #[test]
    fn no_drain_without_the_balancer_in_the_run_nor_for_other_actions() {
        let w = waves(FOUR, &["-a", "restart", "--limit", "c1", "--limit", "c2"]);
        assert_eq!(labels(&w), ["2 c1", "3 c2"]);
        let w = waves(FOUR, &["-a", "install"]);
        assert_eq!(labels(&w), ["0 db", "2 c1", "3 c2", "3 c3", "4 lb"]);
        let one = "domain: t.example\nhosts:\n  - { name: db, target: root@10.0.0.1, roles: [db] }\n  - { name: c1, target: root@10.0.0.2, roles: [collector] }\n  - { name: lb, target: root@10.0.0.5, roles: [balancer] }\n";
        let w = waves(one, &["-a", "deploy"]);
        assert_eq!(
            labels(&w),
            ["0 db", "2 c1", "4 lb"],
            "one collector: no drain"
        );
    }

    #[test]
    fn resetdb_stops_the_collectors_in_a_wave_of_their_own_before_the_primary() {
        let w = waves(FOUR, &["-a", "resetdb"]);
        assert_eq!(
            labels(&w),
            [
                "0 c1 (stop)",
                "0 c2 (stop)",
                "0 c3 (stop)",
                "1 db",
                "3 c1",
                "4 c2",
                "4 c3",
                "5 lb"
            ]
        );
    }
}
