//! Expansion: `{{ ... }}` expressions in step values and service definitions are rendered with
//! the recipe's own sections and the run's variables; each step is then compiled into its
//! typed kind (`compiler`, `crate::steps`).
//!
//! Every expression of every action is expanded up front, so an undefined variable anywhere is
//! reported (with its path) before anything runs.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::compiler::Compiler;
use super::diag::RecipeErrors;
use super::model::*;
use super::LoadedRecipe;
use crate::cli::Action;
pub use crate::steps::StepKind;

/// One step of an action, ready for the engine.
#[derive(Debug, Clone)]
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
            let mut c = Compiler::expanding(&loaded.recipe, &mut errs, ctx);
            if let (Some(kind), Some(name)) = (step.compile_kind(&mut c, &path), name) {
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

/// Round-trip `value` through JSON, rendering every string that holds an expression.
pub(super) fn expand_value<T: Serialize + DeserializeOwned>(
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
