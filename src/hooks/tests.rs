//! Hooks around hosts and waves, on closures instead of hosts: drain/undrain order, failures,
//! timeouts, and the undrain after a crash between install and post hook.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::events::StepOutcome;
use crate::inventory::Inventory;
use crate::journal::{RunLog, RunState};
use crate::rollout::{Rollout, RolloutOptions, Wave};

fn inventory(hooks: &str) -> Inventory {
    let text = format!(
        r#"
[defaults]
user = "Administrator"
credential = "env:HIVE_PASSWORD"

[[host]]
name = "web01"
address = "127.0.0.11"
groups = ["web"]

[[host]]
name = "web02"
address = "127.0.0.12"
groups = ["web"]

{hooks}"#
    );
    Inventory::parse(&text, Path::new("inv.toml")).unwrap()
}

/// Remote hooks answer from a table: command → exit code; every call is logged.
struct FakeRemote(Mutex<Vec<String>>);

impl HookTarget for Arc<FakeRemote> {
    fn exec(
        &self,
        host: &str,
        command: Command,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<(i32, String), String>> {
        let Command::Cmd(line) = command else {
            panic!("hooks run cmd.exe lines")
        };
        self.0.lock().unwrap().push(format!("{host} {line}"));
        let code = if line.contains("fail") { 2 } else { 0 };
        Box::pin(async move { Ok((code, format!("ran {line}\n"))) })
    }
}

/// The inner job: logs its install into `log` unless the journal says it ran; `hang` makes it
/// wait forever after installing (the process is "killed" there).
fn inner(log: Arc<Mutex<Vec<String>>>, verdict: HostVerdict, hang: bool) -> Arc<dyn HostJob> {
    Arc::new(move |ctx: JobContext| {
        let log = log.clone();
        async move {
            let step = Step::Install {
                patch: "KB1".into(),
                index: 1,
                total: 1,
            };
            if !ctx.resume.install_started.contains("KB1") {
                ctx.started(step.clone()).unwrap();
                log.lock().unwrap().push(format!("install {}", ctx.host));
                ctx.finished(step, true, StepOutcome::Ok, "exit 0").unwrap();
            }
            if hang {
                std::future::pending::<()>().await;
            }
            HostOutcome::new(verdict, "inner done")
        }
    })
}

fn hooked(
    inv: &Inventory,
    inner: Arc<dyn HostJob>,
    remote: Arc<FakeRemote>,
    repo: Option<Repository>,
) -> Arc<HookedJob> {
    Arc::new(HookedJob {
        inner,
        hooks: Hooks::resolve(&inv.policy, &inv.hosts).unwrap(),
        hosts: inv
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.clone()))
            .collect(),
        remote: Arc::new(remote),
        repo,
    })
}

