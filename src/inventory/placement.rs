//! A machine's part in a run: its roles, and where the others are (the database host, the
//! standby, the collectors). Without an inventory a run has the roles `db` and `collector` on
//! one machine: today's install.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One role of a host in an inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The PostgreSQL primary.
    Db,
    /// A hot standby of the primary.
    Standby,
    /// telem-collector and the nginx in front of it.
    Collector,
    /// nginx balancing the collectors.
    Balancer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Db => "db",
            Role::Standby => "standby",
            Role::Collector => "collector",
            Role::Balancer => "balancer",
        }
    }
}

/// The roles of one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Roles {
    pub db: bool,
    pub standby: bool,
    pub collector: bool,
    pub balancer: bool,
}

impl Roles {
    /// One machine with everything: the database and the collector (no inventory).
    pub const SINGLE: Roles = Roles {
        db: true,
        standby: false,
        collector: true,
        balancer: false,
    };

    pub fn of(roles: &[Role]) -> Roles {
        Roles {
            db: roles.contains(&Role::Db),
            standby: roles.contains(&Role::Standby),
            collector: roles.contains(&Role::Collector),
            balancer: roles.contains(&Role::Balancer),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        match role {
            Role::Db => self.db,
            Role::Standby => self.standby,
            Role::Collector => self.collector,
            Role::Balancer => self.balancer,
        }
    }

    /// "db, collector"
    pub fn describe(&self) -> String {
        [Role::Db, Role::Standby, Role::Collector, Role::Balancer]
            .into_iter()
            .filter(|r| self.has(*r))
            .map(Role::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where one host of an inventory stands: its roles and the addresses it is wired to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Its name in the inventory.
    pub name: String,
    pub roles: Roles,
    /// Its private address (the database listens there; the balancer reaches collectors there).
    pub address: IpAddr,
    /// The primary's address.
    pub db_address: IpAddr,
    /// The standby's address, when there is one.
    pub standby_address: Option<IpAddr>,
    /// Every collector's address, in inventory order.
    pub collectors: Vec<IpAddr>,
    /// The collectors the balancer takes out of its upstream (`down`) while they change (a
    /// rolling `deploy`/`restart`); empty: every collector serves, as install writes it.
    pub drained: Vec<IpAddr>,
    /// The PEM certificate of the inventory's CA (public), when the database is reached over
    /// the network.
    pub ca_certificate: Option<String>,
}

impl Placement {
    /// The collectors that reach the database over the network (on other machines than the
    /// primary): pg_hba admits exactly these to the telemetry database (the standby's admits
    /// them too, for their reads).
    pub fn db_clients(&self) -> Vec<IpAddr> {
        let mut clients: Vec<IpAddr> = self
            .collectors
            .iter()
            .copied()
            .filter(|a| *a != self.db_address)
            .collect();
        clients.sort();
        clients.dedup();
        clients
    }
}

/// The template variables of a placement (none of it is secret).
pub fn insert_vars(ctx: &mut tera::Context, placement: Option<&Placement>) {
    let roles = placement.map_or(Roles::SINGLE, |p| p.roles);
    ctx.insert("roles", &roles);
    let Some(p) = placement else {
        ctx.insert("inventory", &false);
        ctx.insert("db_host", "127.0.0.1");
        ctx.insert("db_address", "127.0.0.1");
        ctx.insert("host_name", "");
        ctx.insert("db_remote", &false);
        ctx.insert("read_db_host", "");
        ctx.insert("collectors", &Vec::<String>::new());
        ctx.insert("drained", &Vec::<String>::new());
        ctx.insert("db_clients", &Vec::<String>::new());
        ctx.insert("address", "127.0.0.1");
        ctx.insert("ca_certificate", "");
        ctx.insert("standby_address", "");
        ctx.insert("replication_client", "");
        return;
    };
    let text = |a: &IpAddr| a.to_string();
    // In a URL's or nginx's `host:port` an IPv6 address is bracketed (`[2001:db8::11]:5432`).
    let host_port = |a: &IpAddr| match a {
        IpAddr::V4(_) => a.to_string(),
        IpAddr::V6(_) => format!("[{a}]"),
    };
    ctx.insert("inventory", &true);
    ctx.insert("host_name", &p.name);
    ctx.insert("address", &text(&p.address));
    let db_remote = !p.roles.db;
    // `db_host`, `read_db_host`, `collectors` and `drained` are written before a `:port`.
    ctx.insert(
        "db_host",
        &if db_remote {
            host_port(&p.db_address)
        } else {
            "127.0.0.1".to_owned()
        },
    );
    ctx.insert("db_remote", &db_remote);
    ctx.insert("db_address", &text(&p.db_address));
    let standby = p.standby_address.as_ref().map(text).unwrap_or_default();
    ctx.insert(
        "read_db_host",
        &p.standby_address
            .as_ref()
            .map(host_port)
            .unwrap_or_default(),
    );
    ctx.insert("standby_address", &standby);
    // The primary admits its standby's replication connection.
    ctx.insert(
        "replication_client",
        if p.roles.db { standby.as_str() } else { "" },
    );
    ctx.insert(
        "collectors",
        &p.collectors.iter().map(host_port).collect::<Vec<_>>(),
    );
    ctx.insert(
        "drained",
        &p.drained.iter().map(host_port).collect::<Vec<_>>(),
    );
    ctx.insert(
        "db_clients",
        &p.db_clients().iter().map(text).collect::<Vec<_>>(),
    );
    ctx.insert(
        "ca_certificate",
        p.ca_certificate.as_deref().unwrap_or_default(),
    );
}
