//! How to reach a target besides its address: `--ssh-option`s (refusing those that would
//! weaken the connection), batch mode, the probe program, how long the master connection stays.

use std::io::IsTerminal;

use crate::host::{HostError, HostResult};

/// Where the installed collector is, for the health probe (`telem-collector probe`).
pub const DEFAULT_PROBE: &str = "/usr/local/bin/telem-collector";

/// Options the tool sets itself: passing them through `--ssh-option` is refused.
const OWN_OPTIONS: [&str; 3] = ["controlmaster", "controlpath", "controlpersist"];

/// How to reach a target, besides its address.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// `--ssh-option` values, as for `ssh -o` (e.g. `ProxyJump=bastion`).
    pub options: Vec<String>,
    /// `BatchMode=yes` (never prompt): the default when there is no terminal.
    pub batch_mode: bool,
    /// The program run on the target for `http_get` (the installed collector's `probe`).
    pub probe: String,
    /// Seconds a master connection stays after its last use (also bounds how long one left
    /// behind by a killed run lingers).
    pub persist_secs: u32,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            options: Vec::new(),
            batch_mode: !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()),
            probe: DEFAULT_PROBE.to_owned(),
            persist_secs: 120,
        }
    }
}

impl SshSettings {
    pub fn with_options(options: Vec<String>) -> SshSettings {
        SshSettings {
            options,
            ..SshSettings::default()
        }
    }
}

/// Refuse `--ssh-option`s that would undo what this module relies on.
pub fn check_options(options: &[String]) -> HostResult<()> {
    for opt in options {
        let (key, value) = opt
            .split_once(['=', ' '])
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| HostError(format!("--ssh-option `{opt}`: expected KEY=VALUE")))?;
        let key_lc = key.to_ascii_lowercase();
        if OWN_OPTIONS.contains(&key_lc.as_str()) {
            return Err(HostError(format!(
                "--ssh-option `{key}` is set by telem-deploy itself (one private master connection per target)"
            )));
        }
        if key_lc == "stricthostkeychecking" && !value.eq_ignore_ascii_case("yes") {
            return Err(HostError(format!(
                "--ssh-option `{opt}`: unknown host keys are never accepted silently; add the key to known_hosts after checking its fingerprint"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_would_weaken_the_connection_are_refused() {
        for (opt, why) in [
            ("StrictHostKeyChecking=no", "never accepted silently"),
            (
                "stricthostkeychecking accept-new",
                "never accepted silently",
            ),
            ("ControlPath=/tmp/x", "set by telem-deploy"),
            ("ControlMaster=no", "set by telem-deploy"),
            ("ProxyJump", "KEY=VALUE"),
        ] {
            let err = check_options(&[opt.to_owned()]).unwrap_err();
            assert!(err.0.contains(why), "{opt}: {err}");
        }
        check_options(&[
            "ProxyJump=bastion".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "IdentityFile=/root/.ssh/deploy".to_owned(),
        ])
        .unwrap();
    }
}
