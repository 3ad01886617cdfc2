//! Showing problems and progress to a person (or a log, when stderr is not a terminal).

use std::io::IsTerminal;
use std::time::Duration;

use faaso_schema::Problem;
use indicatif::{ProgressBar, ProgressStyle};

/// Prints every problem, one per line, and a count.
pub fn problems(problems: &[Problem]) {
    for problem in problems {
        eprintln!("error: {problem}");
    }
    if problems.len() > 1 {
        eprintln!("{} problems found", problems.len());
    }
}

/// Progress of one long step: a spinner with the latest output line on a terminal, plain
/// prefixed lines otherwise (CI logs keep every line).
pub struct Progress {
    bar: Option<ProgressBar>,
    prefix: String,
}

impl Progress {
    /// Starts showing progress for `prefix` (usually a funko name).
    pub fn start(prefix: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(prefix.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            prefix: prefix.to_owned(),
        }
    }

    /// Shows one line of output.
    pub fn line(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(line.to_owned()),
            None => eprintln!("{}: {line}", self.prefix),
        }
    }

    /// Ends the display with a final line.
    pub fn finish(self, line: &str) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{}: {line}", self.prefix);
    }
}
