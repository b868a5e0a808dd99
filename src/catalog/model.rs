//! The catalog model: what hive knows about bulletins, products, patches, how to tell whether a
//! patch is installed and how to install it.
//!
//! Two very different sources feed it — the flat, id-joined tables of the 2001 hfnetchk
//! `mssecure.xml` and the per-CVE, per-product remediations of the MSRC CVRF documents — so the
//! model is the common ground both can be *losslessly enough* mapped onto, and nothing in it
//! depends on either format. Scanning and evaluation are written against these types only.
//!
//! Design points worth knowing:
//! - Ids are namespaced strings (`mssecure:17`, `msrc:11923`) because both sources number their
//!   products from small integers and the numbers collide.
//! - Every map is a `BTreeMap` so the cached JSON form is byte-for-byte stable for the same
//!   content: `hive catalog diff` and git-friendly caches rely on it.
//! - Detection is a small boolean language ([`DetectionRule`]) with an explicit
//!   [`DetectionRule::CannotTell`] leaf, because hfnetchk's honest "NOTE: cannot tell" verdict is
//!   a result an admin must see, not something to guess.
//! - Nothing here does IO; loading and saving live in `store.rs`. The value types, detection
//!   rules and installer recipes live in `values.rs`, `detection.rs` and `installer.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use super::detection::*;
pub use super::installer::*;
pub use super::provenance::{DocumentStamp, Provenance};
pub use super::values::*;

/// The version of the on-disk JSON layout ([`CatalogFile`]). Bump it on any incompatible change
/// so an old hive refuses a newer cache instead of misreading it.
pub const CATALOG_FORMAT_VERSION: u32 = 1;

/// A bulletin id as the vendor names it: `MS01-033` for the 2001 catalog, a CVE id such as
/// `CVE-2024-21407` for CVRF months (the CVE is the advisory unit there).
pub type BulletinId = String;

/// A product id, namespaced by its source: `mssecure:17`, `msrc:11923`.
pub type ProductId = String;

/// A patch id, unique in a catalog. CVRF patches are their KB (`KB5035849`); mssecure patches
/// are `<bulletin>/<file name>` (`MS01-033/Q300972_W2K_SP3_x86_en.EXE`) because the 2001 catalog
/// reuses one Q number for several per-platform files.
pub type PatchId = String;

/// Everything hive knows, as one value. Built by the importers, merged across sources and
/// months, cached as JSON by the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Where the content came from, oldest document first (one entry per document id; a later
    /// revision of the same document replaces the earlier one).
    #[serde(default)]
    pub sources: Vec<SourceInfo>,
    /// Bulletins by id.
    #[serde(default)]
    pub bulletins: BTreeMap<BulletinId, Bulletin>,
    /// Products by id.
    #[serde(default)]
    pub products: BTreeMap<ProductId, Product>,
    /// Patches by id.
    #[serde(default)]
    pub patches: BTreeMap<PatchId, Patch>,
    /// Which document last stated each entry, so merging is decided by the documents' own dates
    /// and not by the order they were imported in (see `merge.rs`).
    #[serde(default, skip_serializing_if = "Provenance::is_empty")]
    pub provenance: Provenance,
}

/// The stable on-disk form of a cached catalog: a small header that says what the file is and
/// which layout it uses, then the catalog itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogFile {
    /// Always `"hive-catalog"`: lets hive reject a random JSON file with a clear message.
    pub format: String,
    /// [`CATALOG_FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The content.
    pub catalog: Catalog,
}

/// One imported document: kept so `hive catalog show` can say how old the data is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Which format it was.
    pub kind: SourceKind,
    /// The document's own id or version: mssecure `DataVersion` (`1.0.1.148`), CVRF month
    /// (`2024-Mar`).
    pub id: String,
    /// The document's own release or revision date, as the document wrote it.
    pub released: Option<String>,
    /// The document's own revision number (CVRF `RevisionHistory`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The file or URL it was read from.
    pub location: String,
}

/// The catalog formats hive imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// hfnetchk / MBSA 1.x `mssecure.xml`.
    Mssecure,
    /// MSRC Security Update Guide CVRF month document.
    MsrcCvrf,
}

/// A security bulletin (mssecure) or vulnerability (CVRF): the unit an admin reads about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bulletin {
    /// `MS01-033` or `CVE-2024-21407`.
    pub id: BulletinId,
    /// The vendor's title, trimmed.
    pub title: String,
    /// First published.
    pub posted: Option<CatalogDate>,
    /// Last revised.
    pub revised: Option<CatalogDate>,
    /// The highest severity over the affected products; `None` when the source does not rate
    /// (every mssecure severity is "NA").
    pub severity: Option<Severity>,
    /// CVE ids this bulletin covers.
    #[serde(default)]
    pub cves: Vec<String>,
    /// KB / Q numbers the bulletin names.
    #[serde(default)]
    pub kbs: Vec<Kb>,
    /// The patches that fix it.
    #[serde(default)]
    pub patches: Vec<PatchId>,
    /// Where to read more.
    pub url: Option<String>,
    /// Which source said so.
    pub source: SourceKind,
}

