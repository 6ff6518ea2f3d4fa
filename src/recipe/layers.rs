//! Recipe files that build on one another, so that each says only what differs.
//!
//! A file may name the file it builds on (`base: shared`, a file of the same directory). Every
//! file is parsed on its own, from its own text, so a problem of the schema is reported with
//! that file's name, line and column. Then the files are laid one over the other, the base
//! first:
//!
//! - `distro`, `package_manager` and the sections (`web_server`, `nginx`, `postgres`,
//!   `database`, `collector`, `webapp`): a file's section replaces the base's whole;
//! - `packages`, `services` and `slots`: merged by key, a file's entry replacing the base's;
//! - `actions`: a file's action replaces the base's list of that action.
//!
//! An action's list holds steps and slots (`- slot: NAME`): a slot stands for the steps the
//! recipe's `slots` give it (its own or a base's), so a distro fills in what is its own in
//! the shared actions. Every slot an action names must be declared (in the file that names it
//! or a base: `slots: { NAME: [] }`), and every slot declared must be used.
//!
//! Each step of the result remembers where it is written (file and path), so errors found
//! later (`actions.install[29].file.mode`) name that place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::diag::RecipeErrors;
use super::model::{
    Collector, Database, Nginx, PackageChoice, PackageManagerKind, Postgres, RawStep, Recipe,
    ServiceDef, WebServer, Webapp,
};
use crate::cli::Distro;

/// One recipe file as written: every part optional, the rest comes from its base.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The file this one builds on (its name without `.yaml`, in the same directory).
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    distro: Option<Distro>,
    #[serde(default)]
    package_manager: Option<PackageManagerKind>,
    #[serde(default)]
    packages: BTreeMap<String, Vec<PackageChoice>>,
    #[serde(default)]
    web_server: Option<WebServer>,
    #[serde(default)]
    nginx: Option<Nginx>,
    #[serde(default)]
    postgres: Option<Postgres>,
    #[serde(default)]
    database: Option<Database>,
    #[serde(default)]
    collector: Option<Collector>,
    #[serde(default)]
    webapp: Option<Webapp>,
    #[serde(default)]
    services: BTreeMap<String, ServiceDef>,
    /// Steps a distro puts in the places its base's actions leave for them.
    #[serde(default)]
    slots: BTreeMap<String, Vec<RawStep>>,
    #[serde(default)]
    actions: BTreeMap<String, Vec<Entry>>,
}

/// One entry of an action's list: a step, or a slot filled by the recipe's `slots`.
#[derive(Debug)]
enum Entry {
    Step(Box<RawStep>),
    Slot(String),
}

/// Where a part of the merged recipe is written: a file and the path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub path: String,
}

/// The merged recipe's paths (`actions.install[29]`, `nginx`, `services.collector`) and where
/// each is written.
#[derive(Debug, Clone, Default)]
pub struct Origins(BTreeMap<String, Origin>);

impl Origins {
    fn note(&mut self, merged: String, file: &str, path: String) {
        self.0.insert(
            merged,
            Origin {
                file: file.to_owned(),
                path,
            },
        );
    }

    /// Where `path` of the merged recipe is written, and the rest of the path below it.
    pub fn find<'p>(&self, path: &'p str) -> Option<(&str, &Origin, &'p str)> {
        let mut prefix = path;
        loop {
            if let Some((key, origin)) = self.0.get_key_value(prefix) {
                return Some((key, origin, &path[prefix.len()..]));
            }
            let cut = prefix.rfind(['.', '['])?;
            prefix = &prefix[..cut];
        }
    }
}

/// Lay `layers` (the base first, each with its file name) one over the other. Problems of the
/// result (a missing section, an unknown or unused slot) are reported in `errs`.
pub fn merge(layers: Vec<(String, Layer)>, errs: &mut RecipeErrors) -> Option<(Recipe, Origins)> {
    let mut origins = Origins::default();
    let mut top = Merged::default();
    for (file, layer) in layers {
        top.lay(&file, layer, &mut origins);
    }
    let actions = top.expand(&mut origins, errs);
    macro_rules! required {
        ($field:ident) => {
            match top.$field.take() {
                Some(v) => Some(v),
                None => {
                    errs.at_path(
                        stringify!($field),
                        "missing (in the recipe and in every file it builds on)",
                    );
                    None
                }
            }
        };
    }
    // Every missing section is reported, then the first one ends the merge.
    let (distro, package_manager, web_server) = (
        required!(distro),
        required!(package_manager),
        required!(web_server),
    );
    let (nginx, postgres, database, collector) = (
        required!(nginx),
        required!(postgres),
        required!(database),
        required!(collector),
    );
    let recipe = Recipe {
        distro: distro?,
        package_manager: package_manager?,
        web_server: web_server?,
        nginx: nginx?,
        postgres: postgres?,
        database: database?,
        collector: collector?,
        packages: top.packages,
        webapp: top.webapp,
        services: top.services,
        actions,
    };
    Some((recipe, origins))
}

