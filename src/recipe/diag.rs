//! Recipe diagnostics: every problem of a recipe, with file, line, column and the line itself.
//!
//! Parse errors come from serde_yaml (which knows the position); semantic errors name the path
//! to the value (`actions.install[3].service.name`). All of them are collected and shown at once.
//! A recipe builds on other files (see `layers`): an error names the file it is in, and for a
//! step written in a slot or in a base's action, also the step's place in the run's action.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeError {
    /// The file the problem is in, when it is not the one of [`RecipeErrors::file`].
    pub file: Option<String>,
    /// The path to the value (`actions.install[3].file.mode`), for semantic errors.
    pub path: Option<String>,
    /// The step's id in the run (`install[29]`), when the path is in a slot or a base's action.
    pub step: Option<String>,
    /// What is wrong (serde's message for parse errors).
    pub message: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// The offending source line, when the position is known.
    pub source_line: Option<String>,
}

/// All problems of one recipe file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeErrors {
    pub file: String,
    pub errors: Vec<RecipeError>,
}

impl RecipeErrors {
    pub fn new(file: impl Into<String>) -> Self {
        RecipeErrors {
            file: file.into(),
            errors: Vec::new(),
        }
    }

    /// A semantic error at a path (`actions.install[3].file.mode`).
    pub fn at_path(&mut self, path: &str, message: impl fmt::Display) {
        self.errors.push(RecipeError {
            file: None,
            path: Some(path.to_owned()),
            step: None,
            message: message.to_string(),
            position: None,
            source_line: None,
        });
    }

    /// Add the problems of another file.
    pub fn take(&mut self, other: RecipeErrors) {
        for mut e in other.errors {
            if other.file != self.file {
                e.file.get_or_insert_with(|| other.file.clone());
            }
            self.errors.push(e);
        }
    }

    /// Point each problem at the file and path where the value is written (`origins`), and a
    /// step's at its id in the run.
    pub fn locate(mut self, origins: &super::layers::Origins) -> RecipeErrors {
        for e in &mut self.errors {
            let Some(path) = &e.path else { continue };
            let Some((merged, origin, rest)) = origins.find(path) else {
                continue;
            };
            if origin.path != merged {
                e.step = merged.strip_prefix("actions.").map(str::to_owned);
            }
            if origin.file != self.file {
                e.file = Some(origin.file.clone());
            }
            e.path = Some(format!("{}{rest}", origin.path));
        }
        self
    }

    /// A parse error from serde_yaml, with the source text for the offending line.
    pub fn from_yaml(file: impl Into<String>, source: &str, err: &serde_yaml::Error) -> Self {
        let position = err.location().map(|l| (l.line(), l.column()));
        let mut message = err.to_string();
        if let Some((line, col)) = position {
            // serde_yaml puts the location inside its message; we print it in front instead.
            message = message.replacen(&format!(" at line {line} column {col}"), "", 1);
        }
        let source_line =
            position.and_then(|(line, _)| source.lines().nth(line - 1).map(str::to_owned));
        RecipeErrors {
            file: file.into(),
            errors: vec![RecipeError {
                file: None,
                path: None,
                step: None,
                message,
                position,
                source_line,
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_result(self) -> Result<(), RecipeErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for RecipeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let file = e.file.as_deref().unwrap_or(&self.file);
            match e.position {
                Some((line, col)) => write!(f, "error: {file}:{line}:{col}: ")?,
                None => write!(f, "error: {file}: ")?,
            }
            if let Some(path) = &e.path {
                write!(f, "{path}")?;
                if let Some(step) = &e.step {
                    write!(f, " (step {step})")?;
                }
                write!(f, ": ")?;
            }
            write!(f, "{}", e.message)?;
            if let (Some((line, col)), Some(text)) = (e.position, &e.source_line) {
                let gutter = line.to_string().len();
                write!(f, "\n{:gutter$} |", "")?;
                write!(f, "\n{line} | {text}")?;
                write!(f, "\n{:gutter$} | {:>width$}", "", "^", width = col)?;
            }
        }
        if self.errors.len() > 1 {
            write!(f, "\n{} problems in {}", self.errors.len(), self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for RecipeErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_shows_position_line_and_caret() {
        let src = "a: 1\nb: [\n";
        let err = serde_yaml::from_str::<serde_yaml::Value>(src).unwrap_err();
        let e = RecipeErrors::from_yaml("x.yaml", src, &err);
        let text = e.to_string();
        assert!(text.starts_with("error: x.yaml:"), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }

    #[test]
    fn all_semantic_errors_are_listed() {
        let mut e = RecipeErrors::new("r.yaml");
        e.at_path("actions.install[0]", "first");
        e.at_path("actions.install[2].file.mode", "second");
        assert_eq!(
            e.to_string(),
            "error: r.yaml: actions.install[0]: first\nerror: r.yaml: actions.install[2].file.mode: second\n2 problems in r.yaml"
        );
    }
}
