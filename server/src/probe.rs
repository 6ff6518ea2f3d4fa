//! `telem-collector probe`: the health check, run on the machine itself with nothing but this
//! binary (minimal systems have no curl). A plain HTTP/1.1 GET over TCP or the collector's
//! unix socket; the answer's status code is printed on stdout.
//!
//! Exit 0 when the answer is 200 (any answer with `--any-status`), 1 otherwise, with the
//! reason on stderr. Never follows redirects, never speaks TLS.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Listen;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// One GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub endpoint: Endpoint,
    pub path: String,
    pub host_header: String,
}

/// The path probed when no URL is given.
pub const HEALTH_PATH: &str = "/healthz";

impl Request {
    /// `http://HOST[:PORT][/PATH]` (an IPv6 host in brackets).
    pub fn from_url(url: &str) -> Result<Request, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}`: only http:// URLs can be probed"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("`{url}`: `[` without `]`"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{url}`: `{p}` after `]`"))?,
                ),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(format!("`{url}`: no valid host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                format!("`{url}`: the port `{p}` is not a number from 1 to 65535")
            })?,
        };
        if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "`{url}`: the path contains a space or control character"
            ));
        }
        let host_header = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        Ok(Request {
            endpoint: Endpoint::Tcp {
                host: host.to_owned(),
                port,
            },
            path: path.to_owned(),
            host_header,
        })
    }

    /// The health endpoint at the collector's own listen address.
    pub fn for_listen(listen: &Listen) -> Request {
        match listen {
            Listen::Tcp(addr) => Request {
                endpoint: Endpoint::Tcp {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                },
                path: HEALTH_PATH.to_owned(),
                host_header: addr.to_string(),
            },
            Listen::Unix(path) => Request {
                endpoint: Endpoint::Unix(path.clone()),
                path: HEALTH_PATH.to_owned(),
                host_header: "localhost".to_owned(),
            },
        }
    }

    /// How the request is shown in messages.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                format!("http://[{host}]:{port}{}", self.path)
            }
            Endpoint::Tcp { host, port } => format!("http://{host}:{port}{}", self.path),
            Endpoint::Unix(p) => format!("unix:{}:{}", p.display(), self.path),
        }
    }
}

/// The status code and reason phrase of the answer.
pub fn get(req: &Request, timeout: Duration) -> Result<(u16, String), String> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: telem-collector-probe\r\nConnection: close\r\n\r\n",
        req.path, req.host_header
    );
    let head = match &req.endpoint {
        Endpoint::Tcp { host, port } => {
            let addrs: Vec<_> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect();
            let mut last = format!("{host} has no address");
            let mut stream = None;
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = format!("cannot connect to {addr}: {e}"),
                }
            }
            let mut s = stream.ok_or(last)?;
            exchange(&mut s, &request, timeout, |s, t| {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            })?
        }
        Endpoint::Unix(path) => {
            let mut s = UnixStream::connect(path)
                .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
            exchange(&mut s, &request, timeout, |s, t| {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            })?
        }
    };
    parse_status_line(&head)
}

/// Send the request; read until the end of the status line.
fn exchange<S: Read + Write>(
    s: &mut S,
    request: &str,
    timeout: Duration,
    set_timeouts: impl Fn(&S, Duration) -> std::io::Result<()>,
) -> Result<String, String> {
    set_timeouts(s, timeout).map_err(|e| format!("cannot set a timeout: {e}"))?;
    s.write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("no answer within {} s: {e}", timeout.as_secs())),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn parse_status_line(head: &str) -> Result<(u16, String), String> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next().and_then(|c| c.parse().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            Ok((code, parts.next().unwrap_or_default().trim().to_owned()))
        }
        _ if head.is_empty() => Err("the connection closed without an answer".to_owned()),
        _ => Err(format!(
            "not an HTTP answer: {:?}",
            line.chars().take(80).collect::<String>()
        )),
    }
}

/// The subcommand: print the status code; exit 0 when healthy.
pub fn run(req: &Request, timeout: Duration, any_status: bool) -> ExitCode {
    match get(req, timeout) {
        Ok((code, reason)) => {
            println!("{code}");
            if code == 200 || any_status {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "telem-collector: probe {}: unhealthy, answered {code} {reason}",
                    req.describe()
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("telem-collector: probe {}: {e}", req.describe());
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn urls_parse() {
        let r = Request::from_url("http://127.0.0.1:8090/healthz").unwrap();
        assert_eq!(r.endpoint, tcp("127.0.0.1", 8090));
        assert_eq!(
            (r.path.as_str(), r.host_header.as_str()),
            ("/healthz", "127.0.0.1")
        );
        let r = Request::from_url("http://[::1]/x?y=1").unwrap();
        assert_eq!(r.endpoint, tcp("::1", 80));
        assert_eq!(
            (r.path.as_str(), r.host_header.as_str()),
            ("/x?y=1", "[::1]")
        );
        let r = Request::from_url("http://example.org").unwrap();
        assert_eq!((r.endpoint, r.path.as_str()), (tcp("example.org", 80), "/"));
        for (bad, why) in [
            ("https://x/", "only http://"),
            ("http://[::1/", "without `]`"),
            ("http://x:0/", "port `0`"),
            ("http://x:http/", "port `http`"),
            ("http:///healthz", "no valid host"),
            ("http://u@x/", "no valid host"),
            ("http://x/a b", "space"),
        ] {
            let err = Request::from_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_default_is_the_listen_address() {
        let r = Request::for_listen(&Listen::Tcp("127.0.0.1:8090".parse().unwrap()));
        assert_eq!(r.describe(), "http://127.0.0.1:8090/healthz");
        let r = Request::for_listen(&Listen::Unix("/run/c.sock".into()));
        assert_eq!(r.describe(), "unix:/run/c.sock:/healthz");
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            parse_status_line("HTTP/1.1 503 Service Unavailable\r\n"),
            Ok((503, "Service Unavailable".to_owned()))
        );
        assert_eq!(
            parse_status_line("HTTP/1.0 200\r\n"),
            Ok((200, String::new()))
        );
        assert!(parse_status_line("")
            .unwrap_err()
            .contains("without an answer"));
        assert!(parse_status_line("SSH-2.0-OpenSSH\r\n")
            .unwrap_err()
            .contains("not an HTTP"));
    }
}
