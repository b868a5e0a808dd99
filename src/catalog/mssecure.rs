//! Importer for the hfnetchk / MBSA 1.x `mssecure.xml` catalog.
//!
//! The document is a set of flat tables joined by numeric ids: bulletins hold patches, patches
//! point at file changes (`FileChg FileChangeID`), registry changes (`RegChg RegChangeID`),
//! a download location and a superseded-by entry (`SBID`); the `Files`, `RegKeys`, `Locations`,
//! `ServicePacks`, `Products`, `ProductFamilies` and `SupercededBys` tables resolve those ids.
//! The importer resolves every join once, then maps each patch onto the model:
//!
//! - `RegChange` → [`DetectionRule::RegistryExists`] (no expected data) or
//!   [`DetectionRule::RegistryValue`]; the parent `RegKey` names the value (`Installed`).
//! - `FileChange` → [`DetectionRule::FileVersion`] with hfnetchk's exact-version semantics, the
//!   location's `%windir%`-style path kept for the scan to resolve, and CommandID `e` ("change if
//!   exists, ignore if not") as [`WhenMissing::Ignore`].
//! - no file and no registry data → [`DetectionRule::CannotTell`] (hfnetchk's NOTE).
//! - `SBID` → the patch is superseded by the patches its `SupercededBy` entry lists.
//!
//! A join that does not resolve is not fatal — the 2001 file itself has one dangling supersedence
//! name — it becomes a warning in the [`ImportReport`], and the patch keeps what did resolve.

use std::collections::{BTreeSet, HashMap};

use super::error::{ImportError, short_path, short_value};
use super::model::*;
use super::xml::{self, Element};

/// What an import produced, for `hive catalog import` to print and tests to check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Bulletins imported.
    pub bulletins: usize,
    /// Patches imported.
    pub patches: usize,
    /// Products imported.
    pub products: usize,
    /// Patches with no file and no registry data at all (hfnetchk's NOTE).
    pub no_data: usize,
    /// Patches whose every rule cannot decide: `no_data` plus patches whose only data the
    /// importer cannot use (a file change without a version, an "unsupported" check).
    pub cannot_tell: usize,
    /// Source entries deliberately not imported (e.g. CVRF remediations without a KB).
    pub skipped: usize,
    /// Things that did not resolve, one line each, naming the file and line.
    pub warnings: Vec<String>,
}

/// Why a patch without data cannot be judged: shown to the admin as the NOTE text.
pub const NO_DATA_REASON: &str =
    "the catalog has no file or registry data for this patch (hfnetchk: NOTE)";

/// Imports an `mssecure.xml` document. `file` names it in errors and in the catalog's sources.
pub fn import(file: &str, text: &str) -> Result<(Catalog, ImportReport), ImportError> {
    let root = xml::parse(file, text)?;
    if root.name != "BulletinDatastore" {
        return Err(ImportError::WrongDocument {
            file: file.to_string(),
            expected: "an mssecure.xml catalog",
            found: short_path(std::iter::once(root.name.as_str())),
        });
    }
    let tables = Tables::read(file, &root)?;
    let mut report = ImportReport::default();
    let mut catalog = Catalog::default();
    catalog.sources.push(SourceInfo {
        kind: SourceKind::Mssecure,
        id: root.attr("DataVersion").unwrap_or("unknown").to_string(),
        released: root.attr("LastDataUpdate").map(str::to_string),
        revision: None,
        location: file.to_string(),
    });

    for p in top_table(&root, "Products") {
        let product = tables.product(file, p)?;
        catalog.products.insert(product.id.clone(), product);
    }
    for b in top_table(&root, "Bulletins") {
        import_bulletin(file, &tables, b, &mut catalog, &mut report)?;
    }
    resolve_names(&mut catalog, file, &mut report);
    catalog.link_supersedence();
    report.bulletins = catalog.bulletins.len();
    report.patches = catalog.patches.len();
    report.products = catalog.products.len();
    Ok((catalog, report))
}