#[derive(Default)]
struct Merged {
    distro: Option<Distro>,
    package_manager: Option<PackageManagerKind>,
    packages: BTreeMap<String, Vec<PackageChoice>>,
    web_server: Option<WebServer>,
    nginx: Option<Nginx>,
    postgres: Option<Postgres>,
    database: Option<Database>,
    collector: Option<Collector>,
    webapp: Option<Webapp>,
    services: BTreeMap<String, ServiceDef>,
    /// Each slot's steps and the file that gave them.
    slots: BTreeMap<String, (String, Vec<RawStep>)>,
    /// Each action's entries and the file that gave them.
    actions: BTreeMap<String, (String, Vec<Entry>)>,
}

impl Merged {
    fn lay(&mut self, file: &str, layer: Layer, origins: &mut Origins) {
        let mut section = |name: &str| origins.note(name.to_owned(), file, name.to_owned());
        macro_rules! replace {
            ($($field:ident),*) => {$(
                if layer.$field.is_some() {
                    section(stringify!($field));
                    self.$field = layer.$field;
                }
            )*};
        }
        replace!(
            distro,
            package_manager,
            web_server,
            nginx,
            postgres,
            database,
            collector,
            webapp
        );
        for (name, set) in layer.packages {
            let path = format!("packages.{name}");
            origins.note(path.clone(), file, path);
            self.packages.insert(name, set);
        }
        for (name, def) in layer.services {
            let path = format!("services.{name}");
            origins.note(path.clone(), file, path);
            self.services.insert(name, def);
        }
        for (name, steps) in layer.slots {
            self.slots.insert(name, (file.to_owned(), steps));
        }
        for (name, entries) in layer.actions {
            self.actions.insert(name, (file.to_owned(), entries));
        }
    }

    /// Every action with its slots filled in.
    fn expand(
        &mut self,
        origins: &mut Origins,
        errs: &mut RecipeErrors,
    ) -> BTreeMap<String, Vec<RawStep>> {
        let mut used = BTreeSet::new();
        let mut actions = BTreeMap::new();
        for (action, (file, entries)) in std::mem::take(&mut self.actions) {
            let mut steps = Vec::new();
            for (j, entry) in entries.into_iter().enumerate() {
                match entry {
                    Entry::Step(step) => {
                        let merged = format!("actions.{action}[{}]", steps.len());
                        origins.note(merged, &file, format!("actions.{action}[{j}]"));
                        steps.push(*step);
                    }
                    Entry::Slot(name) => match self.slots.get(&name) {
                        Some((slot_file, slot_steps)) => {
                            used.insert(name.clone());
                            for (k, step) in slot_steps.iter().enumerate() {
                                let merged = format!("actions.{action}[{}]", steps.len());
                                origins.note(merged, slot_file, format!("slots.{name}[{k}]"));
                                steps.push(step.clone());
                            }
                        }
                        None => {
                            let mut here = RecipeErrors::new(&file);
                            here.at_path(
                                &format!("actions.{action}[{j}].slot"),
                                format!(
                                    "unknown slot `{name}` (declare it under `slots`; declared: {})",
                                    names(self.slots.keys())
                                ),
                            );
                            errs.take(here);
                        }
                    },
                }
            }
            actions.insert(action, steps);
        }
        for (name, (file, _)) in &self.slots {
            if !used.contains(name) {
                let mut here = RecipeErrors::new(file);
                here.at_path(&format!("slots.{name}"), "no action uses this slot");
                errs.take(here);
            }
        }
        actions
    }
}

fn names<'n>(keys: impl Iterator<Item = &'n String>) -> String {
    let all: Vec<&str> = keys.map(String::as_str).collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.join(", ")
    }
}

/// A step is a mapping; a slot is the mapping `{ slot: NAME }`. The first key tells them
/// apart; a step is then read from the same mapping, so its errors keep their positions.
impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entry, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a step, or `slot: NAME`")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entry, M::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return RawStep::deserialize(de::value::MapAccessDeserializer::new(map))
                .map(|s| Entry::Step(Box::new(s)));
        };
        if first == "slot" {
            let name: String = map.next_value()?;
            if let Some(other) = map.next_key::<String>()? {
                return Err(de::Error::custom(format!(
                    "a slot entry holds only `slot`, found `{other}` too"
                )));
            }
            return Ok(Entry::Slot(name));
        }
        let rest = FirstKeyThen {
            first: Some(first),
            map,
        };
        RawStep::deserialize(de::value::MapAccessDeserializer::new(rest))
            .map(|s| Entry::Step(Box::new(s)))
    }
}

/// A mapping whose first key was already read: it is handed out again, then the rest.
struct FirstKeyThen<M> {
    first: Option<String>,
    map: M,
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for FirstKeyThen<M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        match self.first.take() {
            Some(key) => seed
                .deserialize(IntoDeserializer::<M::Error>::into_deserializer(key))
                .map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        self.map.next_value_seed(seed)
    }
}
