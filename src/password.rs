//! Where the database password comes from when it is not given explicitly: the collector
//! config of an earlier install, a prompt on a terminal, or a strong random one.

use std::path::Path;

use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::error::Error;
use crate::host::Host;
use crate::secret::Secret;

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
pub fn prompt() -> Result<Secret, Error> {
    let read = |p: &str| {
        rpassword::prompt_password(p)
            .map_err(|e| Error::Other(format!("reading the password: {e}")))
    };
    for _ in 0..3 {
        let first = read("DB password: (default: postgres): ")?;
        if first.is_empty() {
            return Ok(Secret::new("postgres"));
        }
        if read("Repeat DB password: ")? == first {
            return Ok(Secret::new(first));
        }
        eprintln!("The passwords differ; try again.");
    }
    Err(Error::Usage("the passwords entered did not match".into()))
}

/// Ask for a new password twice (no echo); no default.
pub fn prompt_new(prompt: &str) -> Result<Secret, Error> {
    let read = |p: &str| {
        rpassword::prompt_password(p)
            .map_err(|e| Error::Other(format!("reading the password: {e}")))
    };
    for _ in 0..3 {
        let first = read(prompt)?;
        if !first.is_empty() && read("Repeat: ")? == first {
            return Ok(Secret::new(first));
        }
        eprintln!("Empty or different; try again.");
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
    }
}