/// The children of a top-level table (`<Products>`), or nothing when the table is absent.
fn top_table<'a>(root: &'a Element, name: &str) -> impl Iterator<Item = &'a Element> {
    root.child(name).into_iter().flat_map(|t| t.children.iter())
}

/// Namespaced product id.
fn product_id(raw: &str) -> ProductId {
    format!("mssecure:{}", raw.trim())
}

/// One resolved file change: the file, where it lives, and its expected state.
struct FileChangeRow<'a> {
    file_name: &'a str,
    location: Option<&'a str>,
    change: &'a Element,
}

/// One resolved registry change: the value name and the expected state.
struct RegChangeRow<'a> {
    value_name: &'a str,
    change: &'a Element,
}

/// The id-keyed tables, resolved once.
struct Tables<'a> {
    locations: HashMap<&'a str, &'a str>,
    service_packs: HashMap<&'a str, &'a str>,
    families: HashMap<&'a str, &'a str>,
    file_changes: HashMap<&'a str, FileChangeRow<'a>>,
    reg_changes: HashMap<&'a str, RegChangeRow<'a>>,
    /// SBID → the (bulletin, patch name) pairs that supersede a patch carrying that SBID.
    superseded_by: HashMap<&'a str, Vec<(&'a str, &'a str)>>,
}

impl<'a> Tables<'a> {
    fn read(file: &str, root: &'a Element) -> Result<Tables<'a>, ImportError> {
        let mut t = Tables {
            locations: HashMap::new(),
            service_packs: HashMap::new(),
            families: HashMap::new(),
            file_changes: HashMap::new(),
            reg_changes: HashMap::new(),
            superseded_by: HashMap::new(),
        };
        for l in top_table(root, "Locations") {
            t.locations.insert(
                l.required(file, "LocationID")?,
                l.attr("Path").unwrap_or(""),
            );
        }
        for sp in top_table(root, "ServicePacks") {
            t.service_packs.insert(
                sp.required(file, "ServicePackID")?,
                sp.attr("Name").unwrap_or(""),
            );
        }
        for f in top_table(root, "ProductFamilies") {
            t.families.insert(
                f.required(file, "ProductFamilyID")?,
                f.attr("Name").unwrap_or(""),
            );
        }
        for f in top_table(root, "Files") {
            let file_name = f.required(file, "Name")?;
            let location = f.attr("LocationID");
            for change in f.descendants("FileChange") {
                let row = FileChangeRow {
                    file_name,
                    location,
                    change,
                };
                t.file_changes
                    .insert(change.required(file, "FileChangeID")?, row);
            }
        }
        for k in top_table(root, "RegKeys") {
            let value_name = k.required(file, "Name")?;
            for change in k.descendants("RegChange") {
                let row = RegChangeRow { value_name, change };
                t.reg_changes
                    .insert(change.required(file, "RegChangeID")?, row);
            }
        }
        for sb in top_table(root, "SupercededBys") {
            let mut by = Vec::new();
            for bul in sb.descendants("SupercededBulletin") {
                let bulletin = bul.required(file, "BulletinID")?;
                for p in bul.descendants("SupercededPatch") {
                    by.push((bulletin, p.required(file, "PatchName")?));
                }
            }
            t.superseded_by.insert(sb.required(file, "SBID")?, by);
        }
        Ok(t)
    }

    fn service_pack(&self, id: &str) -> Option<ServicePack> {
        let id = id.trim();
        if id.is_empty() || id == "0" {
            return None;
        }
        Some(ServicePack {
            id: format!("mssecure:{id}"),
            name: self
                .service_packs
                .get(id)
                .copied()
                .unwrap_or("")
                .trim()
                .to_string(),
        })
    }

    fn location(&self, id: Option<&str>) -> Option<&'a str> {
        id.and_then(|id| self.locations.get(id.trim()).copied())
            .map(str::trim)
            .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("na"))
    }

    fn product(&self, file: &str, p: &Element) -> Result<Product, ImportError> {
        let families: Vec<&str> = p
            .descendants("ProductFamily")
            .into_iter()
            .filter_map(|f| f.attr("ProductFamilyID"))
            .filter_map(|id| self.families.get(id).copied())
            .collect();
        let service_packs = p
            .descendants("AvailableSP")
            .into_iter()
            .filter_map(|sp| sp.attr("ServicePackID"))
            .filter_map(|id| self.service_pack(id))
            .collect();
        let version = p
            .attr("CurrentVersion")
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("na"));
        Ok(Product {
            id: product_id(p.required(file, "ProductID")?),
            name: p.required(file, "Name")?.trim().to_string(),
            family: (!families.is_empty()).then(|| families.join(", ")),
            cpe: None,
            applicability: Applicability {
                service_packs,
                min_supported_sp: p
                    .attr("MinimumSupportedServicePackID")
                    .and_then(|id| self.service_pack(id)),
                current_sp: p
                    .attr("CurrentServicePackID")
                    .and_then(|id| self.service_pack(id)),
                version: version.map(str::to_string),
                build_range: None,
                edition: None,
            },
        })
    }
}

