//! The variables recipes and templates see: the recipe's own sections plus this run's options
//! and facts. Secrets are never part of it (the password is added only when a secret file is
//! rendered).

use crate::cli::SourceType;
use crate::options::Options;
use crate::recipe::Recipe;

pub const DEFAULT_TELEMETRY_ID: &str = "6907c830-eed9-4ce9-81ae-76daf8d88f0f";

pub fn vars(recipe: &Recipe, opts: &Options, tls: bool) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("domain", &opts.domain);
    ctx.insert("distro", opts.distro.as_str());
    ctx.insert("action", opts.action.as_str());
    ctx.insert("purge", &opts.purge);
    ctx.insert("webapp_enabled", &opts.webapp);
    ctx.insert("service_manager", opts.manager.name());
    ctx.insert("tls", &tls);
    ctx.insert("tls_only", &(tls && opts.tls_only));
    ctx.insert("telemetry_id", DEFAULT_TELEMETRY_ID);
    ctx.insert("repo", &opts.repo);
    ctx.insert("source", &opts.source);
    ctx.insert(
        "source_type",
        match opts.source_type {
            SourceType::Git => "git",
            SourceType::Tarball => "tarball",
        },
    );
    ctx.insert("packages", &recipe.packages);
    ctx.insert("web_server", &recipe.web_server);
    ctx.insert("nginx", &recipe.nginx);
    ctx.insert("postgres", &recipe.postgres);
    ctx.insert("database", &recipe.database);
    ctx.insert("collector", &recipe.collector);
    ctx.insert("webapp", &recipe.webapp);
    ctx.insert("ui_auth", &opts.ui_auth.is_some());
    crate::inventory::insert_vars(&mut ctx, opts.placement.as_ref());
    let recipe_index = recipe.webapp.as_ref().map(|w| w.pip_index_url.clone());
    ctx.insert(
        "pip_index_url",
        &opts
            .pip_index_url
            .clone()
            .or(recipe_index)
            .unwrap_or_default(),
    );
    ctx
}