/// Vendor severity ratings, ordered so `max()` gives the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Low.
    Low,
    /// Moderate.
    Moderate,
    /// Important.
    Important,
    /// Critical.
    Critical,
}

impl fmt::Display for SourceKind {
    /// How an admin knows the format: `mssecure.xml` or `MSRC CVRF`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Mssecure => "mssecure.xml",
            SourceKind::MsrcCvrf => "MSRC CVRF",
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "Low",
            Severity::Moderate => "Moderate",
            Severity::Important => "Important",
            Severity::Critical => "Critical",
        })
    }
}

impl Severity {
    /// Parses the MSRC words; anything else (mssecure's "NA", blanks) is no rating.
    pub fn from_vendor(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "important" => Some(Severity::Important),
            "moderate" => Some(Severity::Moderate),
            "low" => Some(Severity::Low),
            _ => None,
        }
    }
}

/// A product a patch can apply to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Namespaced id (`mssecure:17`).
    pub id: ProductId,
    /// Vendor name (`Internet Information Services 5.0`, `Windows Server 2019`).
    pub name: String,
    /// Product family (`Windows 2000`, `Windows`, `ESU`), when the source has one.
    pub family: Option<String>,
    /// CPE name, when the source has one.
    pub cpe: Option<String>,
    /// What a host must look like for this product to be the one installed.
    #[serde(default)]
    pub applicability: Applicability,
}

/// How a scan decides a host runs a product at a given level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicability {
    /// Service packs the vendor published for the product, oldest first (`Windows 2000 Gold`,
    /// `SP1`, `SP2`).
    #[serde(default)]
    pub service_packs: Vec<ServicePack>,
    /// The oldest service pack the vendor still supported when the catalog was written.
    pub min_supported_sp: Option<ServicePack>,
    /// The newest service pack when the catalog was written.
    pub current_sp: Option<ServicePack>,
    /// The product's version string as the catalog gives it (`5.00.2195`).
    pub version: Option<String>,
    /// Windows builds that identify this product, e.g. `10.0.17763.0 ..< 10.0.17764.0` for
    /// Windows Server 2019. Derived from the CVRF FixedBuild values seen for the product.
    pub build_range: Option<BuildRange>,
    /// Edition or installation option (`Server Core installation`, `x64-based Systems`).
    pub edition: Option<String>,
}

/// A service pack, named as the vendor does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServicePack {
    /// Source id (`mssecure:74`).
    pub id: String,
    /// `Windows 2000 Gold`, `Windows 2000 SP2`.
    pub name: String,
}

/// A half-open range of Windows builds `[min, below)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRange {
    /// The lowest build in the range.
    pub min: Version,
    /// The first build no longer in the range.
    pub below: Version,
}

impl BuildRange {
    /// Whether `build` lies in the range.
    pub fn contains(&self, build: &Version) -> bool {
        &self.min <= build && build < &self.below
    }
}

/// Something installable: one hotfix file, one KB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    /// Unique id, see [`PatchId`].
    pub id: PatchId,
    /// The KB / Q number (`KB5035849`, `Q300972`), when known.
    pub kb: Option<Kb>,
    /// The installer's file name (`Q300972_W2K_SP3_x86_en.EXE`), when known.
    pub file_name: Option<String>,
    /// Where to download it (or the vendor page that leads there).
    pub download_url: Option<String>,
    /// SHA-256 of the installer, lowercase hex, when known: staging verifies it on the target.
    pub sha256: Option<String>,
    /// Vendor classification (`Security Update`, `Monthly Rollup`, `Security Only`,
    /// `SecurityHotpatchUpdate`).
    pub subtype: Option<String>,
    /// Whether installing it needs a restart.
    pub restart: Option<Restart>,
    /// The bulletins this patch fixes.
    #[serde(default)]
    pub bulletins: Vec<BulletinId>,
    /// Per product: where it applies and how to tell it is installed there.
    #[serde(default)]
    pub targets: Vec<PatchTarget>,
    /// Patches this one replaces (may name patches the catalog does not hold, e.g. `KB5034127`
    /// from a month not imported).
    #[serde(default)]
    pub supersedes: BTreeSet<PatchId>,
    /// Patches that replace this one: stated by the source, plus the inverse of every other
    /// patch's `supersedes` (see [`Catalog::link_supersedence`]).
    #[serde(default)]
    pub superseded_by: BTreeSet<PatchId>,
    /// How to run the installer, when hive knows.
    pub installer: Option<InstallerRecipe>,
}

impl Patch {
    /// The target entry for `product`, if the patch applies to it.
    pub fn target(&self, product: &str) -> Option<&PatchTarget> {
        self.targets.iter().find(|t| t.product == product)
    }

    /// The detection rule for `product`; `None` when the patch does not apply to it.
    pub fn detection_for(&self, product: &str) -> Option<&DetectionRule> {
        self.target(product).map(|t| &t.detection)
    }
}