fn import_bulletin(
    file: &str,
    tables: &Tables<'_>,
    b: &Element,
    catalog: &mut Catalog,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let id = b.required(file, "BulletinID")?.trim().to_string();
    let kbs: Vec<Kb> = b
        .descendants("QNumber")
        .into_iter()
        .filter_map(|q| q.attr("QNumber"))
        .filter_map(leading_kb)
        .collect();
    let mut patch_ids = Vec::new();
    for p in b.descendants("Patch") {
        let patch = import_patch(file, tables, &id, p, report)?;
        if p.descendants("RegChg").is_empty() && p.descendants("FileChg").is_empty() {
            report.no_data += 1;
        }
        if patch.targets.iter().all(|t| t.detection.is_cannot_tell()) {
            report.cannot_tell += 1;
        }
        patch_ids.push(patch.id.clone());
        catalog.patches.insert(patch.id.clone(), patch);
    }
    let url = tables
        .location(b.attr("BulletinLocationID"))
        .filter(|p| p.starts_with("http"))
        .map(|p| format!("{}/{}.asp", p.trim_end_matches('/'), id));
    let bulletin = Bulletin {
        title: b.attr("Title").unwrap_or("").trim().to_string(),
        posted: date_attr(file, b, "DatePosted")?,
        revised: date_attr(file, b, "DateRevised")?,
        severity: None,
        cves: Vec::new(),
        kbs,
        patches: patch_ids,
        url,
        source: SourceKind::Mssecure,
        id: id.clone(),
    };
    catalog.bulletins.insert(id, bulletin);
    Ok(())
}

/// `Q216453 (FP98)` → KB216453: the 2001 file annotates some Q numbers with the product.
fn leading_kb(text: &str) -> Option<Kb> {
    text.split_whitespace().next().and_then(|t| t.parse().ok())
}

fn date_attr(file: &str, e: &Element, name: &str) -> Result<Option<CatalogDate>, ImportError> {
    match e.attr(name).map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_: BadDate| ImportError::BadValue {
                file: file.to_string(),
                line: e.line,
                element: e.name.clone(),
                field: name.to_string(),
                problem: format!(
                    "`{}`: not a date (expected YYYY-MM-DD or YYYY/MM/DD)",
                    short_value(s)
                ),
            }),
    }
}

