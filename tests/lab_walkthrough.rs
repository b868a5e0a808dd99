//! The README's lab walk-through, run as written: `hive lab up`, the three lines it prints, every
//! command of "Using it on a real fleet" read from README.md (so README and test cannot drift),
//! a `kill -9` of the rollout in the middle, `hive resume`, `hive report`, `hive lab down`.
//!
//! The real `hive` binary runs each command in the lab folder, as an admin would in a shell.
//! Where Samba is installed and this runs as root (the harness), the lab serves the hosts' C$
//! over real SMB; elsewhere it runs in local-drive mode. Either way the commands are the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HIVE: &str = env!("CARGO_BIN_EXE_hive");

/// The lines of the first ```sh block after `heading` in README.md.
fn readme_block(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no `{heading}`"));
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("a ```sh block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block's end");
    rest[open..open + close]
        .lines()
        .map(str::to_string)
        .collect()
}

/// A command line split as a POSIX shell would for what the README uses: words, '...' and "..."
/// quoting, a `#` comment after whitespace.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    w.push(q);
                }
            }
            '#' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

struct Shell {
    cwd: PathBuf,
    env: BTreeMap<String, String>,
}

impl Shell {
    fn command(&self, words: &[String]) -> Command {
        assert_eq!(words[0], "hive", "README command not of hive: {words:?}");
        let mut c = Command::new(HIVE);
        c.args(&words[1..]).current_dir(&self.cwd);
        for k in [
            "HIVE_REPO",
            "HIVE_INVENTORY",
            "HIVE_CATALOG",
            "HIVE_LAB_DIR",
        ] {
            c.env_remove(k);
        }
        c.envs(&self.env);
        c
    }

    fn run(&self, words: &[String]) -> Output {
        let out = self
            .command(words)
            .stdin(Stdio::null())
            .output()
            .expect("run hive");
        eprintln!(
            "$ {}\n{}{}",
            words.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, words: &[String]) -> String {
        let out = self.run(words);
        assert!(out.status.success(), "{words:?}: {:?}", out.status);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Stops the lab even when an assertion fails half-way.
struct LabGuard(PathBuf);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new(HIVE)
            .args(["lab", "down", "--dir"])
            .arg(&self.0)
            .output();
    }
}

fn hosts_done(journal: &Path) -> usize {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"record\":\"host\""))
        .count()
}

