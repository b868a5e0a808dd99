//! Importer for MSRC Security Update Guide CVRF month documents (ICASI CVRF 1.1).
//!
//! A month lists products (`ProductTree`) and vulnerabilities; each vulnerability carries
//! `Remediation` entries per product. Every `Vendor Fix` whose description is a KB number
//! becomes (or extends) the patch `KB<n>`: one target per product, with that product's
//! `FixedBuild`. The vulnerability becomes a bulletin named by its CVE.
//!
//! Detection for a Windows product with a Windows FixedBuild is "the KB is installed, or the
//! build is at least FixedBuild" — a later cumulative update raises the build without listing
//! the older KB. `FixedBuild="-"`, a missing one, or a non-Windows one (Office versions, Linux
//! package versions) leaves the KB check alone. Hotpatch remediations (`SecurityHotpatchUpdate`)
//! are their own patches with their own, lower FixedBuild: a host on the hotpatch baseline is
//! fixed by either.
//!
//! Vendor fixes without a KB (Linux distributions' "CBL-Mariner Releases", Office "Click to Run")
//! are counted as skipped: hive cannot install or detect them on a Windows host.

use std::collections::{BTreeMap, BTreeSet};

use super::builds::{self, BuildFamily};
use super::error::{ImportError, short_path};
use super::model::*;
use super::mssecure::ImportReport;
use super::xml::{self, Element};

/// Product families whose FixedBuild is a Windows build (major.minor.build.UBR).
const WINDOWS_FAMILIES: [&str; 2] = ["Windows", "ESU"];

/// Imports one CVRF month. `file` names it in errors and in the catalog's sources. A month with
/// no vulnerabilities imports as an empty catalog (with a warning): merged into a cache it
/// changes nothing.
pub fn import(file: &str, text: &str) -> Result<(Catalog, ImportReport), ImportError> {
    let root = xml::parse(file, text)?;
    if root.name != "cvrfdoc" {
        return Err(ImportError::WrongDocument {
            file: file.to_string(),
            expected: "an MSRC CVRF document",
            found: short_path(std::iter::once(root.name.as_str())),
        });
    }
    let mut report = ImportReport::default();
    let mut catalog = Catalog::default();
    let tracking = root.child("DocumentTracking");
    let month = tracking
        .and_then(|t| t.child("Identification"))
        .and_then(|i| i.child_text("ID"))
        .unwrap_or("unknown")
        .to_string();
    catalog.sources.push(SourceInfo {
        kind: SourceKind::MsrcCvrf,
        id: month.clone(),
        released: tracking
            .and_then(|t| t.child_text("CurrentReleaseDate"))
            .map(str::to_string),
        revision: tracking.and_then(document_revision),
        location: file.to_string(),
    });

    let families = read_products(&root, &mut catalog);
    let vulns: Vec<&Element> = root.children_named("Vulnerability").collect();
    if vulns.is_empty() {
        report
            .warnings
            .push(format!("{file}: month {month} lists no vulnerabilities"));
    }
    for v in vulns {
        import_vulnerability(file, v, &families, &mut catalog, &mut report)?;
    }
    derive_build_ranges(&mut catalog, &families);
    catalog.link_supersedence();
    report.bulletins = catalog.bulletins.len();
    report.patches = catalog.patches.len();
    report.products = catalog.products.len();
    Ok((catalog, report))
}

/// The document's revision: the highest `RevisionHistory` number, else its `Version`.
fn document_revision(tracking: &Element) -> Option<String> {
    let numbers = tracking
        .child("RevisionHistory")
        .into_iter()
        .flat_map(|h| h.children_named("Revision"))
        .filter_map(|r| r.child_text("Number"));
    numbers
        .filter_map(|n| n.parse::<Version>().ok())
        .max()
        .map(|v| v.to_string())
        .or_else(|| tracking.child_text("Version").map(str::to_string))
}

fn product_id(raw: &str) -> ProductId {
    format!("msrc:{}", raw.trim())
}

/// Reads the product tree; returns each product's family name by id.
fn read_products(root: &Element, catalog: &mut Catalog) -> BTreeMap<ProductId, String> {
    let mut families = BTreeMap::new();
    let Some(tree) = root.child("ProductTree") else {
        return families;
    };
    walk_branch(tree, catalog, &mut families);
    families
}