/// What a hooks test works with: a folder (its `lb.log` is the load balancer's), a repository,
/// the inner job's installs and the commands run on hosts.
struct Bench {
    dir: tempfile::TempDir,
    repo: Repository,
    installs: Arc<Mutex<Vec<String>>>,
    remote: Arc<FakeRemote>,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(&dir.path().join("repo")).unwrap();
        Bench {
            dir,
            repo,
            installs: Arc::new(Mutex::new(Vec::new())),
            remote: Arc::new(FakeRemote(Mutex::new(Vec::new()))),
        }
    }

    /// A rollout of the hooked job over `inv`: the inner job records its install and ends with
    /// `verdict` (or hangs after it: `hang`); `journaled` keeps the hook output in host logs.
    fn rollout(
        &self,
        inv: &Inventory,
        verdict: HostVerdict,
        hang: bool,
        journaled: bool,
    ) -> Rollout {
        let job = hooked(
            inv,
            inner(self.installs.clone(), verdict, hang),
            self.remote.clone(),
            journaled.then(|| self.repo.clone()),
        );
        Rollout::new(self.repo.root(), Arc::new(job))
    }

    /// The load balancer's log the drain hooks write.
    fn lb(&self) -> Vec<String> {
        lines(&self.dir.path().join("lb.log"))
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn drain_hooks(dir: &Path, extra: &str) -> String {
    let lb = dir.join("lb.log");
    format!(
        r#"
[group.web.hooks]
pre_host_local = "echo drain $HIVE_HOST_NAME $HIVE_HOST_ADDRESS >> {lb}"
post_host_local = "echo undrain $HIVE_HOST_NAME >> {lb}"
pre_host = "net stop W3SVC"
post_host = "net start W3SVC"
timeout = "10s"
{extra}"#,
        lb = lb.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_undrain_run_around_every_host_in_order() {
    let b = Bench::new();
    let inv = inventory(&drain_hooks(b.dir.path(), ""));
    let rollout = b.rollout(&inv, HostVerdict::Patched, false, true);
    let opts = RolloutOptions {
        parallel: 1,
        ..RolloutOptions::default()
    };
    let s = rollout
        .start("100%", Wave::one(&["web01", "web02"]), opts)
        .await
        .unwrap();
    assert_eq!(s.counts().patched, 2, "{}", s.recap());
    assert_eq!(
        b.lb(),
        [
            "drain web01 127.0.0.11",
            "undrain web01",
            "drain web02 127.0.0.12",
            "undrain web02"
        ]
    );
    assert_eq!(
        *b.remote.0.lock().unwrap(),
        [
            "web01 net stop W3SVC",
            "web01 net start W3SVC",
            "web02 net stop W3SVC",
            "web02 net start W3SVC"
        ]
    );
    // The output is in the host's log and the hooks are journaled steps.
    let log = std::fs::read_to_string(b.repo.root().join("logs/web01.log")).unwrap();
    assert!(
        log.contains("hook pre_host ([group.web]) `net stop W3SVC`: exit 0"),
        "{log}"
    );
    assert!(log.contains("  | ran net stop W3SVC"), "{log}");
    let run = RunLog::load(b.repo.root(), &s.run).unwrap();
    let steps: Vec<String> = run.hosts["web01"]
        .steps
        .iter()
        .map(|st| serde_json::to_value(&st.step).unwrap().to_string())
        .collect();
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert!(steps[0].contains("pre_host_local") && steps[4].contains("post_host_local"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pre_hook_skips_the_host_and_undoes_only_what_ran() {
    let b = Bench::new();
    let inv = inventory(&drain_hooks(b.dir.path(), "").replace("net stop W3SVC", "fail-stop"));
    let rollout = b.rollout(&inv, HostVerdict::Patched, false, false);
    let s = rollout
        .start("100%", Wave::one(&["web01"]), RolloutOptions::default())
        .await
        .unwrap();
    let h = &s.hosts[0];
    assert_eq!(h.verdict, Some(HostVerdict::Skipped), "{}", h.detail);
    assert!(
        h.detail
            .starts_with("nothing installed: pre_host hook `fail-stop` ([group.web]): exit 2"),
        "{}",
        h.detail
    );
    assert!(b.installs.lock().unwrap().is_empty());
    // The drain ran, so the undrain runs; the failed service stop is not "undone".
    assert_eq!(b.lb(), ["drain web01 127.0.0.11", "undrain web01"]);
    assert_eq!(*b.remote.0.lock().unwrap(), ["web01 fail-stop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_hook_marks_the_host_failed_with_its_evidence() {
    let b = Bench::new();
    let inv = inventory(&drain_hooks(b.dir.path(), "").replace("net start W3SVC", "fail-start"));
    let rollout = b.rollout(&inv, HostVerdict::Patched, false, false);
    let s = rollout
        .start("100%", Wave::one(&["web01"]), RolloutOptions::default())
        .await
        .unwrap();
    let h = &s.hosts[0];
    assert_eq!(h.verdict, Some(HostVerdict::Failed));
    assert!(
        h.detail
            .contains("post_host hook `fail-start` ([group.web]): exit 2")
            && h.detail.contains("after: inner done"),
        "{}",
        h.detail
    );
    // The local undrain still ran after the failed remote post hook.
    assert_eq!(b.lb().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_hook_times_out_and_skips_the_host() {
    let b = Bench::new();
    let inv = inventory("[group.web.hooks]\npre_host_local = \"sleep 30\"\ntimeout = \"300ms\"\n");
    let rollout = b.rollout(&inv, HostVerdict::Patched, false, false);
    let s = rollout
        .start("100%", Wave::one(&["web01"]), RolloutOptions::default())
        .await
        .unwrap();
    let h = &s.hosts[0];
    assert_eq!(h.verdict, Some(HostVerdict::Skipped));
    assert!(
        h.detail
            .contains("pre_host_local hook `sleep 30` ([group.web]): no end within 300ms"),
        "{}",
        h.detail
    );
    assert!(b.installs.lock().unwrap().is_empty());
}

/// The orchestrator dies between install and post hook (the run's future is dropped where it
/// is, as kill -9 leaves the journal); resume does not drain again, settles the host, and
/// undrains it even though the install is the only thing the journal shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_between_install_and_post_hook_undrains_without_draining_again() {
    let b = Bench::new();
    let inv = inventory(&drain_hooks(b.dir.path(), ""));
    let rollout = b.rollout(&inv, HostVerdict::Patched, true, false);
    let running = tokio::spawn(async move {
        rollout
            .start("100%", Wave::one(&["web01"]), RolloutOptions::default())
            .await
    });
    while b.installs.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.abort();
    let _ = running.await;
    let runs = crate::journal::list_runs(b.repo.root()).unwrap();
    let run = runs[0].run.clone();
    let state = RunLog::load(b.repo.root(), &run)
        .unwrap()
        .resume_state("web01");
    assert_eq!(
        state.hooks_in_effect.keys().copied().collect::<Vec<_>>(),
        [HookPoint::PreHostLocal, HookPoint::PreHost]
    );

    // The resumed install fails this time: the undrain runs all the same.
    let rollout = b.rollout(&inv, HostVerdict::Failed, false, false);
    let s = rollout.resume(&run, false).await.unwrap();
    assert_eq!(s.hosts[0].verdict, Some(HostVerdict::Failed));
    assert_eq!(*b.installs.lock().unwrap(), ["install web01"]);
    assert_eq!(b.lb(), ["drain web01 127.0.0.11", "undrain web01"]);
    assert_eq!(
        *b.remote.0.lock().unwrap(),
        ["web01 net stop W3SVC", "web01 net start W3SVC"]
    );
    let log = RunLog::load(b.repo.root(), &run).unwrap();
    assert_eq!(log.state.unwrap().0, RunState::Finished);
    assert!(log.hosts["web01"].resume_state().hooks_in_effect.is_empty());
}

#[test]
fn bad_hook_settings_name_the_group_and_field() {
    let cases = [
        (
            "[group.web.hooks]\ntimeout = \"soon\"\n",
            "inventory [group.web], `hooks.timeout`: `soon` is not a duration",
        ),
        (
            "[group_defaults.hooks]\npre_host = \" \"\n",
            "inventory [group_defaults], `hooks.pre_host`: an empty command",
        ),
        (
            "[group.web.hooks]\ntimeout = \"0s\"\n",
            "inventory [group.web], `hooks.timeout`: a hook needs some time",
        ),
    ];
    for (text, want) in cases {
        let inv = inventory(text);
        let e = Hooks::resolve(&inv.policy, &inv.hosts)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{text}: {e}");
    }
    let e = Inventory::parse(
        "[[host]]\nname=\"a\"\naddress=\"b\"\nuser=\"u\"\ncredential=\"env:X\"\n[group.web.hooks]\npre_hots = \"x\"\n",
        Path::new("inv.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("pre_hots"), "{e}");
}

#[tokio::test]
async fn wave_hooks_run_once_per_distinct_command_with_the_wave_in_env() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wave.log");
    let inv = inventory(&format!(
        "[group_defaults.hooks]\npre_wave = \"echo pre $HIVE_WAVE_NAME $HIVE_WAVE_HOSTS >> {o}\"\npost_wave = \"echo post $HIVE_WAVE_GATE >> {o}; exit 4\"\n",
        o = out.display()
    ));
    let runner = WaveHookRunner {
        hooks: Hooks::resolve(&inv.policy, &inv.hosts).unwrap(),
    };
    let w = &Wave::one(&["web01", "web02"])[0];
    let said = runner.before("r1", w).await.unwrap();
    assert!(said.starts_with("pre_wave hook"), "{said}");
    let e = runner.after("r1", w, "passed").await.unwrap_err();
    assert!(e.contains("exit 4"), "{e}");
    assert_eq!(lines(&out), ["pre all web01,web02", "post passed"]);
}
