//! How the commands that reach hosts open them: WinRM (or SSH) plus SMB as configured, except
//! on a `hive lab` fleet in local-drive mode, whose drives are folders on this machine.

use std::sync::Arc;

use hive::remote::{Connector, NetworkConnector, Timeouts};

pub fn connector(timeouts: Timeouts) -> Arc<dyn Connector> {
    #[cfg(feature = "demo")]
    if let Some(lab) = super::lab::local_drive_connector(timeouts) {
        return lab;
    }
    Arc::new(NetworkConnector::new(timeouts))
}
