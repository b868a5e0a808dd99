//! End to end: the Qchain scenario (Q296861). Two legacy Windows 2000 hotfixes replace the same
//! in-use DLL; the second carries an OLDER build. Chained with `-z` and one reboot, the boot-time
//! rename queue lets the last writer win — unless qchain.exe rewrote the queue first. Without
//! qchain the re-scan after the boot finds the newer hotfix missing, and hive's second install of
//! it (with a second reboot) lands its file. Needs the harness (`integration/test.sh samba`).

mod common;

use common::{Lab, LabPatch, SimFleet, deploy_all, fast_options};
use hive::catalog::model::{DetectionRule, InstallerRecipe, VersionOp, WhenMissing};
use hive::deploy::DeployVerdict;
use hive::events::Recorder;
use winsim::installer::Package;

const DLL: &str = r"C:\Windows\system32\hiveq.dll";
const PRODUCT: &str = "Windows 2000 Server";

fn host(name: &str) -> String {
    // Windows 2000 as shipped: no PowerShell, no wmic, no certutil -hashfile — the boot time
    // comes from `net statistics`, the staged hash from a read-back, the re-scan from reg query
    // and SMB reads.
    format!(
        "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\n\
         csd_version = \"Service Pack 1\"\nversion = \"5.0.2195\"\n\
         files = [{{ path = '{DLL}', version = \"5.0.2195.1000\" }}]\nreboot = {{ downtime_ms = 200 }}\n"
    )
}

fn lab(with_qchain: bool) -> Lab {
    let mut lab = Lab::new();
    let mut recipe = InstallerRecipe::legacy_hotfix();
    recipe.needs_qchain = with_qchain;
    for (id, version) in [("Q300001", "5.0.2195.4000"), ("Q300002", "5.0.2195.3000")] {
        lab.add(LabPatch {
            id,
            bulletin: &format!("MS01-{}", &id[5..]),
            product: PRODUCT,
            file_name: &format!("{id}_W2K_SP2_x86_en.exe"),
            package: Package::hotfix(id)
                .file_in_use(DLL, version.parse().unwrap())
                .reboot_required(true)
                .exit_code(3010),
            recipe: recipe.clone(),
            subtype: "Security Update",
            detection: Some(DetectionRule::FileVersion {
                path: DLL.into(),
                op: VersionOp::AtLeast,
                version: version.parse().unwrap(),
                date: None,
                size: None,
                checksum: None,
                when_missing: WhenMissing::NotInstalled,
            }),
        });
    }
    let tools = lab.repo.root().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    Package::qchain()
        .write_to(&tools.join("qchain.exe"))
        .unwrap();
    lab
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qchain_keeps_the_newest_file_and_without_it_the_older_one_lands_first() {
    let run = "rq";
    let options = fast_options();

    let with = SimFleet::start("deployqc1", &host("W2K-QCHAIN")).await;
    let lab_with = lab(true);
    let events = Recorder::default();
    let results = deploy_all(&with, &lab_with, run, &options, &events).await;
    let (plan, o) = &results[0];
    assert!(
        plan.qchain,
        "the plan chains two legacy hotfixes with qchain"
    );
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(o.reboots.len(), 1);
    let sim = with.host("W2K-QCHAIN");
    assert_eq!(
        sim.file_version(DLL),
        Some("5.0.2195.4000".parse().unwrap())
    );
    let lines: Vec<String> = sim
        .command_log()
        .into_iter()
        .map(|c| c.command_line.to_string())
        .collect();
    let q1 = lines
        .iter()
        .position(|l| l.ends_with("Q300001_W2K_SP2_x86_en.exe -z -q -m"));
    let q2 = lines
        .iter()
        .position(|l| l.ends_with("Q300002_W2K_SP2_x86_en.exe -z -q -m"));
    let qc = lines.iter().position(|l| l.ends_with(r"\qchain.exe"));
    let reboot = lines.iter().position(|l| l.starts_with("shutdown /r"));
    assert!(
        q1 < q2 && q2 < qc && qc < reboot && q1.is_some(),
        "order: hotfix, hotfix, qchain, one reboot: {lines:#?}"
    );
    assert_eq!(sim.reboot_count(), 1);
    // No hashing tool on Windows 2000: the staged copies were checked by reading them back.
    let ev = events.0.lock().unwrap().clone();
    assert!(
        ev.iter().any(|e| matches!(e.step, hive::events::Step::VerifyHash { .. })
            && matches!(&e.state, hive::events::StepState::Finished { ok: true, detail, .. } if detail.contains("read back"))),
        "{ev:#?}"
    );

    let without = SimFleet::start("deployqc0", &host("W2K-NOQCHAIN")).await;
    let lab_without = lab(false);
    let results = deploy_all(&without, &lab_without, run, &options, &events).await;
    let (plan, o) = &results[0];
    assert!(!plan.qchain);
    let sim = without.host("W2K-NOQCHAIN");
    // Without qchain the last queued (older) file wins at the boot: the re-scan finds Q300001
    // missing, and hive installs it once more with a second reboot, which lands the newer file.
    let ev = events.0.lock().unwrap().clone();
    assert!(
        ev.iter().any(|e| e.host == "W2K-NOQCHAIN"
            && e.step == hive::events::Step::Verify
            && matches!(&e.state, hive::events::StepState::Finished { ok: false, detail, .. }
                if detail.contains("Q300001") && detail.contains("5.0.2195.3000"))),
        "the first re-scan names the downgraded file: {ev:#?}"
    );
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(o.reboots.len(), 2);
    assert_eq!(
        sim.file_version(DLL),
        Some("5.0.2195.4000".parse().unwrap())
    );
    let runs = |kb: &str| {
        sim.command_log()
            .iter()
            .filter(|c| {
                c.command_line
                    .ends_with(&format!("{kb}_W2K_SP2_x86_en.exe -z -q -m"))
            })
            .count()
    };
    assert_eq!((runs("Q300001"), runs("Q300002")), (2, 1));
    assert!(
        !sim.command_log()
            .iter()
            .any(|c| c.command_line.contains("qchain"))
    );
}
