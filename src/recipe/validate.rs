//! Semantic checks of a parsed recipe: references between sections, one kind per step,
//! octal modes, every action present. Each problem is recorded with its path; none stops the
//! others from being found.

use super::diag::RecipeErrors;
use super::model::{RawStep, Recipe};
use crate::cli::{Action, Distro};
use crate::render::TEMPLATE_NAMES;

pub fn check(recipe: &Recipe, distro: Distro, errs: &mut RecipeErrors) {
    if recipe.distro != distro.as_str() {
        errs.at_path(
            "distro",
            format!(
                "says `{}` but this is the recipe for `{}`",
                recipe.distro,
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
                "unknown action, expected one of deploy, install, migrate, resetdb, restart, uninstall",
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
                    .is_some_and(|p| p.state == super::model::Presence::Absent)
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

fn check_step(recipe: &Recipe, step: &RawStep, path: &str, errs: &mut RecipeErrors) {
    let kinds = kinds_set(step);
    match kinds.len() {
        1 => {}
        0 => {
            errs.at_path(path, "a step needs one kind (packages, directory, file, symlink, remove, service, postgres_role, postgres_database, postgres_password, postgres_backup, migrate, command, health, snapshot, venv, flask_migrate, postgres_reassign, legacy, tls, user)");
            return;
        }
        _ => {
            errs.at_path(
                path,
                format!("a step has exactly one kind, found {}", kinds.join(", ")),
            );
            return;
        }
    }
    let service_ref = |errs: &mut RecipeErrors, field: &str, name: &str| {
        if !recipe.services.contains_key(name) {
            errs.at_path(
                &format!("{path}.{field}"),
                format!(
                    "unknown service `{name}` (the recipe's services are: {})",
                    keys(&recipe.services)
                ),
            );
        }
    };
    let mode_ok = |errs: &mut RecipeErrors, field: &str, mode: &str| {
        if crate::host::parse_mode(mode).is_none() {
            errs.at_path(
                &format!("{path}.{field}.mode"),
                format!("`{mode}` is not an octal mode like \"0644\""),
            );
        }
    };
    if let Some(p) = &step.packages {
        if !recipe.packages.contains_key(&p.set) {
            errs.at_path(
                &format!("{path}.packages.set"),
                format!(
                    "unknown package set `{}` (the recipe's sets are: {})",
                    p.set,
                    keys(&recipe.packages)
                ),
            );
        }
    }
    if let Some(d) = &step.directory {
        mode_ok(errs, "directory", &d.mode);
    }
    if let Some(f) = &step.file {
        mode_ok(errs, "file", &f.mode);
        let sources = [
            f.template.is_some(),
            f.copy_from.is_some(),
            f.collector_binary,
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            errs.at_path(
                &format!("{path}.file"),
                "needs exactly one of `template`, `copy_from`, `collector_binary: true`",
            );
        }
        if let Some(t) = &f.template {
            if !TEMPLATE_NAMES.contains(&t.as_str()) {
                errs.at_path(
                    &format!("{path}.file.template"),
                    format!(
                        "unknown template `{t}` (known: {})",
                        TEMPLATE_NAMES.join(", ")
                    ),
                );
            }
        }
        for n in &f.notify {
            service_ref(errs, "file.notify", n);
        }
        if let Some(v) = &f.validate {
            if v != "nginx" {
                errs.at_path(
                    &format!("{path}.file.validate"),
                    format!("unknown validator `{v}`, expected nginx"),
                );
            }
        }
    }
    if let Some(t) = &step.tls {
        for n in &t.notify {
            service_ref(errs, "tls.notify", n);
        }
    }
    if let Some(s) = &step.symlink {
        for n in &s.notify {
            service_ref(errs, "symlink.notify", n);
        }
    }
    if let Some(r) = &step.remove {
        for n in &r.notify {
            service_ref(errs, "remove.notify", n);
        }
    }
    if let Some(s) = &step.service {
        service_ref(errs, "service.name", &s.name);
    }
    if let Some(c) = &step.command {
        if c.run.is_empty() {
            errs.at_path(&format!("{path}.command.run"), "must name a program");
        }
        for (field, guard) in [("unless", &c.unless), ("only_if", &c.only_if)] {
            if guard.as_ref().is_some_and(Vec::is_empty) {
                errs.at_path(&format!("{path}.command.{field}"), "must name a program");
            }
        }
        for n in &c.notify {
            service_ref(errs, "command.notify", n);
        }
    }
    if let Some(s) = &step.snapshot {
        if !["git", "tarball"].contains(&s.source_type.as_str()) && !s.source_type.contains("{{") {
            errs.at_path(
                &format!("{path}.snapshot.type"),
                format!("`{}` is not git or tarball", s.source_type),
            );
        }
        for n in &s.notify {
            service_ref(errs, "snapshot.notify", n);
        }
    }
    if let Some(v) = &step.venv {
        for n in &v.notify {
            service_ref(errs, "venv.notify", n);
        }
    }
    if let Some(h) = &step.health {
        if !h.path.starts_with('/') {
            errs.at_path(&format!("{path}.health.path"), "must start with /");
        }
    }
}

/// The names of the kind fields a step sets.
pub fn kinds_set(step: &RawStep) -> Vec<&'static str> {
    let flags = [
        ("packages", step.packages.is_some()),
        ("directory", step.directory.is_some()),
        ("file", step.file.is_some()),
        ("symlink", step.symlink.is_some()),
        ("remove", step.remove.is_some()),
        ("service", step.service.is_some()),
        ("postgres_role", step.postgres_role.is_some()),
        ("postgres_database", step.postgres_database.is_some()),
        ("postgres_password", step.postgres_password.is_some()),
        ("postgres_backup", step.postgres_backup.is_some()),
        ("migrate", step.migrate.is_some()),
        ("command", step.command.is_some()),
        ("health", step.health.is_some()),
        ("snapshot", step.snapshot.is_some()),
        ("venv", step.venv.is_some()),
        ("flask_migrate", step.flask_migrate.is_some()),
        ("postgres_reassign", step.postgres_reassign.is_some()),
        ("legacy", step.legacy.is_some()),
        ("tls", step.tls.is_some()),
        ("user", step.user.is_some()),
    ];
    flags
        .iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| *n)
        .collect()
}

fn keys<V>(map: &std::collections::BTreeMap<String, V>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
