//! Semantic checks of a parsed recipe: every action present, one kind per step and that
//! kind's own checks (references to package sets and services, modes, ...: `crate::steps`).
//! Each problem is recorded with its path; none stops the others from being found.

use super::compiler::Compiler;
use super::diag::RecipeErrors;
use super::model::{Presence, RawStep, Recipe};
use crate::cli::{Action, Distro};
use crate::steps::KINDS;

pub fn check(recipe: &Recipe, distro: Distro, errs: &mut RecipeErrors) {
    if recipe.distro != distro {
        errs.at_path(
            "distro",
            format!(
                "says `{}` but this is the recipe for `{}`",
                recipe.distro.as_str(),
                distro.as_str()
            ),
        );
    }
    for action in Action::ALL {
        if !recipe.actions.contains_key(action.as_str()) {
            errs.at_path("actions", format!("missing action `{}`", action.as_str()));
        }
    }
    for (name, steps) in &recipe.actions {
        if !Action::ALL.iter().any(|a| a.as_str() == name) {
            errs.at_path(
                &format!("actions.{name}"),
                "unknown action, expected one of deploy, install, migrate, resetdb, restart, uninstall, promote",
            );
        }
        for (i, step) in steps.iter().enumerate() {
            check_step(recipe, step, &format!("actions.{name}[{i}]"), errs);
        }
        let removals: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.packages
                    .as_ref()
                    .is_some_and(|p| p.state == Presence::Absent)
            })
            .map(|(i, _)| i)
            .collect();
        for i in removals.iter().skip(1) {
            errs.at_path(
                &format!("actions.{name}[{i}].packages.state"),
                "only one `packages` step per action may be `absent`: it removes every package telem-deploy recorded (of every set), so a second one would list them again",
            );
        }
    }
}

/// One kind per step, then the kind's own checks (those of values holding an expression wait
/// for expansion, see `compiler`).
fn check_step(recipe: &Recipe, step: &RawStep, path: &str, errs: &mut RecipeErrors) {
    match step.kinds().as_slice() {
        [_] => {
            step.compile_kind(&mut Compiler::checking(recipe, errs), path);
        }
        [] => errs.at_path(
            path,
            format!("a step needs one kind ({})", KINDS.join(", ")),
        ),
        kinds => errs.at_path(
            path,
            format!("a step has exactly one kind, found {}", kinds.join(", ")),
        ),
    }
}
