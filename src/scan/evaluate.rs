//! Evaluate: catalog × facts → a verdict per patch, with the evidence an admin can check.
//!
//! A pure function of its inputs, so every hfnetchk rule is unit-tested here without a network:
//! - the product (and service pack) is not on the host → not applicable;
//! - a registry key or KB is missing, or a file is older than the patch's → missing ("NOT Found");
//! - a file is newer than an exact version → WARNING (a later hotfix, or a tampered file);
//! - the catalog has no data for the patch, or the facts were not gathered → NOTE (cannot tell);
//! - a missing patch that an installed patch supersedes is not missing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::facts::{HostFacts, InstalledProduct};
use crate::catalog::model::{
    Catalog, DetectionRule, Patch, Product, ServicePack, VersionOp, WhenMissing,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub patch: String,
    pub bulletins: Vec<String>,
    /// The catalog product the verdict was reached for (empty when not applicable).
    pub product: String,
    pub status: Status,
    /// Why, in words an admin can check on the host: `idq.dll 5.0.2195.2779 < 5.0.2195.3645`.
    pub evidence: String,
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
    let mut verdicts: Vec<Verdict> = catalog
        .patches
        .values()
        .map(|p| evaluate_patch(catalog, p, facts))
        .collect();
    apply_supersedence(catalog, &mut verdicts);
    verdicts
}

/// Evaluate one patch: the worst verdict over the host's products the patch applies to.
pub fn evaluate_patch(catalog: &Catalog, patch: &Patch, facts: &HostFacts) -> Verdict {
    let mut best: Option<Verdict> = None;
    for target in &patch.targets {
        let Some(product) = catalog.product(&target.product) else {
            continue;
        };
        let Some(installed) = host_runs(product, facts) else {
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
        let facts = if kb_list_covers(&product.name) || facts.kbs_unknown.is_some() {
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
        let v = Verdict {
            patch: patch.id.clone(),
            bulletins: patch.bulletins.clone(),
            product: product.name.clone(),
            status,
            evidence,
        };
        if best.as_ref().is_none_or(|b| v.status > b.status) {
            best = Some(v);
        }
    }
    best.unwrap_or_else(|| Verdict {
        patch: patch.id.clone(),
        bulletins: patch.bulletins.clone(),
        product: String::new(),
        status: Status::NotApplicable,
        evidence: "no affected product at an affected service pack on this host".into(),
    })
}

/// A missing (or warning/note) patch is not missing when a patch that supersedes it, directly or
/// through a chain, is installed on the host.
fn apply_supersedence(catalog: &Catalog, verdicts: &mut [Verdict]) {
    let installed: BTreeMap<String, ()> = verdicts
        .iter()
        .filter(|v| v.status == Status::Installed)
        .map(|v| (v.patch.clone(), ()))
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

fn installed_successor(
    catalog: &Catalog,
    patch: &str,
    installed: &BTreeMap<String, ()>,
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
            if installed.contains_key(next) {
                return Some(next.clone());
            }
            stack.push(next.clone());
        }
    }
    None
}

/// Which of the host's products is this catalog product, if any.
///
/// By build range when the catalog has one (CVRF products are told apart by build, and Server Core
/// by installation type), else by name (mssecure products), ignoring case, a leading
/// "Microsoft " and repeated spaces.
fn host_runs(product: &Product, facts: &HostFacts) -> Option<InstalledProduct> {
    if let (Some(range), Some(build)) = (&product.applicability.build_range, &facts.build) {
        if !range.contains(build) {
            return None;
        }
        let core_product = product.name.contains("Server Core");
        let core_host = facts
            .installation_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("Server Core"));
        if core_product != core_host {
            return None;
        }
        // Windows 10 1809 and Server 2019 share their builds; the edition tells them apart.
        let server_product = product.name.contains("Server");
        let server_host = facts.os_name.contains("Server")
            || facts
                .installation_type
                .as_deref()
                .is_some_and(|t| t.starts_with("Server"));
        if server_product != server_host {
            return None;
        }
        return Some(InstalledProduct {
            name: product.name.clone(),
            service_pack: 0,
        });
    }
    let want = normalize_name(&product.name);
    facts
        .products
        .iter()
        .find(|p| normalize_name(&p.name) == want)
        .cloned()
}

