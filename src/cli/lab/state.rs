//! The lab folder's `lab.json`: what `hive lab down` needs to stop exactly the lab it started
//! (the fleet process, its Samba), and what `hive lab up` checks so two labs never share a folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How the lab's hosts' C: drives are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriveMode {
    /// A Samba of the lab's own exports the drives; hive reaches them over SMB as on a real fleet.
    Samba,
    /// No Samba here: hive writes the drives' folders directly (`HIVE_LAB_DRIVES`).
    LocalDrive,
}

/// One simulated host as the inventory needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// The running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The fleet process (`hive lab serve`).
    pub pid: u32,
    /// The lab's own smbd, when it runs one.
    pub smbd_pid: Option<u32>,
    pub smb_port: Option<u16>,
    pub mode: DriveMode,
    pub user: String,
    pub drives: PathBuf,
    pub hosts: Vec<LabHost>,
}

pub const STATE_FILE: &str = "lab.json";

impl LabState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// The state of the lab in `dir`, or `None` when no lab was started there.
    pub fn load(dir: &Path) -> Result<Option<LabState>, String> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Written whole or not at all: `up` waits for this file to learn that the fleet listens.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Whether a process with this id still exists (signal 0 checks without sending anything).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for the process; no memory is involved.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Send SIGTERM (or SIGKILL) to one process by id.
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: sending a signal to one process id; no memory is involved.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_missing_file_is_no_lab() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(LabState::load(dir.path()), Ok(None));
        let s = LabState {
            pid: 42,
            smbd_pid: Some(43),
            smb_port: Some(4450),
            mode: DriveMode::Samba,
            user: "root".into(),
            drives: dir.path().join("drives"),
            hosts: vec![LabHost {
                name: "CANARY01".into(),
                address: "127.0.0.1".into(),
                port: 5985,
            }],
        };
        s.save(dir.path()).expect("saved");
        assert_eq!(LabState::load(dir.path()), Ok(Some(s)));
        std::fs::write(LabState::path(dir.path()), "{").expect("write");
        let err = LabState::load(dir.path()).expect_err("torn file");
        assert!(err.contains("lab.json"), "{err}");
    }

    #[test]
    fn this_process_is_alive() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
