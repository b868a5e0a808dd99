//! Host list files as hfnetchk's `-fh`/`-fip` read them: one host name or address a line, `#`
//! starting a comment, blank lines ignored.

use std::path::{Path, PathBuf};

use crate::inventory::validate_host_name;

/// Why a host list could not be used; names the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot read host list {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("host list {path}, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("host list {path} names no host")]
    Empty { path: PathBuf },
}

/// The names and addresses of a list file, in file order, each with its line number.
pub fn read(path: &Path) -> Result<Vec<(usize, String)>, ListError> {
    let text = std::fs::read_to_string(path).map_err(|source| ListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let entries = parse(&text, path)?;
    if entries.is_empty() {
        return Err(ListError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(entries)
}

fn parse(text: &str, path: &Path) -> Result<Vec<(usize, String)>, ListError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let bad = |message: String| ListError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        if entry.split_whitespace().count() > 1 {
            return Err(bad(format!(
                "`{entry}` is more than one name: one host name or address a line"
            )));
        }
        // An IPv6 literal is an address, not a name: it keeps its colons and is its own name only
        // once they are replaced, which a folder name needs.
        if entry.contains(':') {
            return Err(bad(format!(
                "`{entry}`: IPv6 addresses need a name; list the host in the inventory as a [[host]]"
            )));
        }
        validate_host_name(entry).map_err(bad)?;
        out.push((i + 1, entry.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = "# web tier\nweb01\n\n  10.1.2.3   # the old db\nweb02.corp.example\r\n";
        let v = parse(text, Path::new("hosts.txt")).unwrap();
        assert_eq!(
            v,
            vec![
                (2, "web01".to_string()),
                (4, "10.1.2.3".to_string()),
                (5, "web02.corp.example".to_string())
            ]
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for (text, line, why) in [
            ("web01\nweb02 web03\n", 2, "more than one name"),
            ("web01\n\n../etc\n", 3, "not valid"),
            ("x;rm\n", 1, "not valid"),
            ("fe80::1\n", 1, "IPv6"),
        ] {
            let err = parse(text, Path::new("hosts.txt")).unwrap_err().to_string();
            assert!(
                err.contains(&format!("hosts.txt, line {line}")) && err.contains(why),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn an_empty_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.txt");
        std::fs::write(&path, "# nothing yet\n\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("names no host"), "{err}");
    }
}
