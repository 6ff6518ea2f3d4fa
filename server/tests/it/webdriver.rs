//! A minimal blocking W3C WebDriver client for the browser test: starts `chromedriver` on a
//! free port, opens one headless Chromium session (fresh profile directory) and speaks
//! JSON over plain HTTP/1.1 (one connection per command). Only what the UI test needs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key under which an element reference travels.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first of `names` found in PATH.
pub fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut response = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(pos) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        response.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&response[..head_end]).to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| format!("no Content-Length in {head}"))?;
    while response.len() < head_end + length {
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed inside the body".into());
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let payload = String::from_utf8_lossy(&response[head_end..head_end + length]).to_string();
    let value: Value = serde_json::from_str(&payload).map_err(|e| format!("{e}: {payload}"))?;
    let status_ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
    if !status_ok {
        return Err(format!("{method} {path}: {}", value["value"]));
    }
    Ok(value["value"].clone())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start(chromedriver: &Path, chromium: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", chromedriver.display()))?;
        let profile = tempfile::Builder::new()
            .prefix("telem-ui-chromium-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(port, "GET", "/status", None).is_err() {
            if Instant::now() > deadline {
                return Err("chromedriver did not answer within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let session = http(port, "POST", "/session", Some(&caps))?;
        browser.session = session["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {session}"))?
            .to_string();
        Ok(browser)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        http(self.port, method, &path, body.as_ref()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    /// The page's DOM as serialised by the browser.
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Element ids matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e.get(ELEMENT)
                    .or_else(|| e.get("ELEMENT"))
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("not an element reference: {e}"))
                    .to_string()
            })
            .collect()
    }

    pub fn find(&self, css: &str) -> String {
        self.find_all(css)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    pub fn text(&self, element: &str) -> String {
        self.cmd("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A DOM property of an element (`href` is the resolved, absolute URL), or "" when unset.
    pub fn property(&self, element: &str, name: &str) -> String {
        self.cmd("GET", &format!("/element/{element}/property/{name}"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn click(&self, element: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// Click an element that navigates (a form's submit button) and wait until the browser
    /// has left `self.url()` and loaded the new page: a click returns once dispatched, and
    /// under load the navigation may not have begun.
    pub fn click_to_navigate(&self, element: &str) {
        let before = self.url();
        self.click(element);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready = self.url() != before && {
                let state = self.cmd(
                    "POST",
                    "/execute/sync",
                    Some(json!({"script": "return document.readyState", "args": []})),
                );
                state.as_str() == Some("complete")
            };
            if ready {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no navigation from {before} within 30 s of the click"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = decode_base64(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (with padding), as WebDriver returns screenshots.
fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(decode_base64("aGVsbG8gd29ybGQ="), b"hello world");
    assert_eq!(decode_base64("iVBORw=="), b"\x89PNG");
}
