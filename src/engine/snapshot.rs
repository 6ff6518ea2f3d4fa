//! `snapshot` steps: a git branch or tag (`git clone`) or a tarball, staged in a directory next
//! to `dest` and then swapped in whole, so the app never sees half a snapshot.
//!
//! The git revision (`git ls-remote`) or the tarball's SHA-256 is the idempotence key; it is
//! kept in a marker file inside the installed snapshot, so a re-run with the same source
//! changes nothing and another branch or tarball replaces it.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{files, Check, Engine, StepError};
use crate::host::{Cmd, FileKind, Owner};
use crate::recipe::model::SnapshotStep;

/// The marker inside an installed snapshot: its id, then where it came from.
pub const MARKER: &str = ".telem-snapshot";

/// The snapshot a step wants: its id (revision or sha256) and a description.
struct Wanted {
    id: String,
    what: String,
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn tarball_path(source: &str) -> &str {
    source.strip_prefix("file://").unwrap_or(source)
}

fn describe(step: &SnapshotStep) -> String {
    match step.source_type.as_str() {
        "tarball" => format!("tarball {}", tarball_path(&step.source)),
        _ => format!("git {} {}", step.repo, step.source),
    }
}

/// Git with every repository trusted: the repository may belong to another user.
fn git<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Cmd {
    let mut argv: Vec<String> = vec!["git".into(), "-c".into(), "safe.directory=*".into()];
    argv.extend(args.into_iter().map(Into::into));
    Cmd::new(argv)
}

/// `Ok(Err(why))` when the snapshot cannot be identified yet (git not installed yet).
fn wanted(eng: &Engine, step: &SnapshotStep) -> Result<Result<Wanted, String>, StepError> {
    let what = describe(step);
    if step.source_type == "tarball" {
        let path = tarball_path(&step.source);
        let bytes = eng
            .host
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
    // An annotated tag: the commit it points to (`^{}`) is what a clone checks out.
    let line = lines
        .iter()
        .find(|l| l.ends_with("^{}"))
        .or_else(|| lines.first())
        .ok_or_else(|| {
            StepError::msg(format!(
                "no branch or tag `{}` in {}",
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

/// (id, description) from the marker of the installed snapshot.
fn installed(eng: &Engine, dest: &str) -> Result<Option<(String, String)>, StepError> {
    let marker = Path::new(dest).join(MARKER);
    let Some(bytes) = eng.host.read(&marker).map_err(StepError::host)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    let id = lines.next().unwrap_or_default().to_owned();
    Ok(Some((id, lines.next().unwrap_or_default().to_owned())))
}

pub fn check(eng: &Engine, step: &SnapshotStep) -> Result<Check, StepError> {
    let want = match wanted(eng, step)? {
        Ok(w) => w,
        Err(why) => {
            let mut c = Check::unknown(why);
            c.changes
                .push(format!("then install {} as {}", describe(step), step.dest));
            return Ok(c);
        }
    };
    let exists = eng
        .host
        .stat(Path::new(&step.dest))
        .map_err(StepError::host)?
        .is_some();
    let new_line = format!("{} ({})", want.what, short(&want.id));
    let current = if exists {
        installed(eng, &step.dest)?
    } else {
        None
    };
    let (change, old_line) = match (&current, exists) {
        (_, false) => (format!("install {new_line} as {}", step.dest), None),
        (Some((id, _)), true) if *id == want.id => {
            return Ok(Check::ok(format!("{} is {new_line}", step.dest)));
        }
        (Some((id, what)), true) => {
            let old = format!("{what} ({})", short(id));
            (
                format!("replace {}: {old} → {new_line}", step.dest),
                Some(old),
            )
        }
        (None, true) => (
            format!(
                "replace {} (not installed by telem-deploy, e.g. deploy.sh's; set aside) by {new_line}",
                step.dest
            ),
            Some("(unknown snapshot)".to_owned()),
        ),
    };
    let mut c = Check::change(vec![change]);
    if !step.notify.is_empty() {
        c.changes
            .push(format!("then restart {}", step.notify.join(", ")));
    }
    c.diff = Some(format!(
        "--- {dest} (on disk)\n+++ {dest} (new)\n{}+{new_line}\n",
        old_line.map(|o| format!("-{o}\n")).unwrap_or_default(),
        dest = step.dest
    ));
    Ok(c)
}

pub fn apply(eng: &Engine, step: &SnapshotStep) -> Result<(), StepError> {
    let want = wanted(eng, step)?.map_err(StepError::msg)?;
    let dest = step.dest.trim_end_matches('/');
    let work = format!("{dest}.telem-stage");
    let src = format!("{work}/src");
    let host = eng.host;
    let root = Owner {
        user: "root".into(),
        group: "root".into(),
        mode: 0o700,
    };
    if let Some(parent) = Path::new(dest).parent() {
        if host.stat(parent).map_err(StepError::host)?.is_none() {
            host.mkdir(
                parent,
                &Owner {
                    mode: 0o755,
                    ..root.clone()
                },
            )
            .map_err(StepError::host)?;
        }
    }
    host.remove(Path::new(&work)).map_err(StepError::host)?;
    host.mkdir(Path::new(&work), &root)
        .map_err(StepError::host)?;
    let id = if step.source_type == "tarball" {
        let tarball = tarball_path(&step.source);
        host.mkdir(Path::new(&src), &root)
            .map_err(StepError::host)?;
        // A tarball of one top-level directory (as deploy.sh made them) is unpacked without it.
        let listing = eng
            .run_ok(&Cmd::new(["tar", "-tf", tarball]))?
            .stdout_text();
        let tops: std::collections::BTreeSet<&str> = listing
            .lines()
            .map(|l| l.trim_start_matches("./"))
            .filter(|l| !l.is_empty())
            .map(|l| l.split('/').next().unwrap_or_default())
            .collect();
        let nested = tops.len() == 1
            && listing
                .lines()
                .any(|l| l.trim_start_matches("./").contains('/'));
        let mut tar = vec!["tar", "-xf", tarball, "-C", &src, "--no-same-owner"];
        if nested {
            tar.push("--strip-components=1");
        }
        eng.run_ok(&Cmd::new(tar))?;
        want.id.clone()
    } else {
        let clone = [
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--branch",
            &step.source,
            "--",
            &step.repo,
            &src,
        ];
        eng.run_ok(&git(clone))?;
        let rev = eng.run_ok(&git(["-C", &src, "rev-parse", "HEAD"]))?;
        host.remove(&Path::new(&src).join(".git"))
            .map_err(StepError::host)?;
        rev.stdout_text().trim().to_owned()
    };
    let tree = match &step.subdir {
        Some(sub) => format!("{src}/{sub}"),
        None => src.clone(),
    };
    match host.stat(Path::new(&tree)).map_err(StepError::host)? {
        Some(m) if m.kind == FileKind::Dir => {}
        _ => {
            host.remove(Path::new(&work)).ok();
            return Err(StepError::msg(format!(
                "{} has no directory `{}`",
                want.what,
                step.subdir.as_deref().unwrap_or(".")
            )));
        }
    }
    let marker = format!("{id}\n{}\n", want.what);
    let own = Owner {
        user: step.owner.clone(),
        group: step.group.clone(),
        mode: 0o644,
    };
    host.write(&Path::new(&tree).join(MARKER), marker.as_bytes(), &own)
        .map_err(StepError::host)?;
    let owner = format!("{}:{}", step.owner, step.group);
    eng.run_ok(&Cmd::new([
        "chown",
        "-R",
        "--no-dereference",
        &owner,
        &tree,
    ]))?;
    // The swap: the old snapshot moves aside, the new one takes its name.
    let dest_path = Path::new(dest);
    match host.stat(dest_path).map_err(StepError::host)? {
        None => eng.update_state(|s| {
            s.created.insert(dest.to_owned());
        })?,
        Some(meta) if !eng.state.borrow().owns(dest) => files::save(eng, dest, &meta)?,
        Some(_) => {
            let old = format!("{dest}.telem-old");
            host.remove(Path::new(&old)).map_err(StepError::host)?;
            host.rename(dest_path, Path::new(&old))
                .map_err(StepError::host)?;
            host.rename(Path::new(&tree), dest_path)
                .map_err(StepError::host)?;
            host.remove(Path::new(&old)).map_err(StepError::host)?;
            return host.remove(Path::new(&work)).map_err(StepError::host);
        }
    }
    host.rename(Path::new(&tree), dest_path)
        .map_err(StepError::host)?;
    host.remove(Path::new(&work)).map_err(StepError::host)
}
