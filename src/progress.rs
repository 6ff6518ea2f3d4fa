//! Progress while applying, per target: an indicatif spinner line on a terminal (one line per
//! target when there are several), prefixed plain lines otherwise (CI logs), on stderr; nothing
//! on stdout, which holds the plan or the JSON document.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Format;
use crate::options::Options;
use crate::report::{StepReport, Style};

/// Prints one block of lines (no trailing newline) where plain output goes: the run's stderr.
pub type Lines<'a> = &'a (dyn Fn(&str) + Sync);

/// Where the progress of every target of a run goes.
pub struct Reporter<'a> {
    /// On a terminal: the spinners, one per target.
    multi: Option<MultiProgress>,
    json: bool,
    verbose: bool,
    lines: Lines<'a>,
}

impl<'a> Reporter<'a> {
    pub fn new(opts: &Options, lines: Lines<'a>) -> Reporter<'a> {
        Reporter::for_run(opts.format, opts.interactive, opts.verbose, lines)
    }

    /// For a run in `format`, on a terminal or not (`interactive`), with `-v`s.
    pub fn for_run(
        format: Format,
        interactive: bool,
        verbose: u8,
        lines: Lines<'a>,
    ) -> Reporter<'a> {
        let multi = (interactive && format == Format::Human)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter {
            multi,
            json: format == Format::Json,
            verbose: verbose > 0,
            lines,
        }
    }

    /// The progress of one target's `total` steps; `label` (the target, or empty for the
    /// local machine) prefixes its lines.
    pub fn target(&self, label: &str, total: usize) -> Progress<'_> {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::with_draw_target(
                None,
                ProgressDrawTarget::hidden(),
            ));
            let label = if label.is_empty() {
                String::new()
            } else {
                format!("{label} ")
            };
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {label}[{{prefix}}] {{msg}} ({{elapsed}})"
                ))
                .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            reporter: self,
            bar,
            prefix: if label.is_empty() {
                String::new()
            } else {
                format!("[{label}] ")
            },
            total,
        }
    }
}

/// One target's progress.
pub struct Progress<'r> {
    reporter: &'r Reporter<'r>,
    bar: Option<ProgressBar>,
    /// `[target] ` before every plain line (empty for the local machine).
    prefix: String,
    total: usize,
}

impl Progress<'_> {
    pub fn start(&self, index: usize, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(format!("{}/{}", index + 1, self.total));
            bar.set_message(name.to_owned());
        }
    }

    pub fn finish(&self, style: &Style, index: usize, total: usize, step: &StepReport) {
        let mut text = style.step_line(index, total, step);
        text.push('\n');
        // Diffs were the dry run's business; while applying they show with -v.
        let brief;
        let step = if self.reporter.verbose {
            step
        } else {
            brief = StepReport {
                diff: None,
                ..step.clone()
            };
            &brief
        };
        if step.error.is_some() || !self.reporter.json {
            style.details(step, &mut text);
        }
        self.print(text.trim_end());
    }

    pub fn note(&self, text: &str) {
        self.print(&format!("        {text}"));
    }

    fn print(&self, text: &str) {
        match &self.bar {
            Some(bar) => {
                let text = match &self.prefix {
                    p if p.is_empty() => text.to_owned(),
                    p => prefixed(p, text),
                };
                match &self.reporter.multi {
                    Some(multi) => {
                        multi.println(text).ok();
                    }
                    None => bar.println(text),
                }
            }
            None => (self.reporter.lines)(&prefixed(&self.prefix, text)),
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Every line of `text` with `prefix` in front.
pub fn prefixed(prefix: &str, text: &str) -> String {
    if prefix.is_empty() {
        return text.to_owned();
    }
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
