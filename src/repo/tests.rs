use super::*;

#[derive(Serialize)]
struct Recipe {
    arguments: String,
}

fn repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    (dir, repo)
}

#[test]
fn tbe_then_approve_moves_the_folder_and_keeps_notes() {
    let (dir, repo) = repo();
    assert!(
        repo.record_tbe(
            "MS01-033",
            "Index Server",
            &["web02".into(), "web01".into()]
        )
        .unwrap()
    );
    assert!(
        repo.record_tbe("MS01-033", "", &["web01".into(), "web03".into()])
            .unwrap()
    );
    let rec: TbeRecord =
        toml::from_str(&std::fs::read_to_string(dir.path().join("tbe/MS01-033/tbe.toml")).unwrap())
            .unwrap();
    assert_eq!(rec.hosts, ["web01", "web02", "web03"]);
    assert_eq!(rec.title, "Index Server");
    std::fs::write(dir.path().join("tbe/MS01-033/notes.txt"), "tested in lab").unwrap();

    let inst = dir.path().join("Q300972_W2K_SP3_x86_en.exe");
    std::fs::write(&inst, b"MZ").unwrap();
    let dest = repo
        .approve(
            "MS01-033",
            &inst,
            &Recipe {
                arguments: "-z -q -m".into(),
            },
        )
        .unwrap();
    assert_eq!(repo.state_of("MS01-033").unwrap(), Some(Triage::Hotfix));
    assert!(dest.join("notes.txt").exists());
    assert!(dest.join("Q300972_W2K_SP3_x86_en.exe").exists());
    assert!(
        std::fs::read_to_string(dest.join("recipe.toml"))
            .unwrap()
            .contains("-z -q -m")
    );
    assert!(!dir.path().join("tbe/MS01-033").exists());
    // An approved bulletin is not put back in TBE by a later scan.
    assert!(!repo.record_tbe("MS01-033", "", &["web09".into()]).unwrap());
}

#[test]
fn moving_folders_by_hand_is_triage() {
    let (dir, repo) = repo();
    repo.record_tbe("MS01-044", "", &[]).unwrap();
    std::fs::rename(
        dir.path().join("tbe/MS01-044"),
        dir.path().join("ignore/MS01-044"),
    )
    .unwrap();
    assert_eq!(repo.state_of("MS01-044").unwrap(), Some(Triage::Ignore));
    assert_eq!(
        repo.list().unwrap(),
        vec![(Triage::Ignore, "MS01-044".to_string())]
    );
    // The same bulletin in two folders is a conflict, named.
    std::fs::create_dir(dir.path().join("hotfixes/MS01-044")).unwrap();
    let err = repo.state_of("MS01-044").unwrap_err().to_string();
    assert!(err.contains("hotfixes") && err.contains("ignore"), "{err}");
}

#[test]
fn ignore_with_reason_and_expiry() {
    let (_dir, repo) = repo();
    let reason = IgnoreReason {
        reason: "IIS not installed on this role".into(),
        owner: "jdoe".into(),
        expires: Some("2001-12-31".into()),
    };
    repo.ignore("MS01-026", &reason).unwrap();
    assert_eq!(repo.ignore_reason("MS01-026").unwrap(), Some(reason));
    // Expired long ago: the bulletin counts as untriaged again.
    assert_eq!(repo.state_of("MS01-026").unwrap(), None);
    let forever = IgnoreReason {
        reason: "r".into(),
        owner: "o".into(),
        expires: None,
    };
    repo.ignore("MS01-027", &forever).unwrap();
    assert_eq!(repo.state_of("MS01-027").unwrap(), Some(Triage::Ignore));
    let bad = IgnoreReason {
        expires: Some("31/12/2001".into()),
        ..forever
    };
    assert!(
        repo.ignore("MS01-028", &bad)
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM-DD")
    );
}

#[test]
fn traversal_and_metacharacters_are_refused() {
    let (dir, repo) = repo();
    for id in [
        "..",
        "../x",
        "a/b",
        "a\\b",
        "MS01-033;del",
        "",
        ".x",
        "a b",
        "$(x)",
    ] {
        assert!(repo.state_of(id).is_err(), "{id}");
        assert!(repo.record_tbe(id, "", &[]).is_err(), "{id}");
    }
    for name in [
        "..\\x.exe",
        "a b.exe",
        "x&y.exe",
        "x|y.exe",
        "%windir%.exe",
        "a/b.exe",
    ] {
        assert!(validate_file_name(name).is_err(), "{name}");
    }
    // A folder made by hand with a bad name is reported, not skipped.
    std::fs::create_dir(dir.path().join("hotfixes/bad name")).unwrap();
    assert!(repo.list().unwrap_err().to_string().contains("bad name"));
}

#[test]
fn lastrun_is_archived_not_overwritten() {
    let (dir, repo) = repo();
    repo.write_lastrun("web01", "20261125T130000Z", "first")
        .unwrap();
    repo.write_lastrun("web01", "20261125T140000Z", "second")
        .unwrap();
    repo.write_lastrun("web01", "20261125T140000Z", "third")
        .unwrap();
    let m = dir.path().join("machines/web01");
    assert_eq!(
        std::fs::read_to_string(m.join("lastrun.log")).unwrap(),
        "third"
    );
    // Filed under the day the previous record was written (today, here), as HIVE's Archive was.
    let today = crate::time::today_yyyymmdd();
    let day = format!(
        "{:04}-{:02}-{:02}",
        today / 10_000,
        today / 100 % 100,
        today % 100
    );
    let archive = dir.path().join("archive").join(day);
    assert_eq!(
        std::fs::read_to_string(archive.join("web01.log")).unwrap(),
        "first"
    );
    assert_eq!(
        std::fs::read_to_string(archive.join("web01.1.log")).unwrap(),
        "second"
    );
    repo.append_host_log("web01", "copied x").unwrap();
    repo.append_host_log("web01", "installed x\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("logs/web01.log")).unwrap(),
        "copied x\ninstalled x\n"
    );
    assert!(repo.append_host_log("../etc", "x").is_err());
}

#[test]
fn open_refuses_a_plain_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repository::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("hive init"), "{err}");
}

#[test]
fn a_hive_folder_in_windows_letter_case_is_a_repository_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "Hotfixes/MS01-033",
        "IGNORE/MS01-026",
        "Tbe",
        "Machines/WEB01",
        "Archive",
        "Logs",
    ] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let repo = Repository::open(dir.path()).unwrap();
    assert_eq!(repo.state_of("MS01-033").unwrap(), Some(Triage::Hotfix));
    assert_eq!(repo.state_of("ms01-026").unwrap(), Some(Triage::Ignore));
    repo.write_lastrun("WEB01", "20261125T130000Z", "first")
        .unwrap();
    repo.write_lastrun("WEB01", "20261125T140000Z", "second")
        .unwrap();
    repo.append_host_log("WEB01", "scan").unwrap();
    assert!(dir.path().join("Machines/WEB01/lastrun.log").is_file());
    assert!(dir.path().join("Logs/WEB01.log").is_file());
    assert_eq!(
        std::fs::read_dir(dir.path().join("Archive"))
            .unwrap()
            .count(),
        1
    );
    Repository::init(dir.path()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Archive", "Hotfixes", "IGNORE", "Logs", "Machines", "Tbe", "runs"
        ],
        "init adds only what is missing, in no second spelling"
    );
}
