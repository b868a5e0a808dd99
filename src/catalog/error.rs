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
