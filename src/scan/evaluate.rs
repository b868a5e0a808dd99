//! Evaluate: catalog × facts → a verdict per patch, with the evidence an admin can check.
//!
//! A pure function of its inputs, so every hfnetchk rule is unit-tested here without a network:
//! - the product (and service pack) is not on the host → not applicable;
//! - a registry key or KB is missing, or a file is older than the patch's → missing ("NOT Found");
//! - a file is newer than an exact version → WARNING (a later hotfix, or a tampered file);
//! - the catalog has no data for the patch, or the facts were not gathered → NOTE (cannot tell);
//! - a missing patch that an installed patch supersedes is not missing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::facts::HostFacts;
use super::products::{HostView, ProductRule};
use crate::catalog::model::{
    Catalog, DetectionRule, Patch, Product, ServicePack, Version, VersionOp, WhenMissing,
};

/// What a scan concludes about one patch on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The host does not run a product (at a service pack) the patch applies to.
    NotApplicable,
    /// The patch is installed.
    Installed,
    /// Not installed, but a patch that replaces it is: nothing to do.
    Superseded,
    /// hfnetchk's NOTE: the catalog or the facts cannot decide.
    Note,
    /// hfnetchk's WARNING: a file is newer than the patch's; check by hand.
    Warning,
    /// The patch is missing ("Patch NOT Found").
    Missing,
}

impl Status {
    /// How hfnetchk's tab output named the status.
    pub fn hfnetchk_word(self) -> &'static str {
        match self {
            Status::NotApplicable => "NOT APPLICABLE",
            Status::Installed => "INSTALLED",
            Status::Superseded => "SUPERSEDED",
            Status::Note => "NOTE",
            Status::Warning => "WARNING",
            Status::Missing => "NOT FOUND",
        }
    }

    /// Whether this status asks the admin to act.
    pub fn needs_action(self) -> bool {
        matches!(self, Status::Missing | Status::Warning | Status::Note)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::NotApplicable => "not applicable",
            Status::Installed => "installed",
            Status::Superseded => "superseded",
            Status::Note => "note",
            Status::Warning => "warning",
            Status::Missing => "missing",
        })
    }
}

/// The verdict on one patch for one host.
///
/// The patch id, its bulletins and the product name are the catalog's, the same in every host's
/// verdicts: they are shared ([`CatalogIndex`]), not copied per host. Serialized, they are plain
/// strings as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(with = "shared_str")]
    pub patch: Arc<str>,
    #[serde(with = "shared_list")]
    pub bulletins: Arc<[Arc<str>]>,
    /// The catalog product the verdict was reached for (empty when not applicable).
    #[serde(with = "shared_str")]
    pub product: Arc<str>,
    pub status: Status,
    /// Why, in words an admin can check on the host: `idq.dll 5.0.2195.2779 < 5.0.2195.3645`.
    pub evidence: String,
}

/// A shared string as a plain one (serde's own impl for `Arc` needs its `rc` feature, which would
/// rebuild every crate that uses serde).
mod shared_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }
}

/// A shared list of shared strings as a plain list of strings.
mod shared_list {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &Arc<[Arc<str>]>, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(list.iter().map(|s| &**s))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[Arc<str>]>, D::Error> {
        Vec::<String>::deserialize(d).map(|v| v.into_iter().map(Arc::from).collect())
    }
}

/// What evaluating a host needs from the catalog besides the catalog, made once per catalog and
/// shared by every host scanned with it: the names verdicts carry (patch ids, each patch's
/// bulletins, product names; at 100,000 hosts, copies of these strings in every verdict were the
/// larger part of a scan's memory) and each product's [`ProductRule`].
#[derive(Debug, Clone, Default)]
pub struct CatalogIndex {
    /// Patch id → the patch's bulletins.
    patches: HashMap<Arc<str>, Arc<[Arc<str>]>>,
    /// Product id → its name and how to tell a host runs it.
    products: HashMap<String, IndexedProduct>,
    /// The product of a verdict reached for none.
    none: Arc<str>,
}

