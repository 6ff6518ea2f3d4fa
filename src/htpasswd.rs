//! The basic-auth user file of `--ui-auth`: one `USER:$6$...` line (SHA-512 crypt, which nginx
//! checks with the system's crypt(3)).
//!
//! An existing line whose hash matches the password is kept as it is, so a re-run changes
//! nothing although every new hash gets a new random salt.

use std::path::Path;

use crate::host::Host;
use crate::secret::Secret;

/// The line for `user` already in the file at `path`, if any.
pub fn existing(host: &dyn Host, path: &str, user: &str) -> Option<String> {
    let bytes = host.read(Path::new(path)).ok().flatten()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find(|l| l.split(':').next() == Some(user))
        .map(str::to_owned)
}

/// The line to write: the existing one if it already holds `password`, else a new hash.
pub fn line(existing: Option<&str>, user: &str, password: &Secret) -> String {
    if let Some(line) = existing {
        if let Some((_, hash)) = line.split_once(':') {
            if sha_crypt::sha512_check(password.expose(), hash).is_ok() {
                return line.to_owned();
            }
        }
    }
    let params =
        sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT).expect("default rounds are valid");
    let hash = sha_crypt::sha512_simple(password.expose(), &params)
        .expect("hashing a password cannot fail");
    format!("{user}:{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_line_is_kept_and_a_new_password_rehashed() {
        let pw = Secret::new("s3cret: with spaces ü");
        let first = line(None, "admin", &pw);
        assert!(first.starts_with("admin:$6$"), "{first}");
        assert!(!first.contains("s3cret"));
        assert_eq!(line(Some(&first), "admin", &pw), first);
        let other = line(Some(&first), "admin", &Secret::new("other"));
        assert_ne!(other, first);
    }
}