fn normalize_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let trimmed = lower.strip_prefix("microsoft ").unwrap_or(&lower);
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
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
mod tests {
    use super::*;
    use crate::catalog::model::{
        Applicability, BuildRange, FileChecksum, Kb, PatchTarget, Restart, Version,
    };
    use crate::scan::facts::FileFact;
    use std::collections::BTreeSet;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn sp(name: &str) -> ServicePack {
        ServicePack {
            id: name.into(),
            name: name.into(),
        }
    }

    fn product(id: &str, name: &str, range: Option<(&str, &str)>) -> Product {
        Product {
            id: id.into(),
            name: name.into(),
            family: None,
            cpe: None,
            applicability: Applicability {
                build_range: range.map(|(a, b)| BuildRange {
                    min: v(a),
                    below: v(b),
                }),
                ..Default::default()
            },
        }
    }

    fn patch(id: &str, product: &str, detection: DetectionRule) -> Patch {
        Patch {
            id: id.into(),
            kb: None,
            file_name: None,
            download_url: None,
            sha256: None,
            subtype: None,
            restart: Some(Restart::Yes),
            bulletins: vec![format!("B-{id}")],
            targets: vec![PatchTarget {
                product: product.into(),
                service_packs: vec![],
                fixed_in_sp: None,
                fixed_build: None,
                detection,
            }],
            supersedes: BTreeSet::new(),
            superseded_by: BTreeSet::new(),
            installer: None,
        }
    }

    fn file_rule(
        path: &str,
        op: VersionOp,
        version: &str,
        when_missing: WhenMissing,
    ) -> DetectionRule {
        DetectionRule::FileVersion {
            path: path.into(),
            op,
            version: v(version),
            date: None,
            size: None,
            checksum: Some(FileChecksum::Hfnetchk(12345)),
            when_missing,
        }
    }

    fn catalog(products: Vec<Product>, patches: Vec<Patch>) -> Catalog {
        let mut c = Catalog::default();
        for p in products {
            c.products.insert(p.id.clone(), p);
        }
        for p in patches {
            c.patches.insert(p.id.clone(), p);
        }
        c
    }

    fn w2k(sp: u32) -> HostFacts {
        HostFacts {
            computer_name: "W2K01".into(),
            os_name: "Windows 2000 Server".into(),
            build: Some(v("5.0.2195")),
            products: vec![
                InstalledProduct {
                    name: "Microsoft Windows 2000 Server".into(),
                    service_pack: sp,
                },
                InstalledProduct {
                    name: "Internet Information Services 5.0".into(),
                    service_pack: sp,
                },
            ],
            ..Default::default()
        }
    }

    fn with_file(mut f: HostFacts, path: &str, version: Option<&str>) -> HostFacts {
        f.files.insert(
            path.into(),
            version.map(|ver| FileFact {
                version: Some(v(ver)),
                size: None,
                sha256: None,
            }),
        );
        f
    }

    const IDQ: &str = r"%windir%\system32\idq.dll";

    fn idq_catalog(op: VersionOp) -> Catalog {
        catalog(
            vec![product("m:17", "Internet Information Services 5.0", None)],
            vec![patch(
                "MS01-033/Q300972",
                "m:17",
                file_rule(IDQ, op, "5.0.2195.3645", WhenMissing::NotInstalled),
            )],
        )
    }

    #[test]
    fn older_file_is_missing_with_evidence() {
        let c = idq_catalog(VersionOp::Exact);
        let facts = with_file(w2k(1), &IDQ.to_uppercase(), Some("5.0.2195.2779"));
        let out = evaluate(&c, &facts);
        assert_eq!(out[0].status, Status::Missing);
        assert_eq!(out[0].evidence, "idq.dll 5.0.2195.2779 < 5.0.2195.3645");
        assert_eq!(out[0].product, "Internet Information Services 5.0");
    }

