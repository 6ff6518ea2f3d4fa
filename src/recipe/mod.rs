//! Recipes: per-distro YAML that says *what* each action needs.
//!
//! Loading is strict and reports every problem at once: first the YAML schema (with file, line
//! and column), then the semantic checks and the expansion of `{{ ... }}` expressions in every
//! step of every action (with the path to the value). Nothing here touches the host.

pub mod compiler;
pub mod diag;
pub mod expand;
pub mod model;
mod model_webapp;
mod validate;
pub mod values;

use std::path::Path;

pub use diag::{RecipeError, RecipeErrors};
pub use expand::{compile, Step, StepKind};
pub use model::Recipe;

use crate::cli::Distro;

const EMBEDDED: [(Distro, &str); 4] = [
    (Distro::Clr, include_str!("../../recipes/clr.yaml")),
    (Distro::Ubuntu, include_str!("../../recipes/ubuntu.yaml")),
    (Distro::Centos, include_str!("../../recipes/centos.yaml")),
    (Distro::Debian, include_str!("../../recipes/debian.yaml")),
];

/// A parsed, schema-valid recipe and the name of the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    pub file: String,
    pub recipe: Recipe,
}

/// Load the recipe for `distro`: from `dir/<distro>.yaml` when given, else the built-in one.
pub fn load(distro: Distro, dir: Option<&Path>) -> Result<LoadedRecipe, RecipeErrors> {
    let (file, source) = match dir {
        Some(dir) => {
            let path = dir.join(format!("{}.yaml", distro.as_str()));
            let file = path.display().to_string();
            (file.clone(), read_source(&path, &file)?)
        }
        None => {
            let source = EMBEDDED
                .iter()
                .find(|(d, _)| *d == distro)
                .map(|(_, s)| *s)
                .expect("every distro has an embedded recipe");
            (
                format!("recipes/{}.yaml", distro.as_str()),
                source.to_owned(),
            )
        }
    };
    parse(&file, &source, distro)
}

fn read_source(path: &Path, file: &str) -> Result<String, RecipeErrors> {
    let mut errs = RecipeErrors::new(file);
    if path.is_dir() {
        errs.at_path("(file)", "is a directory, expected a YAML file");
        return Err(errs);
    }
    let bytes = std::fs::read(path).map_err(|e| {
        let mut errs = RecipeErrors::new(file);
        errs.at_path("(file)", format!("cannot read: {e}"));
        errs
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        errs.at_path("(file)", format!("not valid UTF-8 (line {line})"));
        errs
    })
}

/// Parse and check a recipe's schema and semantics (not yet its expressions: see `compile`).
pub fn parse(file: &str, source: &str, distro: Distro) -> Result<LoadedRecipe, RecipeErrors> {
    let recipe: Recipe =
        serde_yaml::from_str(source).map_err(|e| RecipeErrors::from_yaml(file, source, &e))?;
    let mut errs = RecipeErrors::new(file);
    validate::check(&recipe, distro, &mut errs);
    errs.into_result()?;
    Ok(LoadedRecipe {
        file: file.to_owned(),
        recipe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_recipe_parses() {
        for distro in Distro::ALL {
            if let Err(e) = load(distro, None) {
                panic!("{e}");
            }
        }
    }
}
