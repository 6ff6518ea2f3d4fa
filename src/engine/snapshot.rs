//! Snapshots (for `snapshot` steps): a git branch, tag or commit (`git clone`) or a tarball, staged in a
//! directory next to `dest` and then swapped in whole, so the app never sees half a snapshot.
//!
//! The git revision (`git ls-remote`) or the tarball's SHA-256 is the idempotence key; it is
//! kept in a marker file inside the installed snapshot, so a re-run with the same source
//! changes nothing and another branch or tarball replaces it.
//!
//! A tarball (`-t tarball -s PATH`) is the controller's file: on a remote target it is listed
//! and hashed here and sent over only when applying, into the staging directory.
//!
//! A snapshot whose symlinks lead out of it is refused: by `preflight` before anything changes
//! when it can be read in place (a tarball, a local repository), else after the clone, before
//! it is swapped in. Git runs under a timeout, over the transports a user means only.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::snaplinks::{self, Link};
use super::{fs, Engine, StepError};
use crate::cli::SourceType;
use crate::host::{Cmd, FileKind, Host, Owner};
use crate::steps::snapshot::Snapshot;

/// The marker inside an installed snapshot: its id, where it came from, its layout.
pub const MARKER: &str = ".telem-snapshot";

/// Layouts of upstream's telemetryui, named in the marker (telem-deploy's pins follow them).
pub const LAYOUT_MASTER: &str = "master";
pub const LAYOUT_DEPLOY_SH: &str = "deploy.sh";

/// Seconds any git command may take (a clone of upstream takes a few).
const GIT_TIMEOUT: &str = "600";

/// The snapshot a step wants: its id (revision or sha256) and a description.
pub(crate) struct Wanted {
    pub(crate) id: String,
    pub(crate) what: String,
}

pub(crate) fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn tarball_path(source: &str) -> &str {
    source.strip_prefix("file://").unwrap_or(source)
}

pub(crate) fn describe(step: &Snapshot) -> String {
    match step.source_type {
        SourceType::Tarball => format!("tarball {}", tarball_path(&step.source)),
        SourceType::Git => format!("git {} {}", step.repo, step.source),
    }
}

/// Git with every repository trusted (the repository may belong to another user), under a
/// timeout, never prompting, over http(s), ssh, git and file only.
fn git<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Cmd {
    let mut argv: Vec<String> = ["timeout", "--kill-after=10", GIT_TIMEOUT, "git", "-c"]
        .into_iter()
        .map(Into::into)
        .collect();
    argv.push("safe.directory=*".into());
    argv.extend(args.into_iter().map(Into::into));
    Cmd::new(argv)
        .env("GIT_ALLOW_PROTOCOL", "http:https:ssh:git:file")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env(
            "GIT_SSH_COMMAND",
            "ssh -o BatchMode=yes -o ConnectTimeout=30",
        )
}

/// The repository as a local directory, when it is one (a path or a `file://` URL).
fn local_repo(host: &dyn Host, repo: &str) -> Option<String> {
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    let local = !repo.contains("://") || repo.starts_with("file://");
    let scp_like = !repo.contains("://")
        && repo
            .split_once(':')
            .is_some_and(|(host, _)| !host.contains('/'));
    (local
        && !scp_like
        && matches!(host.stat(Path::new(path)), Ok(Some(m)) if m.kind == FileKind::Dir))
    .then(|| path.to_owned())
}

