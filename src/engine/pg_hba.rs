//! pg_hba.conf as the `postgres_hba` step edits it: one block of lines between
//! `# BEGIN telem-deploy` and `# END telem-deploy`, at the top of the file (PostgreSQL takes
//! the first line that matches a connection), and every other byte of the file kept as it was.
//! Entries are validated when the recipe is compiled, so nothing written here can be more than
//! the one line of its entry.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub const BEGIN: &str = "# BEGIN telem-deploy";
pub const END: &str = "# END telem-deploy";

/// The connection types an entry may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    Local,
    Host,
    HostSsl,
    HostNoSsl,
}

impl FromStr for ConnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "local" => ConnType::Local,
            "host" => ConnType::Host,
            "hostssl" => ConnType::HostSsl,
            "hostnossl" => ConnType::HostNoSsl,
            other => {
                return Err(format!(
                    "`{other}` is not a connection type (local, host, hostssl, hostnossl)"
                ))
            }
        })
    }
}

impl fmt::Display for ConnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnType::Local => "local",
            ConnType::Host => "host",
            ConnType::HostSsl => "hostssl",
            ConnType::HostNoSsl => "hostnossl",
        })
    }
}

/// The authentication methods an entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ScramSha256,
    Md5,
    Reject,
    Cert,
    Peer,
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "scram-sha-256" => Method::ScramSha256,
            "md5" => Method::Md5,
            "reject" => Method::Reject,
            "cert" => Method::Cert,
            "peer" => Method::Peer,
            other => {
                return Err(format!(
                    "`{other}` is not an authentication method (scram-sha-256, md5, reject, cert, peer)"
                ))
            }
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::ScramSha256 => "scram-sha-256",
            Method::Md5 => "md5",
            Method::Reject => "reject",
            Method::Cert => "cert",
            Method::Peer => "peer",
        })
    }
}

/// An address as pg_hba.conf writes it: `IP/prefix` (a bare IP is the one host: /32 or /128).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    pub ip: IpAddr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an IP address or a CIDR block (10.77.0.0/24)");
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Cidr { ip, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// A database or user field: one name or keyword (`all`, `replication`, ...), never a list,
/// a quoted name, an `@file` include or anything that would end the field or the line.
pub fn name_field(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.starts_with('@') {
        return Err(format!("`{s}`: an @file include is not supported"));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '#' | ',' | '"' | '\\'))
    {
        return Err(format!(
            "`{s}` must be one name without whitespace, `#`, `,`, `\"` or `\\`"
        ));
    }
    Ok(s.to_owned())
}

/// One line of the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub conn: ConnType,
    pub database: String,
    pub user: String,
    /// `None` only for `local`.
    pub address: Option<Cidr>,
    pub method: Method,
}

impl Entry {
    /// Does this combination make sense to PostgreSQL (a `local` line has no address, the
    /// others need one; `peer` is for `local`, `cert` for `hostssl`)?
    pub fn coherent(&self) -> Result<(), String> {
        match (self.conn, &self.address) {
            (ConnType::Local, Some(_)) => return Err("a `local` entry has no address".into()),
            (ConnType::Local, None) => {}
            (_, None) => return Err(format!("a `{}` entry needs an address", self.conn)),
            _ => {}
        }
        match (self.method, self.conn) {
            (Method::Peer, c) if c != ConnType::Local => {
                Err("`peer` is for `local` entries only".into())
            }
            (Method::Cert, c) if c != ConnType::HostSsl => {
                Err("`cert` is for `hostssl` entries only".into())
            }
            _ => Ok(()),
        }
    }

    pub fn line(&self) -> String {
        let address = self
            .address
            .as_ref()
            .map(|a| format!("\t{a}"))
            .unwrap_or_default();
        format!(
            "{}\t{}\t{}{address}\t{}",
            self.conn, self.database, self.user, self.method
        )
    }
}

