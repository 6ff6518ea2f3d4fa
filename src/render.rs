//! Tera templates: the built-in ones (embedded in the binary) or those of `--templates DIR`.
//!
//! Every rendered file comes from here. Errors name the template and, where Tera knows it,
//! the line.

use std::collections::HashMap;
use std::path::Path;

use tera::{Tera, Value};

use crate::error::Error;

/// The templates recipes may name.
pub const TEMPLATE_NAMES: [&str; 9] = [
    "nginx.conf.tera",
    "uwsgi.ini.tera",
    "collector.toml.tera",
    "telem-collector.service.tera",
    "htpasswd.tera",
    "uwsgi-emperor.service.tera",
    "selinux-uwsgi.cil.tera",
    "balancer.conf.tera",
    "db-ca.pem.tera",
];

const EMBEDDED: [(&str, &str); 9] = [
    (
        "nginx.conf.tera",
        include_str!("../templates/nginx.conf.tera"),
    ),
    (
        "uwsgi.ini.tera",
        include_str!("../templates/uwsgi.ini.tera"),
    ),
    (
        "collector.toml.tera",
        include_str!("../templates/collector.toml.tera"),
    ),
    (
        "telem-collector.service.tera",
        include_str!("../templates/telem-collector.service.tera"),
    ),
    ("htpasswd.tera", include_str!("../templates/htpasswd.tera")),
    (
        "uwsgi-emperor.service.tera",
        include_str!("../templates/uwsgi-emperor.service.tera"),
    ),
    (
        "selinux-uwsgi.cil.tera",
        include_str!("../templates/selinux-uwsgi.cil.tera"),
    ),
    (
        "balancer.conf.tera",
        include_str!("../templates/balancer.conf.tera"),
    ),
    (
        "db-ca.pem.tera",
        include_str!("../templates/db-ca.pem.tera"),
    ),
];

pub struct Templates {
    tera: Tera,
}

impl Templates {
    /// Load every template, from `dir` when given; a parse error in any of them fails here.
    pub fn load(dir: Option<&Path>) -> Result<Templates, Error> {
        let mut sources = Vec::new();
        for (name, embedded) in EMBEDDED {
            // A template missing from `dir` is the built-in one: override only what you change.
            let text = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| Error::Template(format!("template {}: {e}", path.display())))?,
                None => embedded.to_owned(),
            };
            sources.push((name, text));
        }
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("toml_str", toml_str);
        tera.register_filter("uwsgi_value", uwsgi_value);
        for (name, text) in &sources {
            tera.add_raw_template(name, text)
                .map_err(|e| Error::Template(format!("template {name}: {}", error_chain(&e))))?;
        }
        Ok(Templates { tera })
    }

    pub fn render(&self, name: &str, ctx: &tera::Context) -> Result<String, String> {
        self.tera
            .render(name, ctx)
            .map_err(|e| format!("template {name}: {}", error_chain(&e)))
    }
}

/// A TOML basic string literal (quoted and escaped) for any value: passwords with quotes,
/// backslashes or non-ASCII land in the config file intact.
fn toml_str(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // JSON string escapes are a subset of TOML basic-string escapes.
    Ok(Value::String(
        serde_json::to_string(&s).map_err(|e| tera::Error::msg(e.to_string()))?,
    ))
}

/// A value for a uWSGI ini line, which has no quoting: uWSGI would expand `%...`, `$(...)` and
/// `@(...)` in it, and a newline would end it. Such a value is refused (without showing it).
fn uwsgi_value(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = value.as_str().unwrap_or_default();
    let bad = s.contains('%') || s.contains("$(") || s.contains("@(") || s.contains(['\n', '\r']);
    if bad || s != s.trim() {
        return Err(tera::Error::msg(
            "the database password cannot be written to a uWSGI vassal: it holds '%', '$(', '@(', a line break or leading/trailing spaces (choose another one for --webapp)",
        ));
    }
    Ok(Value::String(s.to_owned()))
}

/// Tera's error and all its causes on one line (the causes hold the line numbers).
pub fn error_chain(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg.replace('\n', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_str_escapes_quotes_backslashes_and_keeps_utf8() {
        let v = toml_str(&Value::String("a\"b\\c ü;$'".into()), &HashMap::new()).unwrap();
        let s = v.as_str().unwrap();
        let parsed: toml::Value = toml::from_str(&format!("k = {s}")).unwrap();
        assert_eq!(parsed["k"].as_str(), Some("a\"b\\c ü;$'"));
    }

    #[test]
    fn parse_errors_name_template_and_line() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in EMBEDDED {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::write(
            dir.path().join("nginx.conf.tera"),
            "server {\n  {{ oops \n}\n",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("nginx.conf.tera"), "{err}");
        assert!(err.contains("--> 3:1"), "{err}");
    }
}