/// Refuse, before anything changes, a snapshot whose symlinks lead out of it, when it can be
/// read where it is (a tarball, a local git repository); a remote one is checked after the
/// clone. Also refuses repositories over transports a user does not mean.
pub fn preflight(eng: &Engine, step: &Snapshot) -> Result<(), String> {
    let keep = step.subdir.as_deref().unwrap_or("");
    if step.source_type == SourceType::Tarball {
        let path = tarball_path(&step.source);
        let controller = eng.controller();
        if !matches!(controller.stat(Path::new(path)), Ok(Some(_))) {
            return Ok(());
        }
        let out = controller
            .run(&Cmd::new(["tar", "-tvf", path]))
            .map_err(|e| e.0)?;
        if !out.success() {
            return Err(format!(
                "tarball {path}: cannot list it: {}",
                out.tail().trim()
            ));
        }
        let listing = out.stdout_text();
        let strip = usize::from(strip_top(&snaplinks::tar_names(&listing), keep));
        return snaplinks::refuse(
            &snaplinks::tar_links(&listing, strip),
            keep,
            &describe(step),
        );
    }
    snaplinks::check_repo(&step.repo)?;
    let Some(dir) = local_repo(eng.host, &step.repo) else {
        return Ok(());
    };
    if eng.host.which("git").is_none() {
        return Ok(());
    }
    let rev = format!("{}^{{commit}}", step.source);
    let out = eng
        .host
        .run(&git([
            "-C",
            &dir,
            "ls-tree",
            "-r",
            "-z",
            "--full-tree",
            &rev,
        ]))
        .map_err(|e| e.0)?;
    if !out.success() {
        return Ok(()); // an unknown branch: the step says so
    }
    let mut links = Vec::new();
    for (path, blob) in snaplinks::git_link_blobs(&out.stdout_text()) {
        let target = eng
            .host
            .run(&git(["-C", &dir, "cat-file", "blob", &blob]))
            .map_err(|e| e.0)?;
        links.push(Link {
            path,
            target: target.stdout_text(),
        });
    }
    snaplinks::refuse(&links, keep, &describe(step))
}

/// Strip the tarball's single top-level directory (deploy.sh's tarballs), unless that
/// directory is the one to install (a tarball of `telemetryui/` alone).
fn strip_top(names: &[String], keep: &str) -> bool {
    let tops: std::collections::BTreeSet<&str> = names
        .iter()
        .map(|l| l.split('/').next().unwrap_or_default())
        .filter(|t| !t.is_empty())
        .collect();
    let keep_top = keep.trim_matches('/').split('/').next().unwrap_or_default();
    tops.len() == 1
        && names.iter().any(|l| l.trim_end_matches('/').contains('/'))
        && tops
            .first()
            .is_some_and(|t| keep_top.is_empty() || *t != keep_top)
}

/// `Ok(Err(why))` when the snapshot cannot be identified yet (git not installed yet).
pub(crate) fn wanted(eng: &Engine, step: &Snapshot) -> Result<Result<Wanted, String>, StepError> {
    let what = describe(step);
    if step.source_type == SourceType::Tarball {
        let path = tarball_path(&step.source);
        let bytes = eng
            .controller()
            .read(Path::new(path))
            .map_err(StepError::host)?
            .ok_or_else(|| StepError::msg(format!("the tarball {path} does not exist")))?;
        let id = format!("sha256:{:x}", Sha256::digest(&bytes));
        return Ok(Ok(Wanted { id, what }));
    }
    if eng.host.which("git").is_none() {
        return Ok(Err("git is installed by an earlier step".into()));
    }
    let cmd = git([
        "ls-remote",
        "--heads",
        "--tags",
        "--",
        &step.repo,
        &step.source,
    ]);
    let out = eng.run_ok(&cmd)?;
    let text = out.stdout_text();
    let want_ref = |l: &&str| {
        let r = l.split_whitespace().nth(1).unwrap_or_default();
        r == format!("refs/heads/{}", step.source)
            || r.trim_end_matches("^{}") == format!("refs/tags/{}", step.source)
    };
    let lines: Vec<&str> = text.lines().filter(want_ref).collect();
    if lines.is_empty() && snaplinks::looks_like_commit(&step.source) {
        return commit_id(eng, step).map(|id| Ok(Wanted { id, what }));
    }
    // An annotated tag: the commit it points to (`^{}`) is what a clone checks out.
    let line = lines
        .iter()
        .find(|l| l.ends_with("^{}"))
        .or_else(|| lines.first())
        .ok_or_else(|| {
            StepError::msg(format!(
                "no branch, tag or commit `{}` in {}",
                step.source, step.repo
            ))
        })?;
    let id = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(Ok(Wanted { id, what }))
}

