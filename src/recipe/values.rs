//! Typed values that recipe strings compile to (shared by several step kinds).

use std::fmt;
use std::str::FromStr;

/// A file or directory mode, written in octal in recipes (`"0644"`, `"750"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl FromStr for Mode {
    type Err = String;

    /// At most four octal digits, at most 7777.
    fn from_str(s: &str) -> Result<Mode, String> {
        let octal = !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match octal {
            true => u32::from_str_radix(s, 8)
                .map(Mode)
                .map_err(|e| e.to_string()),
            false => Err(format!("`{s}` is not an octal mode like \"0644\"")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!("0644".parse(), Ok(Mode(0o644)));
        assert_eq!("750".parse(), Ok(Mode(0o750)));
        assert_eq!("7777".parse(), Ok(Mode(0o7777)));
        for bad in ["0999", "rw-", "", "+644", "01777", "-1"] {
            assert_eq!(
                bad.parse::<Mode>(),
                Err(format!("`{bad}` is not an octal mode like \"0644\"")),
                "{bad}"
            );
        }
    }
}
