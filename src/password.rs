//! Where the database password comes from when it is not given explicitly: the collector
//! config of an earlier install, a prompt on a terminal, or a strong random one.

use std::path::Path;

use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::error::Error;
use crate::host::Host;
use crate::secret::Secret;

/// The longest password the stack is asked to use: PostgreSQL's SCRAM login hashes it 4096
/// times per connection, so a huge one makes every connection attempt of the collector burn
/// CPU for seconds.
pub const MAX_LEN: usize = 1024;

/// Which password a check is about (named in its errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Database,
    WebUi,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Database => "the database password",
            Kind::WebUi => "the web UI password",
        }
    }
}

/// Refuse (exit 2, without showing it) a password the stack cannot use: longer than
/// [`MAX_LEN`] bytes, with a NUL or a line break (no config line, environment variable or
/// password file can hold those); with `vassal` (the web UI is deployed, and its uWSGI vassal
/// holds the database password on an unquoted ini line) also '%', '$(', '@(' (uWSGI would
/// expand them) and leading or trailing white space (uWSGI strips it).
pub fn check_usable(pw: &Secret, kind: Kind, vassal: bool) -> Result<(), Error> {
    let s = pw.expose();
    let why = if s.is_empty() {
        Some("is empty".to_owned())
    } else if s.len() > MAX_LEN {
        Some(format!(
            "is {} bytes long; at most {MAX_LEN} bytes are accepted",
            s.len()
        ))
    } else if s.contains('\0') {
        Some("holds a NUL character".to_owned())
    } else if s.contains(['\n', '\r']) {
        Some("holds a line break".to_owned())
    } else if vassal && (s.contains('%') || s.contains("$(") || s.contains("@(")) {
        Some("holds '%', '$(' or '@(', which the web UI's uWSGI vassal would expand (choose another one for --webapp)".to_owned())
    } else if vassal && s != s.trim_matches([' ', '\t', '\x0b', '\x0c']) {
        Some("starts or ends with white space, which the web UI's uWSGI vassal would strip (choose another one for --webapp)".to_owned())
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::Usage(format!("{} {why}", kind.name()))),
        None => Ok(()),
    }
}

/// The password stored in the collector's config by an earlier install.
pub fn stored(host: &dyn Host, config: &str) -> Option<Secret> {
    let bytes = host.read(Path::new(config)).ok().flatten()?;
    let doc: toml::Table = toml::from_str(&String::from_utf8_lossy(&bytes)).ok()?;
    doc.get("database_password")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(Secret::new)
}

/// deploy.sh's prompt: no echo, Enter takes the default, a new password is asked twice.
pub fn prompt(vassal: bool) -> Result<Secret, Error> {
    let read = |p: &str| {
        rpassword::prompt_password(p)
            .map_err(|e| Error::Other(format!("reading the password: {e}")))
    };
    // Retries are said where the prompt is (the terminal), not on stderr.
    let mut again = "";
    for _ in 0..3 {
        let first = read(&format!("{again}DB password: (default: postgres): "))?;
        if first.is_empty() {
            return Ok(Secret::new("postgres"));
        }
        if read("Repeat DB password: ")? == first {
            let pw = Secret::new(first);
            check_usable(&pw, Kind::Database, vassal)?;
            return Ok(pw);
        }
        again = "The passwords differ; try again.\n";
    }
    Err(Error::Usage("the passwords entered did not match".into()))
}

/// Ask for a new password twice (no echo); no default.
pub fn prompt_new(prompt: &str) -> Result<Secret, Error> {
    let read = |p: &str| {
        rpassword::prompt_password(p)
            .map_err(|e| Error::Other(format!("reading the password: {e}")))
    };
    let mut again = "";
    for _ in 0..3 {
        let first = read(&format!("{again}{prompt}"))?;
        if !first.is_empty() && read("Repeat: ")? == first {
            let pw = Secret::new(first);
            check_usable(&pw, Kind::WebUi, false)?;
            return Ok(pw);
        }
        again = "Empty or different; try again.\n";
    }
    Err(Error::Usage("no password entered".into()))
}

/// 32 random letters and digits (about 190 bits).
pub fn generate() -> Secret {
    Secret::new(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.expose().len(), 32);
        assert_ne!(a.expose(), b.expose());
        check_usable(&a, Kind::Database, true).unwrap();
    }

    #[test]
    fn passwords_the_stack_cannot_use_are_refused_without_showing_them() {
        let long = "Zq".repeat(MAX_LEN / 2) + "!";
        for (pw, vassal) in [
            (long.as_str(), false),
            ("a\0b", false),
            ("a\nb", false),
            ("a\rb", false),
            ("100%", true),
            ("$(HOME)", true),
            ("@(/etc/shadow)", true),
            (" lead", true),
            ("trail\t", true),
        ] {
            for kind in [Kind::Database, Kind::WebUi] {
                let err = check_usable(&Secret::new(pw), kind, vassal).unwrap_err();
                assert_eq!(err.exit_code(), 2);
                let msg = err.to_string();
                assert!(!msg.contains(pw.trim()) && !msg.contains("ZqZq"), "{msg}");
            }
        }
        let max = "x".repeat(MAX_LEN);
        for ok in [max.as_str(), "x", "100%", " lead", "ü ✓ 'q' \"\\ ;$x"] {
            check_usable(&Secret::new(ok), Kind::Database, false).unwrap();
        }
        check_usable(&Secret::new("ü ✓ 'q' \"\\ ;$x"), Kind::Database, true).unwrap();
    }
}
