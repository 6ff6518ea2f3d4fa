//! Connection failures in words that say what to do (unknown or changed host key, refused
//! login, lost link).

use super::Target;

pub(super) fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(6)..].join("; ")
}

/// Why the first connection failed, in words that say what to do.
pub(super) fn explain_connect_failure(target: &Target, said: &str) -> String {
    let ssh_said = tail(said.as_bytes());
    let known_hosts_name = match (target.port, target.is_ipv6()) {
        (Some(p), _) => format!("[{}]:{p}", target.host),
        (None, _) => target.host.clone(),
    };
    let manual = {
        let mut s = String::from("ssh");
        if let Some(p) = target.port {
            s.push_str(&format!(" -p {p}"));
        }
        match &target.user {
            Some(u) => s.push_str(&format!(" {u}@{}", target.host)),
            None => s.push_str(&format!(" {}", target.host)),
        }
        s
    };
    if said.contains("IDENTIFICATION HAS CHANGED")
        || said.contains("key for") && said.contains("has changed")
    {
        return format!(
            "the host key of {target} has CHANGED since it was recorded in known_hosts (a reinstalled machine, or someone in the middle); nothing was done. If the change is expected, remove the old key with `ssh-keygen -R '{known_hosts_name}'` and accept the new one after checking its fingerprint. ssh said: {ssh_said}"
        );
    }
    if said.contains("Host key verification failed") || said.contains("host key is known") {
        return format!(
            "the host key of {target} is not in known_hosts, and unknown keys are never accepted silently; nothing was done. Check the key's fingerprint on the machine (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then accept it by running `{manual}` once and answering yes (or add the checked `ssh-keyscan` line to ~/.ssh/known_hosts). ssh said: {ssh_said}"
        );
    }
    if said.contains("Permission denied") {
        return format!(
            "ssh could not log in to {target} (check the user, the key or the agent; without a terminal ssh never asks for a password): {ssh_said}"
        );
    }
    format!("cannot connect to {target} over ssh: {ssh_said}")
}

pub(super) fn explain_lost(target: &Target, stderr: &[u8]) -> String {
    format!(
        "lost the SSH connection to {target} (the command's outcome is unknown; run again once the machine is reachable): {}",
        match tail(stderr) {
            t if t.is_empty() => "ssh said nothing".to_owned(),
            t => t,
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_say_what_to_do() {
        let t: Target = "root@[::1]:2222".parse().unwrap();
        let unknown = explain_connect_failure(
            &t,
            "No ED25519 host key is known for [::1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n",
        );
        assert!(unknown.contains("not in known_hosts"), "{unknown}");
        assert!(unknown.contains("`ssh -p 2222 root@::1`"), "{unknown}");
        let changed = explain_connect_failure(
            &t,
            "@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed.\r\n",
        );
        assert!(changed.contains("ssh-keygen -R '[::1]:2222'"), "{changed}");
        let denied = explain_connect_failure(&t, "root@::1: Permission denied (publickey).\r\n");
        assert!(denied.contains("could not log in"), "{denied}");
    }
}
