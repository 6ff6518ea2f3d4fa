//! User and group look-ups from the host's /etc/passwd and /etc/group (read through `Host`).

use std::path::Path;

use super::Host;

/// uid and primary gid of `name` (a numeric name is taken as the uid itself).
pub fn lookup_user(host: &dyn Host, name: &str) -> Option<(u32, u32)> {
    let passwd = host.read(Path::new("/etc/passwd")).ok().flatten()?;
    let text = String::from_utf8_lossy(&passwd);
    let found = text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    });
    found.or_else(|| name.parse::<u32>().ok().map(|uid| (uid, uid)))
}

/// gid of group `name` (a numeric name is taken as the gid itself).
pub fn lookup_group(host: &dyn Host, name: &str) -> Option<u32> {
    let group = host.read(Path::new("/etc/group")).ok().flatten()?;
    let text = String::from_utf8_lossy(&group);
    let found = text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
    });
    found.or_else(|| name.parse().ok())
}
