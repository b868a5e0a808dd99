//! Which document stated what: the order merging follows.
//!
//! MSRC re-publishes months (March 2024 is at revision 235) and an admin imports months in any
//! order, so "the last file imported wins" would let an old document overwrite a newer one and
//! make the cache depend on import order. Every document gets a [`DocumentStamp`] from its own
//! dates — release date-time, then revision, then id as the last tie-breaker — and every
//! bulletin, product and patch remembers the stamp of the newest document that stated it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{SourceInfo, SourceKind};
use super::values::{CatalogDate, Version};

/// A document's place in time, ordered oldest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DocumentStamp {
    /// The release date-time as `YYYY-MM-DDTHH:MM:SS`; empty (oldest) when the document has none
    /// hive can read.
    pub released: String,
    /// The revision, `0` when the document has none.
    pub revision: Version,
    /// `kind:id` (`msrc_cvrf:2024-Mar`), so two documents of the same date still order the same
    /// way every time.
    pub document: String,
}

/// The stamp of the newest document that stated each entry, by entry id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Bulletins.
    #[serde(default)]
    pub bulletins: BTreeMap<String, DocumentStamp>,
    /// Products.
    #[serde(default)]
    pub products: BTreeMap<String, DocumentStamp>,
    /// Patches.
    #[serde(default)]
    pub patches: BTreeMap<String, DocumentStamp>,
}

impl Provenance {
    /// Whether no entry has a stamp (a catalog fresh from an importer, or an older cache).
    pub fn is_empty(&self) -> bool {
        self.bulletins.is_empty() && self.products.is_empty() && self.patches.is_empty()
    }
}

impl SourceInfo {
    /// This document's stamp.
    pub fn stamp(&self) -> DocumentStamp {
        let kind = match self.kind {
            SourceKind::Mssecure => "mssecure",
            SourceKind::MsrcCvrf => "msrc_cvrf",
        };
        DocumentStamp {
            released: self
                .released
                .as_deref()
                .map(released_key)
                .unwrap_or_default(),
            revision: self
                .revision
                .as_deref()
                .and_then(|r| r.parse().ok())
                .unwrap_or(Version(vec![0])),
            document: format!("{kind}:{}", self.id),
        }
    }
}

/// A release date as a sortable `YYYY-MM-DDTHH:MM:SS`: CVRF writes `2024-03-12T07:00:00`,
/// mssecure `10/04/2001` (month/day/year). Anything else is empty, which sorts oldest.
pub fn released_key(text: &str) -> String {
    let t = text.trim();
    let (day, time) = t.split_once('T').unwrap_or((t, ""));
    let date = day.parse::<CatalogDate>().ok().or_else(|| us_date(day));
    let Some(date) = date else {
        return String::new();
    };
    let mut hms = [0u32; 3];
    let clock = time.trim_end_matches('Z');
    for (slot, part) in hms.iter_mut().zip(clock.split(':')) {
        let whole = part.split('.').next().unwrap_or("");
        *slot = whole.parse().unwrap_or(0).min(59);
    }
    format!("{date}T{:02}:{:02}:{:02}", hms[0].min(23), hms[1], hms[2])
}

/// `10/04/2001` as month/day/year (the mssecure LastDataUpdate spelling).
fn us_date(text: &str) -> Option<CatalogDate> {
    let mut it = text.split('/');
    let (m, d, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 {
        return None;
    }
    format!("{y}-{m}-{d}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sources_date_spellings_sort_by_time() {
        assert_eq!(released_key("2024-03-12T07:00:00"), "2024-03-12T07:00:00");
        assert_eq!(released_key("2026-06-28T01:41:24Z"), "2026-06-28T01:41:24");
        assert_eq!(released_key("10/04/2001"), "2001-10-04T00:00:00");
        assert_eq!(released_key("2001/10/04"), "2001-10-04T00:00:00");
        assert_eq!(released_key("soon"), "");
        assert!(released_key("10/04/2001") < released_key("2017-02-14T08:00:00"));
    }

    #[test]
    fn a_later_revision_of_the_same_day_is_newer() {
        let src = |rev: &str| SourceInfo {
            kind: SourceKind::MsrcCvrf,
            id: "2024-Mar".into(),
            released: Some("2024-03-12T07:00:00".into()),
            revision: Some(rev.into()),
            location: String::new(),
        };
        assert!(src("235").stamp() > src("99").stamp());
        assert!(src("1.1").stamp() > src("1.0").stamp());
    }
}
