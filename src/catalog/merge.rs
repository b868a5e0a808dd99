//! Merging catalogs: how months and sources accumulate in one cache.
//!
//! The rule is simple and one-directional: a merge adds and updates, it never deletes. MSRC
//! months can come back empty or vanish from the index; an empty fetch must leave every known
//! bulletin, product and patch in place. Scalar fields take the newer document's value when it
//! has one; lists and sets become unions.

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
    /// Merges `newer` into `self`; never removes anything (see the module docs).
    pub fn merge(&mut self, newer: Catalog) -> MergeReport {
        let mut report = MergeReport::default();
        for s in newer.sources {
            self.sources.retain(|o| !(o.kind == s.kind && o.id == s.id));
            self.sources.push(s);
        }
        for (id, p) in newer.products {
            match self.products.get_mut(&id) {
                None => {
                    self.products.insert(id, p);
                    report.new_products += 1;
                }
                Some(old) => {
                    if merge_product(old, p) {
                        report.updated += 1;
                    }
                }
            }
        }
        for (id, b) in newer.bulletins {
            match self.bulletins.get_mut(&id) {
                None => {
                    self.bulletins.insert(id, b);
                    report.new_bulletins += 1;
                }
                Some(old) => {
                    if merge_bulletin(old, b) {
                        report.updated += 1;
                    }
                }
            }
        }
        for (id, p) in newer.patches {
            match self.patches.get_mut(&id) {
                None => {
                    self.patches.insert(id, p);
                    report.new_patches += 1;
                }
                Some(old) => {
                    if merge_patch(old, p) {
                        report.updated += 1;
                    }
                }
            }
        }
        self.link_supersedence();
        report
    }
}

fn newer_some<T: PartialEq>(old: &mut Option<T>, new: Option<T>) {
    if new.is_some() && *old != new {
        *old = new;
    }
}

fn union<T: PartialEq>(old: &mut Vec<T>, new: Vec<T>) {
    for x in new {
        if !old.contains(&x) {
            old.push(x);
        }
    }
}

fn merge_product(old: &mut Product, new: Product) -> bool {
    let before = old.clone();
    if !new.name.is_empty() {
        old.name = new.name;
    }
    newer_some(&mut old.family, new.family);
    newer_some(&mut old.cpe, new.cpe);
    let (a, n) = (&mut old.applicability, new.applicability);
    union(&mut a.service_packs, n.service_packs);
    newer_some(&mut a.min_supported_sp, n.min_supported_sp);
    newer_some(&mut a.current_sp, n.current_sp);
    newer_some(&mut a.version, n.version);
    newer_some(&mut a.build_range, n.build_range);
    newer_some(&mut a.edition, n.edition);
    *old != before
}

fn merge_bulletin(old: &mut Bulletin, new: Bulletin) -> bool {
    let before = old.clone();
    if !new.title.is_empty() {
        old.title = new.title;
    }
    old.posted = match (old.posted, new.posted) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    old.revised = old.revised.max(new.revised);
    newer_some(&mut old.severity, new.severity);
    newer_some(&mut old.url, new.url);
    union(&mut old.cves, new.cves);
    union(&mut old.kbs, new.kbs);
    union(&mut old.patches, new.patches);
    *old != before
}

fn merge_patch(old: &mut Patch, new: Patch) -> bool {
    let before = old.clone();
    newer_some(&mut old.kb, new.kb);
    newer_some(&mut old.file_name, new.file_name);
    newer_some(&mut old.download_url, new.download_url);
    newer_some(&mut old.sha256, new.sha256);
    newer_some(&mut old.subtype, new.subtype);
    newer_some(&mut old.restart, new.restart);
    newer_some(&mut old.installer, new.installer);
    union(&mut old.bulletins, new.bulletins);
    for t in new.targets {
        match old.targets.iter_mut().find(|o| o.product == t.product) {
            Some(o) => *o = t,
            None => old.targets.push(t),
        }
    }
    old.supersedes.extend(new.supersedes);
    old.superseded_by.extend(new.superseded_by);
    *old != before
}