#[test]
fn the_readme_walk_through_runs_on_a_lab() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let lab = tmp.path().join("lab");
    let mut shell = Shell {
        cwd: tmp.path().to_path_buf(),
        env: BTreeMap::from([
            ("HIVE_LAB_DIR".into(), lab.display().to_string()),
            (
                "XDG_CACHE_HOME".into(),
                tmp.path().join("cache").display().to_string(),
            ),
        ]),
    };

    // `hive lab up`, as the README's lab block writes it, then the three lines it prints.
    let lab_block = readme_block("### Trying it on a lab fleet");
    let up = shell_words(&lab_block[0]);
    assert_eq!(up, ["hive", "lab", "up"]);
    let _guard = LabGuard(lab.clone());
    let printed = shell.ok(&up);
    let pasted: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("cd ") || l.starts_with("export "))
        .collect();
    assert_eq!(pasted.len(), 3, "three lines to paste:\n{printed}");
    let readme_lines: Vec<Vec<String>> = lab_block[1..4].iter().map(|l| shell_words(l)).collect();
    for (line, readme) in pasted.iter().zip(&readme_lines) {
        let words = shell_words(line);
        // Same command and variable as the README shows; the folder is this test's.
        assert_eq!(words[0], readme[0], "{line} vs README {readme:?}");
        match words[0].as_str() {
            "cd" => shell.cwd = PathBuf::from(&words[1]),
            "export" => {
                let (k, v) = words[1].split_once('=').expect("export K=V");
                let (rk, _) = readme[1].split_once('=').expect("README export K=V");
                assert_eq!(k, rk);
                shell.env.insert(k.into(), v.into());
            }
            other => panic!("unexpected line to paste: {other}"),
        }
    }
    assert_eq!(
        shell.cwd.canonicalize().expect("lab folder"),
        lab.canonicalize().expect("lab folder")
    );
    let credential = lab.join("credential");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&credential)
            .expect("credential file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Every command of "Using it on a real fleet", verbatim.
    let commands: Vec<Vec<String>> = readme_block("## Using it on a real fleet")
        .iter()
        .map(|l| shell_words(l))
        .filter(|w| !w.is_empty())
        .collect();
    let verbs: Vec<&str> = commands.iter().map(|w| w[1].as_str()).collect();
    assert_eq!(
        verbs,
        [
            "catalog", "init", "scan", "triage", "deploy", "rollout", "resume", "report"
        ]
    );
    let mut run_id = None;
    for words in &commands {
        match words[1].as_str() {
            "scan" => {
                let out = shell.run(words);
                // Every host is scanned; MS01-033 and MS01-044 are missing (exit 0: all scanned).
                assert!(out.status.success(), "{:?}", out.status);
                let tab = String::from_utf8_lossy(&out.stdout);
                assert_eq!(
                    tab.lines().filter(|l| l.contains("MS01-033")).count(),
                    12,
                    "{tab}"
                );
            }
            "deploy" => {
                let plan = shell.ok(words);
                assert!(plan.contains("total: 10 host(s)"), "{plan}");
            }
            "rollout" => {
                // Killed with SIGKILL once the canaries are done: a crash in the middle.
                let mut child = shell
                    .command(words)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start the rollout");
                let runs = shell.cwd.join("hive-repo").join("runs");
                let deadline = Instant::now() + Duration::from_secs(120);
                let journal = loop {
                    let found = std::fs::read_dir(&runs).ok().and_then(|d| {
                        d.flatten()
                            .map(|e| e.path().join("journal.ndjson"))
                            .find(|p| hosts_done(p) >= 2)
                    });
                    if let Some(j) = found {
                        break j;
                    }
                    assert!(
                        child.try_wait().expect("rollout status").is_none(),
                        "the rollout ended before its canaries were done"
                    );
                    assert!(Instant::now() < deadline, "no canary finished in 120 s");
                    std::thread::sleep(Duration::from_millis(100));
                };
                child.kill().expect("kill -9");
                let status = child.wait().expect("reaped");
                assert!(
                    !status.success(),
                    "the rollout was killed, not finished: {status:?}"
                );
                let done = hosts_done(&journal);
                assert!(done < 12, "killed in the middle, {done} of 12 hosts done");
                let run = journal
                    .parent()
                    .and_then(|p| p.file_name())
                    .expect("run folder")
                    .to_string_lossy()
                    .into_owned();
                run_id = Some(run);
            }
            "resume" | "report" => {
                let run = run_id.clone().expect("the rollout ran first");
                let words: Vec<String> = words
                    .iter()
                    .map(|w| if w == "<run>" { run.clone() } else { w.clone() })
                    .collect();
                let out = shell.ok(&words);
                if words[1] == "resume" {
                    assert!(out.contains("12 patched"), "{out}");
                } else {
                    assert_eq!(
                        out.lines().filter(|l| l.contains("patched")).count(),
                        12,
                        "{out}"
                    );
                }
            }
            _ => {
                shell.ok(words);
            }
        }
    }

    // `hive lab down` stops the fleet process: its WinRM listeners close.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.join("lab.json")).expect("lab.json"))
            .expect("lab state");
    let first = &state["hosts"][0];
    let addr = format!(
        "{}:{}",
        first["address"].as_str().expect("address"),
        first["port"]
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_ok(),
        "{addr} listens"
    );
    shell.ok(&["hive".into(), "lab".into(), "down".into()]);
    assert!(!lab.join("lab.json").exists());
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} closed after down"
    );
    let again = shell.run(&["hive".into(), "lab".into(), "down".into()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no lab is up"));
}

#[test]
fn shell_words_split_like_sh() {
    assert_eq!(
        shell_words("hive rollout --plan 'a -> b' --x \"y z\"  # after kill -9"),
        ["hive", "rollout", "--plan", "a -> b", "--x", "y z"]
    );
    assert!(shell_words("   # only a comment").is_empty());
}