/// A commit id given as `-s`: resolved in a local repository; a remote one takes it in full.
fn commit_id(eng: &Engine, step: &Snapshot) -> Result<String, StepError> {
    if let Some(dir) = local_repo(eng.host, &step.repo) {
        let rev = format!("{}^{{commit}}", step.source);
        let out = eng
            .host
            .run(&git(["-C", &dir, "rev-parse", "--verify", "--quiet", &rev]))
            .map_err(StepError::host)?;
        return match out.success() {
            true => Ok(out.stdout_text().trim().to_owned()),
            false => Err(StepError::msg(format!(
                "no branch, tag or commit `{}` in {}",
                step.source, step.repo
            ))),
        };
    }
    match step.source.len() {
        40 => Ok(step.source.to_ascii_lowercase()),
        _ => Err(StepError::msg(format!(
            "`{}`: give a commit of a remote repository in full (40 hex digits)",
            step.source
        ))),
    }
}

/// (id, description) from the marker of the installed snapshot.
pub(crate) fn installed(eng: &Engine, dest: &str) -> Result<Option<(String, String)>, StepError> {
    let marker = Path::new(dest).join(MARKER);
    let Some(bytes) = eng.host.read(&marker).map_err(StepError::host)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    let id = lines.next().unwrap_or_default().to_owned();
    Ok(Some((id, lines.next().unwrap_or_default().to_owned())))
}

/// The layout named in the marker of the snapshot installed at `dest`.
pub fn layout(host: &dyn Host, dest: &str) -> Option<String> {
    let bytes = host.read(&Path::new(dest).join(MARKER)).ok()??;
    let text = String::from_utf8_lossy(&bytes);
    text.lines().nth(2).map(str::to_owned)
}

/// Fetch the snapshot, stage it next to `dest` and swap it in whole.
pub fn install(eng: &Engine, step: &Snapshot) -> Result<(), StepError> {
    let want = wanted(eng, step)?.map_err(StepError::msg)?;
    let dest = step.dest.trim_end_matches('/');
    let work = format!("{dest}.telem-stage");
    let host = eng.host;
    if let Some(parent) = Path::new(dest).parent() {
        if host.stat(parent).map_err(StepError::host)?.is_none() {
            host.mkdir(parent, &owner("root", "root", 0o755))
                .map_err(StepError::host)?;
        }
    }
    host.remove(Path::new(&work)).map_err(StepError::host)?;
    host.mkdir(Path::new(&work), &owner("root", "root", 0o700))
        .map_err(StepError::host)?;
    // Whatever fails from here on, the staging directory goes.
    let result = stage_and_swap(eng, step, &want, dest, &work);
    if result.is_err() {
        host.remove(Path::new(&work)).ok();
    }
    result
}

/// What `path` is, symlinks not followed.
fn kind(host: &dyn Host, path: &str) -> Result<Option<FileKind>, StepError> {
    let meta = host.stat(Path::new(path)).map_err(StepError::host)?;
    Ok(meta.map(|m| m.kind))
}

fn owner(user: &str, group: &str, mode: u32) -> Owner {
    Owner {
        user: user.into(),
        group: group.into(),
        mode,
    }
}

/// Send the controller's tarball to `to` on the target (inside the staging directory, which
/// goes with it), the one whose SHA-256 the plan named.
fn send_tarball(eng: &Engine, step: &Snapshot, to: &str) -> Result<(), StepError> {
    let path = tarball_path(&step.source);
    let bytes = eng
        .controller()
        .read(Path::new(path))
        .map_err(StepError::host)?
        .ok_or_else(|| StepError::msg(format!("the tarball {path} does not exist")))?;
    eng.host
        .write(Path::new(to), &bytes, &owner("root", "root", 0o600))
        .map_err(StepError::host)
}

