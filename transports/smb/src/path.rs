//! Remote paths: hive speaks `dir/file`, SMB wants `dir\file` relative to the share.

use std::fmt;

/// A path inside a share, normalised to SMB's backslashes, without leading or doubled separators.
/// `..` components are refused (they would escape the directory hive means to write to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePath {
    parts: Vec<String>,
}

impl RemotePath {
    /// Parses `a/b\c` style paths. Returns `None` for a path with a `..` component.
    pub fn parse(path: &str) -> Option<RemotePath> {
        let parts: Vec<String> = path
            .split(['/', '\\'])
            .filter(|p| !p.is_empty() && *p != ".")
            .map(str::to_string)
            .collect();
        if parts.iter().any(|p| p == "..") {
            return None;
        }
        Some(RemotePath { parts })
    }

    /// The path as the SMB create request wants it (empty for the share root).
    pub fn smb(&self) -> String {
        self.parts.join("\\")
    }

    /// Each ancestor directory, shortest first, not including the path itself.
    pub fn ancestors(&self) -> impl Iterator<Item = RemotePath> + '_ {
        (1..self.parts.len()).map(|n| RemotePath {
            parts: self.parts[..n].to_vec(),
        })
    }

    /// Every prefix including the path itself, shortest first.
    pub fn prefixes(&self) -> impl Iterator<Item = RemotePath> + '_ {
        (1..=self.parts.len()).map(|n| RemotePath {
            parts: self.parts[..n].to_vec(),
        })
    }

    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The UNC spelling for messages: `\\host\share\dir\file`.
    pub fn unc(&self, host: &str, share: &str) -> String {
        if self.parts.is_empty() {
            format!(r"\\{host}\{share}")
        } else {
            format!(r"\\{host}\{share}\{}", self.smb())
        }
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.smb())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashes_become_backslashes() {
        let p = RemotePath::parse("/hive//staging/./KB1.msu").unwrap();
        assert_eq!(p.smb(), r"hive\staging\KB1.msu");
        assert_eq!(p.unc("web01", "C$"), r"\\web01\C$\hive\staging\KB1.msu");
        assert_eq!(RemotePath::parse(r"a\b").unwrap().smb(), r"a\b");
    }

    #[test]
    fn dot_dot_is_refused() {
        assert!(RemotePath::parse("hive/../Windows").is_none());
    }

    #[test]
    fn ancestors_and_prefixes() {
        let p = RemotePath::parse("a/b/c").unwrap();
        let anc: Vec<String> = p.ancestors().map(|a| a.smb()).collect();
        assert_eq!(anc, vec!["a".to_string(), r"a\b".to_string()]);
        assert_eq!(p.prefixes().count(), 3);
        assert!(RemotePath::parse("").unwrap().is_root());
        assert_eq!(RemotePath::parse("").unwrap().unc("h", "s"), r"\\h\s");
    }
}