impl CatalogIndex {
    pub fn new(catalog: &Catalog) -> Self {
        let mut bulletins: HashMap<&str, Arc<str>> = HashMap::new();
        let patches = catalog
            .patches
            .values()
            .map(|p| {
                let list: Arc<[Arc<str>]> = p
                    .bulletins
                    .iter()
                    .map(|b| {
                        bulletins
                            .entry(b)
                            .or_insert_with(|| b.as_str().into())
                            .clone()
                    })
                    .collect();
                (Arc::from(p.id.as_str()), list)
            })
            .collect();
        let products = catalog
            .products
            .iter()
            .map(|(id, p)| (id.clone(), IndexedProduct::of(p)))
            .collect();
        CatalogIndex {
            patches,
            products,
            none: Arc::from(""),
        }
    }

    /// The shared id and bulletins of `patch` (fresh copies for a patch of another catalog).
    fn patch(&self, patch: &Patch) -> (Arc<str>, Arc<[Arc<str>]>) {
        match self.patches.get_key_value(patch.id.as_str()) {
            Some((id, bulletins)) => (id.clone(), bulletins.clone()),
            None => (
                patch.id.as_str().into(),
                patch.bulletins.iter().map(|b| b.as_str().into()).collect(),
            ),
        }
    }

    /// The shared name and rule of `product`, or fresh ones for a product of another catalog.
    fn product(&self, product: &Product) -> Cow<'_, IndexedProduct> {
        match self.products.get(&product.id) {
            Some(p) if *p.name == *product.name => Cow::Borrowed(p),
            _ => Cow::Owned(IndexedProduct::of(product)),
        }
    }
}

/// One product of a [`CatalogIndex`].
#[derive(Debug, Clone)]
struct IndexedProduct {
    name: Arc<str>,
    rule: ProductRule,
    /// [`kb_list_covers`] its name.
    kb_list_covers: bool,
}

impl IndexedProduct {
    fn of(product: &Product) -> IndexedProduct {
        IndexedProduct {
            name: Arc::from(product.name.as_str()),
            rule: ProductRule::of(product),
            kb_list_covers: kb_list_covers(&product.name),
        }
    }
}

/// The outcome of one rule: the tri-state logic hfnetchk used, with evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pass(String),
    /// Holds, but something is newer than expected (WARNING).
    Newer(String),
    Fail(String),
    Unknown(String),
    /// A check that does not apply here (a file the patch only replaces where present).
    Skip,
}

/// Evaluate every patch of the catalog against one host's facts.
pub fn evaluate(catalog: &Catalog, facts: &HostFacts) -> Vec<Verdict> {
    evaluate_with(catalog, &CatalogIndex::new(catalog), facts)
}

/// [`evaluate`] with the catalog's [`CatalogIndex`] made once for many hosts.
pub fn evaluate_with(catalog: &Catalog, index: &CatalogIndex, facts: &HostFacts) -> Vec<Verdict> {
    let host = HostView::of(facts);
    let mut verdicts: Vec<Verdict> = catalog
        .patches
        .values()
        .map(|p| evaluate_patch(catalog, index, p, facts, &host))
        .collect();
    apply_supersedence(catalog, &mut verdicts);
    apply_remediations(catalog, &mut verdicts);
    verdicts
}

