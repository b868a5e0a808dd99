//! Errors of the catalog: each names the file (or URL), and for documents the line and element,
//! so an admin can open the exact spot.

use std::path::PathBuf;

/// Reading a catalog document failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not UTF-8 text.
    #[error("{file}: not UTF-8 text (byte {offset})")]
    NotUtf8 {
        /// The file.
        file: String,
        /// Byte offset of the first bad byte.
        offset: usize,
    },
    /// The XML is malformed.
    #[error("{file}:{line}: malformed XML in <{element}>: {message}")]
    Xml {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The open element path, `BulletinDatastore/Bulletins/Bulletin`.
        element: String,
        /// The parser's message.
        message: String,
    },
    /// An element lacks an attribute the format requires.
    #[error("{file}:{line}: <{element}> lacks the {attribute} attribute")]
    MissingAttribute {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// A field holds a value the format does not allow.
    #[error("{file}:{line}: <{element}> {field}={problem}")]
    BadValue {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The element.
        element: String,
        /// The attribute or child element.
        field: String,
        /// The offending value, quoted, and why it is wrong: "`1998/13/45`: not a date".
        problem: String,
    },
    /// The document is some other kind of XML.
    #[error("{file}: not {expected} (root element <{found}>)")]
    WrongDocument {
        /// The file.
        file: String,
        /// What was expected.
        expected: &'static str,
        /// The root element found.
        found: String,
    },
}

/// Reading or writing the cached catalog failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system trouble.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What hive was doing (`write`, `fsync`, `rename over the old catalog`).
        action: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The cache is not a hive catalog or is damaged.
    #[error("{path}: not a readable hive catalog: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The cache was written by a newer hive.
    #[error("{path}: catalog layout version {found}, this hive reads version {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The file's layout version.
        found: u32,
        /// The layout version this build reads.
        supported: u32,
    },
}

/// The most names of an element path an error message shows: the outermost few and the
/// innermost few say where in the document the problem is; a 10,000-level path says nothing more
/// and makes a line of hundreds of kilobytes.
const PATH_ENDS: usize = 3;
/// The longest element name an error message shows whole.
const NAME_CHARS: usize = 64;

/// An element path (`cvrfdoc/ProductTree/Branch`) short enough for one line of an error message:
/// the outer and inner ends with the count of the levels left out, each name cut at
/// 64 characters.
pub fn short_path<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let cut = |n: &str| -> String {
        match n.char_indices().nth(NAME_CHARS) {
            Some((i, _)) => format!("{}…", &n[..i]),
            None => n.to_string(),
        }
    };
    let mut parts: Vec<String> = Vec::new();
    for (i, n) in names.enumerate() {
        if total > 2 * PATH_ENDS + 1 && i == PATH_ENDS {
            parts.push(format!("…{} more…", total - 2 * PATH_ENDS));
        }
        if total <= 2 * PATH_ENDS + 1 || i < PATH_ENDS || i >= total - PATH_ENDS {
            parts.push(cut(n));
        }
    }
    parts.join("/")
}

/// The longest offending value an error message quotes whole.
const VALUE_CHARS: usize = 80;

/// A value from a document as an error quotes it: cut, with its length, when a hostile document
/// makes it long.
pub fn short_value(value: &str) -> String {
    match value.char_indices().nth(VALUE_CHARS) {
        Some((i, _)) => format!("{}… ({} bytes)", &value[..i], value.len()),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_keep_their_ends_and_count_the_middle() {
        let names = vec!["Branch"; 10_000];
        let s = short_path(names.iter().copied());
        assert_eq!(s, "Branch/Branch/Branch/…9994 more…/Branch/Branch/Branch");
        assert_eq!(short_path(["a", "b", "c"].into_iter()), "a/b/c");
        let long = "x".repeat(100_000);
        assert!(short_path(std::iter::once(long.as_str())).chars().count() <= NAME_CHARS + 1);
    }
}
