//! `hive adopt`: take over a folder the 2001 HIVE scripts left, with its years of decisions, as
//! it is.
//!
//! HIVE kept its state in folders, and so does hive (see [`crate::repo`]): `Hotfixes\<bulletin>\`
//! holds the approved distribution files and the admin's `hiveexec.cmd`, `Ignore\` and `TBE\` the
//! other two decisions, `Machines\<machine>\` is the list of targets (with `lastrun.log`),
//! `Installs\<machine>.cmd`, `Logs\<machine>.log` and `Archive\` the records admins read. Adopting
//! is therefore mostly *reading*: [`survey`] says what the folder holds and what hive cannot take
//! over as it is (a folder name that is no host name or bulletin id, a `hiveexec.cmd` line that
//! reboots or reaches for the old share), and [`adopt`] makes it a repository — in place, by adding
//! only the folders hive needs that are missing, or beside it, by copying it into a new folder in
//! hive's spelling. Nothing of the HIVE folder is ever deleted, renamed or rewritten: the admin can
//! still go back to the old scripts.

pub mod hiveexec;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::repo::{RepoError, Repository, Triage};

/// The folders of a HIVE folder, in hive's spelling (matched in any case).
pub const FOLDERS: [&str; 7] = [
    "hotfixes", "ignore", "tbe", "machines", "installs", "logs", "archive",
];

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a HIVE folder: it has none of Hotfixes, Ignore, TBE or Machines")]
    NotHive(PathBuf),
    #[error("{parent} holds {names} for one folder (Windows sees one name): merge them by hand")]
    TwoSpellings { parent: PathBuf, names: String },
    #[error("{0} already exists and is not empty: adopt into a new or empty folder")]
    DestinationNotEmpty(PathBuf),
    #[error("the destination {dest} lies inside the HIVE folder {hive}")]
    DestinationInside { dest: PathBuf, hive: PathBuf },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AdoptError + '_ {
    move |source| AdoptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An approved bulletin as HIVE left it.
#[derive(Debug, Clone, Serialize)]
pub struct Approved {
    pub bulletin: String,
    /// The folder's files, in name order.
    pub files: Vec<String>,
    /// The script's file name as spelled, when the folder has one.
    pub hiveexec: Option<String>,
    /// `hiveexec.cmd` lines hive will not run blindly.
    pub findings: Vec<hiveexec::Finding>,
}

/// A folder hive cannot take over as it is, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub path: PathBuf,
    pub why: String,
}

/// What a HIVE folder holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Survey {
    pub root: PathBuf,
    /// Machine folders that are valid host names (the targets), in name order.
    pub targets: Vec<String>,
    /// Targets that have a `lastrun.log`.
    pub lastruns: usize,
    pub approved: Vec<Approved>,
    pub ignored: Vec<String>,
    pub tbe: Vec<String>,
    /// Files under `Installs\`, `Logs\` and `Archive\`, kept as they are.
    pub installs: usize,
    pub logs: usize,
    pub archived: usize,
    /// Folders that are not valid host names or bulletin ids, and approved folders hive cannot
    /// deploy from (no script and no single installer).
    pub refused: Vec<Refused>,
}

impl Survey {
    /// Every unsafe `hiveexec.cmd` line, with its file.
    pub fn findings(&self) -> impl Iterator<Item = (PathBuf, &hiveexec::Finding)> + '_ {
        self.approved.iter().flat_map(move |a| {
            let script = self
                .folder_path(Triage::Hotfix, &a.bulletin)
                .join(a.hiveexec.as_deref().unwrap_or(hiveexec::SCRIPT));
            a.findings.iter().map(move |f| (script.clone(), f))
        })
    }

    fn folder_path(&self, state: Triage, id: &str) -> PathBuf {
        crate::folders::child(&crate::folders::child(&self.root, state.folder()), id)
    }

    /// Whether hive found anything it cannot take over as it is.
    pub fn has_problems(&self) -> bool {
        !self.refused.is_empty() || self.approved.iter().any(|a| !a.findings.is_empty())
    }
}