    #[test]
    fn newer_file_is_a_warning_for_exact_and_installed_for_at_least() {
        let facts = with_file(w2k(1), IDQ, Some("5.0.2195.4000"));
        let out = evaluate(&idq_catalog(VersionOp::Exact), &facts);
        assert_eq!(out[0].status, Status::Warning);
        assert_eq!(out[0].evidence, "idq.dll 5.0.2195.4000 > 5.0.2195.3645");
        let out = evaluate(&idq_catalog(VersionOp::AtLeast), &facts);
        assert_eq!(out[0].status, Status::Installed);
    }

    #[test]
    fn equal_file_is_installed() {
        let facts = with_file(w2k(1), IDQ, Some("5.0.2195.3645"));
        assert_eq!(
            evaluate(&idq_catalog(VersionOp::Exact), &facts)[0].status,
            Status::Installed
        );
    }

    #[test]
    fn facts_not_gathered_are_a_note_not_a_guess() {
        let out = evaluate(&idq_catalog(VersionOp::Exact), &w2k(1));
        assert_eq!(out[0].status, Status::Note);
        assert!(
            out[0].evidence.contains("was not gathered"),
            "{}",
            out[0].evidence
        );
    }

    #[test]
    fn missing_file_follows_when_missing() {
        let facts = with_file(w2k(1), IDQ, None);
        assert_eq!(
            evaluate(&idq_catalog(VersionOp::Exact), &facts)[0].status,
            Status::Missing
        );
        let c = catalog(
            vec![product("m:17", "Internet Information Services 5.0", None)],
            vec![patch(
                "p",
                "m:17",
                file_rule(IDQ, VersionOp::Exact, "5.0.2195.3645", WhenMissing::Ignore),
            )],
        );
        assert_eq!(evaluate(&c, &facts)[0].status, Status::NotApplicable);
    }

    #[test]
    fn product_not_on_host_is_not_applicable() {
        let c = catalog(
            vec![product("m:16", "Internet Information Server 4.0", None)],
            vec![patch(
                "p",
                "m:16",
                DetectionRule::KbInstalled { kb: Kb(300972) },
            )],
        );
        let out = evaluate(&c, &w2k(1));
        assert_eq!(out[0].status, Status::NotApplicable);
    }

    #[test]
    fn service_pack_rules() {
        let mut p = patch("p", "m:6", DetectionRule::KbInstalled { kb: Kb(299553) });
        p.targets[0].fixed_in_sp = Some(sp("Windows 2000 Service Pack 2"));
        let c = catalog(
            vec![product("m:6", "Windows 2000 Server", None)],
            vec![p.clone()],
        );
        assert_eq!(evaluate(&c, &w2k(1))[0].status, Status::Missing);
        assert_eq!(evaluate(&c, &w2k(2))[0].status, Status::NotApplicable);
        p.targets[0].fixed_in_sp = None;
        p.targets[0].service_packs =
            vec![sp("Windows 2000 Gold"), sp("Windows 2000 Service Pack 1")];
        let c = catalog(vec![product("m:6", "Windows 2000 Server", None)], vec![p]);
        assert_eq!(evaluate(&c, &w2k(0))[0].status, Status::Missing);
        assert_eq!(evaluate(&c, &w2k(2))[0].status, Status::NotApplicable);
    }

