//! Staging: copy each installer to `C:\Windows\Temp\hive\<run>\` and check its SHA-256 with a
//! tool ON THE TARGET before anything runs. The target's own hash proves that the bytes the
//! installer will execute are the approved ones (an AV quarantine, a concurrent writer or a wrong
//! share mapping would all show here). Where the transport can, the host hashes each file while it
//! arrives ([`crate::remote::follow`]) and the check before anything runs only confirms that the
//! file was not written since; elsewhere the host hashes it after the copy, and the copy's own
//! check (the SMB layer hashes what it wrote) proves the transfer.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::quote::{command_line, ps_literal};
use super::{DeployVerdict, HostContext, HostPlan, Stop};
use crate::catalog::model::InstallerKind;
use crate::events::{Step, StepOutcome};
use crate::remote::follow::Followed;
use crate::remote::{Command, FileStamp, RemoteError};

/// Where each installer of the plan lives on the host (deterministic, so a resumed run and the
/// clean-up find them without a record).
#[derive(Debug, Clone, Default)]
pub struct Staged {
    /// Plan index → remote path.
    pub installers: BTreeMap<usize, String>,
    pub qchain: Option<String>,
    /// Plan index → the remote paths of a `hiveexec.cmd` folder's other files.
    pub companions: BTreeMap<usize, Vec<String>>,
    /// Per-bulletin folders (`hiveexec.cmd` ones), removed before [`Staged::dir`].
    pub subdirs: Vec<String>,
    /// The folder to remove at the end.
    pub dir: String,
}

/// The remote paths for a plan. A `hiveexec.cmd` bulletin gets a folder of its own, as it had
/// on the HIVE share: its script calls the files beside it by name.
pub fn staged_paths(ctx: &HostContext<'_>, plan: &HostPlan, qchain: bool) -> Staged {
    let dir = ctx.stage_dir();
    let mut staged = Staged {
        qchain: qchain.then(|| format!(r"{dir}\qchain.exe")),
        dir: dir.clone(),
        ..Staged::default()
    };
    for (n, i) in plan.installs.iter().enumerate() {
        if i.installer.recipe.kind == InstallerKind::HiveExec {
            let folder = format!(r"{dir}\{}", i.bulletin);
            staged
                .installers
                .insert(n, format!(r"{folder}\{}", i.installer.file_name));
            staged.companions.insert(
                n,
                i.installer
                    .companions
                    .iter()
                    .map(|c| format!(r"{folder}\{}", c.file_name))
                    .collect(),
            );
            staged.subdirs.push(folder);
        } else {
            staged
                .installers
                .insert(n, format!(r"{dir}\{}", i.installer.file_name));
        }
    }
    staged
}

