//! The plan: which installers go to which host, in which order, with which reboots — computed
//! from scan verdicts and the approved bulletins of the repository, with no IO beyond reading the
//! repository. `hive deploy --dry-run` prints [`render`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::DeployError;
use crate::catalog::model::{Catalog, InstallerKind, InstallerRecipe, Restart};
use crate::repo::{Repository, Triage};
use crate::scan::evaluate::{Status, Verdict};

/// An approved bulletin as `hive approve` left it in `hotfixes/<bulletin>/`: one installer file
/// and its `recipe.toml` — or, in a folder HIVE left, its `hiveexec.cmd` and the files it calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovedInstaller {
    pub bulletin: String,
    /// The installer in the repository (the `hiveexec.cmd` for a HIVE folder).
    pub path: PathBuf,
    pub file_name: String,
    pub recipe: InstallerRecipe,
    pub bytes: u64,
    /// SHA-256 of the repository copy, lowercase hex.
    pub sha256: String,
    /// The rest of a `hiveexec.cmd` folder, staged beside it (the script calls them by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<FolderFile>,
}

impl ApprovedInstaller {
    /// Bytes to copy to a host for this bulletin: the installer and its companions.
    pub fn total_bytes(&self) -> u64 {
        self.bytes + self.companions.iter().map(|c| c.bytes).sum::<u64>()
    }
}

/// One file of a bulletin folder staged beside its `hiveexec.cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderFile {
    pub file_name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// SHA-256 of the repository copy, lowercase hex.
    pub sha256: String,
}

/// Read every approved bulletin of the repository: one entry per installer file. A bulletin
/// that fixes several Windows versions ships one package per version (MS08-067 has
/// `WindowsXP-KB958644-x86-ENU.exe` and `WindowsServer2003-KB958644-x86-ENU.exe`), so a folder
/// may hold several; the plan then picks the one the catalog's patch names. A folder without an
/// installer or with an unreadable recipe is an error naming the folder.
pub fn load_approved(repo: &Repository) -> Result<Vec<ApprovedInstaller>, DeployError> {
    let mut out = Vec::new();
    for (state, id) in repo.list()? {
        if state != Triage::Hotfix {
            continue;
        }
        let dir = repo.bulletin_dir(Triage::Hotfix, &id)?;
        out.extend(load_folder(&id, &dir)?);
    }
    Ok(out)
}

fn load_folder(bulletin: &str, dir: &Path) -> Result<Vec<ApprovedInstaller>, DeployError> {
    let bad = |message: String| DeployError::Repository {
        path: dir.to_path_buf(),
        message,
    };
    if let Some(script) =
        crate::adopt::hiveexec::find_script(dir).map_err(|e| bad(e.to_string()))?
    {
        return Ok(vec![load_hiveexec(bulletin, dir, &script)?]);
    }
    let recipe_path = dir.join("recipe.toml");
    let text = std::fs::read_to_string(&recipe_path)
        .map_err(|e| bad(format!("cannot read recipe.toml: {e}")))?;
    let recipe: InstallerRecipe =
        toml::from_str(&text).map_err(|e| bad(format!("recipe.toml: {e}")))?;
    let mut installers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))? {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(|e| bad(e.to_string()))?.is_file();
        let lower = name.to_ascii_lowercase();
        if is_file
            && [".exe", ".msu", ".msi", ".cab"]
                .iter()
                .any(|x| lower.ends_with(x))
        {
            installers.push((name, entry.path()));
        }
    }
    if installers.is_empty() {
        return Err(bad(
            "expected an installer (.exe/.msu/.msi/.cab), found none".to_string(),
        ));
    }
    installers.sort();
    installers
        .into_iter()
        .map(|(file_name, path)| {
            let file = folder_file(dir, file_name, path)?;
            Ok(ApprovedInstaller {
                bulletin: bulletin.to_string(),
                sha256: file.sha256,
                bytes: file.bytes,
                path: file.path,
                file_name: file.file_name,
                recipe: recipe.clone(),
                companions: Vec::new(),
            })
        })
        .collect()
}

