//! Following a change on the server (an upload, a scale) until the funko has converged or
//! failed, from the server's status board.

use std::time::{Duration, Instant};

use faaso_reconciler::FunkoStatus;

use super::Remote;
use crate::report::Progress;

/// How often the board is read.
const POLL: Duration = Duration::from_millis(400);
/// How long the first pass after a change must stand unfollowed to count: a pass already
/// running when the change landed is always followed by another one within the server's
/// debounce (150 ms), so one that is not was started after the change.
const SETTLE: Duration = Duration::from_millis(1200);

/// How a followed change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every instance current and ready.
    Converged(Box<FunkoStatus>),
    /// The server reports why the funko is not where it should be.
    Failed(String),
}

/// Waits until a pass that saw a change made after pass `before` shows `name` converged or in
/// error, showing each new state; errors after `timeout`.
pub async fn follow(
    remote: &Remote,
    name: &str,
    before: u64,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let progress = Progress::start(name);
    let mut shown = String::new();
    let mut next_pass_seen: Option<Instant> = None;
    loop {
        let board = remote.board().await?;
        let status = board.funkos.iter().find(|f| f.name == name);
        let line = describe(status);
        if line != shown {
            progress.line(&line);
            shown = line;
        }
        if board.pass == before + 1 {
            next_pass_seen.get_or_insert_with(Instant::now);
        }
        let fresh =
            board.pass >= before + 2 || next_pass_seen.is_some_and(|seen| seen.elapsed() >= SETTLE);
        match status {
            Some(status) if fresh => {
                if let Some(error) = &status.error {
                    progress.finish("failed");
                    return Ok(Outcome::Failed(error.clone()));
                }
                if status.converged() {
                    progress.finish("converged");
                    return Ok(Outcome::Converged(Box::new(status.clone())));
                }
            }
            _ => {}
        }
        if started.elapsed() >= timeout {
            progress.finish("still not converged");
            anyhow::bail!(
                "`{name}` did not converge within {}; see `faaso status` and `faaso logs {name}`",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One line saying where a funko stands.
fn describe(status: Option<&FunkoStatus>) -> String {
    let Some(status) = status else {
        return "waiting for the server to pick it up".to_owned();
    };
    if let Some(error) = &status.error {
        return format!("error: {}", error.lines().next().unwrap_or_default());
    }
    let Some(desired) = status.desired else {
        return "not a valid funko".to_owned();
    };
    let mut line = format!("{}/{desired} ready", status.ready);
    if status.outdated > 0 {
        line.push_str(&format!(", {} outdated", status.outdated));
    }
    if let Some(image) = &status.image {
        line.push_str(&format!(" ({image})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(desired: Option<u32>, ready: u32, outdated: u32, error: Option<&str>) -> FunkoStatus {
        FunkoStatus {
            name: "hello".into(),
            desired,
            ready,
            outdated,
            paused: 0,
            stopped: 0,
            autoscaled: None,
            last_decision: None,
            converging: None,
            image: None,
            image_created: None,
            error: error.map(str::to_owned),
            config_hash: None,
        }
    }

    #[test]
    fn states_read_as_a_person_would_say_them() {
        assert_eq!(describe(None), "waiting for the server to pick it up");
        assert_eq!(
            describe(Some(&status(Some(2), 1, 1, None))),
            "1/2 ready, 1 outdated"
        );
        assert_eq!(
            describe(Some(&status(Some(1), 0, 0, Some("build failed\nstep 3")))),
            "error: build failed"
        );
        assert_eq!(
            describe(Some(&status(None, 0, 0, None))),
            "not a valid funko"
        );
    }
}