/// Whether installing a patch needs a restart — MSRC's RestartRequired words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarts.
    Yes,
    /// Never restarts.
    No,
    /// Restarts when a file it replaces is in use.
    Maybe,
}

impl fmt::Display for Restart {
    /// MSRC's RestartRequired in words: `restart required`, `no restart`, `may restart`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restart::Yes => "restart required",
            Restart::No => "no restart",
            Restart::Maybe => "may restart",
        })
    }
}

impl Restart {
    /// Parses MSRC's `Yes`/`No`/`Maybe`; anything else is unknown.
    pub fn from_vendor(text: &str) -> Option<Restart> {
        match text.trim().to_ascii_lowercase().as_str() {
            "yes" => Some(Restart::Yes),
            "no" => Some(Restart::No),
            "maybe" => Some(Restart::Maybe),
            _ => None,
        }
    }
}

/// Where a patch applies and how a scan tells it is installed there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchTarget {
    /// The product.
    pub product: ProductId,
    /// Service packs of the product the patch applies to (empty: any).
    #[serde(default)]
    pub service_packs: Vec<ServicePack>,
    /// The service pack that already contains the fix (hosts at or past it are not affected).
    pub fixed_in_sp: Option<ServicePack>,
    /// The vendor's FixedBuild for this product, verbatim (`10.0.17763.5576`, or an Office
    /// version, or a Linux package version) — kept even when it is not a Windows build so the
    /// report can show it.
    pub fixed_build: Option<String>,
    /// How to tell the patch is installed on a host running this product.
    pub detection: DetectionRule,
}

impl Catalog {
    /// A bulletin by id (`MS01-033`, `CVE-2024-21407`), case-insensitively.
    pub fn bulletin(&self, id: &str) -> Option<&Bulletin> {
        self.bulletins.get(id).or_else(|| {
            self.bulletins
                .values()
                .find(|b| b.id.eq_ignore_ascii_case(id))
        })
    }

    /// A patch by id.
    pub fn patch(&self, id: &str) -> Option<&Patch> {
        self.patches.get(id)
    }

    /// A product by id.
    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.get(id)
    }

    /// Every patch carrying this KB (mssecure has several per-platform files per Q number).
    pub fn patches_with_kb(&self, kb: Kb) -> impl Iterator<Item = &Patch> {
        self.patches.values().filter(move |p| p.kb == Some(kb))
    }

    /// Every patch that applies to the product.
    pub fn patches_for_product<'a>(&'a self, product: &'a str) -> impl Iterator<Item = &'a Patch> {
        self.patches
            .values()
            .filter(move |p| p.targets.iter().any(|t| t.product == product))
    }

    /// The patches of a bulletin.
    pub fn patches_of<'a>(&'a self, bulletin: &'a Bulletin) -> impl Iterator<Item = &'a Patch> {
        bulletin
            .patches
            .iter()
            .filter_map(|id| self.patches.get(id))
    }

    /// Products whose name contains `needle`, case-insensitively — how an admin names them.
    pub fn find_products<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a Product> {
        let needle = needle.to_lowercase();
        self.products
            .values()
            .filter(move |p| p.name.to_lowercase().contains(&needle))
    }

    /// Whether a patch is replaced by another patch the catalog holds.
    pub fn is_superseded(&self, patch: &str) -> bool {
        self.patches
            .get(patch)
            .is_some_and(|p| !p.superseded_by.is_empty())
    }

    /// Adds the inverse of every `supersedes` link to `superseded_by`, so both directions agree
    /// after an import or merge. Links are only ever added: a source may state either direction
    /// (mssecure states "superseded by", CVRF states "supersedes").
    pub fn link_supersedence(&mut self) {
        let pairs: Vec<(PatchId, PatchId)> = self
            .patches
            .values()
            .flat_map(|p| p.supersedes.iter().map(|old| (old.clone(), p.id.clone())))
            .filter(|(old, new)| old != new)
            .collect();
        for (old, new) in pairs {
            if let Some(p) = self.patches.get_mut(&old) {
                p.superseded_by.insert(new);
            }
        }
    }

    /// Wraps the catalog in its on-disk header.
    pub fn to_file(&self) -> CatalogFile {
        CatalogFile {
            format: "hive-catalog".to_string(),
            version: CATALOG_FORMAT_VERSION,
            catalog: self.clone(),
        }
    }
}

#[cfg(test)]
impl Product {
    /// A product that applies to exactly the Windows build `10.0.build`: the shape the catalog
    /// and scan unit tests build their MSRC products from.
    pub(crate) fn for_build(id: &str, name: &str, family: &str, build: u32) -> Product {
        Product {
            id: id.into(),
            name: name.into(),
            family: Some(family.into()),
            cpe: None,
            applicability: Applicability {
                build_range: Some(BuildRange {
                    min: Version(vec![10, 0, build, 0]),
                    below: Version(vec![10, 0, build + 1, 0]),
                }),
                ..Applicability::default()
            },
        }
    }
}
