//! Which machines a run is for: `--target` and `--targets FILE` (checked before any connection).

use std::path::Path;

use crate::cli::Cli;
use crate::error::Error;
use crate::host::ssh::Target;

/// The targets of `--target` and `--targets FILE`, in that order; `None` for the local machine.
pub fn targets(cli: &Cli) -> Result<Option<Vec<Target>>, Error> {
    let mut all = cli.target.clone();
    if let Some(file) = &cli.targets_file {
        all.extend(read_targets_file(file)?);
    }
    if all.is_empty() {
        if cli.targets_file.is_some() {
            return Err(Error::Usage(format!(
                "--targets {}: no target in the file",
                cli.targets_file
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            )));
        }
        // An inventory's hosts are SSH targets too (fleet::inventory checks the options).
        if !cli.ssh_option.is_empty() && cli.inventory.is_none() {
            return Err(Error::Usage(
                "--ssh-option applies only with --target, --targets or --inventory".into(),
            ));
        }
        return Ok(None);
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in &all {
        if !seen.insert(t.to_string()) {
            return Err(Error::Usage(format!("target {t} is given twice")));
        }
    }
    crate::host::ssh::check_options(&cli.ssh_option).map_err(|e| Error::Usage(e.0))?;
    Ok(Some(all))
}

/// `--targets FILE`: one target per line; blank lines and `#` comments are skipped.
pub(super) fn read_targets_file(path: &Path) -> Result<Vec<Target>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("--targets {}: {e}", path.display())))?;
    let mut targets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let t = line
            .parse::<Target>()
            .map_err(|e| Error::Usage(format!("--targets {}:{}: {e}", path.display(), n + 1)))?;
        targets.push(t);
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_files_skip_comments_and_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hosts");
        std::fs::write(
            &f,
            "# fleet\nroot@10.0.0.1\n\n  [::1]:2222  # lab\nweb;rm\n",
        )
        .unwrap();
        let err = read_targets_file(&f).unwrap_err().to_string();
        assert!(err.contains(":5:"), "{err}");
        std::fs::write(&f, "# fleet\nroot@10.0.0.1\n\n  [::1]:2222  # lab\n").unwrap();
        let t = read_targets_file(&f).unwrap();
        assert_eq!(
            t.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            ["root@10.0.0.1", "[::1]:2222"]
        );
    }

    #[test]
    fn ssh_options_apply_to_targets_and_to_an_inventory_only() {
        use clap::Parser;
        let opt = ["--ssh-option", "IdentityFile=/k"];
        let with_inventory = Cli::try_parse_from(
            [&["telem-deploy", "--inventory", "fleet.yaml"][..], &opt].concat(),
        )
        .unwrap();
        assert!(matches!(targets(&with_inventory), Ok(None)));
        let alone =
            Cli::try_parse_from([&["telem-deploy", "-H", "t.example"][..], &opt].concat()).unwrap();
        let err = targets(&alone).unwrap_err().to_string();
        assert!(err.contains("--target, --targets or --inventory"), "{err}");
    }
}
