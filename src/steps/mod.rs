//! Step kinds: everything one kind of step is, in one file each, and the one list of them.
//!
//! A kind's file (`src/steps/<kind>.rs`) holds what a recipe writes for it (its `Raw` form,
//! whose strings may hold `{{ ... }}` expressions), what that compiles to once expanded (the
//! type implementing [`Step`], with modes, sources and other kinds parsed into enums and
//! newtypes), and how it is checked and applied on a host. The [`kinds!`] list below names
//! every kind once; from it follow the recipe schema of a step ([`RawStep`]), the typed enum
//! ([`StepKind`]), the labels plans show, compilation and dispatch. Adding a kind is one new
//! file and one line in the list (see ARCHITECTURE.md).
//!
//! Nothing here parses YAML or decides the order of steps: `recipe` loads and expands, the
//! engine's run loop calls `check` and `apply` through [`StepKind`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::Condition;

/// One kind of step, compiled from its recipe form.
pub trait Step: Sized {
    /// The kind's key in a recipe step (`file: { ... }`) and its label in plans; the same as
    /// its name in the [`kinds!`] list (checked at compile time).
    const KIND: &'static str;

    /// What a recipe writes for this kind: deserialized strictly (unknown fields are errors
    /// with file, line and column); its strings may hold `{{ ... }}` expressions. A kind with
    /// nothing to parse beyond what serde already types is its own raw form.
    type Raw: Clone + std::fmt::Debug + Serialize + DeserializeOwned;

    /// The typed step from its raw form. Every problem is reported to `c`, at the path of the
    /// value; `None` when the step cannot be built. Called twice: on the recipe as loaded
    /// (where a value holding an expression waits, see [`Compiler::parse`]) and after
    /// expansion.
    fn compile(raw: &Self::Raw, c: &mut Compiler) -> Option<Self>;

    /// Is the host already in the desired state, and if not, what would change? Changes
    /// nothing: reads the host and may run commands that only ask (see `engine`).
    fn check(&self, eng: &Engine) -> Result<Check, StepError>;

    /// Change what differs (only called after a check that was not `ok`).
    fn apply(&self, eng: &Engine) -> Result<(), StepError>;

    /// Services to reload or restart when the step changed something.
    fn notifies(&self) -> &[String] {
        &[]
    }

    /// What must hold before anything of the run changes; a failure refuses the run before
    /// its first change (a dry run shows the step as blocked).
    fn preflight(&self, _eng: &Engine) -> Result<(), StepError> {
        Ok(())
    }

    /// What makes the whole run a usage error before any step is checked (exit 2, in a dry
    /// run too): a snapshot whose links leave it, a Python too old for the web UI.
    fn refuse(&self, _eng: &Engine) -> Result<(), String> {
        Ok(())
    }

    /// Does the step need the database password (to set it, or to render it into a file)?
    fn uses_password(&self) -> bool {
        false
    }
}

/// Byte-wise string equality in a constant (for the list's compile-time check).
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The list of kinds: `key: Type`, where `key` is the recipe key, the module (`key.rs`) and
/// the label, and `Type` the step type in it and the variant of [`StepKind`].
macro_rules! kinds {
    ($($key:ident: $Type:ident,)*) => {
        $(pub mod $key;)*

        $(const _: () = assert!(
            same(stringify!($key), <$key::$Type as Step>::KIND),
            concat!("the kind `", stringify!($key), "` is listed under another name than its KIND"),
        );)*

        /// Every kind's recipe key, in the list's order.
        pub const KINDS: &[&str] = &[$(stringify!($key)),*];

        /// One step as a recipe writes it: what it is for, when it runs, and exactly one kind
        /// (checked when the recipe is loaded).
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawStep {
            /// What the step is for, as the plan shows it.
            pub name: String,
            /// Run the step only when all of these hold.
            #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
            pub when: Vec<Condition>,
            /// Run the step only when telem-deploy itself installed one of these packages
            /// (e.g. stop nginx before `-u` removes it, but never the operator's own nginx).
            #[serde(default)]
            pub when_installed_by_us: Vec<String>,
            /// Run the step only when one of these packages is installed, by anyone (e.g.
            /// uninstall's database steps: after `-u` removed PostgreSQL there is nothing to
            /// drop, and a second uninstall changes nothing).
            #[serde(default)]
            pub when_installed: Vec<String>,
            /// The step needs what `install` sets up (the collector and its config); on a host
            /// without them it is blocked ("run the install action first").
            #[serde(default)]
            pub needs_install: bool,
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $key: Option<<$key::$Type as Step>::Raw>,
            )*
        }

        impl RawStep {
            /// The kinds this step sets (exactly one in a valid recipe).
            pub fn kinds(&self) -> Vec<&'static str> {
                let mut set = Vec::new();
                $(if self.$key.is_some() {
                    set.push(stringify!($key));
                })*
                set
            }

            /// The typed kind of this step (the first it sets), compiled at `path`.
            pub fn compile_kind(&self, c: &mut Compiler, path: &str) -> Option<StepKind> {
                $(if let Some(raw) = &self.$key {
                    let at = format!("{path}.{}", stringify!($key));
                    return c.kind::<$key::$Type>(&at, raw).map(StepKind::$Type);
                })*
                None
            }
        }

        /// A compiled step of one kind.
        #[derive(Debug, Clone)]
        pub enum StepKind {
            $($Type($key::$Type),)*
        }

        impl StepKind {
            /// The kind's name, as plans show it.
            pub fn label(&self) -> &'static str {
                match self {
                    $(StepKind::$Type(_) => <$key::$Type as Step>::KIND,)*
                }
            }

            pub fn check(&self, eng: &Engine) -> Result<Check, StepError> {
                match self {
                    $(StepKind::$Type(s) => s.check(eng),)*
                }
            }

            pub fn apply(&self, eng: &Engine) -> Result<(), StepError> {
                match self {
                    $(StepKind::$Type(s) => s.apply(eng),)*
                }
            }

            pub fn notifies(&self) -> &[String] {
                match self {
                    $(StepKind::$Type(s) => s.notifies(),)*
                }
            }

            pub fn preflight(&self, eng: &Engine) -> Result<(), StepError> {
                match self {
                    $(StepKind::$Type(s) => s.preflight(eng),)*
                }
            }

            pub fn refuse(&self, eng: &Engine) -> Result<(), String> {
                match self {
                    $(StepKind::$Type(s) => s.refuse(eng),)*
                }
            }

            pub fn uses_password(&self) -> bool {
                match self {
                    $(StepKind::$Type(s) => s.uses_password(),)*
                }
            }
        }
    };
}

#[cfg(test)]
mod pg_host_server_test;

// The one list of step kinds (in the order of the schema's fields and of error messages).
kinds! {
    packages: Packages,
    directory: Directory,
    file: File,
    symlink: Symlink,
    remove: Remove,
    service: Service,
    postgres_role: PostgresRole,
    postgres_database: PostgresDatabase,
    postgres_password: PostgresPassword,
    postgres_backup: PostgresBackup,
    migrate: Migrate,
    command: Command,
    health: Health,
    snapshot: Snapshot,
    venv: Venv,
    flask_migrate: FlaskMigrate,
    postgres_reassign: PostgresReassign,
    legacy: Legacy,
    tls: Tls,
    user: User,
    issued_tls: IssuedTls,
    postgres_settings: PostgresSettings,
    postgres_hba: PostgresHba,
    postgres_slot: PostgresSlot,
    postgres_standby: PostgresStandby,
    postgres_promote: PostgresPromote,
    postgres_fence: PostgresFence,
}
