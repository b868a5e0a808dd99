//! What went wrong on a host, in the orchestrator's terms, and how each transport's errors map
//! onto it.

use serde::{Deserialize, Serialize};

/// Why a step on a host failed, classified so the orchestrator can decide: an unreachable host
/// may come back (a reboot), a refused logon will not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RemoteError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    AuthFailed(String),
    #[error("{0}")]
    TimedOut(String),
    #[error("{0}")]
    DiskFull(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

impl From<hive_winrm::Error> for RemoteError {
    fn from(e: hive_winrm::Error) -> Self {
        use hive_winrm::Error as E;
        let text = e.to_string();
        match e {
            E::Connect { .. } | E::Connection { .. } | E::Tls { .. } => {
                RemoteError::Unreachable(text)
            }
            E::Auth { .. } => RemoteError::AuthFailed(text),
            E::Timeout { .. } | E::CommandTimeout { .. } => RemoteError::TimedOut(text),
            // ERROR_FILE_NOT_FOUND: the program of a Command started without cmd.exe
            // (WINRS_SKIP_CMD_SHELL) does not exist.
            E::Fault { ref fault, .. } if matches!(fault.wsman_code, Some(2 | 0x8007_0002)) => {
                RemoteError::NotFound(text)
            }
            _ => RemoteError::Failed(text),
        }
    }
}

impl From<hive_smb::SmbError> for RemoteError {
    fn from(e: hive_smb::SmbError) -> Self {
        use hive_smb::SmbError as E;
        let text = e.to_string();
        match e {
            E::AuthFailed { .. } => RemoteError::AuthFailed(text),
            E::ConnectionLost { .. } => RemoteError::Unreachable(text),
            E::Timeout { .. } => RemoteError::TimedOut(text),
            E::DiskFull { .. } => RemoteError::DiskFull(text),
            E::NotFound { .. } | E::ShareNotFound { .. } => RemoteError::NotFound(text),
            _ => RemoteError::Failed(text),
        }
    }
}

impl From<hive_ssh::SshError> for RemoteError {
    fn from(e: hive_ssh::SshError) -> Self {
        use hive_ssh::SshError as E;
        let text = e.to_string();
        if e.is_not_found() {
            return RemoteError::NotFound(text);
        }
        match e {
            // A dropped connection, or one closed at once (a host going down or rebooting):
            // the host may come back, as with WinRM.
            E::Unreachable { .. } | E::Protocol { .. } | E::NoExitStatus { .. } => {
                RemoteError::Unreachable(text)
            }
            // A host presenting another key will not fix itself either: never retried as if
            // it were down.
            E::AuthRefused { .. }
            | E::HostKeyMismatch { .. }
            | E::KeyFile { .. }
            | E::Agent { .. } => RemoteError::AuthFailed(text),
            E::ConnectTimeout { .. } | E::CommandTimedOut { .. } => RemoteError::TimedOut(text),
            _ => RemoteError::Failed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ssh_errors_are_classified_for_the_orchestrator() {
        use hive_ssh::SshError as E;
        let refused = E::AuthRefused {
            host: "h:22".into(),
            user: "u".into(),
            method: "password",
            fix: "check the password".into(),
        };
        assert!(matches!(
            RemoteError::from(refused),
            RemoteError::AuthFailed(_)
        ));
        let mismatch = E::HostKeyMismatch {
            host: "h:22".into(),
            expected: "SHA256:a".into(),
            presented: "SHA256:b".into(),
        };
        assert!(matches!(
            RemoteError::from(mismatch),
            RemoteError::AuthFailed(_)
        ));
        let down = E::Unreachable {
            host: "h:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(matches!(
            RemoteError::from(down),
            RemoteError::Unreachable(_)
        ));
        let dropped = E::NoExitStatus {
            host: "h:22".into(),
        };
        assert!(matches!(
            RemoteError::from(dropped),
            RemoteError::Unreachable(_)
        ));
        let slow = E::ConnectTimeout {
            host: "h:22".into(),
            after: Duration::from_secs(1),
        };
        assert!(matches!(RemoteError::from(slow), RemoteError::TimedOut(_)));
    }
}