/// Stage the installers at plan indexes `todo` (and qchain.exe when given), then verify each on
/// the target. Any failure stops the host: nothing has run yet.
pub(crate) async fn stage_all(
    ctx: &mut HostContext<'_>,
    plan: &HostPlan,
    todo: &[usize],
    qchain_tool: Option<&Path>,
) -> Result<Staged, Stop> {
    let staged = staged_paths(ctx, plan, qchain_tool.is_some());
    // (patch, remote path, SHA-256 wanted, the host's hash while the file arrived)
    let mut to_check: Vec<(String, String, String, Option<HashedOnArrival>)> = Vec::new();
    for &i in todo {
        let install = &plan.installs[i];
        if install.installer.sha256 != install.expected_sha256 {
            return Err(Stop::new(
                DeployVerdict::HashMismatch,
                format!(
                    "{}: the repository's {} has SHA-256 {} but the catalog says {}",
                    install.patch,
                    install.installer.path.display(),
                    install.installer.sha256,
                    install.expected_sha256
                ),
            ));
        }
        let remote = &staged.installers[&i];
        let followed = stage_one(
            ctx,
            &install.patch,
            &install.installer.path,
            install.installer.bytes,
            remote,
            &install.expected_sha256,
        )
        .await?;
        to_check.push((
            install.patch.clone(),
            remote.clone(),
            install.expected_sha256.clone(),
            followed,
        ));
        let beside = staged.companions.get(&i).map(Vec::as_slice).unwrap_or(&[]);
        for (file, remote) in install.installer.companions.iter().zip(beside) {
            let followed = stage_one(
                ctx,
                &install.patch,
                &file.path,
                file.bytes,
                remote,
                &file.sha256,
            )
            .await?;
            to_check.push((
                install.patch.clone(),
                remote.clone(),
                file.sha256.clone(),
                followed,
            ));
        }
    }
    if let (Some(local), Some(remote)) = (qchain_tool, &staged.qchain) {
        let bytes = std::fs::read(local).map_err(|e| {
            Stop::new(
                DeployVerdict::StageFailed,
                format!("cannot read {}: {e}", local.display()),
            )
        })?;
        let sha = sha256_hex(&bytes);
        let followed = stage_one(ctx, "qchain", local, bytes.len() as u64, remote, &sha).await?;
        to_check.push(("qchain".into(), remote.clone(), sha, followed));
    }
    for (patch, remote, want, followed) in &to_check {
        verify_on_target(ctx, patch, remote, want, followed.as_ref()).await?;
    }
    Ok(staged)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The host's hash of a file taken while it arrived, and the one wanted.
#[derive(Debug, Clone)]
struct HashedOnArrival {
    sha256: String,
    /// The file's size and write time just after: unchanged at the check, the hash still holds.
    stamp: FileStamp,
}

/// Copy one file unless the host already has it. Returns the host's hash of it taken while it
/// arrived, when that is the one wanted; `None` when the host still has to hash it
/// ([`verify_on_target`]).
async fn stage_one(
    ctx: &mut HostContext<'_>,
    patch: &str,
    local: &Path,
    bytes: u64,
    remote: &str,
    want: &str,
) -> Result<Option<HashedOnArrival>, Stop> {
    let step = Step::Stage {
        patch: patch.to_string(),
        file: remote.to_string(),
        bytes,
    };
    ctx.started(&step)?;
    let fail = |ctx: &HostContext<'_>, why: String| {
        let _ = ctx.finished(&step, false, StepOutcome::Failed, &why);
        Err(Stop::new(DeployVerdict::StageFailed, why))
    };
    match ctx.target.remote_sha256(remote).await {
        Ok(Some(have)) if have.eq_ignore_ascii_case(want) => {
            ctx.finished(
                &step,
                true,
                StepOutcome::Cached,
                "same SHA-256 already on the host",
            )?;
            return Ok(None);
        }
        Ok(_) => {}
        Err(e) => return fail(ctx, format!("{patch}: cannot check {remote}: {e}")),
    }
    let mut put = copy_with_progress(ctx, &step, local, remote, bytes).await;
    let mut lost = None;
    if let Err(RemoteError::Unreachable(why) | RemoteError::TimedOut(why)) = &put {
        // A connection lost mid-copy (a network blip, a reset SMB session, a link that went
        // silent until a request timed out): once more on a new connection, which resumes
        // after what is verifiably on the host (and names the old SMB session, so the host lets
        // go of its open at once). A host that is down fails again at once, or after the
        // connect timeout.
        lost = Some(why.clone());
        ctx.target.disconnect();
        put = copy_with_progress(ctx, &step, local, remote, bytes).await;
    }
    let copied = match put {
        Ok(c) => c,
        Err(e) => {
            return match lost {
                Some(first) => fail(
                    ctx,
                    format!(
                        "{patch}: copy to {remote} failed: {first}; again on a new connection: {e}"
                    ),
                ),
                None => fail(ctx, format!("{patch}: copy to {remote} failed: {e}")),
            };
        }
    };
    if let Some(sent) = &copied.sent_sha256
        && !sent.eq_ignore_ascii_case(want)
    {
        return fail(
            ctx,
            format!("{patch}: copied {remote} but its SHA-256 is {sent} (expected {want})"),
        );
    }
    let mut detail = match lost {
        Some(why) => format!(
            "{} bytes, resumed at byte {} on a new connection after: {why}",
            copied.bytes, copied.resumed_from
        ),
        None => format!("{} bytes", copied.bytes),
    };
    let verified = match (copied.host, copied.stamp) {
        (None, _) => None,
        (Some(Followed::Hashed { bytes: n, sha256 }), Some(stamp))
            if n == bytes && stamp.bytes == bytes && sha256 == want.to_ascii_lowercase() =>
        {
            Some(HashedOnArrival { sha256, stamp })
        }
        (Some(Followed::Hashed { .. }), None) => {
            detail.push_str("; the host's file system gave no write time, so it is hashed after");
            None
        }
        (Some(Followed::Hashed { bytes: n, sha256 }), _) => {
            // Not trusted either way: the file is hashed again after the copy, and that hash
            // decides (a follower that saw other bytes than the file now holds is worth a look).
            detail.push_str(&format!(
                "; the host's hash while copying was {sha256} over {n} bytes, so it is hashed again"
            ));
            None
        }
        (Some(Followed::Failed(why)), _) => {
            detail.push_str(&format!(
                "; the host could not hash it while copying ({why}), so it is hashed after"
            ));
            None
        }
    };
    ctx.finished(&step, true, StepOutcome::Copied, &detail)?;
    Ok(verified)
}

