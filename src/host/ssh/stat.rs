//! File metadata from the target's `stat` (POSIX tools only, no python).

use std::path::{Path, PathBuf};

use crate::host::{FileKind, FileMeta, HostError, HostResult};

/// Parse `stat -c '%f %u %g %s'` (+ the link target on the next line).
pub(super) fn parse_stat(path: &Path, out: &str) -> HostResult<FileMeta> {
    let bad = || {
        HostError(format!(
            "unexpected stat output for {}: {out:?}",
            path.display()
        ))
    };
    let (first, rest) = out.split_once('\n').unwrap_or((out, ""));
    let f: Vec<&str> = first.split_whitespace().collect();
    if f.len() != 4 {
        return Err(bad());
    }
    let raw = u32::from_str_radix(f[0], 16).map_err(|_| bad())?;
    let kind = match raw & 0o170000 {
        0o100000 => FileKind::File,
        0o040000 => FileKind::Dir,
        0o120000 => FileKind::Symlink(PathBuf::from(rest.strip_suffix('\n').unwrap_or(rest))),
        _ => FileKind::Other,
    };
    Ok(FileMeta {
        kind,
        uid: f[1].parse().map_err(|_| bad())?,
        gid: f[2].parse().map_err(|_| bad())?,
        mode: raw & 0o7777,
        size: f[3].parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_output_parses_into_metadata() {
        let p = Path::new("/x");
        let m = parse_stat(p, "81a4 0 33 12\n").unwrap();
        assert_eq!(
            m,
            FileMeta {
                kind: FileKind::File,
                uid: 0,
                gid: 33,
                mode: 0o644,
                size: 12
            }
        );
        let m = parse_stat(p, "a1ff 0 0 9\n../a b\n").unwrap();
        assert_eq!(m.kind, FileKind::Symlink(PathBuf::from("../a b")));
        assert_eq!(
            parse_stat(p, "41ed 0 0 4096\n").unwrap().kind,
            FileKind::Dir
        );
        assert_eq!(parse_stat(p, "43e8 0 0 40\n").unwrap().mode, 0o1750);
        assert!(parse_stat(p, "garbage").is_err());
    }
}
