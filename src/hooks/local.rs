//! Running a hook command on this machine: `sh -c`, a clean environment, its own process group
//! killed whole on timeout, output captured.
//!
//! The environment is cleared and only a few harmless variables are passed on (`PATH`, `HOME`,
//! locale, ...) plus the `HIVE_*` ones the hook is for: hive's own environment may hold a
//! credential (`credential = "env:VAR"`), and a secret must never reach a hook's environment or
//! command line. A hook that needs a token reads it from its own file.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Variables a hook inherits from hive's environment: none of them is a secret.
const PASSED_ON: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHELL",
];

/// How a local hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRun {
    /// The exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output then standard error, as text.
    pub output: String,
}

/// Run `command` with `env` added, for at most `timeout`. `Err` says why it did not finish:
/// it could not start, or it ran too long (then its whole process group is killed, so a hook
/// that started children leaves none behind).
pub async fn run(
    command: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<LocalRun, String> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(command)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for k in PASSED_ON {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = c.spawn().map_err(|e| format!("could not start sh: {e}"))?;
    let pid = child.id();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((status, out, err)) => {
            let status = status.map_err(|e| format!("could not wait for the hook: {e}"))?;
            let mut output = String::from_utf8_lossy(&out).into_owned();
            output.push_str(&String::from_utf8_lossy(&err));
            Ok(LocalRun {
                code: status.code().or_else(|| status.signal().map(|s| 128 + s)),
                output,
            })
        }
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: kill(2) on our child's process group; no memory is involved.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            Err(format!(
                "no end within {}; its process group was killed",
                crate::rollout::format_duration(timeout)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_exit_code_and_only_hive_variables() {
        // SAFETY: set before any thread of this test reads it; the name is this test's own.
        unsafe { std::env::set_var("HIVE_TEST_HOOK_SECRET", "s3cret") };
        let env = vec![("HIVE_HOST_NAME".to_string(), "web01".to_string())];
        let r = run(
            "echo host=$HIVE_HOST_NAME secret=${HIVE_TEST_HOOK_SECRET:-none}; echo oops >&2; exit 3",
            &env,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(r.code, Some(3));
        assert_eq!(r.output, "host=web01 secret=none\noops\n");
    }

    #[tokio::test]
    async fn a_hanging_hook_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-alive");
        let t0 = std::time::Instant::now();
        // The child outlives its shell unless the whole group is killed.
        let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let e = run(&cmd, &[], Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.contains("no end within 300ms"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "a child of the hook survived the kill");
    }
}