/// Walks the product tree with an explicit stack (a hostile tree can nest deeply), visiting
/// children in document order so that the first listing of a product wins as before.
fn walk_branch(tree: &Element, catalog: &mut Catalog, families: &mut BTreeMap<ProductId, String>) {
    let mut stack: Vec<(&Element, Option<&str>)> =
        tree.children.iter().rev().map(|c| (c, None)).collect();
    while let Some((c, family)) = stack.pop() {
        match c.name.as_str() {
            "Branch" => {
                let fam = if c.attr("Type") == Some("Product Family") {
                    c.attr("Name")
                } else {
                    family
                };
                stack.extend(c.children.iter().rev().map(|g| (g, fam)));
            }
            "FullProductName" => {
                let Some(raw) = c.attr("ProductID") else {
                    continue;
                };
                let id = product_id(raw);
                if let Some(f) = family {
                    families.insert(id.clone(), f.to_string());
                }
                // The tree lists products twice (inside the branches and flat); the branch entry
                // knows the family, so the first one wins.
                if catalog.products.contains_key(&id) {
                    continue;
                }
                let name = c.text.trim().to_string();
                catalog.products.insert(
                    id.clone(),
                    Product {
                        applicability: Applicability {
                            edition: edition_of(&name),
                            ..Applicability::default()
                        },
                        id,
                        name,
                        family: family.map(str::to_string),
                        cpe: c.attr("CPE").map(str::to_string),
                    },
                );
            }
            _ => {}
        }
    }
}

/// `Windows Server 2022 (Server Core installation)` → `Server Core installation`;
/// `Windows 10 Version 1809 for x64-based Systems` → `x64-based Systems`.
fn edition_of(name: &str) -> Option<String> {
    if let (Some(a), Some(b)) = (name.rfind('('), name.rfind(')'))
        && a < b
    {
        return Some(name[a + 1..b].trim().to_string());
    }
    name.rfind(" for ")
        .map(|i| name[i + 5..].trim().to_string())
        .filter(|s| !s.is_empty())
}

/// One Vendor Fix remediation, read.
struct VendorFix<'a> {
    kb: Kb,
    products: Vec<&'a str>,
    url: Option<&'a str>,
    supersedes: Vec<Kb>,
    restart: Option<Restart>,
    subtype: Option<&'a str>,
    fixed_build: Option<&'a str>,
}

fn import_vulnerability(
    file: &str,
    v: &Element,
    families: &BTreeMap<ProductId, String>,
    catalog: &mut Catalog,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let Some(cve) = v.child_text("CVE") else {
        report.warnings.push(format!(
            "{file}:{}: <Vulnerability> without a CVE, skipped",
            v.line
        ));
        report.skipped += 1;
        return Ok(());
    };
    let severity = v
        .child("Threats")
        .into_iter()
        .flat_map(|t| t.children_named("Threat"))
        .filter(|t| t.attr("Type") == Some("Severity"))
        .filter_map(|t| t.child_text("Description"))
        .filter_map(Severity::from_vendor)
        .max();
    let dates: Vec<CatalogDate> = v
        .child("RevisionHistory")
        .into_iter()
        .flat_map(|h| h.children_named("Revision"))
        .filter_map(|r| r.child_text("Date"))
        .filter_map(|d| d.parse().ok())
        .collect();
    let mut bulletin = Bulletin {
        id: cve.to_string(),
        title: v.child_text("Title").unwrap_or("").to_string(),
        posted: dates.iter().min().copied(),
        revised: dates.iter().max().copied(),
        severity,
        cves: vec![cve.to_string()],
        kbs: Vec::new(),
        patches: Vec::new(),
        url: Some(format!(
            "https://msrc.microsoft.com/update-guide/vulnerability/{cve}"
        )),
        source: SourceKind::MsrcCvrf,
    };
    let remediations = v
        .child("Remediations")
        .into_iter()
        .flat_map(|r| r.children_named("Remediation"))
        .filter(|r| r.attr("Type") == Some("Vendor Fix"));
    for r in remediations {
        let Some(fix) = read_fix(file, r, report)? else {
            continue;
        };
        let patch_id = fix.kb.to_string();
        add_fix(file, catalog, &patch_id, cve, &fix, families, report);
        if !bulletin.kbs.contains(&fix.kb) {
            bulletin.kbs.push(fix.kb);
        }
        if !bulletin.patches.contains(&patch_id) {
            bulletin.patches.push(patch_id);
        }
    }
    catalog.bulletins.insert(bulletin.id.clone(), bulletin);
    Ok(())
}

