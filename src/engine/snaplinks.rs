//! What a snapshot may contain and where it may come from: symlinks that stay inside it, and
//! git transports a user means. Pure functions over listings, so the plan (before anything
//! changes) and the apply (after a remote clone) judge a snapshot the same way.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// A symlink of a snapshot: where it is (relative to the snapshot's root) and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub path: String,
    pub target: String,
}

/// Most links a path may pass through, as the kernel's limit (ELOOP past 40).
const MAX_HOPS: usize = 40;

/// Where `path` (relative to the snapshot's root) leads, resolved as the kernel would through
/// the snapshot's own symlinks (`links`: path -> target): a `..` after a link climbs from where
/// the link led, not from where it stands, so `y -> .` then `x -> y/../..` is caught. `None`
/// when the path leaves the snapshot (an absolute or empty target, climbing above the root) or
/// loops.
fn resolve(path: &Path, links: &HashMap<PathBuf, &str>) -> Option<PathBuf> {
    let mut todo: VecDeque<OsString> = VecDeque::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => todo.push_back(p.to_owned()),
            Component::ParentDir => todo.push_back("..".into()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let mut out = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if !out.pop() {
                return None;
            }
            continue;
        }
        out.push(&c);
        let Some(target) = links.get(&out) else {
            continue;
        };
        hops += 1;
        if hops > MAX_HOPS || target.is_empty() || target.starts_with('/') {
            return None;
        }
        out.pop();
        let mut next: VecDeque<OsString> = VecDeque::new();
        for c in Path::new(target).components() {
            match c {
                Component::Normal(p) => next.push_back(p.to_owned()),
                Component::ParentDir => next.push_back("..".into()),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        next.extend(todo);
        todo = next;
    }
    Some(out)
}

/// Does the link lead out of the directory `keep` (relative to the snapshot's root; "" for
/// the whole snapshot), resolved through every link of the snapshot (`all`)? A link inside
/// `keep` must stay inside `keep` (only `keep` is installed); a link elsewhere must stay inside
/// the snapshot.
fn escapes_among(link: &Link, keep: &str, all: &HashMap<PathBuf, &str>) -> bool {
    let path = link.path.trim_start_matches("./");
    let Some(resolved) = resolve(Path::new(path), all) else {
        return true;
    };
    let keep = keep.trim_matches('/');
    let inside = |p: &Path| keep.is_empty() || p.starts_with(keep);
    inside(Path::new(path)) && !inside(&resolved)
}

fn link_map(links: &[Link]) -> HashMap<PathBuf, &str> {
    links
        .iter()
        .map(|l| {
            (
                PathBuf::from(l.path.trim_start_matches("./")),
                l.target.as_str(),
            )
        })
        .collect()
}

#[cfg(test)]
/// Does this link, alone, lead out of `keep` (see [`refuse`], which also follows the
/// snapshot's other links)?
pub fn escapes(link: &Link, keep: &str) -> bool {
    escapes_among(link, keep, &link_map(std::slice::from_ref(link)))
}

/// The first link that escapes, as an error message naming it.
pub fn refuse(links: &[Link], keep: &str, what: &str) -> Result<(), String> {
    let all = link_map(links);
    match links.iter().find(|l| escapes_among(l, keep, &all)) {
        None => Ok(()),
        Some(l) => Err(format!(
            "{what}: the symlink {} points outside the snapshot (to {}); refusing to install it",
            l.path, l.target
        )),
    }
}

/// The symlinks of a `tar -tvf` listing (GNU tar: `lrwxrwxrwx u/g 0 date time path -> target`),
/// paths with the leading `./` and `strip` components removed.
pub fn tar_links(listing: &str, strip: usize) -> Vec<Link> {
    listing
        .lines()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| {
            // permissions, owner, size, date, time, then the name.
            let name = nth_field(l, 5)?;
            let (path, target) = name.split_once(" -> ")?;
            let path = strip_components(path.trim_start_matches("./"), strip)?;
            Some(Link {
                path,
                target: target.to_owned(),
            })
        })
        .collect()
}

/// The text from the `n`-th whitespace-separated field on (fields separated by runs of spaces).
fn nth_field(line: &str, n: usize) -> Option<&str> {
    let mut rest = line;
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    Some(rest.trim_start())
}

fn strip_components(path: &str, n: usize) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (parts.len() > n).then(|| parts[n..].join("/"))
}

/// The names of a `tar -tvf` listing (symlinks without their target), `./` removed.
pub fn tar_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let name = nth_field(l, 5)?;
            let name = match l.starts_with('l') || l.starts_with('h') {
                true => name
                    .split_once(" -> ")
                    .or_else(|| name.split_once(" link to "))
                    .map_or(name, |(n, _)| n),
                false => name,
            };
            let name = name.trim_start_matches("./");
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// The symlinks of `git ls-tree -r -z` output (`120000 blob <sha>\t<path>\0`, paths
/// unquoted): (path, blob).
pub fn git_link_blobs(ls_tree: &str) -> Vec<(String, String)> {
    ls_tree
        .split('\0')
        .filter_map(|l| {
            let (meta, path) = l.split_once('\t')?;
            let mut f = meta.split_whitespace();
            (f.next()? == "120000").then_some(())?;
            let _kind = f.next()?;
            Some((path.to_owned(), f.next()?.to_owned()))
        })
        .collect()
}