    #[test]
    fn registry_rules() {
        let key = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972";
        let rule = DetectionRule::RegistryValue {
            key: key.into(),
            value: "Installed".into(),
            data: "1".into(),
        };
        let c = catalog(
            vec![product("m:6", "Windows 2000 Server", None)],
            vec![patch("p", "m:6", rule)],
        );
        let mut facts = w2k(1);
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Note);
        facts.registry.insert(key.to_lowercase(), None);
        let out = evaluate(&c, &facts);
        assert_eq!(out[0].status, Status::Missing);
        assert!(out[0].evidence.contains("not found"));
        facts.registry.insert(
            key.to_lowercase(),
            Some([("installed".to_string(), "1".to_string())].into()),
        );
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Installed);
        facts.registry.insert(
            key.to_lowercase(),
            Some([("Installed".to_string(), "0".to_string())].into()),
        );
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Missing);
    }

    #[test]
    fn build_ranges_pick_the_product_and_fixed_build_decides() {
        let rule = DetectionRule::Any {
            rules: vec![
                DetectionRule::KbInstalled { kb: Kb(5035849) },
                DetectionRule::BuildAtLeast {
                    build: v("10.0.17763.5576"),
                },
            ],
        };
        let c = catalog(
            vec![
                product(
                    "msrc:1",
                    "Windows Server 2019",
                    Some(("10.0.17763", "10.0.17764")),
                ),
                product(
                    "msrc:2",
                    "Windows Server 2019 (Server Core installation)",
                    Some(("10.0.17763", "10.0.17764")),
                ),
                product(
                    "msrc:3",
                    "Windows Server 2022",
                    Some(("10.0.20348", "10.0.20349")),
                ),
            ],
            vec![
                patch("KB5035849", "msrc:1", rule.clone()),
                patch("KB5035849-core", "msrc:2", rule.clone()),
                patch(
                    "KB5035857",
                    "msrc:3",
                    DetectionRule::BuildAtLeast {
                        build: v("10.0.20348.2340"),
                    },
                ),
            ],
        );
        let mut facts = HostFacts {
            build: Some(v("10.0.17763.5458")),
            installation_type: Some("Server".into()),
            ..Default::default()
        };
        let out = evaluate(&c, &facts);
        let by: BTreeMap<_, _> = out.iter().map(|v| (v.patch.as_str(), v)).collect();
        assert_eq!(by["KB5035849"].status, Status::Missing);
        assert_eq!(
            by["KB5035849"].evidence,
            "KB5035849 not installed; build 10.0.17763.5458 < 10.0.17763.5576"
        );
        assert_eq!(by["KB5035849-core"].status, Status::NotApplicable);
        assert_eq!(by["KB5035857"].status, Status::NotApplicable);
        facts.build = Some(v("10.0.17763.5576"));
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Installed);
        facts.build = Some(v("10.0.17763.5458"));
        facts.kbs.insert(Kb(5035849));
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Installed);
        facts.installation_type = Some("Server Core".into());
        let out = evaluate(&c, &facts);
        assert_eq!(out[0].status, Status::NotApplicable);
        assert_eq!(out[1].status, Status::Installed);
    }

    #[test]
    fn cannot_tell_is_a_note() {
        let c = catalog(
            vec![product("m:6", "Windows 2000 Server", None)],
            vec![patch(
                "p",
                "m:6",
                DetectionRule::CannotTell {
                    reason: "no file or registry data in the catalog".into(),
                },
            )],
        );
        let out = evaluate(&c, &w2k(1));
        assert_eq!(out[0].status, Status::Note);
        assert_eq!(out[0].evidence, "no file or registry data in the catalog");
    }

    #[test]
    fn superseded_by_an_installed_patch_is_not_missing_even_through_a_chain() {
        let mut old = patch("old", "m:6", DetectionRule::KbInstalled { kb: Kb(1) });
        let mut mid = patch("mid", "m:6", DetectionRule::KbInstalled { kb: Kb(2) });
        let new = patch("new", "m:6", DetectionRule::KbInstalled { kb: Kb(3) });
        old.superseded_by.insert("mid".into());
        mid.superseded_by.insert("new".into());
        let c = catalog(
            vec![product("m:6", "Windows 2000 Server", None)],
            vec![old, mid, new],
        );
        let mut facts = w2k(1);
        facts.kbs.insert(Kb(3));
        let out: BTreeMap<_, _> = evaluate(&c, &facts)
            .into_iter()
            .map(|v| (v.patch.clone(), v))
            .collect();
        assert_eq!(out["new"].status, Status::Installed);
        assert_eq!(out["mid"].status, Status::Superseded);
        assert_eq!(out["old"].status, Status::Superseded);
        assert!(
            out["old"].evidence.starts_with("superseded by new"),
            "{}",
            out["old"].evidence
        );
        // Without the successor installed, the old one is missing again.
        facts.kbs.clear();
        let out = evaluate(&c, &facts);
        assert!(out.iter().all(|v| v.status == Status::Missing));
    }

    #[test]
    fn all_rule_combines_fail_before_unknown_before_newer() {
        let key = r"HKLM\SOFTWARE\X";
        let rule = DetectionRule::All {
            rules: vec![
                DetectionRule::RegistryExists {
                    key: key.into(),
                    value: None,
                },
                file_rule(
                    IDQ,
                    VersionOp::Exact,
                    "5.0.2195.3645",
                    WhenMissing::NotInstalled,
                ),
            ],
        };
        let c = catalog(
            vec![product("m:6", "Windows 2000 Server", None)],
            vec![patch("p", "m:6", rule)],
        );
        let mut facts = with_file(w2k(1), IDQ, Some("5.0.2195.9999"));
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Note);
        facts.registry.insert(key.into(), Some(BTreeMap::new()));
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Warning);
        facts.registry.insert(key.into(), None);
        assert_eq!(evaluate(&c, &facts)[0].status, Status::Missing);
    }

    #[test]
    fn sp_names() {
        assert_eq!(sp_number(&sp("Windows 2000 Gold")), Some(0));
        assert_eq!(sp_number(&sp("Windows 2000 Service Pack 2")), Some(2));
        assert_eq!(sp_number(&sp("Windows NT4 Service Pack 6a")), Some(6));
        assert_eq!(sp_number(&sp("SP3")), Some(3));
        assert_eq!(sp_number(&sp("None Available")), None);
    }

    #[test]
    fn what_the_host_could_not_tell_is_a_note_with_its_reason() {
        let mut f = w2k(1);
        f.unknown.insert(
            IDQ.to_ascii_uppercase(),
            "Access to the path is denied.".into(),
        );
        let out = evaluate(&idq_catalog(VersionOp::Exact), &f);
        assert_eq!(out[0].status, Status::Note);
        assert!(
            out[0]
                .evidence
                .contains("could not be read on the host: Access to the path"),
            "{}",
            out[0].evidence
        );
    }

    #[test]
    fn a_kb_absent_from_an_incomplete_or_foreign_update_list_is_a_note() {
        let range = Some(("10.0.20348.0", "10.0.20349.0"));
        let c = catalog(
            vec![
                product("p:win", "Windows Server 2022", range),
                product("p:app", "Fabrikam Office 2024 Server", range),
            ],
            vec![
                patch(
                    "win",
                    "p:win",
                    DetectionRule::KbInstalled { kb: Kb(5_034_770) },
                ),
                patch(
                    "app",
                    "p:app",
                    DetectionRule::KbInstalled { kb: Kb(5_002_500) },
                ),
            ],
        );
        let mut f = HostFacts {
            os_name: "Windows Server 2022 Datacenter".into(),
            installation_type: Some("Server".into()),
            build: Some(v("10.0.20348.2340")),
            ..Default::default()
        };
        let status = |c: &Catalog, f: &HostFacts, id: &str| {
            let out = evaluate(c, f);
            let v = out.iter().find(|v| v.patch == id).unwrap().clone();
            (v.status, v.evidence)
        };
        assert_eq!(status(&c, &f, "win").0, Status::Missing);
        let (s, evidence) = status(&c, &f, "app");
        assert_eq!(s, Status::Note, "{evidence}");
        assert!(evidence.contains("Windows updates only"), "{evidence}");
        f.kbs_unknown = Some("Invalid class \"Win32_QuickFixEngineering\"".into());
        let (s, evidence) = status(&c, &f, "win");
        assert_eq!(s, Status::Note, "{evidence}");
        assert!(evidence.contains("Win32_QuickFixEngineering"), "{evidence}");
        f.kbs = [Kb(5_034_770), Kb(5_002_500)].into_iter().collect();
        assert_eq!(status(&c, &f, "win").0, Status::Installed);
        assert_eq!(status(&c, &f, "app").0, Status::Installed);
    }
}
