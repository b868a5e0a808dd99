//! The HIVE repository on disk: where triage decisions, installers and per-host records live.
//!
//! The layout is the one the 2001 HIVE scripts used, so an admin can triage with a file manager:
//!
//! ```text
//! <repo>/hotfixes/<bulletin>/   approved: the installer(s) and recipe.toml
//! <repo>/ignore/<bulletin>/     not to be installed: reason.toml (reason, owner, optional expiry)
//! <repo>/tbe/<bulletin>/        to be engineered: created by scans for missing, untriaged bulletins
//! <repo>/machines/<host>/       lastrun.log (hfnetchk's tab layout), host.toml for exceptions
//! <repo>/archive/<date>/        the previous lastrun.log of each host, <host>.log
//! <repo>/logs/<host>.log        every step hive took on that host, appended, one line each
//! <repo>/installs/<host>.cmd    what the last plan runs there (a record; hive never runs it)
//! ```
//!
//! Folder names are matched in any letter case ([`crate::folders`]): a HIVE folder copied off a
//! Windows share (`Hotfixes`, `Machines`, `TBE`, `Archive`) is a repository as it is.
//!
//! A bulletin's triage state IS the folder it sits in: hive reads the folders every time and never
//! keeps a second copy of that state, so moving a folder by hand is as good as `hive triage`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The three triage folders, in the order HIVE listed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Triage {
    /// Approved for installation: `hotfixes/`.
    Hotfix,
    /// Deliberately not installed: `ignore/`.
    Ignore,
    /// Missing somewhere but not decided yet: `tbe/`.
    Tbe,
}

impl Triage {
    pub const ALL: [Triage; 3] = [Triage::Hotfix, Triage::Ignore, Triage::Tbe];

    /// The folder name under the repository root.
    pub fn folder(self) -> &'static str {
        match self {
            Triage::Hotfix => "hotfixes",
            Triage::Ignore => "ignore",
            Triage::Tbe => "tbe",
        }
    }
}

impl fmt::Display for Triage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Triage::Hotfix => "Hotfixes",
            Triage::Ignore => "Ignore",
            Triage::Tbe => "TBE",
        })
    }
}

/// Why an ignored bulletin is ignored, and who said so. Stored as `ignore/<bulletin>/reason.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoreReason {
    pub reason: String,
    pub owner: String,
    /// `YYYY-MM-DD`; after this day the bulletin counts as untriaged again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// What a TBE folder records: the bulletin and the hosts that miss it. Stored as `tbe.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TbeRecord {
    pub bulletin: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Error)]
