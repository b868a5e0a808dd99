//! The cached catalog on disk, and importing documents of either format.
//!
//! The cache is one JSON file ([`CatalogFile`]). It is replaced atomically — written to a
//! temporary file in the same directory, flushed to disk, then renamed over the old one — so a
//! crash, a full disk or a failed verification can never leave a half-written catalog behind: a
//! reader sees the old catalog or the new one, nothing else.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{ImportError, StoreError};
use super::model::*;
use super::mssecure::ImportReport;
use super::{cvrf, mssecure};

/// The lock that serialises every read-merge-write of one cached catalog between hive processes.
///
/// Two `hive catalog import` (or `fetch`) runs into one cache would otherwise both read the old
/// catalog, each merge its own document, and the second rename would silently drop the first
/// one's month. The lock is an advisory `flock` on a file beside the cache (`catalog.json.lock`):
/// the cache itself is replaced by rename, so a lock on it would lock a file that is gone. The
/// kernel releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// The lock file of a cached catalog.
pub fn lock_path(cache: &Path) -> PathBuf {
    let mut name = cache
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "catalog".into());
    name.push(".lock");
    cache.with_file_name(name)
}

/// Takes the cache's lock, waiting for another hive that holds it; `on_wait` is called once,
/// before waiting, so the command line can say why nothing happens.
pub fn lock_cache(cache: &Path, on_wait: impl FnOnce(&Path)) -> Result<CacheLock, StoreError> {
    let path = lock_path(cache);
    let io = |action: &'static str| {
        let p = path.clone();
        move |source| StoreError::Io {
            path: p,
            action,
            source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io("create the directory"))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("open the lock file"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            on_wait(&path);
            file.lock().map_err(io("wait for the lock"))?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(io("lock")(e)),
    }
    Ok(CacheLock { _file: file })
}

/// Reads a cached catalog.
pub fn load(path: &Path) -> Result<Catalog, StoreError> {
    let bytes = fs::read(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    let file: CatalogFile = serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if file.format != "hive-catalog" {
        return Err(StoreError::Invalid {
            path: path.to_path_buf(),
            reason: format!("format is `{}`, not `hive-catalog`", file.format),
        });
    }
    if file.version > CATALOG_FORMAT_VERSION {
        return Err(StoreError::Version {
            path: path.to_path_buf(),
            found: file.version,
            supported: CATALOG_FORMAT_VERSION,
        });
    }
    Ok(file.catalog)
}

/// Reads a cached catalog, or an empty one when there is no cache yet.
pub fn load_or_empty(path: &Path) -> Result<Catalog, StoreError> {
    if path.exists() {
        load(path)
    } else {
        Ok(Catalog::default())
    }
}

/// Writes the catalog atomically (see the module docs).
pub fn save(path: &Path, catalog: &Catalog) -> Result<(), StoreError> {
    let json = serde_json::to_vec_pretty(&catalog.to_file()).map_err(|e| StoreError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &json)
}

/// Replaces `path` with `bytes`: temp file in the same directory, fsync, rename, fsync of the
/// directory (so the rename itself survives a power cut).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| StoreError::Io {
            path: p,
            action,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io("create the directory", &dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "catalog".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io("create a temporary file", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io("rename over the old file", path))?;
        if let Ok(d) = File::open(&dir) {
            // Not every file system can fsync a directory; the data itself is already safe.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The catalog formats hive reads, told apart by the root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// `<BulletinDatastore>`: hfnetchk mssecure.xml.
    Mssecure,
    /// `<cvrf:cvrfdoc>`: MSRC CVRF month.
    Cvrf,
}

/// Which format a document is, from its first element's name.
pub fn sniff(text: &str) -> Option<DocumentKind> {
    let mut rest = text;
    loop {
        let i = rest.find('<')?;
        rest = &rest[i + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        let local = name.rsplit(':').next().unwrap_or("");
        return match local {
            "BulletinDatastore" => Some(DocumentKind::Mssecure),
            "cvrfdoc" => Some(DocumentKind::Cvrf),
            _ => None,
        };
    }
}

/// Imports a document of either format from text. `name` names it in errors.
pub fn import_text(name: &str, text: &str) -> Result<(Catalog, ImportReport), ImportError> {
    match sniff(text) {
        Some(DocumentKind::Mssecure) => mssecure::import(name, text),
        Some(DocumentKind::Cvrf) => cvrf::import(name, text),
        None => Err(ImportError::WrongDocument {
            file: name.to_string(),
            expected: "an mssecure.xml or MSRC CVRF document",
            found: text.trim_start().chars().take(40).collect::<String>(),
        }),
    }
}

/// Imports a document of either format from bytes (must be UTF-8).
pub fn import_bytes(name: &str, bytes: &[u8]) -> Result<(Catalog, ImportReport), ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| ImportError::NotUtf8 {
        file: name.to_string(),
        offset: e.valid_up_to(),
    })?;
    import_text(name, text)
}

/// Imports a local file (hfnetchk's `-x`: offline, no network).
pub fn import_file(path: &Path) -> Result<(Catalog, ImportReport), ImportError> {
    let name = path.display().to_string();
    let bytes = fs::read(path).map_err(|source| ImportError::Io {
        file: name.clone(),
        source,
    })?;
    import_bytes(&name, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_both_formats() {
        assert_eq!(
            sniff("<?xml version=\"1.0\"?>\n<!-- x --><BulletinDatastore a=\"1\">"),
            Some(DocumentKind::Mssecure)
        );
        assert_eq!(
            sniff("<cvrf:cvrfdoc\n xmlns:a=\"b\">"),
            Some(DocumentKind::Cvrf)
        );
        assert_eq!(sniff("<html>"), None);
        assert_eq!(sniff(""), None);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_held_lock_makes_the_next_one_wait() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("sub").join("catalog.json");
        let first = lock_cache(&cache, |_| panic!("nobody holds it yet")).unwrap();
        assert_eq!(lock_path(&cache), dir.path().join("sub/catalog.json.lock"));
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let mut waited = false;
            let _second = lock_cache(&cache, |_| waited = true).unwrap();
            tx.send(waited).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the second lock was granted while the first was held"
        );
        drop(first);
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap());
        waiter.join().unwrap();
    }

    #[test]
    fn a_newer_layout_is_refused_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        fs::write(
            &path,
            r#"{"format":"hive-catalog","version":99,"catalog":{}}"#,
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("99"), "{err}");
    }
}