/// Evaluate one patch: the worst verdict over the host's products the patch applies to. `host`
/// is [`HostView::of`] `facts`.
pub fn evaluate_patch(
    catalog: &Catalog,
    index: &CatalogIndex,
    patch: &Patch,
    facts: &HostFacts,
    host: &HostView,
) -> Verdict {
    let mut best: Option<Verdict> = None;
    for target in &patch.targets {
        let Some(product) = catalog.product(&target.product) else {
            continue;
        };
        let indexed = index.product(product);
        let Some(installed) = indexed.rule.host_runs(host, facts) else {
            continue;
        };
        let sp = installed.service_pack;
        if let Some(fixed) = target.fixed_in_sp.as_ref().and_then(sp_number)
            && fixed > 0
            && sp >= fixed
        {
            continue;
        }
        if !target.service_packs.is_empty() {
            let listed: Vec<u32> = target.service_packs.iter().filter_map(sp_number).collect();
            if !listed.is_empty() && !listed.contains(&sp) {
                continue;
            }
        }
        // A KB missing from the update list proves nothing for a product the list never covers.
        let uncovered;
        let facts = if indexed.kb_list_covers || facts.kbs_unknown.is_some() {
            facts
        } else {
            uncovered = HostFacts {
                kbs_unknown: Some(format!(
                    "it lists Windows updates only, not {}'s",
                    product.name
                )),
                ..facts.clone()
            };
            &uncovered
        };
        let (status, evidence) = match eval_rule(&target.detection, facts) {
            Outcome::Pass(e) => (Status::Installed, e),
            Outcome::Skip => (
                Status::NotApplicable,
                "none of the patch's files is on this host".into(),
            ),
            Outcome::Newer(e) => (Status::Warning, e),
            Outcome::Fail(e) => (Status::Missing, e),
            Outcome::Unknown(e) => (Status::Note, e),
        };
        if best.as_ref().is_none_or(|b| status > b.status) {
            let (id, bulletins) = index.patch(patch);
            best = Some(Verdict {
                patch: id,
                bulletins,
                product: indexed.name.clone(),
                status,
                evidence,
            });
        }
    }
    best.unwrap_or_else(|| {
        let (id, bulletins) = index.patch(patch);
        Verdict {
            patch: id,
            bulletins,
            product: index.none.clone(),
            status: Status::NotApplicable,
            evidence: "no affected product at an affected service pack on this host".into(),
        }
    })
}

/// A missing (or warning/note) patch is not missing when a patch that supersedes it, directly or
/// through a chain, is installed on the host.
fn apply_supersedence(catalog: &Catalog, verdicts: &mut [Verdict]) {
    let installed: BTreeSet<Arc<str>> = verdicts
        .iter()
        .filter(|v| v.status == Status::Installed)
        .map(|v| v.patch.clone())
        .collect();
    for v in verdicts.iter_mut() {
        if !matches!(v.status, Status::Missing | Status::Note | Status::Warning) {
            continue;
        }
        if let Some(by) = installed_successor(catalog, &v.patch, &installed) {
            v.status = Status::Superseded;
            v.evidence = format!("superseded by {by}, which is installed ({})", v.evidence);
        }
    }
}

/// MSRC's remediations are per CVE: a CVE is fixed on a host when any of its remediations for
/// the host's product is installed (a Server 2025 host kept current by hotpatch has the hotpatch
/// KB, not the month's cumulative one). A missing patch whose every CVE is fixed that way is
/// not needed; one with some CVEs still open is reported for those CVEs only.
fn apply_remediations(catalog: &Catalog, verdicts: &mut [Verdict]) {
    let installed: BTreeMap<Arc<str>, Arc<str>> = verdicts
        .iter()
        .filter(|v| v.status == Status::Installed)
        .map(|v| (v.patch.clone(), v.product.clone()))
        .collect();
    for v in verdicts.iter_mut().filter(|v| v.status == Status::Missing) {
        if catalog.patch(&v.patch).is_none() {
            continue;
        }
        let mut open: Vec<Arc<str>> = Vec::new();
        let mut fixed_by = BTreeSet::new();
        for cve in v.bulletins.iter() {
            let other = catalog.bulletin(cve).and_then(|b| {
                b.patches.iter().find(|q| {
                    q.as_str() != &*v.patch && installed.get(q.as_str()) == Some(&v.product)
                })
            });
            match other {
                Some(q) => {
                    fixed_by.insert(q.clone());
                }
                None => open.push(cve.clone()),
            }
        }
        if fixed_by.is_empty() {
            continue;
        }
        let by = fixed_by.into_iter().collect::<Vec<_>>().join(", ");
        if open.is_empty() {
            v.status = Status::Superseded;
            v.evidence = format!(
                "every CVE it fixes is fixed by {by}, which is installed ({})",
                v.evidence
            );
        } else {
            v.evidence = format!(
                "{}; still open: {} (the others are fixed by {by}, which is installed)",
                v.evidence,
                open.join(", ")
            );
            v.bulletins = open.into();
        }
    }
}