fn import_patch(
    file: &str,
    tables: &Tables<'_>,
    bulletin: &str,
    p: &Element,
    report: &mut ImportReport,
) -> Result<Patch, ImportError> {
    let name = p.required(file, "PatchName")?.trim().to_string();
    let detection = detection_rule(file, tables, p, report);
    let targets = p
        .children_named("AffectedProduct")
        .map(|ap| {
            Ok(PatchTarget {
                product: product_id(ap.required(file, "ProductID")?),
                service_packs: ap
                    .children_named("AffectedServicePack")
                    .filter_map(|sp| sp.attr("ServicePackID"))
                    .filter_map(|id| tables.service_pack(id))
                    .collect(),
                fixed_in_sp: ap.attr("FixedInSP").and_then(|id| tables.service_pack(id)),
                fixed_build: None,
                detection: detection.clone(),
            })
        })
        .collect::<Result<Vec<_>, ImportError>>()?;
    let download_url = tables.location(p.attr("PatchLocationID")).map(|loc| {
        if loc.ends_with('/') {
            format!("{loc}{name}")
        } else {
            loc.to_string()
        }
    });
    let supersedes = BTreeSet::new();
    let superseded_by = superseded_by(file, tables, p, report);
    Ok(Patch {
        id: format!("{bulletin}/{name}"),
        kb: p.attr("SQNumber").and_then(leading_kb),
        installer: InstallerRecipe::guess_from_file_name(&name),
        file_name: Some(name),
        download_url,
        sha256: None,
        subtype: Some("Security Update".to_string()),
        restart: match p.attr("NoReboot").map(str::trim) {
            Some("1") => Some(Restart::No),
            Some("0") => Some(Restart::Yes),
            _ => None,
        },
        bulletins: vec![bulletin.to_string()],
        targets,
        supersedes,
        superseded_by,
    })
}

/// The `SupercededBy` entry's patches, as patch ids. Their names in the 2001 file differ in
/// case from the patches themselves (`q301625_w2k_sp3_x86_en.exe`), so the ids are resolved
/// against the bulletin's patches case-insensitively when the catalog is linked
/// ([`resolve_names`]); here they are spelled as written.
fn superseded_by(
    file: &str,
    tables: &Tables<'_>,
    p: &Element,
    report: &mut ImportReport,
) -> BTreeSet<PatchId> {
    let Some(sbid) = p
        .attr("SBID")
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "0")
    else {
        return BTreeSet::new();
    };
    match tables.superseded_by.get(sbid) {
        Some(by) => by
            .iter()
            .map(|(b, name)| format!("{}/{}", b.trim(), name.trim()))
            .collect(),
        None => {
            report.warnings.push(format!(
                "{file}:{}: <Patch> SBID={sbid} names no SupercededBy entry",
                p.line
            ));
            BTreeSet::new()
        }
    }
}

/// Builds the patch's rule from its registry and file changes.
fn detection_rule(
    file: &str,
    tables: &Tables<'_>,
    p: &Element,
    report: &mut ImportReport,
) -> DetectionRule {
    let mut rules = Vec::new();
    for rc in p.descendants("RegChg") {
        let id = rc.attr("RegChangeID").unwrap_or("").trim();
        match tables.reg_changes.get(id) {
            Some(row) => rules.push(registry_rule(tables, row)),
            None => {
                report.warnings.push(format!(
                    "{file}:{}: <RegChg> RegChangeID={id} is not in the RegKeys table",
                    rc.line
                ));
                rules.push(DetectionRule::CannotTell {
                    reason: format!("registry change {id} is missing from the catalog"),
                });
            }
        }
    }
    for fc in p.descendants("FileChg") {
        let id = fc.attr("FileChangeID").unwrap_or("").trim();
        match tables.file_changes.get(id) {
            Some(row) => rules.push(file_rule(tables, row)),
            None => {
                report.warnings.push(format!(
                    "{file}:{}: <FileChg> FileChangeID={id} is not in the Files table",
                    fc.line
                ));
                rules.push(DetectionRule::CannotTell {
                    reason: format!("file change {id} is missing from the catalog"),
                });
            }
        }
    }
    match rules.len() {
        0 => DetectionRule::CannotTell {
            reason: NO_DATA_REASON.to_string(),
        },
        1 => rules.remove(0),
        _ => DetectionRule::All { rules },
    }
}