/// A bulletin folder with a `hiveexec.cmd`: the script is the installer, every other file of the
/// folder goes with it (hive's own `recipe.toml` and HIVE's notes stay home). A `recipe.toml`
/// beside it may still say what the script's exit codes mean.
fn load_hiveexec(
    bulletin: &str,
    dir: &Path,
    script: &Path,
) -> Result<ApprovedInstaller, DeployError> {
    let bad = |message: String| DeployError::Repository {
        path: dir.to_path_buf(),
        message,
    };
    let text = std::fs::read(script).map_err(|e| bad(format!("{}: {e}", script.display())))?;
    let findings = crate::adopt::hiveexec::lint(&String::from_utf8_lossy(&text));
    if let Some(f) = findings.first() {
        return Err(DeployError::Repository {
            path: script.to_path_buf(),
            message: format!(
                "{f}{}; fix the script (hive reboots, runs Qchain and stages the files itself)",
                if findings.len() > 1 {
                    format!(" and {} more unsafe line(s)", findings.len() - 1)
                } else {
                    String::new()
                }
            ),
        });
    }
    let mut recipe = InstallerRecipe::hiveexec();
    let recipe_path = dir.join("recipe.toml");
    if recipe_path.is_file() {
        let text = std::fs::read_to_string(&recipe_path)
            .map_err(|e| bad(format!("cannot read recipe.toml: {e}")))?;
        let own: InstallerRecipe =
            toml::from_str(&text).map_err(|e| bad(format!("recipe.toml: {e}")))?;
        recipe.exit_codes = own.exit_codes;
    }
    let mut companions = Vec::new();
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))? {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        if !entry.file_type().map_err(|e| bad(e.to_string()))?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path == script || crate::adopt::hiveexec::stays_home(&name) {
            continue;
        }
        entries.push((name, path));
    }
    entries.sort();
    for (name, path) in entries {
        companions.push(folder_file(dir, name, path)?);
    }
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = folder_file(dir, name, script.to_path_buf())?;
    Ok(ApprovedInstaller {
        bulletin: bulletin.to_string(),
        sha256: file.sha256,
        bytes: file.bytes,
        path: file.path,
        file_name: file.file_name,
        recipe,
        companions,
    })
}

fn folder_file(dir: &Path, file_name: String, path: PathBuf) -> Result<FolderFile, DeployError> {
    crate::repo::validate_file_name(&file_name).map_err(|e| DeployError::Repository {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let bytes = std::fs::read(&path).map_err(|e| DeployError::Repository {
        path: dir.to_path_buf(),
        message: format!("{file_name}: {e}"),
    })?;
    Ok(FolderFile {
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
        path,
        file_name,
    })
}

/// One installer to run on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedInstall {
    /// The catalog patch it fixes (the verdict's patch id).
    pub patch: String,
    pub bulletin: String,
    pub installer: ApprovedInstaller,
    /// The catalog's SHA-256 of the installer, when it has one; staging checks the target's copy
    /// against this (and against the repository copy).
    pub expected_sha256: String,
    /// A servicing stack update: goes first, later packages may require it.
    pub servicing_stack: bool,
    pub restart: Option<Restart>,
}

/// A missing patch the plan cannot install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplanned {
    pub patch: String,
    pub why: String,
}

/// What will happen on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    pub installs: Vec<PlannedInstall>,
    pub unplanned: Vec<Unplanned>,
    /// qchain.exe runs after the installs (legacy hotfixes chained).
    pub qchain: bool,
    /// `yes`, `maybe` or `no`: whether the host is expected to reboot.
    pub expected_reboot: Restart,
    pub bytes: u64,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub run: String,
    pub hosts: Vec<HostPlan>,
}

/// The approved installer for a patch: the folder's only one, or, when a bulletin folder holds
/// one package per Windows version, the one whose file name the catalog's patch gives (Windows
/// compares names without case). `None` when several are there and none is the patch's.
fn pick_installer<'a>(
    candidates: &[&'a ApprovedInstaller],
    patch: Option<&crate::catalog::model::Patch>,
) -> Option<&'a ApprovedInstaller> {
    if let [only] = candidates {
        return Some(only);
    }
    let want = patch?.file_name.as_deref()?;
    candidates
        .iter()
        .copied()
        .find(|a| a.file_name.eq_ignore_ascii_case(want))
}

