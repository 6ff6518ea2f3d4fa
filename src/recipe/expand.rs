//! Expansion: `{{ ... }}` expressions in step values and service definitions are rendered with
//! the recipe's own sections and the run's variables, giving typed steps with plain values.
//!
//! Every expression of every action is expanded up front, so an undefined variable anywhere is
//! reported (with its path) before anything runs.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::diag::RecipeErrors;
use super::model::*;
use super::LoadedRecipe;
use crate::cli::Action;

/// One step of an action, ready for the engine.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `install[3]`: the action and the index in the recipe.
    pub id: String,
    pub name: String,
    pub when: Vec<Condition>,
    pub when_installed_by_us: Vec<String>,
    pub when_installed: Vec<String>,
    pub needs_install: bool,
    pub kind: StepKind,
}

/// The closed set of step kinds.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    Packages(PackagesStep),
    Directory(DirectoryStep),
    File(FileStep),
    Symlink(SymlinkStep),
    Remove(RemoveStep),
    Service(ServiceStep),
    PostgresRole(PgRoleStep),
    PostgresDatabase(PgDatabaseStep),
    PostgresPassword(PgPasswordStep),
    PostgresBackup(PgBackupStep),
    Migrate(MigrateStep),
    Command(CommandStep),
    Health(HealthStep),
    Snapshot(SnapshotStep),
    Venv(VenvStep),
    FlaskMigrate(FlaskMigrateStep),
    PostgresReassign(PgReassignStep),
    Legacy(LegacyStep),
    Tls(TlsStep),
    User(UserStep),
}

impl StepKind {
    pub fn label(&self) -> &'static str {
        match self {
            StepKind::Packages(_) => "packages",
            StepKind::Directory(_) => "directory",
            StepKind::File(_) => "file",
            StepKind::Symlink(_) => "symlink",
            StepKind::Remove(_) => "remove",
            StepKind::Service(_) => "service",
            StepKind::PostgresRole(_) => "postgres_role",
            StepKind::PostgresDatabase(_) => "postgres_database",
            StepKind::PostgresPassword(_) => "postgres_password",
            StepKind::PostgresBackup(_) => "postgres_backup",
            StepKind::Migrate(_) => "migrate",
            StepKind::Command(_) => "command",
            StepKind::Health(_) => "health",
            StepKind::Snapshot(_) => "snapshot",
            StepKind::Venv(_) => "venv",
            StepKind::FlaskMigrate(_) => "flask_migrate",
            StepKind::PostgresReassign(_) => "postgres_reassign",
            StepKind::Legacy(_) => "legacy",
            StepKind::Tls(_) => "tls",
            StepKind::User(_) => "user",
        }
    }
}

/// A recipe with every expression expanded.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub file: String,
    pub recipe: Recipe,
    pub services: BTreeMap<String, ServiceDef>,
    pub actions: BTreeMap<Action, Vec<Step>>,
}

/// Expand every action and service of `loaded` with `ctx`; all problems are reported at once.
pub fn compile(loaded: &LoadedRecipe, ctx: &tera::Context) -> Result<Compiled, RecipeErrors> {
    let mut errs = RecipeErrors::new(&loaded.file);
    let mut services = BTreeMap::new();
    for (name, def) in &loaded.recipe.services {
        if let Some(def) = expand_value(def, ctx, &format!("services.{name}"), &mut errs) {
            services.insert(name.clone(), def);
        }
    }
    let mut actions = BTreeMap::new();
    for action in Action::ALL {
        let raw = loaded
            .recipe
            .actions
            .get(action.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut steps = Vec::with_capacity(raw.len());
        for (i, step) in raw.iter().enumerate() {
            let path = format!("actions.{}[{i}]", action.as_str());
            let name = render_str(&step.name, ctx, &format!("{path}.name"), &mut errs);
            if let (Some(kind), Some(name)) = (expand_kind(step, ctx, &path, &mut errs), name) {
                steps.push(Step {
                    id: format!("{}[{i}]", action.as_str()),
                    name,
                    when: step.when.clone(),
                    when_installed_by_us: step.when_installed_by_us.clone(),
                    when_installed: step.when_installed.clone(),
                    needs_install: step.needs_install,
                    kind,
                });
            }
        }
        actions.insert(action, steps);
    }
    errs.into_result()?;
    Ok(Compiled {
        file: loaded.file.clone(),
        recipe: loaded.recipe.clone(),
        services,
        actions,
    })
}

fn expand_kind(
    step: &RawStep,
    ctx: &tera::Context,
    path: &str,
    errs: &mut RecipeErrors,
) -> Option<StepKind> {
    macro_rules! kind {
        ($field:ident, $variant:ident) => {
            if let Some(v) = &step.$field {
                let p = format!("{path}.{}", stringify!($field));
                return expand_value(v, ctx, &p, errs).map(StepKind::$variant);
            }
        };
    }
    kind!(packages, Packages);
    kind!(directory, Directory);
    kind!(file, File);
    kind!(symlink, Symlink);
    kind!(remove, Remove);
    kind!(service, Service);
    kind!(postgres_role, PostgresRole);
    kind!(postgres_database, PostgresDatabase);
    kind!(postgres_password, PostgresPassword);
    kind!(postgres_backup, PostgresBackup);
    kind!(migrate, Migrate);
    kind!(command, Command);
    kind!(health, Health);
    kind!(snapshot, Snapshot);
    kind!(venv, Venv);
    kind!(flask_migrate, FlaskMigrate);
    kind!(postgres_reassign, PostgresReassign);
    kind!(legacy, Legacy);
    kind!(tls, Tls);
    kind!(user, User);
    None
}

/// Round-trip `value` through JSON, rendering every string that holds an expression.
fn expand_value<T: Serialize + DeserializeOwned>(
    value: &T,
    ctx: &tera::Context,
    path: &str,
    errs: &mut RecipeErrors,
) -> Option<T> {
    let mut json = serde_json::to_value(value).expect("recipe values serialize");
    let before = errs.errors.len();
    walk(&mut json, ctx, path, errs);
    if errs.errors.len() != before {
        return None;
    }
    match serde_json::from_value(json) {
        Ok(v) => Some(v),
        Err(e) => {
            errs.at_path(path, format!("after expansion: {e}"));
            None
        }
    }
}

fn walk(value: &mut Value, ctx: &tera::Context, path: &str, errs: &mut RecipeErrors) {
    match value {
        Value::String(s) => {
            if let Some(r) = render_str(s, ctx, path, errs) {
                *s = r;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                walk(v, ctx, &format!("{path}[{i}]"), errs);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, ctx, &format!("{path}.{k}"), errs);
            }
        }
        _ => {}
    }
}

fn render_str(s: &str, ctx: &tera::Context, path: &str, errs: &mut RecipeErrors) -> Option<String> {
    if !s.contains("{{") && !s.contains("{%") {
        return Some(s.to_owned());
    }
    match tera::Tera::one_off(s, ctx, false) {
        Ok(r) => Some(r),
        Err(e) => {
            errs.at_path(path, crate::render::error_chain(&e));
            None
        }
    }
}