fn registry_rule(tables: &Tables<'_>, row: &RegChangeRow<'_>) -> DetectionRule {
    let Some(key) = tables.location(row.change.attr("LocationID")) else {
        return DetectionRule::CannotTell {
            reason: "registry change without a key path".to_string(),
        };
    };
    let value = row.value_name.trim();
    let data = row.change.attr("RegChangeValue").unwrap_or("").trim();
    if data.is_empty() {
        DetectionRule::RegistryExists {
            key: key.to_string(),
            value: (!value.is_empty()).then(|| value.to_string()),
        }
    } else {
        DetectionRule::RegistryValue {
            key: key.to_string(),
            value: value.to_string(),
            data: data.to_string(),
        }
    }
}

fn file_rule(tables: &Tables<'_>, row: &FileChangeRow<'_>) -> DetectionRule {
    let c = row.change;
    let command = c.attr("CommandID").unwrap_or("").trim();
    let path = match tables.location(row.location) {
        Some(dir) => format!("{}\\{}", dir.trim_end_matches('\\'), row.file_name.trim()),
        None => row.file_name.trim().to_string(),
    };
    let raw_version = c.attr("Version").unwrap_or("").trim();
    match (command, raw_version.parse::<Version>()) {
        ("u", _) => DetectionRule::CannotTell {
            reason: format!("the catalog marks the check of {path} unsupported"),
        },
        ("d", _) => DetectionRule::CannotTell {
            reason: format!("the patch deletes {path}; hive does not check deletions"),
        },
        (_, Err(_)) => DetectionRule::CannotTell {
            reason: format!("the catalog gives no version for {path} (`{raw_version}`)"),
        },
        (_, Ok(version)) => DetectionRule::FileVersion {
            path,
            op: VersionOp::Exact,
            version,
            date: c
                .attr("Date")
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            size: c.attr("Size").and_then(|s| s.trim().parse().ok()),
            checksum: c
                .attr("Checksum")
                .and_then(|s| s.trim().parse().ok())
                .map(FileChecksum::Hfnetchk),
            when_missing: if command == "e" {
                WhenMissing::Ignore
            } else {
                WhenMissing::NotInstalled
            },
        },
    }
}

/// Rewrites superseded-by names to the ids of the patches they mean (the 2001 file spells the
/// same file in different case in different tables); names that match no patch stay as written
/// and are reported.
pub(crate) fn resolve_names(catalog: &mut Catalog, file: &str, report: &mut ImportReport) {
    let by_lower: HashMap<String, PatchId> = catalog
        .patches
        .keys()
        .map(|id| (id.to_lowercase(), id.clone()))
        .collect();
    for patch in catalog.patches.values_mut() {
        let mut fixed = BTreeSet::new();
        for name in &patch.superseded_by {
            match by_lower.get(&name.to_lowercase()) {
                Some(id) => {
                    fixed.insert(id.clone());
                }
                None => {
                    report.warnings.push(format!(
                        "{file}: {} is superseded by {name}, which the catalog does not hold",
                        patch.id
                    ));
                    fixed.insert(name.clone());
                }
            }
        }
        patch.superseded_by = fixed;
    }
    // The other direction, for patches the catalog holds.
    let pairs: Vec<(PatchId, PatchId)> = catalog
        .patches
        .values()
        .flat_map(|p| p.superseded_by.iter().map(|by| (by.clone(), p.id.clone())))
        .collect();
    for (newer, older) in pairs {
        if let Some(p) = catalog.patches.get_mut(&newer) {
            p.supersedes.insert(older);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_numbers_with_product_notes_parse() {
        assert_eq!(leading_kb("Q216453 (FP98)"), Some(Kb(216453)));
        assert_eq!(leading_kb("Q300972 "), Some(Kb(300972)));
        assert_eq!(leading_kb(""), None);
    }

    #[test]
    fn wrong_root_is_named() {
        let err = import("x.xml", "<cvrfdoc/>").unwrap_err().to_string();
        assert!(err.contains("x.xml") && err.contains("cvrfdoc"), "{err}");
    }
}