/// Plan one host: its Missing verdicts × the approved installers. One installer fixing several
/// bulletins (CVEs of one KB) runs once.
pub fn plan_host(
    host: &str,
    verdicts: &[Verdict],
    catalog: &Catalog,
    approved: &[ApprovedInstaller],
) -> HostPlan {
    plan_host_keeping(host, verdicts, catalog, approved, &Default::default())
}

/// [`plan_host`] for a resumed host: the patches in `keep` (whose installers this run already
/// started) stay in the plan when the re-scan says Installed, so the reboot and the verification
/// they are owed still happen. Deploy does not run their installers again (the journal and the
/// host's evidence say they ran).
pub fn plan_host_keeping(
    host: &str,
    verdicts: &[Verdict],
    catalog: &Catalog,
    approved: &[ApprovedInstaller],
    keep: &std::collections::BTreeSet<String>,
) -> HostPlan {
    let mut by_bulletin: BTreeMap<&str, Vec<&ApprovedInstaller>> = BTreeMap::new();
    for a in approved {
        by_bulletin.entry(a.bulletin.as_str()).or_default().push(a);
    }
    let mut installs: Vec<PlannedInstall> = Vec::new();
    let mut unplanned = Vec::new();
    let wanted = |v: &&Verdict| {
        v.status == Status::Missing
            || (keep.contains(&*v.patch) && matches!(v.status, Status::Installed))
    };
    for v in verdicts.iter().filter(wanted) {
        // An approval names a bulletin, or (for MSRC months, whose bulletins are CVEs fixed by a
        // different KB on each Windows) the KB itself: `hotfixes/KB5035849/` is that KB's .msu.
        let found = by_bulletin
            .get(&*v.patch)
            .or_else(|| v.bulletins.iter().find_map(|b| by_bulletin.get(&**b)));
        let Some(candidates) = found else {
            unplanned.push(Unplanned {
                patch: v.patch.to_string(),
                why: format!("no approved bulletin ({})", v.bulletins.join(", ")),
            });
            continue;
        };
        let patch = catalog.patches.get(&*v.patch);
        let Some(installer) = pick_installer(candidates, patch) else {
            unplanned.push(Unplanned {
                patch: v.patch.to_string(),
                why: format!(
                    "hotfixes/{} holds {} installers and none is {}",
                    candidates[0].bulletin,
                    candidates.len(),
                    patch
                        .and_then(|p| p.file_name.as_deref())
                        .unwrap_or("named by the catalog")
                ),
            });
            continue;
        };
        if installs
            .iter()
            .any(|i| i.installer.sha256 == installer.sha256)
        {
            continue;
        }
        let subtype = patch.and_then(|p| p.subtype.clone()).unwrap_or_default();
        // The catalog's hash is the vendor installer's, never the admin's hiveexec.cmd.
        let catalog_sha = patch
            .and_then(|p| p.sha256.clone())
            .filter(|_| installer.recipe.kind != InstallerKind::HiveExec);
        installs.push(PlannedInstall {
            patch: v.patch.to_string(),
            bulletin: installer.bulletin.clone(),
            expected_sha256: catalog_sha
                .map(|h| h.to_ascii_lowercase())
                .unwrap_or_else(|| installer.sha256.clone()),
            servicing_stack: subtype.to_ascii_lowercase().contains("servicing stack"),
            restart: patch.and_then(|p| p.restart),
            installer: installer.clone(),
        });
    }
    installs.sort_by(|a, b| {
        (!a.servicing_stack, a.patch.as_str()).cmp(&(!b.servicing_stack, b.patch.as_str()))
    });
    let legacy_chained = installs
        .iter()
        .filter(|i| {
            matches!(
                i.installer.recipe.kind,
                InstallerKind::HotfixExe | InstallerKind::HiveExec
            )
        })
        .count();
    let qchain = legacy_chained > 1
        && installs
            .iter()
            .any(|i| i.installer.recipe.needs_qchain && i.installer.recipe.chainable);
    let expected_reboot = expected_reboot(&installs);
    HostPlan {
        host: host.to_string(),
        bytes: installs.iter().map(|i| i.installer.total_bytes()).sum(),
        installs,
        unplanned,
        qchain,
        expected_reboot,
    }
}

