//! `[USER@]HOST[:PORT]`: a machine to provision over SSH, as given to `--target`.
//!
//! An IPv6 address goes in brackets (`[2001:db8::1]:2222`), as in URLs and `known_hosts`. The
//! host may also be an alias from `~/.ssh/config`. Nothing parsed here may start with `-`: the
//! pieces become arguments of `ssh`, and a "host" such as `-oProxyCommand=...` would be an
//! option.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub user: Option<String>,
    /// A name, an IPv4 address, or an IPv6 address without its brackets.
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target `{given}`: {why} (expected [USER@]HOST[:PORT], an IPv6 address in brackets: root@[2001:db8::1]:22)")]
pub struct TargetError {
    pub given: String,
    pub why: String,
}

impl Target {
    /// Whether the host is an IPv6 address (shown in brackets).
    pub fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }

    /// The arguments naming the destination for `ssh`: `[-l USER] [-p PORT] HOST`.
    pub fn ssh_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(user) = &self.user {
            args.extend(["-l".to_owned(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.push(self.host.clone());
        args
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.is_ipv6(), self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.host),
            (true, None) => write!(f, "[{}]", self.host),
            (false, Some(port)) => write!(f, "{}:{port}", self.host),
            (false, None) => write!(f, "{}", self.host),
        }
    }
}

fn valid_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user before `@` is empty".to_owned());
    }
    if user.starts_with('-') {
        return Err(format!("the user `{user}` starts with `-`"));
    }
    match user
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-$".contains(*c)))
    {
        Some(c) => Err(format!("the user `{user}` contains {c:?}")),
        None => Ok(()),
    }
}

fn valid_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host.starts_with('-') {
        return Err(format!("the host `{host}` starts with `-`"));
    }
    match host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        Some(c) => Err(format!("the host `{host}` contains {c:?}")),
        None => Ok(()),
    }
}

fn valid_ipv6(addr: &str) -> Result<(), String> {
    // A zone (`fe80::1%eth0`) is allowed after the address.
    let (ip, zone) = addr.split_once('%').unwrap_or((addr, ""));
    ip.parse::<std::net::Ipv6Addr>()
        .map_err(|_| format!("`[{addr}]` is not an IPv6 address"))?;
    match zone
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        Some(c) => Err(format!("the zone of `[{addr}]` contains {c:?}")),
        None => Ok(()),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("the port `{port}` is not a number from 1 to 65535")),
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(given: &str) -> Result<Target, TargetError> {
        let fail = |why: String| TargetError {
            given: given.to_owned(),
            why,
        };
        if given.trim() != given || given.is_empty() {
            return Err(fail("empty or surrounded by spaces".to_owned()));
        }
        let (user, rest) = match given.split_once('@') {
            Some((user, rest)) => {
                valid_user(user).map_err(fail)?;
                if rest.contains('@') {
                    return Err(fail("more than one `@`".to_owned()));
                }
                (Some(user.to_owned()), rest)
            }
            None => (None, given),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| fail("`[` without its `]`".to_owned()))?;
            valid_ipv6(addr).map_err(fail)?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| fail(format!("`{after}` after `]`")))
                        .and_then(|p| parse_port(p).map_err(fail))?,
                ),
            };
            (addr.to_owned(), port)
        } else if rest.matches(':').count() > 1 {
            return Err(fail(
                "an IPv6 address must be written in brackets, e.g. [::1]:22".to_owned(),
            ));
        } else {
            let (host, port) = match rest.split_once(':') {
                Some((h, p)) => (h, Some(parse_port(p).map_err(fail)?)),
                None => (rest, None),
            };
            valid_name(host).map_err(fail)?;
            (host.to_owned(), port)
        };
        Ok(Target { user, host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(user: Option<&str>, host: &str, port: Option<u16>) -> Target {
        Target {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn the_forms_parse_and_print_back() {
        for (given, want) in [
            ("web1", t(None, "web1", None)),
            (
                "web1.example.org:2222",
                t(None, "web1.example.org", Some(2222)),
            ),
            ("root@10.0.0.5", t(Some("root"), "10.0.0.5", None)),
            (
                "deploy@10.0.0.5:22",
                t(Some("deploy"), "10.0.0.5", Some(22)),
            ),
            ("[::1]", t(None, "::1", None)),
            (
                "admin@[2001:db8::7]:2200",
                t(Some("admin"), "2001:db8::7", Some(2200)),
            ),
            ("[fe80::1%eth0]:22", t(None, "fe80::1%eth0", Some(22))),
        ] {
            let got: Target = given.parse().unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(got, want, "{given}");
            assert_eq!(got.to_string(), given, "printed back");
        }
    }

    #[test]
    fn ssh_gets_user_port_and_host_as_separate_arguments() {
        let got: Target = "admin@[2001:db8::7]:2200".parse().unwrap();
        assert_eq!(got.ssh_args(), ["-l", "admin", "-p", "2200", "2001:db8::7"]);
        assert_eq!("web1".parse::<Target>().unwrap().ssh_args(), ["web1"]);
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (given, why) in [
            ("", "empty"),
            (" web1", "spaces"),
            ("::1", "IPv6 address must be written in brackets"),
            (
                "root@2001:db8::1:22",
                "IPv6 address must be written in brackets",
            ),
            ("[::1", "`[` without its `]`"),
            ("[::1]22", "`22` after `]`"),
            ("[web1]:22", "is not an IPv6 address"),
            ("web1:0", "port `0`"),
            ("web1:65536", "port `65536`"),
            ("web1:ssh", "port `ssh`"),
            ("@web1", "user before `@` is empty"),
            ("a@b@web1", "more than one `@`"),
            ("-oProxyCommand=x", "starts with `-`"),
            ("-l@web1", "starts with `-`"),
            ("root@web1;reboot", "contains ';'"),
            ("ro ot@web1", "contains ' '"),
            ("root@", "host is empty"),
            ("web1/x", "contains '/'"),
        ] {
            let err = given.parse::<Target>().expect_err(given).to_string();
            assert!(err.contains(why), "{given}: {err}");
            assert!(err.contains("[USER@]HOST[:PORT]"), "{given}: {err}");
        }
    }
}