fn installed_successor(
    catalog: &Catalog,
    patch: &str,
    installed: &BTreeSet<Arc<str>>,
) -> Option<String> {
    let mut stack = vec![patch.to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(p) = catalog.patch(&id) else {
            continue;
        };
        for next in &p.superseded_by {
            if installed.contains(next.as_str()) {
                return Some(next.clone());
            }
            stack.push(next.clone());
        }
    }
    None
}

/// The number of a service pack from its vendor name: "Windows 2000 Gold" is 0, "... Service Pack 2"
/// or "SP2" is 2; anything else (e.g. "None Available") is unknown.
pub fn sp_number(sp: &ServicePack) -> Option<u32> {
    let name = sp.name.to_ascii_lowercase();
    if name.contains("gold") {
        return Some(0);
    }
    let tail = name
        .rfind("service pack")
        .map(|i| &name[i + "service pack".len()..])
        .or_else(|| name.rfind("sp").map(|i| &name[i + 2..]))?;
    let digits: String = tail
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn eval_rule(rule: &DetectionRule, facts: &HostFacts) -> Outcome {
    match rule {
        DetectionRule::All { rules } => {
            let outs: Vec<Outcome> = rules.iter().map(|r| eval_rule(r, facts)).collect();
            if let Some(Outcome::Fail(e)) = outs.iter().find(|o| matches!(o, Outcome::Fail(_))) {
                return Outcome::Fail(e.clone());
            }
            if let Some(Outcome::Unknown(e)) =
                outs.iter().find(|o| matches!(o, Outcome::Unknown(_)))
            {
                return Outcome::Unknown(e.clone());
            }
            if let Some(Outcome::Newer(e)) = outs.iter().find(|o| matches!(o, Outcome::Newer(_))) {
                return Outcome::Newer(e.clone());
            }
            let passes: Vec<&str> = outs
                .iter()
                .filter_map(|o| match o {
                    Outcome::Pass(e) => Some(e.as_str()),
                    _ => None,
                })
                .collect();
            if passes.is_empty() {
                Outcome::Skip
            } else {
                Outcome::Pass(passes.join("; "))
            }
        }
        DetectionRule::Any { rules } => {
            let outs: Vec<Outcome> = rules.iter().map(|r| eval_rule(r, facts)).collect();
            for want in [0u8, 1, 2] {
                for o in &outs {
                    match (want, o) {
                        (0, Outcome::Pass(e)) => return Outcome::Pass(e.clone()),
                        (1, Outcome::Newer(e)) => return Outcome::Newer(e.clone()),
                        (2, Outcome::Unknown(e)) => return Outcome::Unknown(e.clone()),
                        _ => {}
                    }
                }
            }
            let fails: Vec<&str> = outs
                .iter()
                .filter_map(|o| match o {
                    Outcome::Fail(e) => Some(e.as_str()),
                    _ => None,
                })
                .collect();
            if fails.is_empty() {
                Outcome::Skip
            } else {
                Outcome::Fail(fails.join("; "))
            }
        }
        DetectionRule::RegistryExists { key, value } => match facts.registry_key(key) {
            None => Outcome::Unknown(not_gathered(facts, "registry key", key)),
            Some(None) => Outcome::Fail(format!("registry key {key} not found")),
            Some(Some(values)) => match value {
                None => Outcome::Pass(format!("registry key {key} present")),
                Some(name) => match HostFacts::registry_value(values, name) {
                    Some(_) => Outcome::Pass(format!("registry value {key}\\{name} present")),
                    None => Outcome::Fail(format!("registry value {key}\\{name} not found")),
                },
            },
        },
        DetectionRule::RegistryValue { key, value, data } => match facts.registry_key(key) {
            None => Outcome::Unknown(not_gathered(facts, "registry key", key)),
            Some(None) => Outcome::Fail(format!("registry key {key} not found")),
            Some(Some(values)) => match HostFacts::registry_value(values, value) {
                Some(found) if found.trim().eq_ignore_ascii_case(data.trim()) => {
                    Outcome::Pass(format!("{key}\\{value} = {found}"))
                }
                Some(found) => Outcome::Fail(format!("{key}\\{value} = {found}, expected {data}")),
                None => Outcome::Fail(format!("registry value {key}\\{value} not found")),
            },
        },
        DetectionRule::FileVersion {
            path,
            op,
            version,
            checksum: _,
            when_missing,
            ..
        } => {
            let name = file_name(path);
            match facts.file(path) {
                None => Outcome::Unknown(not_gathered(facts, "file", path)),
                Some(None) => match when_missing {
                    WhenMissing::Ignore => Outcome::Skip,
                    WhenMissing::NotInstalled => Outcome::Fail(format!("{path} not found")),
                },
                Some(Some(f)) => match &f.version {
                    None => Outcome::Unknown(format!("{name} has no version resource")),
                    Some(have) => {
                        if have < version {
                            Outcome::Fail(format!("{name} {have} < {version}"))
                        } else if have == version {
                            Outcome::Pass(format!("{name} {have} = {version}"))
                        } else if *op == VersionOp::Exact {
                            Outcome::Newer(format!("{name} {have} > {version}"))
                        } else {
                            Outcome::Pass(format!("{name} {have} >= {version}"))
                        }
                    }
                },
            }
        }
        DetectionRule::BuildAtLeast { build } => match &facts.build {
            None => Outcome::Unknown("the OS build was not gathered".into()),
            // Revisions (UBR) of different builds are unrelated numbers: 10.0.19044.3693 is not
            // "later" than 10.0.19041.3803. Such a comparison must never prove a patch installed.
            Some(have) if !same_build_family(have, build) => Outcome::Unknown(format!(
                "build {have} is not of the build family of FixedBuild {build}: cannot compare"
            )),
            Some(have) if have >= build => Outcome::Pass(format!("build {have} >= {build}")),
            Some(have) => Outcome::Fail(format!("build {have} < {build}")),
        },
        DetectionRule::KbInstalled { kb } => {
            if facts.kbs.contains(kb) {
                Outcome::Pass(format!("{kb} installed"))
            } else if let Some(why) = &facts.kbs_unknown {
                Outcome::Unknown(format!(
                    "{kb} not in the host's update list, which is incomplete: {why}"
                ))
            } else {
                Outcome::Fail(format!("{kb} not installed"))
            }
        }
        DetectionRule::CannotTell { reason } => Outcome::Unknown(reason.clone()),
    }
}

/// Whether two Windows builds share major, minor and build number (`10.0.19044.*`).
fn same_build_family(a: &Version, b: &Version) -> bool {
    let part = |v: &Version, i: usize| v.0.get(i).copied().unwrap_or(0);
    (0..3).all(|i| part(a, i) == part(b, i))
}

/// Evidence for a fact the scan does not have: the host's own error when it gave one.
fn not_gathered(facts: &HostFacts, what: &str, item: &str) -> String {
    match facts.unknown_reason(item) {
        Some(why) => format!("{what} {item} could not be read on the host: {why}"),
        None => format!("{what} {item} was not gathered"),
    }
}

/// Whether the host's update list (`Win32_QuickFixEngineering`, the registry hotfix keys) lists
/// this product's updates: Windows and what Windows services (CBS) do; Office, SQL Server and
/// other MSI-installed products never appear there.
fn kb_list_covers(product: &str) -> bool {
    let p = product.to_ascii_lowercase();
    [
        "windows",
        "internet explorer",
        "internet information",
        "indexing service",
        ".net framework",
    ]
    .iter()
    .any(|w| p.contains(w))
}

fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests;
