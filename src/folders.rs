//! HIVE's folders as they come off a Windows share: `Hotfixes`, `MACHINES`, `tbe` are the same
//! folder to Windows, and an admin copying the old HIVE folder to a Linux orchestrator keeps
//! whatever case the 2001 scripts or a colleague gave them. hive finds a folder or file by name
//! in any letter case, and creates new ones in its own (lowercase) spelling.

use std::path::{Path, PathBuf};

/// `parent/name` as it exists on disk in any letter case: the exact spelling when present, else
/// the first entry (in name order, so the choice is stable) that matches ignoring ASCII case,
/// else `parent/name` as given (for the caller to create).
pub fn child(parent: &Path, name: &str) -> PathBuf {
    let exact = parent.join(name);
    if exact.exists() {
        return exact;
    }
    match any_case(parent, name).into_iter().next() {
        Some(found) => found,
        None => exact,
    }
}

/// Every entry of `parent` whose name equals `name` ignoring ASCII case, in name order. More than
/// one (`Hotfixes` and `hotfixes` side by side, possible only off Windows) is for the caller to
/// report.
pub fn any_case(parent: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_found_in_any_case_and_a_missing_one_keeps_the_asked_spelling() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("HotFixes")).unwrap();
        assert_eq!(child(dir.path(), "hotfixes"), dir.path().join("HotFixes"));
        assert_eq!(child(dir.path(), "tbe"), dir.path().join("tbe"));
        std::fs::create_dir(dir.path().join("hotfixes")).unwrap();
        assert_eq!(child(dir.path(), "hotfixes"), dir.path().join("hotfixes"));
        assert_eq!(any_case(dir.path(), "HOTFIXES").len(), 2);
    }
}
