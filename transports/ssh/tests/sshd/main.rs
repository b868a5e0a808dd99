//! Tests against the real OpenSSH sshd that `integration/test.sh` starts
//! (integration/services/sshd.sh). One test binary, so russh is linked once.

mod agent;
mod auth;
mod common;
mod concurrency;
mod exec;
mod sftp;
