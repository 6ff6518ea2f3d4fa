//! The plan of one run: the recipe compiled for this run's options and the target's facts,
//! with the templates, variables and TLS material its steps use. Built once, before the first
//! check; the engine reads it and never changes it.

use std::io::Write;
use std::path::Path;

use crate::cli::Action;
use crate::engine::facts::Facts;
use crate::error::Error;
use crate::host::Host;
use crate::options::Options;
use crate::recipe::expand::Compiled;
use crate::recipe::{self, LoadedRecipe, Step};
use crate::render::Templates;
use crate::{context, tls};

pub struct Plan {
    pub recipe: Compiled,
    pub templates: Templates,
    /// The variables of recipes and templates (no secrets).
    pub vars: tera::Context,
    /// What the target is, read once.
    pub facts: Facts,
    /// TLS is configured: the run has a certificate, or one is at the recipe's path.
    pub tls: bool,
    /// The certificate and key of `--tls-cert`/`--tls-key` or `--tls-self-signed`.
    pub tls_material: Option<tls::Material>,
}

impl Plan {
    /// Compile `loaded` for `opts` on `host` (whose facts are read here, once). Notes for the
    /// operator (where a self-signed certificate is) go to `err`.
    pub fn build(
        opts: &Options,
        loaded: &LoadedRecipe,
        host: &dyn Host,
        err: &mut dyn Write,
    ) -> Result<Plan, Error> {
        let templates = Templates::load(opts.templates.as_deref())?;
        let nginx = &loaded.recipe.nginx;
        let tls_material = tls::resolve(opts, host, nginx)?;
        // A certificate the operator placed by hand at the recipe's path also turns TLS on.
        let tls = tls_material.is_some()
            || matches!(host.stat(Path::new(&nginx.tls_certificate)), Ok(Some(_)));
        if opts.tls_only && !tls {
            return Err(Error::Usage(format!(
                "--tls-only needs a certificate: --tls-cert FILE --tls-key FILE, --tls-self-signed, or one at {}",
                nginx.tls_certificate
            )));
        }
        if let Some(note) = tls_material
            .as_ref()
            .and_then(|m| tls::note(m, &nginx.tls_certificate))
        {
            writeln!(err, "{note}").ok();
        }
        let facts = Facts::gather(host, &loaded.recipe);
        let mut vars = context::vars(&loaded.recipe, opts, tls);
        vars.insert("os", &facts.os_vars());
        let recipe = recipe::compile(loaded, &vars).map_err(|e| loaded.locate(e))?;
        Ok(Plan {
            recipe,
            templates,
            vars,
            facts,
            tls,
            tls_material,
        })
    }

    /// The steps of `action` in the recipe's order (before their conditions are evaluated).
    pub fn steps(&self, action: Action) -> &[Step] {
        self.recipe
            .actions
            .get(&action)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