/// The block for `entries`, each line ending in a newline.
pub fn block(entries: &[Entry]) -> String {
    let mut out =
        format!("{BEGIN}\n# (written by telem-deploy: edits between these markers are replaced)\n");
    for e in entries {
        out.push_str(&e.line());
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.trim_end_matches(['\n', '\r']).trim_end() == marker
}

/// `text` without its block (the lines from `BEGIN` to `END`, both included), every other
/// byte kept. An error when the markers are not one well-formed pair (or none).
pub fn without_block(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let (mut begun, mut blocks) = (false, 0);
    for line in text.split_inclusive('\n') {
        if is_marker(line, BEGIN) {
            if begun {
                return Err(format!("a second `{BEGIN}` before `{END}`"));
            }
            begun = true;
            blocks += 1;
            continue;
        }
        if is_marker(line, END) {
            if !begun {
                return Err(format!("`{END}` without `{BEGIN}`"));
            }
            begun = false;
            continue;
        }
        if !begun {
            out.push_str(line);
        }
    }
    if begun {
        return Err(format!("`{BEGIN}` without `{END}`"));
    }
    if blocks > 1 {
        return Err(format!("{blocks} telem-deploy blocks (one is expected)"));
    }
    Ok(out)
}

/// `text` with `block` at its top (in place of the one it had, wherever it was).
pub fn with_block(text: &str, block: &str) -> Result<String, String> {
    Ok(format!("{block}{}", without_block(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(conn: &str, address: Option<&str>, method: &str) -> Entry {
        Entry {
            conn: conn.parse().unwrap(),
            database: "telemetry".into(),
            user: "telemetry".into(),
            address: address.map(|a| a.parse().unwrap()),
            method: method.parse().unwrap(),
        }
    }

    #[test]
    fn addresses_are_ips_or_cidr_blocks() {
        assert_eq!(
            "10.77.0.12".parse::<Cidr>().unwrap().to_string(),
            "10.77.0.12/32"
        );
        assert_eq!(
            "10.77.0.0/24".parse::<Cidr>().unwrap().to_string(),
            "10.77.0.0/24"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!("fd00::/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        for bad in [
            "",
            "all",
            "samehost",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/+8",
            "::1/129",
            "10.0.0.1 trust",
            "10.0.0.1/8\nhost all all 0.0.0.0/0 trust",
            "host.example",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_one_field() {
        for good in ["telemetry", "all", "replication", "+group", "ü"] {
            assert!(name_field(good).is_ok(), "{good}");
        }
        for bad in [
            "", "a b", "a\tb", "a\nb", "a#b", "a,b", "\"a\"", "@file", "a\\b",
        ] {
            assert!(name_field(bad).is_err(), "{bad:?}");
        }
        assert!("trust".parse::<Method>().is_err());
        assert!("hostgssenc".parse::<ConnType>().is_err());
        assert!(entry("local", Some("10.0.0.1"), "peer").coherent().is_err());
        assert!(entry("hostssl", None, "scram-sha-256").coherent().is_err());
        assert!(entry("host", Some("10.0.0.1"), "peer").coherent().is_err());
        assert!(entry("host", Some("10.0.0.1"), "cert").coherent().is_err());
        assert!(entry("hostssl", Some("10.0.0.1"), "cert")
            .coherent()
            .is_ok());
        assert!(entry("local", None, "peer").coherent().is_ok());
    }

    #[test]
    fn the_block_goes_on_top_and_the_rest_stays_byte_for_byte() {
        let original = "# comment\r\nlocal all postgres peer\n\n\thost all all 127.0.0.1/32 scram-sha-256   \nno newline at the end";
        let b = block(&[
            entry("hostssl", Some("10.77.0.12"), "scram-sha-256"),
            entry("hostssl", Some("0.0.0.0/0"), "reject"),
        ]);
        assert_eq!(
            b,
            "# BEGIN telem-deploy\n# (written by telem-deploy: edits between these markers are replaced)\n\
             hostssl\ttelemetry\ttelemetry\t10.77.0.12/32\tscram-sha-256\n\
             hostssl\ttelemetry\ttelemetry\t0.0.0.0/0\treject\n# END telem-deploy\n"
        );
        let with = with_block(original, &b).unwrap();
        assert_eq!(with, format!("{b}{original}"));
        assert_eq!(with_block(&with, &b).unwrap(), with, "converged");
        assert_eq!(without_block(&with).unwrap(), original);
        assert_eq!(without_block(original).unwrap(), original);
        // A block elsewhere (moved by hand) goes back on top, the rest unchanged.
        let moved = format!("{original}\n{b}");
        assert_eq!(with_block(&moved, &b).unwrap(), format!("{b}{original}\n"));
        // Other contents of a block are replaced.
        let edited = with.replace("reject", "trust");
        assert_eq!(with_block(&edited, &b).unwrap(), with);
    }

    #[test]
    fn broken_markers_are_errors() {
        assert!(without_block("# BEGIN telem-deploy\nhost all all 0.0.0.0/0 trust\n").is_err());
        assert!(without_block("# END telem-deploy\n").is_err());
        assert!(without_block(
            "# BEGIN telem-deploy\n# END telem-deploy\n# BEGIN telem-deploy\n# END telem-deploy\n"
        )
        .is_err());
    }
}