fn expected_reboot(installs: &[PlannedInstall]) -> Restart {
    let mut any_maybe = false;
    for i in installs {
        match i.restart {
            Some(Restart::Yes) => return Restart::Yes,
            Some(Restart::No) => {}
            // Legacy hotfixes and servicing packages usually replace files in use.
            Some(Restart::Maybe) | None => any_maybe = true,
        }
    }
    if any_maybe {
        Restart::Maybe
    } else {
        Restart::No
    }
}

/// Plan every scanned host.
pub fn plan(
    run: &str,
    scans: &[(String, Vec<Verdict>)],
    catalog: &Catalog,
    approved: &[ApprovedInstaller],
) -> Plan {
    Plan {
        run: run.to_string(),
        hosts: scans
            .iter()
            .map(|(host, verdicts)| plan_host(host, verdicts, catalog, approved))
            .collect(),
    }
}

/// The dry-run table: one line per host × patch, then per host the reboot and bytes, then
/// totals.
pub fn render(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "deploy plan for run {}", plan.run);
    let _ = writeln!(
        s,
        "{:<20} {:<4} {:<14} {:<12} {:<40} {:>10}",
        "HOST", "#", "PATCH", "BULLETIN", "INSTALLER", "BYTES"
    );
    let mut total_bytes = 0;
    let mut reboots = 0;
    for h in &plan.hosts {
        for (n, i) in h.installs.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:<20} {:<4} {:<14} {:<12} {:<40} {:>10}",
                h.host,
                n + 1,
                i.patch,
                i.bulletin,
                format!("{} ({})", i.installer.file_name, kind_word(i)),
                i.installer.total_bytes()
            );
        }
        for u in &h.unplanned {
            let _ = writeln!(
                s,
                "{:<20} {:<4} {:<14} not planned: {}",
                h.host, "-", u.patch, u.why
            );
        }
        if h.installs.is_empty() && h.unplanned.is_empty() {
            let _ = writeln!(s, "{:<20} nothing to install", h.host);
            continue;
        }
        let reboot = match h.expected_reboot {
            Restart::Yes => "reboot: yes",
            Restart::Maybe => "reboot: if an installer asks",
            Restart::No => "reboot: no",
        };
        if !h.installs.is_empty() && h.expected_reboot != Restart::No {
            reboots += 1;
        }
        let _ = writeln!(
            s,
            "{:<20}      {} installer(s), {} bytes, {}{}",
            h.host,
            h.installs.len(),
            h.bytes,
            reboot,
            if h.qchain {
                ", qchain before the reboot"
            } else {
                ""
            }
        );
        total_bytes += h.bytes;
    }
    let _ = writeln!(
        s,
        "total: {} host(s), {} installer run(s), at most {} reboot(s), {} bytes to copy",
        plan.hosts.len(),
        plan.hosts.iter().map(|h| h.installs.len()).sum::<usize>(),
        reboots,
        total_bytes
    );
    s
}