fn read_fix<'a>(
    file: &str,
    r: &'a Element,
    report: &mut ImportReport,
) -> Result<Option<VendorFix<'a>>, ImportError> {
    let Some(kb) = r
        .child_text("Description")
        .and_then(|d| d.parse::<Kb>().ok())
    else {
        report.skipped += 1;
        return Ok(None);
    };
    let products: Vec<&str> = r
        .children_named("ProductID")
        .flat_map(|p| p.text.split_whitespace())
        .collect();
    if products.is_empty() {
        return Err(ImportError::BadValue {
            file: file.to_string(),
            line: r.line,
            element: r.name.clone(),
            field: "ProductID".into(),
            problem: "``: a Vendor Fix must name at least one product".into(),
        });
    }
    let supersedes = r
        .child_text("Supercedence")
        .map(|s| {
            s.split([',', ';', ' '])
                .filter_map(|t| t.parse::<Kb>().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(VendorFix {
        kb,
        products,
        url: r.child_text("URL"),
        supersedes,
        restart: r
            .child_text("RestartRequired")
            .and_then(Restart::from_vendor),
        subtype: r.child_text("SubType"),
        fixed_build: r.child_text("FixedBuild").filter(|b| *b != "-"),
    }))
}

/// A FixedBuild that is a Windows build, for a product whose builds are Windows builds.
fn windows_build(fixed: Option<&str>, family: Option<&String>) -> Option<Version> {
    let family = family?;
    if !WINDOWS_FAMILIES.contains(&family.as_str()) {
        return None;
    }
    let v: Version = fixed?.parse().ok()?;
    (v.0.len() == 4).then_some(v)
}

/// What a product's FixedBuild is worth as a build to compare a host's with.
#[derive(Debug, Clone, PartialEq)]
enum BuildCheck {
    /// Not a Windows build (or none): only the KB can tell.
    None,
    /// A build of the product's own family, or of a product the family table does not know.
    Fits(Version),
    /// Another version's build of the same servicing branch: the same revision in the product's
    /// own family is used.
    Sibling {
        stated: Version,
        used: Version,
        family: &'static BuildFamily,
    },
    /// A build of an unrelated family: unusable, only the KB can tell.
    Foreign {
        stated: Version,
        family: &'static BuildFamily,
    },
}

impl BuildCheck {
    fn of(fixed: Option<&str>, family: Option<&String>, product_name: &str) -> BuildCheck {
        let Some(build) = windows_build(fixed, family) else {
            return BuildCheck::None;
        };
        let Some(family) = builds::family_of(product_name) else {
            return BuildCheck::Fits(build);
        };
        if family.contains(&build) {
            return BuildCheck::Fits(build);
        }
        match family.sibling_revision(&build) {
            Some(used) => BuildCheck::Sibling {
                stated: build,
                used,
                family,
            },
            None => BuildCheck::Foreign {
                stated: build,
                family,
            },
        }
    }

    /// Whether the FixedBuild agrees with the product's build family.
    fn consistent(&self) -> bool {
        matches!(self, BuildCheck::None | BuildCheck::Fits(_))
    }

    fn detection(&self, kb: Kb) -> DetectionRule {
        let kb_rule = DetectionRule::KbInstalled { kb };
        match self {
            BuildCheck::Fits(build) | BuildCheck::Sibling { used: build, .. } => {
                DetectionRule::Any {
                    rules: vec![
                        kb_rule,
                        DetectionRule::BuildAtLeast {
                            build: build.clone(),
                        },
                    ],
                }
            }
            BuildCheck::None | BuildCheck::Foreign { .. } => kb_rule,
        }
    }

    /// The import warning for a FixedBuild that disagrees with the product's family.
    fn warning(&self, file: &str, kb: Kb, product: &str, name: &str) -> Option<String> {
        let (stated, family, checking) = match self {
            BuildCheck::Sibling {
                stated,
                used,
                family,
            } => (
                stated,
                family,
                format!("checking {kb} or build {used} (same servicing branch)"),
            ),
            BuildCheck::Foreign { stated, family } => {
                (stated, family, format!("checking {kb} only"))
            }
            _ => return None,
        };
        Some(format!(
            "{file}: {kb} for {name} ({product}): FixedBuild {stated} is not a build of {} ({}.x); {checking}",
            family.name,
            family.prefix()
        ))
    }
}

fn add_fix(
    file: &str,
    catalog: &mut Catalog,
    patch_id: &str,
    cve: &str,
    fix: &VendorFix<'_>,
    families: &BTreeMap<ProductId, String>,
    report: &mut ImportReport,
) {
    let products = &catalog.products;
    let patch = catalog
        .patches
        .entry(patch_id.to_string())
        .or_insert_with(|| Patch {
            id: patch_id.to_string(),
            kb: Some(fix.kb),
            file_name: None,
            download_url: None,
            sha256: None,
            subtype: None,
            restart: None,
            bulletins: Vec::new(),
            targets: Vec::new(),
            supersedes: BTreeSet::new(),
            superseded_by: BTreeSet::new(),
            installer: None,
        });
    if patch.download_url.is_none() {
        patch.download_url = fix.url.map(str::to_string);
    }
    if patch.subtype.is_none() {
        patch.subtype = fix.subtype.map(str::to_string);
    }
    // The strongest restart statement wins: Yes over Maybe over No.
    patch.restart = match (patch.restart, fix.restart) {
        (Some(Restart::Yes), _) | (_, Some(Restart::Yes)) => Some(Restart::Yes),
        (Some(Restart::Maybe), _) | (_, Some(Restart::Maybe)) => Some(Restart::Maybe),
        (a, b) => a.or(b),
    };
    if !patch.bulletins.iter().any(|b| b == cve) {
        patch.bulletins.push(cve.to_string());
    }
    for kb in &fix.supersedes {
        if *kb != fix.kb {
            patch.supersedes.insert(kb.to_string());
        }
    }
    for raw in &fix.products {
        let product = product_id(raw);
        let name = products.get(&product).map_or("", |p| p.name.as_str());
        let check = BuildCheck::of(fix.fixed_build, families.get(&product), name);
        if let Some(w) = check.warning(file, fix.kb, &product, name)
            && !report.warnings.contains(&w)
        {
            report.warnings.push(w);
        }
        if let Some(existing) = patch.targets.iter_mut().find(|t| t.product == product) {
            // CVEs of one month can state different FixedBuilds for one KB and product; the
            // one that agrees with the product's build family is the one to believe.
            let existing_check = BuildCheck::of(
                existing.fixed_build.as_deref(),
                families.get(&product),
                name,
            );
            if existing_check.consistent() || !check.consistent() {
                continue;
            }
            existing.fixed_build = fix.fixed_build.map(str::to_string);
            existing.detection = check.detection(fix.kb);
            continue;
        }
        patch.targets.push(PatchTarget {
            detection: check.detection(fix.kb),
            product,
            service_packs: Vec::new(),
            fixed_in_sp: None,
            fixed_build: fix.fixed_build.map(str::to_string),
        });
    }
}

/// A Windows product's build range, which is how a scan maps a host's CurrentBuild to a product:
/// from the build family table when it knows the product, else from the FixedBuilds seen for it
/// (`10.0.17763.5576` means build 17763, `[10.0.17763, 10.0.17764)`).
fn derive_build_ranges(catalog: &mut Catalog, families: &BTreeMap<ProductId, String>) {
    for (id, product) in catalog.products.iter_mut() {
        let windows = families
            .get(id)
            .is_some_and(|f| WINDOWS_FAMILIES.contains(&f.as_str()));
        if let Some(family) = builds::family_of(&product.name).filter(|_| windows) {
            product.applicability.build_range = Some(family.range());
        }
    }
    let mut seen: BTreeMap<ProductId, Version> = BTreeMap::new();
    for p in catalog.patches.values() {
        for t in &p.targets {
            if let DetectionRule::Any { rules } = &t.detection {
                for r in rules {
                    if let DetectionRule::BuildAtLeast { build } = r {
                        seen.entry(t.product.clone())
                            .or_insert_with(|| build.clone());
                    }
                }
            }
        }
    }
    for (id, build) in seen {
        let Some(product) = catalog.products.get_mut(&id) else {
            continue;
        };
        if product.applicability.build_range.is_some() {
            continue;
        }
        let (a, b, c) = (build.0[0], build.0[1], build.0[2]);
        product.applicability.build_range = Some(BuildRange {
            min: Version(vec![a, b, c, 0]),
            below: Version(vec![a, b, c.saturating_add(1), 0]),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editions_come_from_the_name() {
        assert_eq!(
            edition_of("Windows Server 2022 (Server Core installation)").as_deref(),
            Some("Server Core installation")
        );
        assert_eq!(
            edition_of("Windows 10 Version 1809 for x64-based Systems").as_deref(),
            Some("x64-based Systems")
        );
        assert_eq!(edition_of("Windows Server 2019"), None);
    }

    #[test]
    fn only_four_part_builds_of_windows_products_count() {
        let win = "Windows".to_string();
        let office = "Microsoft Office".to_string();
        assert!(windows_build(Some("10.0.17763.5576"), Some(&win)).is_some());
        assert!(windows_build(Some("16.0.5439.1000"), Some(&office)).is_none());
        assert!(windows_build(Some("10.11.6-3"), Some(&win)).is_none());
        assert!(windows_build(None, Some(&win)).is_none());
    }
}
