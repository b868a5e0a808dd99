//! The harness's MIT KDC (integration/services/kdc.sh): its realm, admin principal, service keytab
//! and a way to run MIT's own tools against it, so tests can add principals and get tickets.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A harness variable, or a loud failure naming the harness.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts the kdc service)")
    })
}

/// The running KDC as the harness describes it.
pub struct Kdc {
    pub realm: String,
    pub config: PathBuf,
    pub user: String,
    pub password: String,
    pub keytab: PathBuf,
    kadmin: String,
}

impl Kdc {
    pub fn from_env() -> Kdc {
        Kdc {
            realm: env("HIVE_TEST_KDC_REALM"),
            config: PathBuf::from(env("HIVE_TEST_KDC_CONFIG")),
            user: env("HIVE_TEST_KDC_USER"),
            password: env("HIVE_TEST_KDC_PASSWORD"),
            keytab: PathBuf::from(env("HIVE_TEST_KDC_KEYTAB")),
            kadmin: env("HIVE_TEST_KDC_KADMIN"),
        }
    }

    /// `user@REALM`.
    pub fn principal(&self) -> String {
        format!("{}@{}", self.user, self.realm)
    }

    /// An MIT tool run against this realm's krb5.conf, with `stdin` fed to it.
    pub fn tool(&self, program: &str, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(program)
            .args(args)
            .env("KRB5_CONFIG", &self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin.as_bytes())
            .expect("write to the tool's stdin");
        child.wait_with_output().expect("wait for the tool")
    }

    /// A fresh credential cache in `dir` holding the admin's TGT, as `kinit` leaves it.
    pub fn kinit(&self, dir: &Path) -> PathBuf {
        let ccache = dir.join("ccache");
        let name = format!("FILE:{}", ccache.display());
        let out = self.tool(
            "kinit",
            &["-c", &name, &self.principal()],
            &format!("{}\n", self.password),
        );
        assert!(
            out.status.success(),
            "kinit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ccache
    }

    /// Run kadmin.local commands (one per line) on the realm's database.
    pub fn kadmin(&self, commands: &str) -> Output {
        let mut words = self.kadmin.split_whitespace();
        let program = words.next().expect("HIVE_TEST_KDC_KADMIN names a program");
        let args: Vec<&str> = words.collect();
        let mut child = Command::new(program)
            .args(&args)
            .env("KRB5_CONFIG", &self.config)
            .env("KRB5_KDC_PROFILE", self.config.with_file_name("kdc.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(commands.as_bytes())
            .expect("write to kadmin.local");
        child.wait_with_output().expect("wait for kadmin.local")
    }
}
