//! hive-winrm: transport crate (knows nothing of patching).
