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
    /// Patches only the older catalog has.
    pub removed_patches: Vec<PatchId>,
    /// Patches that are superseded in the newer catalog but were not in the older.
    pub newly_superseded: Vec<PatchId>,
    /// Patches in both whose content (detection, targets, URL, ...) differs.
    pub changed_patches: Vec<PatchId>,
    /// Products only the newer catalog has.
    pub new_products: Vec<ProductId>,
    /// Products only the older catalog has.
    pub removed_products: Vec<ProductId>,
    /// Products in both whose identity changed: what a scan matches hosts with.
    pub changed_products: Vec<ProductChange>,
}

/// How one product changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProductChange {
    /// The product.
    pub id: ProductId,
    /// Its name in the newer catalog.
    pub name: String,
    /// One line per changed field: `build range 10.0.19041.0 ..< 10.0.19042.0 -> 10.0.19044.0
    /// ..< 10.0.19045.0`.
    pub changes: Vec<String>,
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
    d.removed_bulletins = only_in(&older.bulletins, &newer.bulletins);
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
    d.removed_patches = only_in(&older.patches, &newer.patches);
    for (id, p) in &newer.products {
        match older.products.get(id) {
            None => d.new_products.push(id.clone()),
            Some(o) => {
                let changes = product_changes(o, p);
                if !changes.is_empty() {
                    d.changed_products.push(ProductChange {
                        id: id.clone(),
                        name: p.name.clone(),
                        changes,
                    });
                }
            }
        }
    }
    d.removed_products = only_in(&older.products, &newer.products);
    d
}

fn only_in<T>(
    a: &std::collections::BTreeMap<String, T>,
    b: &std::collections::BTreeMap<String, T>,
) -> Vec<String> {
    a.keys().filter(|k| !b.contains_key(*k)).cloned().collect()
}

fn product_changes(old: &Product, new: &Product) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: &str, a: Option<String>, b: Option<String>| {
        if a != b {
            let show = |v: Option<String>| v.unwrap_or_else(|| "none".into());
            out.push(format!("{what} {} -> {}", show(a), show(b)));
        }
    };
    let range = |p: &Product| {
        p.applicability
            .build_range
            .as_ref()
            .map(|r| format!("{} ..< {}", r.min, r.below))
    };
    field("name", Some(old.name.clone()), Some(new.name.clone()));
    field("family", old.family.clone(), new.family.clone());
    field("build range", range(old), range(new));
    field(
        "edition",
        old.applicability.edition.clone(),
        new.applicability.edition.clone(),
    );
    field("CPE", old.cpe.clone(), new.cpe.clone());
    field(
        "version",
        old.applicability.version.clone(),
        new.applicability.version.clone(),
    );
    if old.applicability.service_packs != new.applicability.service_packs {
        let names = |p: &Product| {
            p.applicability
                .service_packs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "service packs [{}] -> [{}]",
            names(old),
            names(new)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(name: &str, family: &str, build: u32) -> Product {
        Product::for_build("msrc:11931", name, family, build)
    }

    fn patch(id: &str) -> Patch {
        Patch {
            id: id.into(),
            kb: None,
            file_name: None,
            download_url: None,
            sha256: None,
            subtype: None,
            restart: None,
            bulletins: vec![],
            targets: vec![],
            supersedes: Default::default(),
            superseded_by: Default::default(),
            installer: None,
        }
    }

    #[test]
    fn patches_and_products_are_listed_both_ways() {
        let mut old = Catalog::default();
        let mut new = Catalog::default();
        old.patches.insert("KB1".into(), patch("KB1"));
        new.patches.insert("KB2".into(), patch("KB2"));
        let w = "Windows 10 Version 21H2 for x64-based Systems";
        old.products
            .insert("msrc:11931".into(), product(w, "Windows", 19041));
        new.products
            .insert("msrc:11931".into(), product(w, "ESU", 19044));
        old.products
            .insert("msrc:1".into(), product("Gone", "Windows", 1));
        let d = diff(&old, &new);
        assert_eq!(d.new_patches, ["KB2"]);
        assert_eq!(d.removed_patches, ["KB1"]);
        assert_eq!(d.removed_products, ["msrc:1"]);
        assert_eq!(d.changed_products.len(), 1);
        assert_eq!(
            d.changed_products[0].changes,
            [
                "family Windows -> ESU",
                "build range 10.0.19041.0 ..< 10.0.19042.0 -> 10.0.19044.0 ..< 10.0.19045.0"
            ]
        );
        assert!(!d.is_empty());
    }
}
