//! A host's C: drive: a real folder on this machine (what Samba exports as C$, what the SSH face's
//! `sftp-server` serves), laid out from the files the host's configuration lists.
//!
//! Laying out a drive costs a handful of file-system calls per host (the folder, `Windows\Temp`,
//! each configured file), which at 100,000 hosts is minutes before the first listener and again
//! to delete them. So a fleet may start with [`DriveSetup::OnFirstUse`]: a drive is laid out the
//! first time anything asks for a real path on it (a command that reads or writes a file, the SSH
//! face, a test), and until then the probe's read-only questions (does this file exist, what is
//! its version) are answered from the configured files in memory, whose bytes are shared by every
//! host with the same image. The answer is the same either way, because an untouched drive holds
//! exactly those files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::fleet::FleetError;

/// When a fleet writes its hosts' drives to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DriveSetup {
    /// At fleet start: needed when something outside winsim reads the folders from the start
    /// (Samba's `fleet` share).
    #[default]
    AtStart,
    /// The first time winsim itself needs a real path on the drive; fleets only reached through
    /// winsim's faces (WinRM, the probe) start in a fraction of the time.
    OnFirstUse,
}

/// One configured file: where it goes and its bytes (shared between hosts).
#[derive(Debug, Clone)]
pub(crate) struct DriveFile {
    /// Path components below the drive root, as configured (their letter case is kept on disk).
    pub parts: Vec<String>,
    pub bytes: Arc<[u8]>,
}

/// Whether the drive is on disk yet.
#[derive(Debug)]
enum Laid {
    No,
    Yes,
    /// Laying it out failed (logged once); file operations on the drive fail as they would on a
    /// broken disk.
    Failed,
}

/// A host's C: drive and what it starts with.
#[derive(Debug)]
pub(crate) struct Drive {
    root: PathBuf,
    /// `Windows\Temp` (below the system root), where installers get staged.
    temp: Vec<String>,
    files: Vec<DriveFile>,
    /// Lower-case keys of the configured files ([`key`]), for answers from memory.
    index: HashSet<String>,
    laid: Mutex<Laid>,
}

/// The case-insensitive key of a path below the drive root (NTFS and Samba ignore case).
pub(crate) fn key<S: AsRef<str>>(parts: &[S]) -> String {
    let mut k = String::new();
    for p in parts {
        k.push('\\');
        k.push_str(&p.as_ref().to_ascii_lowercase());
    }
    k
}

impl Drive {
    pub(crate) fn new(root: &Path, temp: Vec<String>, files: Vec<DriveFile>) -> Drive {
        Drive {
            root: root.to_path_buf(),
            temp,
            index: files.iter().map(|f| key(&f.parts)).collect(),
            files,
            laid: Mutex::new(Laid::No),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the drive to disk unless it is there already. `host` names the host in errors.
    pub(crate) fn lay_out(&self, host: &str) -> Result<(), FleetError> {
        let mut laid = self.laid.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*laid, Laid::No) {
            return Ok(());
        }
        let result = self.write(host);
        *laid = if result.is_ok() {
            Laid::Yes
        } else {
            Laid::Failed
        };
        result
    }

    /// [`Drive::lay_out`] where no error can be returned: a failure is logged, and the file
    /// operations that follow fail on the missing files.
    pub(crate) fn ensure(&self, host: &str) {
        if let Err(e) = self.lay_out(host) {
            tracing::error!("{e}");
        }
    }

    /// True until the drive is on disk: its files are then exactly the configured ones.
    pub(crate) fn untouched(&self) -> bool {
        matches!(
            *self.laid.lock().unwrap_or_else(|p| p.into_inner()),
            Laid::No
        )
    }

    /// A configured file's bytes by path components below the root (any letter case); `None`
    /// when the configuration has no such file. Only meaningful while [`Drive::untouched`].
    pub(crate) fn configured(&self, parts: &[&str]) -> Option<Arc<[u8]>> {
        let k = key(parts);
        if !self.index.contains(&k) {
            return None;
        }
        self.files
            .iter()
            .find(|f| key(&f.parts) == k)
            .map(|f| Arc::clone(&f.bytes))
    }

    fn write(&self, host: &str) -> Result<(), FleetError> {
        let disk = |path: &Path, source| FleetError::Disk {
            host: host.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let temp = self.resolve(&self.temp);
        std::fs::create_dir_all(&temp).map_err(|e| disk(&temp, e))?;
        for f in &self.files {
            let path = self.resolve(&f.parts);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| disk(parent, e))?;
            }
            std::fs::write(&path, &f.bytes).map_err(|e| disk(&path, e))?;
        }
        Ok(())
    }

    /// The real path of `parts`, each component matched case-insensitively against what exists
    /// (as NTFS and Samba do); components that do not exist are taken as written.
    pub(crate) fn resolve<S: AsRef<str>>(&self, parts: &[S]) -> PathBuf {
        let mut out = self.root.clone();
        for c in parts {
            out = resolve_component(&out, c.as_ref());
        }
        out
    }
}

fn resolve_component(dir: &Path, name: &str) -> PathBuf {
    let exact = dir.join(name);
    if exact.exists() {
        return exact;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().eq_ignore_ascii_case(name) {
                return e.path();
            }
        }
    }
    exact
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(root: &Path) -> Drive {
        Drive::new(
            root,
            vec!["Windows".into(), "Temp".into()],
            vec![DriveFile {
                parts: vec!["Windows".into(), "System32".into(), "ntoskrnl.exe".into()],
                bytes: Arc::from(&b"MZ"[..]),
            }],
        )
    }

    #[test]
    fn an_untouched_drive_answers_from_its_configuration_in_any_case() {
        let dir = tempfile::tempdir().unwrap();
        let d = drive(&dir.path().join("H1"));
        assert!(d.untouched());
        let bytes = d.configured(&["WINDOWS", "system32", "NTOSKRNL.EXE"]);
        assert_eq!(bytes.as_deref(), Some(&b"MZ"[..]));
        assert!(d.configured(&["Windows", "System32", "hal.dll"]).is_none());
        assert!(
            d.configured(&["Windows", "System32"]).is_none(),
            "a folder is no file"
        );
        assert!(!dir.path().join("H1").exists(), "nothing written yet");
    }

    #[test]
    fn laying_out_writes_the_configured_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = drive(&dir.path().join("H1"));
        d.lay_out("H1").unwrap();
        assert!(!d.untouched());
        let kernel = dir.path().join("H1/Windows/System32/ntoskrnl.exe");
        assert_eq!(std::fs::read(&kernel).unwrap(), b"MZ");
        assert!(dir.path().join("H1/Windows/Temp").is_dir());
        // A host's change survives: the layout is not written again.
        std::fs::write(&kernel, b"MZ2").unwrap();
        d.lay_out("H1").unwrap();
        assert_eq!(std::fs::read(&kernel).unwrap(), b"MZ2");
        assert_eq!(
            d.resolve(&["windows", "SYSTEM32", "NtosKrnl.exe"]),
            kernel,
            "resolved in any letter case"
        );
    }

    #[test]
    fn a_drive_that_cannot_be_written_names_the_host_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("H1");
        std::fs::write(&blocker, b"a file where the drive should be").unwrap();
        let e = drive(&blocker).lay_out("H1").unwrap_err().to_string();
        assert!(e.contains("host H1") && e.contains("H1"), "{e}");
    }
}