pub enum RepoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a hive repository (no hotfixes/, ignore/ and tbe/ folders); run `hive init {path}`"
    )]
    NotARepository { path: PathBuf },
    #[error("bulletin id `{id}` is not valid: {why}")]
    BadBulletinId { id: String, why: &'static str },
    #[error("file name `{name}` is not valid: {why}")]
    BadFileName { name: String, why: &'static str },
    #[error("bulletin {id} is in both {a}/ and {b}/: keep one folder")]
    Conflict {
        id: String,
        a: &'static str,
        b: &'static str,
    },
    #[error("bulletin {id} is already in {state}/")]
    AlreadyThere { id: String, state: &'static str },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bulletin ids become folder names and appear in remote paths, so only what real ids use is allowed
/// (MS01-033, KB5035845, 2024-Mar-CVE-2024-21407): letters, digits, '-', '_' and '.', no `..`.
pub fn validate_bulletin_id(id: &str) -> Result<(), RepoError> {
    let bad = |why| RepoError::BadBulletinId {
        id: id.to_string(),
        why,
    };
    if id.is_empty() || id.len() > 64 {
        return Err(bad("it must be 1 to 64 characters"));
    }
    if id.contains("..") || id.starts_with('.') {
        return Err(bad("it may not start with '.' or contain '..'"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad("use letters, digits, '-', '_' and '.' only"));
    }
    Ok(())
}

/// Installer file names are copied to targets and put on command lines: same rules as bulletin ids,
/// plus a few characters real installer names carry, but never separators or shell metacharacters.
pub fn validate_file_name(name: &str) -> Result<(), RepoError> {
    let bad = |why| RepoError::BadFileName {
        name: name.to_string(),
        why,
    };
    if name.is_empty() || name.len() > 200 {
        return Err(bad("it must be 1 to 200 characters"));
    }
    if name.starts_with('.') || name.contains("..") {
        return Err(bad("it may not start with '.' or contain '..'"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
    {
        return Err(bad(
            "use letters, digits, '-', '_', '+' and '.' only (no separators, spaces or shell metacharacters)",
        ));
    }
    Ok(())
}

/// A HIVE repository rooted at a folder.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

impl Repository {
    /// Create the folder layout (idempotent: an existing repository is left as it is).
    pub fn init(root: &Path) -> Result<Self, RepoError> {
        for sub in ["hotfixes", "ignore", "tbe", "machines", "logs", "runs"] {
            let p = crate::folders::child(root, sub);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Repository {
            root: root.to_path_buf(),
        })
    }

    /// Open an existing repository, refusing a folder that is not one.
    pub fn open(root: &Path) -> Result<Self, RepoError> {
        if Triage::ALL
            .iter()
            .all(|t| crate::folders::child(root, t.folder()).is_dir())
        {
            Ok(Repository {
                root: root.to_path_buf(),
            })
        } else {
            Err(RepoError::NotARepository {
                path: root.to_path_buf(),
            })
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A top-level folder of the repository (`machines`, `logs`, `installs`, ...) in whatever
    /// letter case it exists, hive's spelling when it does not yet.
    pub fn folder(&self, name: &str) -> PathBuf {
        crate::folders::child(&self.root, name)
    }

    /// The folder of a bulletin in one triage state (whether or not it exists).
    pub fn bulletin_dir(&self, state: Triage, id: &str) -> Result<PathBuf, RepoError> {
        validate_bulletin_id(id)?;
        Ok(crate::folders::child(&self.folder(state.folder()), id))
    }

    /// Where a bulletin is triaged now, read from the folders; `None` if nowhere.
    pub fn state_of(&self, id: &str) -> Result<Option<Triage>, RepoError> {
        let mut found: Option<Triage> = None;
        for t in Triage::ALL {
            if self.bulletin_dir(t, id)?.is_dir() {
                if let Some(prev) = found {
                    return Err(RepoError::Conflict {
                        id: id.to_string(),
                        a: prev.folder(),
                        b: t.folder(),
                    });
                }
                found = Some(t);
            }
        }
        if found == Some(Triage::Ignore) && self.ignore_expired(id)? {
            return Ok(None);
        }
        Ok(found)
    }

    /// Every triaged bulletin, sorted by state then id. Folders with invalid names are reported,
    /// not skipped, so a typo made by hand does not silently un-approve a bulletin.
    pub fn list(&self) -> Result<Vec<(Triage, String)>, RepoError> {
        let mut out = Vec::new();
        for t in Triage::ALL {
            let dir = self.folder(t.folder());
            let mut ids = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let entry = entry.map_err(io(&dir))?;
                if !entry.file_type().map_err(io(&entry.path()))?.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                validate_bulletin_id(&name)?;
                ids.push(name);
            }
            ids.sort();
            out.extend(ids.into_iter().map(|id| (t, id)));
        }
        Ok(out)
    }

    /// Move a bulletin to `hotfixes/`, copying its installer and writing its recipe. A TBE or ignore
    /// folder for it is moved (keeping the notes an engineer left there).
    pub fn approve<R: Serialize>(
        &self,
        id: &str,
        installer: &Path,
        recipe: &R,
    ) -> Result<PathBuf, RepoError> {
        let file_name = installer
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        validate_file_name(&file_name)?;
        let dest = self.move_to(id, Triage::Hotfix)?;
        let target = dest.join(&file_name);
        std::fs::copy(installer, &target).map_err(io(installer))?;
        let text = toml::to_string_pretty(recipe).map_err(|e| RepoError::BadFile {
            path: dest.join("recipe.toml"),
            message: e.to_string(),
        })?;
        write_atomic(&dest.join("recipe.toml"), text.as_bytes())?;
        Ok(dest)
    }

    /// Move a bulletin to `ignore/` with its reason.
    pub fn ignore(&self, id: &str, reason: &IgnoreReason) -> Result<PathBuf, RepoError> {
        if let Some(exp) = &reason.expires {
            parse_date(exp).map_err(|message| RepoError::BadFile {
                path: PathBuf::from("--expires"),
                message,
            })?;
        }
        let dest = self.move_to(id, Triage::Ignore)?;
        let text = toml::to_string_pretty(reason).map_err(|e| RepoError::BadFile {
            path: dest.join("reason.toml"),
            message: e.to_string(),
        })?;
        write_atomic(&dest.join("reason.toml"), text.as_bytes())?;
        Ok(dest)
    }

    /// Record a missing, untriaged bulletin in `tbe/`, merging the affected hosts with those already
    /// listed. Bulletins already approved or ignored are left alone (returns `false`).
    pub fn record_tbe(&self, id: &str, title: &str, hosts: &[String]) -> Result<bool, RepoError> {
        match self.state_of(id)? {
            Some(Triage::Hotfix) | Some(Triage::Ignore) => return Ok(false),
            Some(Triage::Tbe) | None => {}
        }
        let dir = self.bulletin_dir(Triage::Tbe, id)?;
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("tbe.toml");
        let mut rec = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<TbeRecord>(&text).map_err(|e| RepoError::BadFile {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TbeRecord::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        rec.bulletin = id.to_string();
        if !title.is_empty() {
            rec.title = title.to_string();
        }
        rec.hosts.extend(hosts.iter().cloned());
        rec.hosts.sort();
        rec.hosts.dedup();
        let text = toml::to_string_pretty(&rec).map_err(|e| RepoError::BadFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, text.as_bytes())?;
        Ok(true)
    }

    /// The ignore reason of a bulletin in `ignore/`.
    pub fn ignore_reason(&self, id: &str) -> Result<Option<IgnoreReason>, RepoError> {
        let path = self.bulletin_dir(Triage::Ignore, id)?.join("reason.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| RepoError::BadFile {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn ignore_expired(&self, id: &str) -> Result<bool, RepoError> {
        let Some(reason) = self.ignore_reason(id)? else {
            return Ok(false);
        };
        let Some(exp) = reason.expires else {
            return Ok(false);
        };
        let path = self.bulletin_dir(Triage::Ignore, id)?.join("reason.toml");
        let day = parse_date(&exp).map_err(|message| RepoError::BadFile { path, message })?;
        Ok(crate::time::today_yyyymmdd() > day)
    }

    fn move_to(&self, id: &str, to: Triage) -> Result<PathBuf, RepoError> {
        let dest = self.bulletin_dir(to, id)?;
        let from = Triage::ALL
            .into_iter()
            .filter(|t| *t != to)
            .map(|t| self.bulletin_dir(t, id))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .find(|p| p.is_dir());
        if dest.is_dir() {
            if let Some(other) = from {
                return Err(RepoError::Conflict {
                    id: id.to_string(),
                    a: to.folder(),
                    b: Triage::ALL
                        .into_iter()
                        .find(|t| other.starts_with(self.folder(t.folder())))
                        .map(|t| t.folder())
                        .unwrap_or("?"),
                });
            }
            return Ok(dest);
        }
        match from {
            Some(src) => std::fs::rename(&src, &dest).map_err(io(&src))?,
            None => std::fs::create_dir_all(&dest).map_err(io(&dest))?,
        }
        Ok(dest)
    }

    /// Write a host's record of this run as `machines/<host>/lastrun.log`, archiving the previous
    /// one as HIVE did, by date: `archive/<YYYY-MM-DD>/<host>.log` (then `<host>.1.log`, ... for
    /// more runs that day), so no run's record is ever overwritten. `stamp` is this run's
    /// `20261125T130000Z`; the previous record is filed under the day it was written.
    pub fn write_lastrun(&self, host: &str, stamp: &str, text: &str) -> Result<PathBuf, RepoError> {
        crate::inventory::validate_host_name(host).map_err(|message| RepoError::BadFile {
            path: PathBuf::from(host),
            message,
        })?;
        validate_file_name(stamp)?;
        let dir = crate::folders::child(&self.folder("machines"), host);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let last = crate::folders::child(&dir, "lastrun.log");
        if last.exists() {
            let written = std::fs::metadata(&last)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            let day = match written {
                Some(secs) => crate::time::utc_stamp(secs, crate::time::StampFormat::Day),
                None => stamp.get(..8).unwrap_or(stamp).to_string(),
            };
            let archive = crate::folders::child(&self.folder("archive"), &day);
            std::fs::create_dir_all(&archive).map_err(io(&archive))?;
            let mut target = archive.join(format!("{host}.log"));
            let mut n = 1;
            while target.exists() {
                target = archive.join(format!("{host}.{n}.log"));
                n += 1;
            }
            std::fs::rename(&last, &target).map_err(io(&last))?;
        }
        write_atomic(&last, text.as_bytes())?;
        Ok(last)
    }

    /// Append lines to `logs/<host>.log` and flush them to disk before returning, so a crash right
    /// after a step still leaves its record.
    pub fn append_host_log(&self, host: &str, line: &str) -> Result<(), RepoError> {
        crate::inventory::validate_host_name(host).map_err(|message| RepoError::BadFile {
            path: PathBuf::from(host),
            message,
        })?;
        let dir = self.folder("logs");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = crate::folders::child(&dir, &format!("{host}.log"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut text = line.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        f.write_all(text.as_bytes()).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))
    }
}

/// Write a file so that readers see the old or the new content, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A `YYYY-MM-DD` date as a comparable number (days are compared, not computed with).
fn parse_date(text: &str) -> Result<u32, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let ok = parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        return Err(format!("expiry `{text}` is not a date (YYYY-MM-DD)"));
    }
    let (y, m, d): (u32, u32, u32) = (
        parts[0]
            .parse()
            .map_err(|_| format!("bad year in `{text}`"))?,
        parts[1]
            .parse()
            .map_err(|_| format!("bad month in `{text}`"))?,
        parts[2]
            .parse()
            .map_err(|_| format!("bad day in `{text}`"))?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("expiry `{text}` is not a date (YYYY-MM-DD)"));
    }
    Ok(y * 10_000 + m * 100 + d)
}

#[cfg(test)]
mod tests;
