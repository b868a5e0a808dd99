//! hive-smb: transport crate (knows nothing of patching).
