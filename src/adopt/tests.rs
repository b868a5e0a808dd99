use super::*;

/// A HIVE folder as it came off a Windows share, in mixed letter case.
fn hive_folder(root: &Path) {
    let w = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    w("Machines/WEB01/lastrun.log", "WEB01\tIIS\tMS01-033\n");
    w("MACHINES/web02/.keep", "");
    w("Machines/WEB 03/lastrun.log", "");
    w("Hotfixes/MS01-033/Q300972_W2K_SP3_x86_en.exe", "MZ1");
    w(
        "Hotfixes/MS01-033/HiveExec.cmd",
        "@echo off\r\nQ300972_W2K_SP3_x86_en.exe -z -q -m\r\n",
    );
    w("Hotfixes/MS01-044/Q301625.exe", "MZ2");
    w(
        "Hotfixes/MS01-044/hiveexec.cmd",
        "Q301625.exe -z -q -m\r\nshutdown -r -t 0\r\n",
    );
    w("Hotfixes/MS01-050/readme.txt", "untested");
    w("ignore/MS01-026/why.txt", "no FTP on these servers");
    w("TBE/MS02-001/notes.txt", "");
    w("TBE/MS 02-002/notes.txt", "");
    w(
        "Installs/WEB01.cmd",
        "call ..\\Hotfixes\\MS01-033\\hiveexec.cmd\r\n",
    );
    w("Logs/WEB01.log", "2001-09-01 installed MS01-033\r\n");
    w("Archive/2001-09-01/WEB01.log", "old");
}

fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push((p.clone(), Vec::new()));
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_survey_reports_targets_decisions_records_and_what_it_cannot_take_over() {
    let dir = tempfile::tempdir().unwrap();
    hive_folder(dir.path());
    let err = survey(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("MACHINES and Machines") && err.contains("merge them"),
        "{err}"
    );
    std::fs::rename(
        dir.path().join("MACHINES/web02"),
        dir.path().join("Machines/web02"),
    )
    .unwrap();
    std::fs::remove_dir(dir.path().join("MACHINES")).unwrap();

    let s = survey(dir.path()).unwrap();
    assert_eq!(s.targets, ["WEB01", "web02"]);
    assert_eq!(s.lastruns, 1);
    let approved: Vec<&str> = s.approved.iter().map(|a| a.bulletin.as_str()).collect();
    assert_eq!(approved, ["MS01-033", "MS01-044"]);
    assert_eq!(s.approved[0].hiveexec.as_deref(), Some("HiveExec.cmd"));
    assert!(s.approved[0].findings.is_empty());
    assert_eq!(s.approved[1].findings.len(), 1);
    assert_eq!(s.approved[1].findings[0].line, 2);
    assert_eq!(s.ignored, ["MS01-026"]);
    assert_eq!(s.tbe, ["MS02-001"]);
    assert_eq!((s.installs, s.logs, s.archived), (1, 1, 1));
    let refused: Vec<String> = s
        .refused
        .iter()
        .map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(refused, ["WEB 03", "MS01-050", "MS 02-002"]);
    let text = render(&s);
    assert!(
        text.contains("Hotfixes/MS01-044/hiveexec.cmd: line 2: shutdown -r -t 0"),
        "{text}"
    );
    assert!(
        text.contains("WEB 03: host name `WEB 03` is not valid"),
        "{text}"
    );
    assert!(s.has_problems());
}

#[test]
fn adopting_in_place_adds_folders_and_changes_nothing_that_was_there() {
    let dir = tempfile::tempdir().unwrap();
    hive_folder(dir.path());
    std::fs::remove_dir_all(dir.path().join("MACHINES")).unwrap();
    let before = snapshot(dir.path());
    let (s, repo) = adopt(dir.path(), Place::InPlace).unwrap();
    let after = snapshot(dir.path());
    let kept: Vec<_> = after.iter().filter(|e| before.contains(e)).collect();
    assert_eq!(
        kept.len(),
        before.len(),
        "every file and folder kept as it was"
    );
    let added: Vec<_> = after
        .iter()
        .filter(|e| !before.contains(e))
        .map(|(p, _)| p.strip_prefix(dir.path()).unwrap().to_path_buf())
        .collect();
    assert_eq!(added, [PathBuf::from("runs")]);
    assert_eq!(s.targets, ["WEB01"]);
    assert_eq!(repo.state_of("MS01-033").unwrap(), Some(Triage::Hotfix));
    assert_eq!(repo.state_of("MS01-026").unwrap(), Some(Triage::Ignore));
    assert_eq!(repo.state_of("MS02-001").unwrap(), Some(Triage::Tbe));
}

#[test]
fn adopting_beside_copies_in_hive_spelling_and_leaves_the_hive_folder_alone() {
    let dir = tempfile::tempdir().unwrap();
    let hive = dir.path().join("Hive");
    hive_folder(&hive);
    std::fs::remove_dir_all(hive.join("MACHINES")).unwrap();
    let before = snapshot(&hive);
    let dest = dir.path().join("hive-repo");
    let (s, repo) = adopt(&hive, Place::Beside(&dest)).unwrap();
    assert_eq!(snapshot(&hive), before);
    assert_eq!(s.root, dest);
    assert!(dest.join("hotfixes/MS01-033/HiveExec.cmd").is_file());
    assert!(dest.join("archive/2001-09-01/WEB01.log").is_file());
    assert!(dest.join("machines/WEB01/lastrun.log").is_file());
    assert_eq!(repo.state_of("MS01-044").unwrap(), Some(Triage::Hotfix));
    let again = adopt(&hive, Place::Beside(&dest)).unwrap_err().to_string();
    assert!(again.contains("not empty"), "{again}");
    let inside = adopt(&hive, Place::Beside(&hive.join("new"))).unwrap_err();
    assert!(inside.to_string().contains("inside"), "{inside}");
}

#[test]
fn a_folder_without_hive_folders_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = survey(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a HIVE folder"), "{err}");
}
