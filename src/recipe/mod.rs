//! Recipes: per-distro YAML that says *what* each action needs.
//!
//! A distro's file builds on `shared.yaml` (Ubuntu's on Debian's): each says only what differs
//! (see `layers`). Loading is strict and reports every problem at once: first the YAML schema
//! of each file (with file, line and column), then the semantic checks and the expansion of
//! `{{ ... }}` expressions in every step of every action (with the file and the path to the
//! value). Nothing here touches the host.

pub mod compiler;
pub mod diag;
pub mod expand;
mod layers;
pub mod model;
mod model_webapp;
mod validate;
pub mod values;

use std::collections::BTreeSet;
use std::path::Path;

pub use diag::RecipeErrors;
pub use expand::{compile, Step, StepKind};
pub use model::Recipe;

use crate::cli::Distro;
use layers::{Layer, Origins};

/// The built-in recipe files, by name: one per distro, and `shared`, which they build on.
const EMBEDDED: [(&str, &str); 5] = [
    ("clr", include_str!("../../recipes/clr.yaml")),
    ("ubuntu", include_str!("../../recipes/ubuntu.yaml")),
    ("centos", include_str!("../../recipes/centos.yaml")),
    ("debian", include_str!("../../recipes/debian.yaml")),
    ("shared", include_str!("../../recipes/shared.yaml")),
];

/// How many files a recipe may build on, one on the other.
const MAX_DEPTH: usize = 8;

/// A parsed, schema-valid recipe, the name of its file and where each part is written.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    pub file: String,
    pub recipe: Recipe,
    origins: Origins,
}

impl LoadedRecipe {
    /// `errs` (found in this recipe) pointed at the files and paths where the values are.
    pub fn locate(&self, errs: RecipeErrors) -> RecipeErrors {
        errs.locate(&self.origins)
    }
}

/// Load the recipe for `distro`: `dir/<distro>.yaml` when a directory is given, else the
/// built-in one; and the files it builds on (`base: NAME`), from the same place.
pub fn load(distro: Distro, dir: Option<&Path>) -> Result<LoadedRecipe, RecipeErrors> {
    let mut layers = Vec::new();
    let mut seen = BTreeSet::new();
    let mut name = distro.as_str().to_owned();
    loop {
        let (file, source) = match dir {
            Some(dir) => {
                let path = dir.join(format!("{name}.yaml"));
                let file = path.display().to_string();
                let source = read_source(&path, &file)?;
                (file, source)
            }
            None => embedded(&name, layers.last())?,
        };
        let layer: Layer = serde_yaml::from_str(&source)
            .map_err(|e| RecipeErrors::from_yaml(&file, &source, &e))?;
        seen.insert(name.clone());
        let base = layer.base.clone();
        layers.push((file, layer));
        let Some(base) = base else { break };
        let bad = if !is_plain_name(&base) {
            Some("a file name without `.yaml`, `/` or `..` (a file of the same directory)")
        } else if seen.contains(&base) {
            Some("builds on itself (through the files it builds on)")
        } else if seen.len() >= MAX_DEPTH {
            Some("too many files built one on the other")
        } else {
            None
        };
        if let Some(why) = bad {
            let (file, _) = layers.last().expect("just pushed");
            let mut errs = RecipeErrors::new(file);
            errs.at_path("base", format!("`{base}`: {why}"));
            return Err(errs);
        }
        name = base;
    }
    layers.reverse();
    build(layers, distro)
}

/// Merge `layers` (the base first, the distro's file last) and check the result.
fn build(layers: Vec<(String, Layer)>, distro: Distro) -> Result<LoadedRecipe, RecipeErrors> {
    let file = layers.last().map(|(f, _)| f.clone()).unwrap_or_default();
    let mut errs = RecipeErrors::new(&file);
    let merged = layers::merge(layers, &mut errs);
    let Some((recipe, origins)) = merged else {
        return Err(errs);
    };
    // Found in the merged recipe: pointed at where each value is written.
    let mut found = RecipeErrors::new(&file);
    validate::check(&recipe, distro, &mut found);
    errs.take(found.locate(&origins));
    errs.into_result()?;
    Ok(LoadedRecipe {
        file,
        recipe,
        origins,
    })
}

fn embedded(name: &str, from: Option<&(String, Layer)>) -> Result<(String, String), RecipeErrors> {
    match EMBEDDED.iter().find(|(n, _)| *n == name) {
        Some((_, source)) => Ok((format!("recipes/{name}.yaml"), (*source).to_owned())),
        None => {
            let file = from.map(|(f, _)| f.as_str()).unwrap_or("recipes");
            let mut errs = RecipeErrors::new(file);
            errs.at_path("base", format!("no built-in recipe file `{name}`"));
            Err(errs)
        }
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_that_builds_on_nothing_loads_as_it_is() {
        // The built-in Debian recipe, merged and written out as one file without `base`.
        let builtin = load(Distro::Debian, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = serde_yaml::to_string(&builtin.recipe).unwrap();
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("base:") || l.starts_with("slots:")),
            "{text}"
        );
        std::fs::write(dir.path().join("debian.yaml"), text).unwrap();
        let own = load(Distro::Debian, Some(dir.path())).unwrap();
        assert_eq!(
            serde_json::to_value(&own.recipe).unwrap(),
            serde_json::to_value(&builtin.recipe).unwrap()
        );
        assert_eq!(
            own.file,
            dir.path().join("debian.yaml").display().to_string()
        );
    }

    #[test]
    fn every_missing_section_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("debian.yaml"),
            "distro: debian\npackage_manager: apt\n",
        )
        .unwrap();
        let err = load(Distro::Debian, Some(dir.path()))
            .unwrap_err()
            .to_string();
        for section in ["web_server", "nginx", "postgres", "database", "collector"] {
            assert!(
                err.contains(&format!(
                    ": {section}: missing (in the recipe and in every file it builds on)"
                )),
                "{section}: {err}"
            );
        }
        let file = dir.path().join("debian.yaml");
        assert!(
            err.ends_with(&format!("5 problems in {}", file.display())),
            "{err}"
        );
    }

    #[test]
    fn every_embedded_recipe_parses() {
        for distro in Distro::ALL {
            if let Err(e) = load(distro, None) {
                panic!("{e}");
            }
        }
    }
}