/// What one copy did, whichever way it went.
struct Copied {
    bytes: u64,
    resumed_from: u64,
    /// The SHA-256 of what the orchestrator sent, when it hashed it.
    sent_sha256: Option<String>,
    /// The host's answer, when it hashed the file while it arrived.
    host: Option<Followed>,
    /// The file's size and write time after the copy, with the host's answer.
    stamp: Option<FileStamp>,
}

/// Copy `local` in: with the host hashing it as it arrives where the transport can and the file
/// is large enough to be worth it ([`super::options::DeployOptions::hash_on_arrival_from`]),
/// else a plain copy whose sent bytes the orchestrator hashes.
async fn copy_with_progress(
    ctx: &mut HostContext<'_>,
    step: &Step,
    local: &Path,
    remote: &str,
    total: u64,
) -> Result<Copied, RemoteError> {
    let counter = ctx.target.copy_progress();
    let (run, host, sink) = (ctx.run, ctx.host, ctx.sink);
    if ctx.target.hashes_while_copying() && total >= ctx.options.hash_on_arrival_from {
        // The follower may wait as long as the copy takes: a large installer over a slow link.
        let timeout = ctx.options.command_timeout.max(FOLLOW_AT_LEAST);
        let put = ctx.target.put_file_host_hashed(local, remote, timeout);
        let r = with_progress(run, host, sink, step, total, counter, put).await?;
        return Ok(Copied {
            bytes: r.bytes,
            resumed_from: r.resumed_from,
            sent_sha256: None,
            host: Some(r.host),
            stamp: r.stamp,
        });
    }
    let put = ctx.target.put_file(local, remote);
    let r = with_progress(run, host, sink, step, total, counter, put).await?;
    Ok(Copied {
        bytes: r.bytes,
        resumed_from: r.resumed_from,
        sent_sha256: Some(r.sha256),
        host: None,
        stamp: None,
    })
}

/// The least time the host's follower is given, whatever the command timeout.
const FOLLOW_AT_LEAST: Duration = Duration::from_secs(3600);

/// How often a copy still running says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A copy, with a progress event every [`PROGRESS_EVERY`] while it runs (bytes on the host so
/// far, where the transport counts them): a large installer over a slow link shows MB/s and an
/// ETA instead of a silent line. A copy done within the first second says nothing.
async fn with_progress<T>(
    run: &str,
    host: &crate::inventory::Host,
    sink: &dyn crate::events::EventSink,
    step: &Step,
    total: u64,
    counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    put: crate::remote::BoxFuture<'_, Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    let Some(counter) = counter else {
        return put.await;
    };
    let mut put = put;
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            done = &mut put => return done,
            _ = ticks.tick() => {
                let done = counter.load(std::sync::atomic::Ordering::Relaxed).min(total);
                let event = crate::events::Event::new(
                    run,
                    &host.name,
                    step.clone(),
                    crate::events::StepState::Progress { done, total },
                );
                // Progress is for the eyes only (the journal skips it): a sink that fails here
                // fails again, and is reported, at the step's end.
                let _ = sink.emit(&event);
            }
        }
    }
}

