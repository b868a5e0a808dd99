//! Merging catalogs: how months and sources accumulate in one cache.
//!
//! A merge adds and updates, it never deletes. MSRC months can come back empty or vanish from
//! the index; an empty fetch must leave every known bulletin, product and patch in place.
//!
//! Which side wins is decided by the documents' own dates ([`DocumentStamp`]), never by the
//! order of imports: for each entry, the values stated by the newer document win and the older
//! document only fills what the newer one left out; lists and sets become sorted unions. So
//! importing the same documents in any order gives the same catalog, byte for byte, as long as
//! no field is left out by a newer document and stated differently by two older ones (the
//! importers state the same fields for every entry of a format).

use std::collections::BTreeMap;

use super::model::*;

/// What a merge changed, for the command line to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Bulletins that were not known before.
    pub new_bulletins: usize,
    /// Patches that were not known before.
    pub new_patches: usize,
    /// Products that were not known before.
    pub new_products: usize,
    /// Entries that were known and got updated.
    pub updated: usize,
}

impl Catalog {
    /// Merges `other` into `self`; never removes anything (see the module docs).
    pub fn merge(&mut self, other: Catalog) -> MergeReport {
        let mut report = MergeReport::default();
        // Entries of a catalog fresh from an importer carry no stamp: they are its document's
        // (a cache written before stamps existed is read the same way: its newest document's).
        let fallback = other.sources.iter().map(SourceInfo::stamp).max();
        let our_fallback = self.sources.iter().map(SourceInfo::stamp).max();
        for s in other.sources {
            match self
                .sources
                .iter_mut()
                .find(|o| o.kind == s.kind && o.id == s.id)
            {
                Some(o) if o.stamp() >= s.stamp() => {}
                Some(o) => *o = s,
                None => self.sources.push(s),
            }
        }
        self.sources.sort_by_key(SourceInfo::stamp);
        let theirs = other.provenance;
        merge_map(
            &mut self.products,
            other.products,
            &mut self.provenance.products,
            &theirs.products,
            [&our_fallback, &fallback],
            merge_product,
            &mut report.new_products,
            &mut report.updated,
        );
        merge_map(
            &mut self.bulletins,
            other.bulletins,
            &mut self.provenance.bulletins,
            &theirs.bulletins,
            [&our_fallback, &fallback],
            merge_bulletin,
            &mut report.new_bulletins,
            &mut report.updated,
        );
        merge_map(
            &mut self.patches,
            other.patches,
            &mut self.provenance.patches,
            &theirs.patches,
            [&our_fallback, &fallback],
            merge_patch,
            &mut report.new_patches,
            &mut report.updated,
        );
        self.link_supersedence();
        report
    }
}

/// Merges one table: `merge(old, new, new_wins)` returns whether `old` changed.
#[allow(clippy::too_many_arguments)]
fn merge_map<T: Clone>(
    ours: &mut BTreeMap<String, T>,
    theirs: BTreeMap<String, T>,
    our_stamps: &mut BTreeMap<String, DocumentStamp>,
    their_stamps: &BTreeMap<String, DocumentStamp>,
    [our_fallback, fallback]: [&Option<DocumentStamp>; 2],
    merge: fn(&mut T, T, bool) -> bool,
    new: &mut usize,
    updated: &mut usize,
) {
    for (id, mut entry) in theirs {
        let stamp = their_stamps.get(&id).cloned().or_else(|| fallback.clone());
        let newest = match ours.get_mut(&id) {
            None => {
                // Normalised through the same path as a merge, so one import sorts like many.
                let blank = entry.clone();
                merge(&mut entry, blank, true);
                ours.insert(id.clone(), entry);
                *new += 1;
                stamp
            }
            Some(old) => {
                let old_stamp = our_stamps.get(&id).or(our_fallback.as_ref()).cloned();
                let new_wins = stamp >= old_stamp;
                if merge(old, entry, new_wins) {
                    *updated += 1;
                }
                stamp.max(old_stamp)
            }
        };
        if let Some(s) = newest {
            our_stamps.insert(id, s);
        }
    }
}

/// Takes `new` when it has a value and it wins, or when `old` has none.
fn pick<T: PartialEq>(old: &mut Option<T>, new: Option<T>, new_wins: bool) {
    if new.is_some() && (new_wins || old.is_none()) {
        *old = new;
    }
}

/// A union of two lists whose order carries no meaning, sorted.
fn sorted_union<T: Ord>(old: &mut Vec<T>, new: Vec<T>) {
    old.extend(new);
    old.sort();
    old.dedup();
}

/// A union that keeps the vendor's order (service packs are listed oldest first).
fn ordered_union<T: PartialEq>(old: &mut Vec<T>, new: Vec<T>) {
    for x in new {
        if !old.contains(&x) {
            old.push(x);
        }
    }
}

fn merge_product(old: &mut Product, new: Product, new_wins: bool) -> bool {
    let before = old.clone();
    if !new.name.is_empty() && (new_wins || old.name.is_empty()) {
        old.name = new.name;
    }
    pick(&mut old.family, new.family, new_wins);
    pick(&mut old.cpe, new.cpe, new_wins);
    let (a, n) = (&mut old.applicability, new.applicability);
    ordered_union(&mut a.service_packs, n.service_packs);
    pick(&mut a.min_supported_sp, n.min_supported_sp, new_wins);
    pick(&mut a.current_sp, n.current_sp, new_wins);
    pick(&mut a.version, n.version, new_wins);
    pick(&mut a.build_range, n.build_range, new_wins);
    pick(&mut a.edition, n.edition, new_wins);
    *old != before
}

fn merge_bulletin(old: &mut Bulletin, new: Bulletin, new_wins: bool) -> bool {
    let before = old.clone();
    if !new.title.is_empty() && (new_wins || old.title.is_empty()) {
        old.title = new.title;
    }
    old.posted = match (old.posted, new.posted) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    old.revised = old.revised.max(new.revised);
    pick(&mut old.severity, new.severity, new_wins);
    pick(&mut old.url, new.url, new_wins);
    sorted_union(&mut old.cves, new.cves);
    sorted_union(&mut old.kbs, new.kbs);
    sorted_union(&mut old.patches, new.patches);
    *old != before
}

fn merge_patch(old: &mut Patch, new: Patch, new_wins: bool) -> bool {
    let before = old.clone();
    pick(&mut old.kb, new.kb, new_wins);
    pick(&mut old.file_name, new.file_name, new_wins);
    pick(&mut old.download_url, new.download_url, new_wins);
    pick(&mut old.sha256, new.sha256, new_wins);
    pick(&mut old.subtype, new.subtype, new_wins);
    pick(&mut old.restart, new.restart, new_wins);
    pick(&mut old.installer, new.installer, new_wins);
    sorted_union(&mut old.bulletins, new.bulletins);
    for t in new.targets {
        match old.targets.iter_mut().find(|o| o.product == t.product) {
            Some(o) if new_wins => *o = t,
            Some(_) => {}
            None => old.targets.push(t),
        }
    }
    old.targets.sort_by(|a, b| a.product.cmp(&b.product));
    old.supersedes.extend(new.supersedes);
    old.superseded_by.extend(new.superseded_by);
    *old != before
}
