//! Compiling one step: its raw values (as the recipe writes them, after `{{ ... }}`
//! expansion) become typed ones, and every problem is reported with the path of the value
//! (`actions.install[3].file.mode`).
//!
//! A recipe is compiled twice: when it is loaded, before the run's variables are known
//! (`checking`: a value holding an expression waits), and once expanded (`expanding`: every
//! value counts). So a plain typo is reported with the recipe's other problems at load time,
//! and a templated value that expands to garbage is refused before anything runs.

use std::fmt::Display;
use std::str::FromStr;

use super::diag::RecipeErrors;
use super::expand::expand_value;
use super::model::Recipe;
use crate::steps::Step;

pub struct Compiler<'a> {
    recipe: &'a Recipe,
    errs: &'a mut RecipeErrors,
    /// The run's variables; `None` while the recipe is checked as loaded.
    vars: Option<&'a tera::Context>,
    /// The path of the step's kind (`actions.install[3].file`).
    path: String,
}

impl<'a> Compiler<'a> {
    /// Before expansion: values holding an expression are checked once expanded.
    pub fn checking(recipe: &'a Recipe, errs: &'a mut RecipeErrors) -> Self {
        Compiler {
            recipe,
            errs,
            vars: None,
            path: String::new(),
        }
    }

    /// After expansion with `vars`: every value is checked.
    pub fn expanding(
        recipe: &'a Recipe,
        errs: &'a mut RecipeErrors,
        vars: &'a tera::Context,
    ) -> Self {
        Compiler {
            recipe,
            errs,
            vars: Some(vars),
            path: String::new(),
        }
    }

    /// Compile the raw kind at `path` (expanding its expressions first, when expanding).
    pub fn kind<T: Step>(&mut self, path: &str, raw: &T::Raw) -> Option<T> {
        path.clone_into(&mut self.path);
        match self.vars {
            Some(vars) => {
                let expanded = expand_value(raw, vars, path, self.errs)?;
                T::compile(&expanded, self)
            }
            None => T::compile(raw, self),
        }
    }

    /// The recipe the step belongs to (its package sets, services, sections).
    pub fn recipe(&self) -> &Recipe {
        self.recipe
    }

    /// The problem `message` at the step's `field` (`mode`, `notify[1]`, or `""` for the
    /// step's kind itself).
    pub fn error(&mut self, field: &str, message: impl Display) {
        let at = match field {
            "" => self.path.clone(),
            _ => format!("{}.{field}", self.path),
        };
        self.errs.at_path(&at, message);
    }

    /// Does `value` wait for expansion (it holds an expression and this is the check as
    /// loaded)?
    pub fn waits(&self, value: &str) -> bool {
        self.vars.is_none() && (value.contains("{{") || value.contains("{%"))
    }

    /// The typed value of the string at `field`; its parse error is reported there. `None`
    /// also while the value waits for expansion.
    pub fn parse<T: FromStr<Err = String>>(&mut self, field: &str, value: &str) -> Option<T> {
        self.parse_with(field, value, str::parse)
    }

    /// As [`Compiler::parse`], with the parser `parse`.
    pub fn parse_with<T>(
        &mut self,
        field: &str,
        value: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.waits(value) {
            return None;
        }
        match parse(value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(field, e);
                None
            }
        }
    }

    /// Every name of `names` (at `field`) is one of the recipe's services.
    pub fn services(&mut self, field: &str, names: &[String]) -> bool {
        let mut ok = true;
        for name in names {
            ok &= self.service(field, name);
        }
        ok
    }

    /// `name` (at `field`) is one of the recipe's services.
    pub fn service(&mut self, field: &str, name: &str) -> bool {
        if self.waits(name) || self.recipe.services.contains_key(name) {
            return true;
        }
        let known = keys(&self.recipe.services);
        self.error(
            field,
            format!("unknown service `{name}` (the recipe's services are: {known})"),
        );
        false
    }
}

/// The keys of a recipe map, for messages.
pub fn keys<V>(map: &std::collections::BTreeMap<String, V>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
