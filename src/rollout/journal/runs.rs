//! Run folders: where a run's journal lives, run ids (made from the clock, typed back on the
//! command line, so checked before they become a path), and the promote marker.

use std::path::{Path, PathBuf};

use super::{JOURNAL_FILE, JournalError, PROMOTE_FILE};
use crate::time::{StampFormat, utc_now};

/// The folder of all runs in a repository.
pub fn runs_dir(repo_root: &Path) -> PathBuf {
    repo_root.join("runs")
}

/// Run ids become folder names and come back from the command line: no separators, no `..`.
pub fn validate_run_id(run: &str) -> Result<(), JournalError> {
    let ok = !run.is_empty()
        && run.len() <= 64
        && !run.starts_with('.')
        && !run.contains("..")
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(JournalError::BadRunId {
            run: run.to_string(),
        })
    }
}

/// The folder of one run, checked to exist.
pub fn run_dir(repo_root: &Path, run: &str) -> Result<PathBuf, JournalError> {
    validate_run_id(run)?;
    let dir = runs_dir(repo_root).join(run);
    if dir.join(JOURNAL_FILE).is_file() {
        Ok(dir)
    } else {
        Err(JournalError::NoSuchRun {
            run: run.to_string(),
            runs: runs_dir(repo_root),
        })
    }
}

/// A new run id from the clock: `20261125-143200` (UTC), sortable, with `-2`, `-3`... if two runs
/// start within the same second.
pub fn new_run_id(repo_root: &Path) -> String {
    let base = utc_now(StampFormat::RunId);
    let runs = runs_dir(repo_root);
    let mut id = base.clone();
    let mut n = 2;
    while runs.join(&id).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// Release a run paused after its canaries: `hive rollout promote <run>`. The marker is a file so
/// that promoting works from any shell, while the paused hive waits or after it exited.
pub fn promote(repo_root: &Path, run: &str, by: &str) -> Result<PathBuf, JournalError> {
    let dir = run_dir(repo_root, run)?;
    let path = dir.join(PROMOTE_FILE);
    let text = format!("promoted by {by} at {}\n", utc_now(StampFormat::RunId));
    crate::repo::write_atomic(&path, text.as_bytes()).map_err(|e| JournalError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_refuse_paths() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_run_id(bad).is_err(), "{bad}");
        }
        assert!(validate_run_id("20261125-143200-2").is_ok());
    }
}
