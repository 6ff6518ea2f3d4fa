//! `snapshot` steps: a git branch, tag or commit, or a tarball, installed whole at `dest`
//! (fetching, staging and swapping it is `engine::snapshot`'s).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::cli::SourceType;
use crate::engine::snapshot::{self, describe, installed, short, wanted};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::root;

/// A `snapshot` step as the recipe writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshot {
    /// `git` or `tarball`.
    #[serde(rename = "type")]
    pub source_type: String,
    /// The git repository (path, `file://` or remote URL); unused for tarballs.
    pub repo: String,
    /// The branch or tag (git), or the tarball's path or `file://` URL.
    pub source: String,
    /// Where the snapshot goes (swapped in whole).
    pub dest: String,
    /// Install only this directory of the snapshot (e.g. `telemetryui`).
    #[serde(default)]
    pub subdir: Option<String>,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    #[serde(default)]
    pub notify: Vec<String>,
    /// Modules the app imports that live elsewhere in the repository (master's
    /// `utils/shared_utils`): copied into the installed tree as upstream's Dockerfile does.
    #[serde(default)]
    pub shared: Option<SharedModules>,
}

/// `files` of the repository's directory `from` (relative to its root) go to `to` (relative
/// to the installed tree), unless the tree already has them (the deploy.sh era's layout).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SharedModules {
    pub from: String,
    pub to: String,
    pub files: Vec<String>,
}

/// A source snapshot (git clone of a branch/tag, or an unpacked tarball) installed at `dest`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub source_type: SourceType,
    pub repo: String,
    pub source: String,
    pub dest: String,
    pub subdir: Option<String>,
    pub owner: String,
    pub group: String,
    pub notify: Vec<String>,
    pub shared: Option<SharedModules>,
}

fn source_type(s: &str) -> Result<SourceType, String> {
    match s {
        "git" => Ok(SourceType::Git),
        "tarball" => Ok(SourceType::Tarball),
        _ => Err(format!("`{s}` is not git or tarball")),
    }
}

impl Step for Snapshot {
    const KIND: &'static str = "snapshot";
    type Raw = RawSnapshot;

    fn compile(raw: &RawSnapshot, c: &mut Compiler) -> Option<Snapshot> {
        let source_type = c.parse_with("type", &raw.source_type, source_type);
        let notified = c.services("notify", &raw.notify);
        Some(Snapshot {
            source_type: source_type?,
            repo: raw.repo.clone(),
            source: raw.source.clone(),
            dest: raw.dest.clone(),
            subdir: raw.subdir.clone(),
            owner: raw.owner.clone(),
            group: raw.group.clone(),
            notify: notified.then(|| raw.notify.clone())?,
            shared: raw.shared.clone(),
        })
    }

    /// The plan names the source and its revision or checksum, and what it replaces.
    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        let want = match wanted(eng, self)? {
            Ok(w) => w,
            Err(why) => {
                let mut c = Check::unknown(why);
                c.changes
                    .push(format!("then install {} as {}", describe(self), self.dest));
                return Ok(c);
            }
        };
        let exists = eng
            .host
            .stat(Path::new(&self.dest))
            .map_err(StepError::host)?
            .is_some();
        let new_line = format!("{} ({})", want.what, short(&want.id));
        let current = if exists {
            installed(eng, &self.dest)?
        } else {
            None
        };
        let (change, old_line) = match (&current, exists) {
            (_, false) => (format!("install {new_line} as {}", self.dest), None),
            (Some((id, _)), true) if *id == want.id => {
                return Ok(Check::ok(format!("{} is {new_line}", self.dest)));
            }
            (Some((id, what)), true) => {
                let old = format!("{what} ({})", short(id));
                (
                    format!("replace {}: {old} → {new_line}", self.dest),
                    Some(old),
                )
            }
            (None, true) => (
                format!(
                    "replace {} (not installed by telem-deploy, e.g. deploy.sh's; set aside) by {new_line}",
                    self.dest
                ),
                Some("(unknown snapshot)".to_owned()),
            ),
        };
        let mut c = Check::change(vec![change]);
        if !self.notify.is_empty() {
            c.changes
                .push(format!("then restart {}", self.notify.join(", ")));
        }
        c.diff = Some(format!(
            "--- {dest} (on disk)\n+++ {dest} (new)\n{}+{new_line}\n",
            old_line.map(|o| format!("-{o}\n")).unwrap_or_default(),
            dest = self.dest
        ));
        Ok(c)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        snapshot::install(eng, self)
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }

    fn refuse(&self, eng: &Engine) -> Result<(), String> {
        snapshot::preflight(eng, self)
    }
}
