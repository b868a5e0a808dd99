//! hive-ssh: transport crate (knows nothing of patching).