/// Hash the staged file with the host's own tool: `certutil -hashfile` (Server 2003 and later),
/// else PowerShell's `Get-FileHash` (Windows 2000 has neither `-hashfile` nor, usually,
/// PowerShell: such a host cannot be verified and stops).
///
/// A file the host hashed while it arrived is not hashed again when its size and last write
/// time are still those taken right after that hash: nothing has written it since. Any change
/// (an AV engine, another writer) and it is hashed again here, as every file once was.
async fn verify_on_target(
    ctx: &mut HostContext<'_>,
    patch: &str,
    remote: &str,
    want: &str,
    on_arrival: Option<&HashedOnArrival>,
) -> Result<(), Stop> {
    let step = Step::VerifyHash {
        patch: patch.to_string(),
    };
    ctx.started(&step)?;
    // Why a file hashed on arrival is hashed again, for the step's detail.
    let mut again = "";
    if let Some(arrival) = on_arrival {
        match ctx.target.file_stamp(remote).await {
            Ok(Some(now)) if now == arrival.stamp => {
                let detail = format!(
                    "the host hashed it as it arrived (PowerShell), unchanged since: {}",
                    arrival.sha256
                );
                return ctx.finished(&step, true, StepOutcome::Ok, &detail);
            }
            Ok(_) => again = "written since the host hashed it on arrival, so hashed again: ",
            Err(e) => {
                let _ = ctx.finished(&step, false, StepOutcome::Failed, &e.to_string());
                return Err(Stop::remote(&e));
            }
        }
    }
    let timeout = ctx.options.command_timeout;
    let line = command_line(&["certutil", "-hashfile", remote, "SHA256"])
        .map_err(|e| Stop::new(DeployVerdict::StageFailed, e.to_string()))?;
    let mut got = match ctx.target.exec(&Command::Cmd(line), timeout).await {
        Ok(out) if out.exit_code == 0 => parse_certutil(&out.stdout),
        Ok(_) => None,
        Err(e) => {
            let why = format!("{patch}: certutil on the host failed: {e}");
            let _ = ctx.finished(&step, false, StepOutcome::Failed, &why);
            return Err(Stop::remote(&e));
        }
    };
    let mut tool = "certutil";
    if got.is_none() {
        tool = "Get-FileHash";
        let script = hash_script(remote);
        got = match ctx.target.exec(&Command::PowerShell(script), timeout).await {
            Ok(out) if out.exit_code == 0 => parse_hex_line(&out.stdout),
            // Windows 2000 has neither `certutil -hashfile` nor PowerShell: read the staged bytes
            // back from the disk through the file channel and hash them here, as hfnetchk-era
            // tools did.
            // No PowerShell: cmd.exe's exit code 9009 in any language, its English text on
            // transports that cut exit codes to 8 bits.
            Ok(out) if out.exit_code == 9009 || out.stderr.contains("is not recognized") => {
                tool = "read back over the file channel";
                match ctx.target.remote_sha256(remote).await {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = ctx.finished(&step, false, StepOutcome::Failed, &e.to_string());
                        return Err(Stop::remote(&e));
                    }
                }
            }
            Ok(out) => {
                let why = format!(
                    "{patch}: the host could not hash {remote} (certutil and Get-FileHash failed: {})",
                    out.stderr.lines().next().unwrap_or("").trim()
                );
                let _ = ctx.finished(&step, false, StepOutcome::Failed, &why);
                return Err(Stop::new(DeployVerdict::HashMismatch, why));
            }
            Err(e) => {
                let _ = ctx.finished(&step, false, StepOutcome::Failed, &e.to_string());
                return Err(Stop::remote(&e));
            }
        };
    }
    match got {
        Some(h) if h == want.to_ascii_lowercase() => {
            ctx.finished(&step, true, StepOutcome::Ok, &format!("{again}{tool}: {h}"))
        }
        other => {
            let why = format!(
                "{patch}: {again}{remote} on the host has SHA-256 {} ({tool}), expected {want}; nothing was run",
                other.as_deref().unwrap_or("(unreadable)")
            );
            let _ = ctx.finished(&step, false, StepOutcome::HashMismatch, &why);
            Err(Stop::new(DeployVerdict::HashMismatch, why))
        }
    }
}

/// certutil prints the hash on its own line, in spaced pairs before Windows 10.
pub fn parse_certutil(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        let joined: String = l.chars().filter(|c| !c.is_whitespace()).collect();
        is_sha256_hex(&joined).then(|| joined.to_ascii_lowercase())
    })
}

