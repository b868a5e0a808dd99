//! What changed between two catalogs: what `hive catalog diff` prints before an admin accepts a
//! new catalog.

use super::model::*;

/// The differences from an older to a newer catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CatalogDiff {
    /// Bulletins only the newer catalog has.
    pub new_bulletins: Vec<BulletinId>,
    /// Bulletins only the older catalog has (a merge never drops them; two files can).
    pub removed_bulletins: Vec<BulletinId>,
    /// Bulletins in both whose content differs.
    pub changed_bulletins: Vec<BulletinId>,
    /// Patches only the newer catalog has.
    pub new_patches: Vec<PatchId>,
    /// Patches that are superseded in the newer catalog but were not in the older.
    pub newly_superseded: Vec<PatchId>,
    /// Patches in both whose content (detection, targets, URL, ...) differs.
    pub changed_patches: Vec<PatchId>,
}

impl CatalogDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == CatalogDiff::default()
    }
}

/// Compares two catalogs. Pure: works on values, so it can compare a cache with a fetched file.
pub fn diff(older: &Catalog, newer: &Catalog) -> CatalogDiff {
    let mut d = CatalogDiff::default();
    for (id, b) in &newer.bulletins {
        match older.bulletins.get(id) {
            None => d.new_bulletins.push(id.clone()),
            Some(o) if o != b => d.changed_bulletins.push(id.clone()),
            Some(_) => {}
        }
    }
    for id in older.bulletins.keys() {
        if !newer.bulletins.contains_key(id) {
            d.removed_bulletins.push(id.clone());
        }
    }
    for (id, p) in &newer.patches {
        match older.patches.get(id) {
            None => d.new_patches.push(id.clone()),
            Some(o) => {
                if o.superseded_by.is_empty() && !p.superseded_by.is_empty() {
                    d.newly_superseded.push(id.clone());
                }
                if o != p {
                    d.changed_patches.push(id.clone());
                }
            }
        }
    }
    d
}