/// Unpack or clone into `work`, check and complete the tree, swap it in as `dest`.
fn stage_and_swap(
    eng: &Engine,
    step: &Snapshot,
    want: &Wanted,
    dest: &str,
    work: &str,
) -> Result<(), StepError> {
    let host = eng.host;
    let src = format!("{work}/src");
    let keep = step.subdir.as_deref().unwrap_or("");
    let id = if step.source_type == SourceType::Tarball {
        host.mkdir(Path::new(&src), &owner("root", "root", 0o700))
            .map_err(StepError::host)?;
        let sent = format!("{work}/snapshot.tar");
        let tarball = if host.is_local() {
            tarball_path(&step.source)
        } else {
            send_tarball(eng, step, &sent)?;
            &sent
        };
        let listing = eng
            .run_ok(&Cmd::new(["tar", "-tvf", tarball]))?
            .stdout_text();
        let mut tar = vec!["tar", "-xf", tarball, "-C", &src, "--no-same-owner"];
        // A tarball of one top-level directory (as deploy.sh made them) is unpacked without it.
        if strip_top(&snaplinks::tar_names(&listing), keep) {
            tar.push("--strip-components=1");
        }
        eng.run_ok(&Cmd::new(tar))?;
        want.id.clone()
    } else {
        clone(eng, step, &src)?
    };
    // The tree as unpacked or cloned: no symlink may lead out of it.
    let found = eng.run_ok(&Cmd::new([
        "find",
        "-P",
        &src,
        "-type",
        "l",
        "-printf",
        "%P\\0%l\\0",
    ]))?;
    snaplinks::refuse(&snaplinks::find_links(&found.stdout), keep, &want.what)
        .map_err(StepError::msg)?;
    let tree = match &step.subdir {
        Some(sub) => format!("{src}/{sub}"),
        None => src.clone(),
    };
    match kind(host, &tree)? {
        Some(FileKind::Dir) => {}
        _ => {
            return Err(StepError::msg(format!(
                "{} has no directory `{}`",
                want.what,
                step.subdir.as_deref().unwrap_or(".")
            )));
        }
    }
    let layout = complete(eng, step, &src, &tree)?;
    let marker = format!("{id}\n{}\n{layout}\n", want.what);
    let own = owner(&step.owner, &step.group, 0o644);
    host.write(&Path::new(&tree).join(MARKER), marker.as_bytes(), &own)
        .map_err(StepError::host)?;
    let who = format!("{}:{}", step.owner, step.group);
    eng.run_ok(&Cmd::new(["chown", "-R", "--no-dereference", &who, &tree]))?;
    // The swap: the old snapshot moves aside, the new one takes its name.
    let dest_path = Path::new(dest);
    match host.stat(dest_path).map_err(StepError::host)? {
        None => eng.update_state(|s| {
            s.created.insert(dest.to_owned());
        })?,
        Some(meta) if !eng.state.borrow().owns(dest) => fs::save(eng, dest, &meta)?,
        Some(_) => {
            let old = format!("{dest}.telem-old");
            host.remove(Path::new(&old)).map_err(StepError::host)?;
            host.rename(dest_path, Path::new(&old))
                .map_err(StepError::host)?;
            host.rename(Path::new(&tree), dest_path)
                .map_err(StepError::host)?;
            host.remove(Path::new(&old)).map_err(StepError::host)?;
            return host.remove(Path::new(work)).map_err(StepError::host);
        }
    }
    host.rename(Path::new(&tree), dest_path)
        .map_err(StepError::host)?;
    host.remove(Path::new(work)).map_err(StepError::host)
}

/// Clone the wanted branch, tag or commit into `src`; its revision.
fn clone(eng: &Engine, step: &Snapshot, src: &str) -> Result<String, StepError> {
    let by_ref = !snaplinks::looks_like_commit(&step.source) || {
        let cmd = git([
            "ls-remote",
            "--heads",
            "--tags",
            "--",
            &step.repo,
            &step.source,
        ]);
        !eng.run_ok(&cmd)?.stdout_text().trim().is_empty()
    };
    if by_ref {
        let args = [
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--branch",
            &step.source,
            "--",
            &step.repo,
            src,
        ];
        eng.run_ok(&git(args))?;
    } else {
        // A commit: the whole history (a shallow fetch of any commit is not always allowed).
        eng.run_ok(&git([
            "clone",
            "--quiet",
            "--no-checkout",
            "--",
            &step.repo,
            src,
        ]))?;
        let rev = format!("{}^{{commit}}", step.source);
        eng.run_ok(&git(["-C", src, "checkout", "--quiet", "--detach", &rev]))?;
    }
    let rev = eng.run_ok(&git(["-C", src, "rev-parse", "HEAD"]))?;
    eng.host
        .remove(&Path::new(src).join(".git"))
        .map_err(StepError::host)?;
    Ok(rev.stdout_text().trim().to_owned())
}

