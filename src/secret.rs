//! A secret string (the database password) that cannot be printed by accident.
//!
//! `Debug` and `Display` show `********`; the value is reachable only through `expose`, which
//! callers use to hand it to a pipe, a SCRAM computation or a 0640 file, nowhere else.

use std::fmt;

pub const MASK: &str = "********";

/// The environment variable the database password may come from.
pub const DB_PASSWORD_ENV: &str = "TELEM_DB_PASSWORD";
/// The environment variable the web UI password may come from.
pub const UI_PASSWORD_ENV: &str = "TELEM_UI_PASSWORD";
/// Every variable telem-deploy reads a secret from: no child inherits them.
pub const ENV_VARS: [&str; 2] = [DB_PASSWORD_ENV, UI_PASSWORD_ENV];

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "******** ********");
    }
}