/// Sub-folders of `dir` in name order (none when `dir` does not exist).
fn sub_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>, AdoptError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if entry.file_type().map_err(io(&entry.path()))?.is_dir() {
            out.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Files below `dir`, counted (none when it does not exist).
fn count_files(dir: &Path) -> Result<usize, AdoptError> {
    if !dir.is_dir() {
        return Ok(0);
    }
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            if entry.file_type().map_err(io(&entry.path()))?.is_dir() {
                stack.push(entry.path());
            } else {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The folder `name` of `parent` in any case; two spellings side by side are an error.
fn folder(parent: &Path, name: &str) -> Result<PathBuf, AdoptError> {
    let found = crate::folders::any_case(parent, name);
    if found.len() > 1 {
        return Err(AdoptError::TwoSpellings {
            parent: parent.to_path_buf(),
            names: found
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" and "),
        });
    }
    Ok(found
        .into_iter()
        .next()
        .unwrap_or_else(|| parent.join(name)))
}

/// Read a HIVE folder (or a hive repository: they are the same shape) without changing it.
pub fn survey(root: &Path) -> Result<Survey, AdoptError> {
    let mut s = Survey {
        root: root.to_path_buf(),
        ..Survey::default()
    };
    let dirs: Vec<PathBuf> = FOLDERS
        .iter()
        .map(|f| folder(root, f))
        .collect::<Result<_, _>>()?;
    if dirs[..4].iter().all(|d| !d.is_dir()) {
        return Err(AdoptError::NotHive(root.to_path_buf()));
    }
    for (name, path) in sub_folders(&dirs[3])? {
        match crate::inventory::validate_host_name(&name) {
            Ok(()) => {
                if crate::folders::child(&path, "lastrun.log").is_file() {
                    s.lastruns += 1;
                }
                s.targets.push(name);
            }
            Err(why) => s.refused.push(Refused {
                path,
                why: format!("{why}; not a target (rename the folder to the machine's name)"),
            }),
        }
    }
    for (i, state) in Triage::ALL.into_iter().enumerate() {
        for (name, path) in sub_folders(&dirs[i])? {
            if let Err(e) = crate::repo::validate_bulletin_id(&name) {
                s.refused.push(Refused {
                    path,
                    why: format!("{e}; not a {state} decision"),
                });
                continue;
            }
            match state {
                Triage::Hotfix => match approved(&name, &path)? {
                    Ok(a) => s.approved.push(a),
                    Err(why) => s.refused.push(Refused { path, why }),
                },
                Triage::Ignore => s.ignored.push(name),
                Triage::Tbe => s.tbe.push(name),
            }
        }
    }
    s.installs = count_files(&dirs[4])?;
    s.logs = count_files(&dirs[5])?;
    s.archived = count_files(&dirs[6])?;
    Ok(s)
}

/// One `Hotfixes\<bulletin>\` folder; `Err(why)` when hive could not deploy from it.
fn approved(bulletin: &str, dir: &Path) -> Result<Result<Approved, String>, AdoptError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if entry.file_type().map_err(io(&entry.path()))?.is_file() {
            files.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    files.sort();
    let script = match hiveexec::find_script(dir) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let Some(script) = script else {
        let installers = files
            .iter()
            .filter(|f| {
                let l = f.to_ascii_lowercase();
                [".exe", ".msu", ".msi", ".cab"]
                    .iter()
                    .any(|x| l.ends_with(x))
            })
            .count();
        if !files.iter().any(|f| f == "recipe.toml") || installers != 1 {
            return Ok(Err(format!(
                "no hiveexec.cmd, and not one installer with hive's recipe.toml ({installers} \
                 installer(s)): write a hiveexec.cmd or run `hive triage approve {bulletin} \
                 --installer FILE`"
            )));
        }
        return Ok(Ok(Approved {
            bulletin: bulletin.to_string(),
            files,
            hiveexec: None,
            findings: Vec::new(),
        }));
    };
    let bytes = std::fs::read(&script).map_err(io(&script))?;
    if let Some(bad) = files
        .iter()
        .find(|f| crate::repo::validate_file_name(f).is_err())
    {
        return Ok(Err(format!(
            "file `{bad}` cannot be staged (use letters, digits, '-', '_', '+' and '.'; rename it \
             and the line of hiveexec.cmd that names it)"
        )));
    }
    Ok(Ok(Approved {
        bulletin: bulletin.to_string(),
        files,
        hiveexec: script.file_name().map(|n| n.to_string_lossy().into_owned()),
        findings: hiveexec::lint(&String::from_utf8_lossy(&bytes)),
    }))
}

/// Where the adopted repository lives.
pub enum Place<'a> {
    /// The HIVE folder itself: only missing folders are added.
    InPlace,
    /// A new (or empty) folder: the HIVE folder is copied there in hive's spelling.
    Beside(&'a Path),
}

/// Make a HIVE folder a hive repository and say what it holds. The HIVE folder is only read
/// (in place, hive adds the folders it lacks, such as `runs/`).
pub fn adopt(hive: &Path, into: Place<'_>) -> Result<(Survey, Repository), AdoptError> {
    let found = survey(hive)?;
    let root = match into {
        Place::InPlace => hive.to_path_buf(),
        Place::Beside(dest) => {
            copy_beside(hive, dest)?;
            dest.to_path_buf()
        }
    };
    let repo = Repository::init(&root)?;
    let survey = if root == hive { found } else { survey(&root)? };
    Ok((survey, repo))
}

fn copy_beside(hive: &Path, dest: &Path) -> Result<(), AdoptError> {
    let hive_abs = std::fs::canonicalize(hive).map_err(io(hive))?;
    if dest.exists() {
        let mut entries = std::fs::read_dir(dest).map_err(io(dest))?;
        if entries.next().is_some() {
            return Err(AdoptError::DestinationNotEmpty(dest.to_path_buf()));
        }
        let dest_abs = std::fs::canonicalize(dest).map_err(io(dest))?;
        if dest_abs.starts_with(&hive_abs) {
            return Err(AdoptError::DestinationInside {
                dest: dest.to_path_buf(),
                hive: hive.to_path_buf(),
            });
        }
    } else if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty())
        && std::fs::canonicalize(parent).is_ok_and(|p| p.starts_with(&hive_abs))
    {
        return Err(AdoptError::DestinationInside {
            dest: dest.to_path_buf(),
            hive: hive.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    for entry in std::fs::read_dir(hive).map_err(io(hive))? {
        let entry = entry.map_err(io(hive))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let spelled = FOLDERS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(&name))
            .map(|f| f.to_string())
            .unwrap_or(name);
        copy_tree(&entry.path(), &dest.join(spelled))?;
    }
    Ok(())
}

/// Copy a file or a folder tree (files byte for byte, modification times kept so the archive's
/// dates stay true).
fn copy_tree(from: &Path, to: &Path) -> Result<(), AdoptError> {
    let meta = std::fs::symlink_metadata(from).map_err(io(from))?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(io(to))?;
        for entry in std::fs::read_dir(from).map_err(io(from))? {
            let entry = entry.map_err(io(from))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        std::fs::copy(from, to).map_err(io(from))?;
        if let Ok(modified) = meta.modified() {
            let _ = std::fs::File::options()
                .write(true)
                .open(to)
                .and_then(|f| f.set_modified(modified));
        }
    }
    Ok(())
}

/// The report `hive adopt` prints.
pub fn render(s: &Survey) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "adopted {}", s.root.display());
    let _ = writeln!(
        out,
        "targets: {} machine folder(s) ({} with a lastrun.log): {}",
        s.targets.len(),
        s.lastruns,
        s.targets.join(", ")
    );
    let _ = writeln!(out, "approved: {} bulletin(s)", s.approved.len());
    for a in &s.approved {
        let how = match &a.hiveexec {
            Some(script) => format!("runs {script}"),
            None => "hive's recipe.toml".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<14} {how}; files: {}",
            a.bulletin,
            a.files.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "ignored: {} bulletin(s){}{}",
        s.ignored.len(),
        if s.ignored.is_empty() { "" } else { ": " },
        s.ignored.join(", ")
    );
    let _ = writeln!(
        out,
        "to be engineered: {} bulletin(s){}{}",
        s.tbe.len(),
        if s.tbe.is_empty() { "" } else { ": " },
        s.tbe.join(", ")
    );
    let _ = writeln!(
        out,
        "kept as they are: {} install script(s), {} log(s), {} archived log(s)",
        s.installs, s.logs, s.archived
    );
    let findings: Vec<_> = s.findings().collect();
    if !findings.is_empty() {
        let _ = writeln!(
            out,
            "UNSAFE hiveexec.cmd lines ({}): hive will not deploy these bulletins until fixed",
            findings.len()
        );
        for (path, f) in findings {
            let _ = writeln!(out, "  {}: {f}", path.display());
        }
    }
    if !s.refused.is_empty() {
        let _ = writeln!(out, "NOT TAKEN OVER ({}):", s.refused.len());
        for r in &s.refused {
            let _ = writeln!(out, "  {}: {}", r.path.display(), r.why);
        }
    }
    out
}

#[cfg(test)]
mod tests;
