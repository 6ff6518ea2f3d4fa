//! Progress while applying: an indicatif spinner per step on a terminal, plain lines otherwise
//! (CI logs), nothing on stdout in JSON mode.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Format;
use crate::options::Options;
use crate::report::{StepReport, Style};

pub struct Progress {
    bar: Option<ProgressBar>,
    json: bool,
    verbose: bool,
    total: usize,
}

impl Progress {
    pub fn new(opts: &Options, total: usize) -> Progress {
        let bar = (opts.interactive && opts.format == Format::Human).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{prefix}] {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            json: opts.format == Format::Json,
            verbose: opts.verbose > 0,
            total,
        }
    }

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
        let step = if self.verbose {
            step
        } else {
            brief = StepReport {
                diff: None,
                ..step.clone()
            };
            &brief
        };
        if step.error.is_some() || !self.json {
            style.details(step, &mut text);
        }
        self.print(text.trim_end());
    }

    pub fn note(&self, text: &str) {
        self.print(&format!("        {text}"));
    }

    fn print(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