/// Make the tree runnable as upstream ran it; its layout. Master: the shared modules copied
/// into the package (as upstream's Dockerfile does). The deploy.sh era: config.py holds
/// deploy.sh's `@@placeholders@@`; a `config_local.py` (which the app loads over it) takes the
/// database settings from the vassal's environment instead.
fn complete(eng: &Engine, step: &Snapshot, src: &str, tree: &str) -> Result<String, StepError> {
    let host = eng.host;
    let own = owner(&step.owner, &step.group, 0o644);
    let mut layout = LAYOUT_MASTER;
    if let Some(shared) = &step.shared {
        let from = Path::new(src).join(&shared.from);
        let to = Path::new(tree).join(&shared.to);
        for f in &shared.files {
            let (source, target) = (from.join(f), to.join(f));
            if host.stat(&target).map_err(StepError::host)?.is_some() {
                layout = LAYOUT_DEPLOY_SH;
                continue;
            }
            if kind(host, &source.to_string_lossy())? != Some(FileKind::File) {
                continue;
            }
            let bytes = host
                .read(&source)
                .map_err(StepError::host)?
                .unwrap_or_default();
            host.write(&target, &bytes, &own).map_err(StepError::host)?;
        }
        let config = to.join("config.py");
        let placeholders = host
            .read(&config)
            .map_err(StepError::host)?
            .is_some_and(|c| String::from_utf8_lossy(&c).contains("@@db_password@@"));
        if placeholders && kind(host, &config.to_string_lossy())? == Some(FileKind::File) {
            layout = LAYOUT_DEPLOY_SH;
            host.write(&to.join("config_local.py"), CONFIG_LOCAL.as_bytes(), &own)
                .map_err(StepError::host)?;
        }
    }
    Ok(layout.to_owned())
}

/// Loaded by the deploy.sh era's app over its config.py (`from . import config_local`).
const CONFIG_LOCAL: &str = r#"# Written by telem-deploy. deploy.sh filled config.py's @@placeholders@@ in place; instead,
# the database settings come from the uWSGI vassal's environment (the password is not here).
import hashlib
import os
from urllib.parse import quote


def _env(name, default):
    return os.environ.get(name, default)


class Config(object):
    SQLALCHEMY_DATABASE_URI = "postgresql://{}:{}@{}/{}".format(
        quote(_env("POSTGRES_USER", "telemetry"), safe=""),
        quote(_env("POSTGRES_PASSWORD", ""), safe=""),
        _env("POSTGRES_HOSTNAME", "127.0.0.1"),
        quote(_env("POSTGRES_DB", "telemetry"), safe=""),
    )
    # The same in every uWSGI worker (forms carry a CSRF token signed with it).
    SECRET_KEY = hashlib.sha256(
        b"telemetryui-secret-key\0" + _env("POSTGRES_PASSWORD", "").encode()
    ).hexdigest()
"#;

#[cfg(test)]
mod tests {
    use super::strip_top;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_top_level_directory_is_stripped_unless_it_is_the_one_to_install() {
        let deploy_sh = names(&["t/", "t/telemetryui/", "t/telemetryui/run.py"]);
        assert!(strip_top(&deploy_sh, "telemetryui"));
        let ui_alone = names(&[
            "telemetryui/",
            "telemetryui/run.py",
            "telemetryui/telemetryui/x.py",
        ]);
        assert!(!strip_top(&ui_alone, "telemetryui"));
        let flat = names(&["telemetryui/run.py", "utils/x.py"]);
        assert!(!strip_top(&flat, "telemetryui"));
    }
}