fn kind_word(i: &PlannedInstall) -> &'static str {
    match i.installer.recipe.kind {
        InstallerKind::HotfixExe => "hotfix",
        InstallerKind::UpdateExe => "update.exe",
        InstallerKind::Msu if i.servicing_stack => "msu, servicing stack",
        InstallerKind::Msu => "msu",
        InstallerKind::Msi => "msi",
        InstallerKind::Exe => "exe",
        InstallerKind::HiveExec => "hiveexec.cmd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(
        bulletin: &str,
        file: &str,
        recipe: InstallerRecipe,
        sha: &str,
    ) -> ApprovedInstaller {
        ApprovedInstaller {
            bulletin: bulletin.into(),
            path: PathBuf::from(file),
            file_name: file.into(),
            recipe,
            bytes: 100,
            sha256: sha.into(),
            companions: vec![],
        }
    }

    fn missing(patch: &str, bulletins: &[&str]) -> Verdict {
        Verdict {
            patch: patch.into(),
            bulletins: bulletins.iter().map(|b| (*b).into()).collect(),
            product: "p".into(),
            status: Status::Missing,
            evidence: "KB not installed".into(),
        }
    }

    #[test]
    fn legacy_hotfixes_chain_with_qchain_and_unapproved_patches_are_listed() {
        let a = vec![
            approved("MS01-001", "Q1.exe", InstallerRecipe::legacy_hotfix(), "aa"),
            approved("MS01-002", "Q2.exe", InstallerRecipe::legacy_hotfix(), "bb"),
        ];
        let verdicts = vec![
            missing("Q2", &["MS01-002"]),
            missing("Q1", &["MS01-001"]),
            missing("Q3", &["MS01-003"]),
            Verdict {
                status: Status::Installed,
                ..missing("Q4", &["MS01-001"])
            },
        ];
        let p = plan_host("W2K", &verdicts, &Catalog::default(), &a);
        let order: Vec<&str> = p.installs.iter().map(|i| i.patch.as_str()).collect();
        assert_eq!(order, ["Q1", "Q2"]);
        assert!(p.qchain);
        assert_eq!(p.bytes, 200);
        assert_eq!(p.unplanned.len(), 1);
        assert_eq!(p.unplanned[0].patch, "Q3");
        let text = render(&Plan {
            run: "r1".into(),
            hosts: vec![p],
        });
        assert!(text.contains("Q1.exe (hotfix)"), "{text}");
        assert!(text.contains("qchain before the reboot"), "{text}");
        assert!(
            text.contains("not planned: no approved bulletin (MS01-003)"),
            "{text}"
        );
        assert!(text.contains("200 bytes to copy"), "{text}");
    }

    #[test]
    fn a_hiveexec_folder_is_its_script_plus_every_other_file_and_chains_with_qchain() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        for (b, exe) in [("MS01-001", "Q1.exe"), ("MS01-002", "Q2.exe")] {
            let d = dir.path().join("hotfixes").join(b);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(exe), b"MZ").unwrap();
            std::fs::write(d.join("extra.dll"), b"dll").unwrap();
            std::fs::write(d.join("HIVEEXEC.CMD"), format!("{exe} -z -q -m\r\n")).unwrap();
        }
        let approved = load_approved(&repo).unwrap();
        assert_eq!(approved.len(), 2);
        let a = &approved[0];
        assert_eq!(a.file_name, "HIVEEXEC.CMD");
        assert_eq!(a.recipe.kind, InstallerKind::HiveExec);
        let names: Vec<&str> = a.companions.iter().map(|c| c.file_name.as_str()).collect();
        assert_eq!(names, ["Q1.exe", "extra.dll"]);
        assert_eq!(a.total_bytes(), 2 + 3 + a.bytes);
        let verdicts = vec![missing("Q1", &["MS01-001"]), missing("Q2", &["MS01-002"])];
        let p = plan_host("W2K", &verdicts, &Catalog::default(), &approved);
        assert!(
            p.qchain,
            "two chained hiveexec.cmd hotfixes get Qchain, as HIVE did"
        );
        assert_eq!(p.installs[0].expected_sha256, a.sha256);
        assert!(
            render(&Plan {
                run: "r".into(),
                hosts: vec![p]
            })
            .contains("(hiveexec.cmd)")
        );
    }

    #[test]
    fn an_unsafe_hiveexec_is_refused_with_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let d = dir.path().join("hotfixes").join("MS01-001");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Q1.exe"), b"MZ").unwrap();
        std::fs::write(
            d.join("hiveexec.cmd"),
            "Q1.exe -z -q -m\r\nshutdown -r -t 0\r\n",
        )
        .unwrap();
        let err = load_approved(&repo).unwrap_err().to_string();
        assert!(err.contains("MS01-001/hiveexec.cmd"), "{err}");
        assert!(err.contains("line 2: shutdown -r -t 0"), "{err}");
    }

    #[test]
    fn one_installer_for_several_bulletins_runs_once_and_a_single_hotfix_needs_no_qchain() {
        let a = vec![
            approved("CVE-1", "x.exe", InstallerRecipe::legacy_hotfix(), "aa"),
            approved("CVE-2", "x.exe", InstallerRecipe::legacy_hotfix(), "aa"),
        ];
        let verdicts = vec![missing("KB1", &["CVE-1"]), missing("KB1b", &["CVE-2"])];
        let p = plan_host("h", &verdicts, &Catalog::default(), &a);
        assert_eq!(p.installs.len(), 1);
        assert!(!p.qchain);
    }

    #[test]
    fn a_kb_approved_by_its_own_id_goes_to_the_hosts_that_miss_it() {
        // One MSRC month: the same CVE is fixed by one KB on Server 2016 and another on 2019.
        let a = vec![
            approved("KB5035855", "kb5035855.msu", InstallerRecipe::msu(), "16"),
            approved("KB5035849", "kb5035849.msu", InstallerRecipe::msu(), "19"),
        ];
        let on_2016 = [missing("KB5035855", &["CVE-2024-26182"])];
        let on_2019 = [missing("KB5035849", &["CVE-2024-26182"])];
        let p16 = plan_host("s16", &on_2016, &Catalog::default(), &a);
        let p19 = plan_host("s19", &on_2019, &Catalog::default(), &a);
        assert_eq!(p16.installs.len(), 1);
        assert_eq!(p16.installs[0].installer.file_name, "kb5035855.msu");
        assert_eq!(p19.installs[0].installer.file_name, "kb5035849.msu");
    }

    #[test]
    fn servicing_stack_goes_first() {
        use crate::catalog::model::Patch;
        let mut catalog = Catalog::default();
        let patch = |id: &str, subtype: &str| Patch {
            id: id.into(),
            kb: None,
            file_name: None,
            download_url: None,
            sha256: None,
            subtype: Some(subtype.into()),
            restart: Some(Restart::Yes),
            bulletins: vec![],
            targets: vec![],
            supersedes: Default::default(),
            superseded_by: Default::default(),
            installer: None,
        };
        catalog
            .patches
            .insert("KB1".into(), patch("KB1", "Security Update"));
        catalog
            .patches
            .insert("KB9".into(), patch("KB9", "Servicing Stack Update"));
        let a = vec![
            approved("B1", "cu.msu", InstallerRecipe::msu(), "aa"),
            approved("B9", "ssu.msu", InstallerRecipe::msu(), "bb"),
        ];
        let verdicts = vec![missing("KB1", &["B1"]), missing("KB9", &["B9"])];
        let p = plan_host("h", &verdicts, &catalog, &a);
        let order: Vec<&str> = p.installs.iter().map(|i| i.patch.as_str()).collect();
        assert_eq!(order, ["KB9", "KB1"]);
        assert_eq!(p.expected_reboot, Restart::Yes);
    }

    #[test]
    fn a_bulletin_with_one_package_per_windows_gives_each_host_its_own() {
        use crate::catalog::model::Patch;
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let src = dir.path().join("downloads");
        std::fs::create_dir_all(&src).unwrap();
        let xp = "WindowsXP-KB958644-x86-ENU.exe";
        let w2k3 = "WindowsServer2003-KB958644-x86-ENU.exe";
        for name in [xp, w2k3] {
            std::fs::write(src.join(name), name.as_bytes()).unwrap();
            repo.approve("MS08-067", &src.join(name), &InstallerRecipe::update_exe())
                .unwrap();
        }
        let a = load_approved(&repo).unwrap();
        assert_eq!(a.len(), 2, "{a:#?}");
        let mut catalog = Catalog::default();
        for name in [xp, w2k3] {
            let id = format!("MS08-067/{name}");
            catalog.patches.insert(
                id.clone(),
                Patch {
                    id,
                    kb: None,
                    file_name: Some(name.to_ascii_lowercase()),
                    download_url: None,
                    sha256: None,
                    subtype: None,
                    restart: Some(Restart::Yes),
                    bulletins: vec!["MS08-067".into()],
                    targets: vec![],
                    supersedes: Default::default(),
                    superseded_by: Default::default(),
                    installer: None,
                },
            );
        }
        let on_xp = [missing(&format!("MS08-067/{xp}"), &["MS08-067"])];
        let p = plan_host("xp", &on_xp, &catalog, &a);
        assert_eq!(p.installs.len(), 1);
        assert_eq!(p.installs[0].installer.file_name, xp);
        let on_2003 = [missing(&format!("MS08-067/{w2k3}"), &["MS08-067"])];
        let p = plan_host("w2k3", &on_2003, &catalog, &a);
        assert_eq!(p.installs[0].installer.file_name, w2k3);
        // A patch the folder has no package for is not given another Windows' package.
        let other = [missing(
            "MS08-067/Windows2000-KB958644-x86-ENU.EXE",
            &["MS08-067"],
        )];
        let p = plan_host("w2k", &other, &catalog, &a);
        assert!(p.installs.is_empty());
        assert!(
            p.unplanned[0].why.contains("holds 2 installers"),
            "{:?}",
            p.unplanned
        );
    }
}