/// The symlinks of `find -P DIR -type l -printf '%P\0%l\0'` output.
pub fn find_links(out: &[u8]) -> Vec<Link> {
    let fields: Vec<String> = out
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    fields
        .chunks(2)
        .filter(|c| c.len() == 2 && !c[0].is_empty())
        .map(|c| Link {
            path: c[0].clone(),
            target: c[1].clone(),
        })
        .collect()
}

/// Is `repo` a git repository a user means: http(s), ssh, git, file URLs, scp-like
/// `[user@]host:path`, or a local path? Git's other transports (`ext::`, `fd::`, …) run
/// commands or read descriptors: refused.
pub fn check_repo(repo: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid repository '{repo}': {why}"));
    if repo.is_empty() {
        return bad("empty");
    }
    if repo.starts_with('-') {
        return bad("it starts with `-`");
    }
    if repo.chars().any(char::is_control) {
        return bad("it holds control characters");
    }
    if let Some((scheme, _)) = repo.split_once("://") {
        return match scheme {
            "http" | "https" | "ssh" | "git" | "file" => Ok(()),
            _ => {
                bad("telem-deploy clones over http, https, ssh, git and file URLs, or a local path")
            }
        };
    }
    if repo.contains("::") {
        return bad("git's remote helpers (`ext::`, `fd::`, …) are not allowed");
    }
    // scp-like `[user@]host:path` (a colon before the first slash), else a local path.
    Ok(())
}

/// Is `source` a commit id (7 to 40 hex digits) rather than a branch or tag name?
pub fn looks_like_commit(source: &str) -> bool {
    (7..=40).contains(&source.len()) && source.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(path: &str, target: &str) -> Link {
        Link {
            path: path.into(),
            target: target.into(),
        }
    }

    #[test]
    fn absolute_and_climbing_links_escape() {
        let keep = "telemetryui";
        assert!(escapes(
            &link("telemetryui/requirements.txt", "/etc/shadow"),
            keep
        ));
        assert!(escapes(
            &link("telemetryui/requirements.txt", "../../../etc/shadow"),
            keep
        ));
        assert!(escapes(&link("telemetryui/run.py", "../utils/x.py"), keep));
        assert!(escapes(&link("telemetryui/a/b.py", "../../x"), keep));
        assert!(escapes(&link("docs/x", "../../x"), keep));
        assert!(!escapes(&link("telemetryui/a/b.py", "../run.py"), keep));
        assert!(!escapes(
            &link("telemetryui/static/x.css", "css/style.css"),
            keep
        ));
        assert!(!escapes(&link("docs/x", "../telemetryui/run.py"), keep));
    }

    #[test]
    fn links_are_followed_through_other_links() {
        // y -> . makes y/.. climb from the link's own directory: x leaves the snapshot,
        // though each target, read alone, stays inside.
        let links = [link("a/y", "."), link("a/x", "y/../..")];
        assert!(!escapes(&links[0], ""));
        assert!(!escapes(&links[1], ""));
        assert!(refuse(&links, "", "snapshot").is_err());
        // Inside `keep` through another link that leaves it.
        let links = [
            link("telemetryui/req.txt", "up/requirements.txt"),
            link("telemetryui/up", ".."),
        ];
        assert!(refuse(&links, "telemetryui", "snapshot").is_err());
        // A loop is refused, a chain that stays inside is fine.
        assert!(refuse(&[link("t/a", "b"), link("t/b", "a")], "t", "s").is_err());
        assert!(refuse(&[link("t/a", "b"), link("t/b", "c/d")], "t", "s").is_ok());
    }

    #[test]
    fn tar_listing_links_and_names() {
        let listing = "drwxr-xr-x u/g 0 2026-01-01 00:00 t/\n\
            lrwxrwxrwx u/g 0 2026-01-01 00:00 t/telemetryui/requirements.txt -> /etc/shadow\n\
            -rw-r--r-- u/g 3 2026-01-01 00:00 t/a file with spaces\n";
        assert_eq!(
            tar_links(listing, 1),
            vec![link("telemetryui/requirements.txt", "/etc/shadow")]
        );
        assert_eq!(
            tar_names(listing),
            vec![
                "t/",
                "t/telemetryui/requirements.txt",
                "t/a file with spaces"
            ]
        );
    }

    #[test]
    fn ls_tree_and_find_links() {
        let ls =
            "100644 blob aaa\ttelemetryui/run.py\x00120000 blob bbb\ttelemetryui/r\u{e4}q.txt\0";
        assert_eq!(
            git_link_blobs(ls),
            vec![("telemetryui/r\u{e4}q.txt".into(), "bbb".into())]
        );
        assert_eq!(
            find_links(b"telemetryui/x\0../../etc\0"),
            vec![link("telemetryui/x", "../../etc")]
        );
    }

    #[test]
    fn repos_a_user_means() {
        for ok in [
            "https://github.com/clearlinux/telemetrics-backend",
            "git@github.com:clearlinux/telemetrics-backend.git",
            "ssh://git@host/x",
            "git://host/x",
            "file:///srv/x",
            "/srv/x",
            "../x",
        ] {
            assert!(check_repo(ok).is_ok(), "{ok}");
        }
        for bad in [
            "fd::3",
            "ext::sh -c id",
            "--upload-pack=x",
            "ftp://x/y",
            "",
            "a\nb",
        ] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
        assert!(looks_like_commit("208ccda"));
        assert!(!looks_like_commit("master"));
    }
}