fn parse_hex_line(stdout: &str) -> Option<String> {
    parse_certutil(stdout)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The PowerShell that hashes a staged file where `certutil -hashfile` is missing (Windows XP,
/// Server 2003 without the Resource Kit); public so the syntax gate can parse it.
pub fn hash_script(remote: &str) -> String {
    format!(
        "(Get-FileHash -LiteralPath {} -Algorithm SHA256).Hash",
        ps_literal(remote)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::test_support::{Bench, plan_of};
    use crate::fake::{Call, FakeTarget, Reply};

    const BYTES: &[u8] = b"MZ an installer";
    const REMOTE: &str = r"C:\Windows\Temp\hive\r1\Q300972.exe";

    fn sha(bytes: &[u8]) -> String {
        sha256_hex(bytes)
    }

    fn installer() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("Q300972.exe");
        std::fs::write(&path, BYTES).expect("write installer");
        (dir, path)
    }

    fn stage_ends(b: &Bench) -> Vec<(bool, StepOutcome)> {
        b.ends()
            .into_iter()
            .map(|(_, ok, outcome, _)| (ok, outcome))
            .collect()
    }

    #[tokio::test]
    async fn an_installer_is_copied_then_hashed_by_the_host_itself() {
        let (_dir, path) = installer();
        let plan = plan_of(&path, BYTES, &sha(BYTES));
        let fake = FakeTarget::new("H1", "B0").on(
            "certutil",
            [Reply::exit(
                0,
                &format!("SHA256 hash:\r\n{}\r\n", sha(BYTES)),
            )],
        );
        let mut b = Bench::new(fake);
        let staged = stage_all(&mut b.ctx(), &plan, &[0], None)
            .await
            .expect("staged");
        assert_eq!(staged.installers[&0], REMOTE);
        assert_eq!(b.fake.file(REMOTE).as_deref(), Some(BYTES));
        assert_eq!(
            stage_ends(&b),
            [(true, StepOutcome::Copied), (true, StepOutcome::Ok)]
        );
    }

    #[tokio::test]
    async fn a_copy_already_on_the_host_is_not_sent_again() {
        let (_dir, path) = installer();
        let plan = plan_of(&path, BYTES, &sha(BYTES));
        let fake = FakeTarget::new("H1", "B0")
            .with_file(REMOTE, BYTES)
            .on("certutil", [Reply::exit(0, &sha(BYTES))]);
        let mut b = Bench::new(fake);
        stage_all(&mut b.ctx(), &plan, &[0], None)
            .await
            .expect("staged");
        assert!(!b.fake.calls().iter().any(|c| matches!(c, Call::Put(_))));
        assert_eq!(stage_ends(&b)[0], (true, StepOutcome::Cached));
    }

    #[tokio::test]
    async fn other_bytes_on_the_host_stop_the_host_before_anything_runs() {
        let (_dir, path) = installer();
        let plan = plan_of(&path, BYTES, &sha(BYTES));
        let fake = FakeTarget::new("H1", "B0").on("certutil", [Reply::exit(0, &sha(b"other"))]);
        let mut b = Bench::new(fake);
        let stop = stage_all(&mut b.ctx(), &plan, &[0], None)
            .await
            .expect_err("mismatch");
        assert_eq!(stop.verdict, DeployVerdict::HashMismatch, "{}", stop.why);
        assert_eq!(stage_ends(&b)[1], (false, StepOutcome::HashMismatch));
        assert!(b.all_closed());
    }

    #[tokio::test]
    async fn a_repository_copy_unlike_the_catalog_is_never_sent() {
        let (_dir, path) = installer();
        let plan = plan_of(&path, BYTES, &sha(b"what the catalog says"));
        let mut b = Bench::new(FakeTarget::new("H1", "B0"));
        let stop = stage_all(&mut b.ctx(), &plan, &[0], None)
            .await
            .expect_err("mismatch");
        assert_eq!(stop.verdict, DeployVerdict::HashMismatch);
        assert!(b.fake.calls().is_empty(), "{:?}", b.fake.calls());
    }

    #[tokio::test]
    async fn a_host_without_certutil_or_powershell_is_checked_by_reading_back() {
        let (_dir, path) = installer();
        let plan = plan_of(&path, BYTES, &sha(BYTES));
        let not_recognized = Reply::Output(crate::remote::ExecOutput {
            stdout: String::new(),
            stderr: "'powershell' is not recognized as an internal or external command".into(),
            exit_code: 1,
        });
        let fake = FakeTarget::new("H1", "B0")
            .on("certutil", [Reply::exit(1, "")])
            .on("Get-FileHash", [not_recognized]);
        let mut b = Bench::new(fake);
        stage_all(&mut b.ctx(), &plan, &[0], None)
            .await
            .expect("staged");
        let sha_calls = b
            .fake
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Sha256(_)))
            .count();
        assert_eq!(sha_calls, 2, "the cache check, then the read-back");
        assert_eq!(stage_ends(&b)[1], (true, StepOutcome::Ok));
    }

    #[test]
    fn certutil_output_of_both_eras_parses() {
        let h = "ab".repeat(32);
        let new = format!(
            "SHA256 hash of C:\\x.exe:\r\n{h}\r\nCertUtil: -hashfile command completed successfully.\r\n"
        );
        assert_eq!(parse_certutil(&new).as_deref(), Some(h.as_str()));
        let spaced: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
        let old = format!(
            "SHA256 hash of file x:\r\n{}\r\nCertUtil: ok\r\n",
            spaced.join(" ")
        );
        assert_eq!(parse_certutil(&old).as_deref(), Some(h.as_str()));
        assert_eq!(parse_certutil("CertUtil: Unknown arg: -hashfile\r\n"), None);
    }

    /// A host whose copy takes a while and reports its bytes as it goes.
    struct SlowCopy {
        inner: FakeTarget,
        copied: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    impl crate::remote::Target for SlowCopy {
        fn host(&self) -> &str {
            self.inner.host()
        }
        fn exec<'a>(
            &'a mut self,
            command: &'a Command,
            timeout: Duration,
        ) -> crate::remote::BoxFuture<'a, Result<crate::remote::ExecOutput, RemoteError>> {
            self.inner.exec(command, timeout)
        }
        fn put_file<'a>(
            &'a mut self,
            local: &'a Path,
            remote: &'a str,
        ) -> crate::remote::BoxFuture<'a, Result<crate::remote::PutReport, RemoteError>> {
            Box::pin(async move {
                self.copied
                    .store(BYTES.len() as u64 / 2, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2300)).await;
                self.inner.put_file(local, remote).await
            })
        }
        fn read_file_range<'a>(
            &'a mut self,
            remote: &'a str,
            offset: u64,
            len: u64,
        ) -> crate::remote::BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
            self.inner.read_file_range(remote, offset, len)
        }
        fn remote_sha256<'a>(
            &'a mut self,
            remote: &'a str,
        ) -> crate::remote::BoxFuture<'a, Result<Option<String>, RemoteError>> {
            self.inner.remote_sha256(remote)
        }
        fn disconnect(&mut self) {
            self.inner.disconnect();
        }
        fn copy_progress(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
            Some(self.copied.clone())
        }
    }

    #[tokio::test]
    async fn a_long_copy_reports_its_progress_every_second() {
        let (_dir, local) = installer();
        let host = crate::deploy::test_support::host();
        let options = crate::deploy::test_support::options();
        let events = crate::events::Recorder::default();
        let mut target = SlowCopy {
            inner: FakeTarget::new("H1", "B0"),
            copied: Default::default(),
        };
        let mut ctx = HostContext::new("r1", &host, &mut target, &events, None, &options);
        stage_one(
            &mut ctx,
            "KB1",
            &local,
            BYTES.len() as u64,
            REMOTE,
            &sha(BYTES),
        )
        .await
        .expect("staged");
        let seen: Vec<crate::events::StepState> = events
            .0
            .lock()
            .map(|v| v.iter().map(|e| e.state.clone()).collect())
            .unwrap_or_default();
        let progress: Vec<_> = seen
            .iter()
            .filter(|s| matches!(s, crate::events::StepState::Progress { .. }))
            .collect();
        let half = BYTES.len() as u64 / 2;
        let total = BYTES.len() as u64;
        assert_eq!(
            progress,
            [
                &crate::events::StepState::Progress { done: half, total },
                &crate::events::StepState::Progress { done: half, total }
            ],
            "{seen:?}"
        );
        assert!(matches!(
            seen.first(),
            Some(crate::events::StepState::Started)
        ));
        assert!(matches!(
            seen.last(),
            Some(crate::events::StepState::Finished { ok: true, .. })
        ));
    }
}
