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
//! - Nothing here does IO; loading and saving live in `store.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// Where the content came from, oldest first (one entry per imported document).
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

/// A boolean rule a scan evaluates against facts gathered from a host.
///
/// The leaves carry hfnetchk's semantics where they came from mssecure: a missing registry key
/// means the patch is not found; a file version lower than expected means not found, a higher one
/// is a WARNING (a later hotfix or a tampered file); a checksum mismatch means not found.
///
/// Combining: in `All`, any leaf that says "not installed" decides; otherwise a `CannotTell` leaf
/// makes the whole rule "cannot tell". In `Any`, any leaf that says "installed" decides; otherwise
/// a `CannotTell` leaf makes it "cannot tell".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetectionRule {
    /// Installed when every rule holds.
    All {
        /// The rules.
        rules: Vec<DetectionRule>,
    },
    /// Installed when at least one rule holds (e.g. the KB itself, or a later build).
    Any {
        /// The rules.
        rules: Vec<DetectionRule>,
    },
    /// The registry key (and, when given, its value name) exists.
    RegistryExists {
        /// Full key path, `HKLM\SOFTWARE\...`.
        key: String,
        /// The value name inside the key; `None` checks the key only.
        value: Option<String>,
    },
    /// The registry value exists and equals `data` (compared as text, case-insensitively, as
    /// hfnetchk did).
    RegistryValue {
        /// Full key path, `HKLM\SOFTWARE\...`.
        key: String,
        /// The value name inside the key.
        value: String,
        /// The expected data.
        data: String,
    },
    /// A file's version (and optionally date, size, checksum) compared to the expected one.
    FileVersion {
        /// Where the file is, with `%windir%`-style variables left for the scan to resolve on the
        /// host (`%windir%\system32\idq.dll`).
        path: String,
        /// How to compare the host's version with `version`.
        op: VersionOp,
        /// The version the patch installs.
        version: Version,
        /// The file date the patch installs, as the catalog gives it.
        date: Option<String>,
        /// The file size in bytes.
        size: Option<u64>,
        /// A checksum of the file.
        checksum: Option<FileChecksum>,
        /// What a missing file means.
        when_missing: WhenMissing,
    },
    /// The host's Windows build (major.minor.build.UBR) is at least this one.
    BuildAtLeast {
        /// The first build that contains the fix.
        build: Version,
    },
    /// The KB is reported installed (Get-HotFix / DISM packages).
    KbInstalled {
        /// The KB.
        kb: Kb,
    },
    /// The catalog has no data to decide: hfnetchk's NOTE verdict.
    CannotTell {
        /// Why, in words for the admin.
        reason: String,
    },
}

impl DetectionRule {
    /// Every KB this rule refers to, so a scan can ask for exactly those.
    pub fn kbs(&self) -> Vec<Kb> {
        let mut out = Vec::new();
        self.walk_ref(&mut |r| {
            if let DetectionRule::KbInstalled { kb } = r {
                out.push(*kb);
            }
        });
        out
    }

    /// Every file path this rule reads, so a scan gathers them in one round trip.
    pub fn file_paths(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk_ref(&mut |r| {
            if let DetectionRule::FileVersion { path, .. } = r {
                out.push(path.as_str());
            }
        });
        out
    }

    /// Every `(key, value name)` this rule reads.
    pub fn registry_reads(&self) -> Vec<(&str, Option<&str>)> {
        let mut out = Vec::new();
        self.walk_ref(&mut |r| match r {
            DetectionRule::RegistryExists { key, value } => {
                out.push((key.as_str(), value.as_deref()));
            }
            DetectionRule::RegistryValue { key, value, .. } => {
                out.push((key.as_str(), Some(value.as_str())));
            }
            _ => {}
        });
        out
    }

    /// Whether the rule can never decide (is or contains only "cannot tell").
    pub fn is_cannot_tell(&self) -> bool {
        match self {
            DetectionRule::CannotTell { .. } => true,
            DetectionRule::All { rules } | DetectionRule::Any { rules } => {
                !rules.is_empty() && rules.iter().all(DetectionRule::is_cannot_tell)
            }
            _ => false,
        }
    }

    fn walk_ref<'a>(&'a self, f: &mut impl FnMut(&'a DetectionRule)) {
        f(self);
        if let DetectionRule::All { rules } | DetectionRule::Any { rules } = self {
            for r in rules {
                r.walk_ref(f);
            }
        }
    }
}

/// How a file version on the host is compared with the catalog's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionOp {
    /// hfnetchk semantics: equal is installed, lower is NOT found, higher is a WARNING
    /// (installed by a later hotfix, or tampered).
    Exact,
    /// Equal or higher is installed, lower is not.
    AtLeast,
}

/// What a missing file means for a [`DetectionRule::FileVersion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenMissing {
    /// The rule does not apply (mssecure CommandID `e`: "change if exists, ignore if not") —
    /// the component is not installed, so the file cannot be vulnerable.
    Ignore,
    /// The patch is not installed.
    NotInstalled,
}

/// A file checksum from a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FileChecksum {
    /// hfnetchk's own integer checksum (`136855`). Its algorithm is not documented; an evaluator
    /// that cannot compute it must not treat a mismatch as "not installed".
    Hfnetchk(u64),
    /// SHA-256, lowercase hex.
    Sha256(String),
}

/// How to run a patch's installer unattended on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallerRecipe {
    /// The installer technology.
    pub kind: InstallerKind,
    /// Arguments after the installer path (`-z -q -m` for a legacy hotfix.exe).
    #[serde(default)]
    pub arguments: Vec<String>,
    /// What each exit code means; codes not listed are failures.
    #[serde(default)]
    pub exit_codes: BTreeMap<u32, ExitMeaning>,
    /// Whether several of these can be installed one after the other before one reboot.
    pub chainable: bool,
    /// Whether qchain.exe must run after a chain of these (NT4/Windows 2000 hotfix.exe before
    /// Update.exe got qchain built in, May 2001): otherwise an OLDER file can win the queued
    /// replacement at reboot.
    pub needs_qchain: bool,
}

impl InstallerRecipe {
    /// The exit codes every Windows installer of the family shares (see patching notes).
    fn common_exit_codes() -> BTreeMap<u32, ExitMeaning> {
        BTreeMap::from([
            (0, ExitMeaning::Success),
            (3010, ExitMeaning::RebootRequired),
            (0x0024_0005, ExitMeaning::RebootRequired),
            (1641, ExitMeaning::RebootInitiated),
            (0x0024_0006, ExitMeaning::AlreadyInstalled),
            (0x8024_0017, ExitMeaning::NotApplicable),
            (1618, ExitMeaning::RetryLater),
        ])
    }

    /// NT4/Windows 2000 `hotfix.exe`: `-z` no reboot, `-q` quiet, `-m` unattended. Chained
    /// installs need qchain afterwards.
    pub fn legacy_hotfix() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::HotfixExe,
            arguments: vec!["-z".into(), "-q".into(), "-m".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: true,
        }
    }

    /// Windows 2000 `Update.exe` packages (`Q300972_W2K_SP3_x86_en.EXE`): `-u` unattended, `-q`
    /// quiet, `-z` no reboot. Packages after May 2001 chain safely (qchain built in).
    pub fn update_exe() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::UpdateExe,
            arguments: vec!["-u".into(), "-q".into(), "-z".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: false,
        }
    }

    /// `.msu`: expanded and added with DISM (`wusa` fails over WinRM with 0x5); the arguments
    /// are DISM's.
    pub fn msu() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::Msu,
            arguments: vec!["/quiet".into(), "/norestart".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: false,
        }
    }

    /// `.msi`: `msiexec /i x.msi /qn /norestart`.
    pub fn msi() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::Msi,
            arguments: vec!["/qn".into(), "/norestart".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: false,
        }
    }

    /// A guess from the installer's file name, for catalogs that do not say: `.msu`, `.msi`,
    /// `*_W2K_SP*` Update.exe packages, other `.exe` as legacy hotfix.exe. `None` when the name
    /// says nothing (no extension hive knows).
    pub fn guess_from_file_name(name: &str) -> Option<InstallerRecipe> {
        let lower = name.trim().to_ascii_lowercase();
        if lower.ends_with(".msu") {
            Some(Self::msu())
        } else if lower.ends_with(".msi") {
            Some(Self::msi())
        } else if lower.ends_with(".exe") {
            if lower.contains("_w2k_sp") || lower.contains("_wxp_sp") {
                Some(Self::update_exe())
            } else {
                Some(Self::legacy_hotfix())
            }
        } else {
            None
        }
    }

    /// What an exit code means under this recipe.
    pub fn exit_meaning(&self, code: u32) -> ExitMeaning {
        self.exit_codes
            .get(&code)
            .copied()
            .unwrap_or(ExitMeaning::Failed)
    }
}

/// Installer technologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallerKind {
    /// NT4/Windows 2000 `hotfix.exe` package (`-z -q -m`).
    HotfixExe,
    /// Windows 2000 `Update.exe` package (`-u -q -z`), qchain built in.
    UpdateExe,
    /// Windows Update standalone package (expanded and fed to DISM over WinRM).
    Msu,
    /// Windows Installer package (`msiexec /i … /qn /norestart`).
    Msi,
    /// Any other self-contained installer, with vendor-specific switches.
    Exe,
}

/// What an installer's exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitMeaning {
    /// Installed.
    Success,
    /// Installed; a reboot is needed to finish (3010, 0x240005).
    RebootRequired,
    /// Installed; the installer started a reboot itself (1641).
    RebootInitiated,
    /// Already installed (0x240006).
    AlreadyInstalled,
    /// Does not apply to this host (0x80240017).
    NotApplicable,
    /// Another installation is running; try again later (1618).
    RetryLater,
    /// Failed.
    Failed,
}

/// A KB (Knowledge Base) article number. Q numbers of the 1990s are the same number space
/// (`Q300972` is `KB300972`), so both parse to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kb(pub u32);

impl Kb {
    /// The old `Q300972` spelling, as hfnetchk printed it.
    pub fn q_number(&self) -> String {
        format!("Q{}", self.0)
    }
}

impl fmt::Display for Kb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KB{}", self.0)
    }
}

/// A text that is not a KB number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a KB or Q number")]
pub struct BadKb(pub String);

impl FromStr for Kb {
    type Err = BadKb;

    /// Accepts `KB5035849`, `kb5035849`, `Q300972 `, `q279328` and a bare `5035849`.
    fn from_str(s: &str) -> Result<Kb, BadKb> {
        let t = s.trim();
        let digits = if t.len() > 2 && t[..2].eq_ignore_ascii_case("kb") {
            &t[2..]
        } else if t.len() > 1 && t[..1].eq_ignore_ascii_case("q") {
            &t[1..]
        } else {
            t
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadKb(s.to_string()));
        }
        digits.parse().map(Kb).map_err(|_| BadKb(s.to_string()))
    }
}

impl Serialize for Kb {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Kb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kb, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A dotted numeric version (`5.0.2195.3645`, `10.0.17763.5576`). Missing trailing parts compare
/// as zero, so `5.0` equals `5.0.0.0`.
#[derive(Debug, Clone, Eq)]
pub struct Version(pub Vec<u32>);

/// A text that is not a dotted numeric version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a dotted numeric version")]
pub struct BadVersion(pub String);

impl Version {
    /// The parts with trailing zeros removed: the canonical form for comparing and hashing.
    fn significant(&self) -> &[u32] {
        let end = self.0.iter().rposition(|&p| p != 0).map_or(0, |i| i + 1);
        &self.0[..end]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.significant() == other.significant()
    }
}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.significant().hash(h);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> std::cmp::Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Version {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Version, BadVersion> {
        let t = s.trim();
        if t.is_empty() {
            return Err(BadVersion(s.to_string()));
        }
        t.split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(BadVersion(s.to_string()));
                }
                p.parse::<u32>().map_err(|_| BadVersion(s.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A calendar date (`YYYY-MM-DD`). The sources write `1998/06/01` or `2024-03-12T07:00:00`;
/// only the day matters for patching, so that is all the model keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CatalogDate {
    /// Year.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
}

/// A text that is not a date the catalogs use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date (expected YYYY-MM-DD or YYYY/MM/DD)")]
pub struct BadDate(pub String);

impl FromStr for CatalogDate {
    type Err = BadDate;

    /// Accepts `1998/06/01`, `2024-03-12`, `2024-03-12T07:00:00(Z)`.
    fn from_str(s: &str) -> Result<CatalogDate, BadDate> {
        let bad = || BadDate(s.to_string());
        let day_part = s.trim().split('T').next().ok_or_else(bad)?;
        let mut it = day_part.split(['-', '/']);
        let mut num = |max: u32| -> Result<u32, BadDate> {
            let p = it.next().ok_or_else(bad)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u32 = p.parse().map_err(|_| bad())?;
            if n > max { Err(bad()) } else { Ok(n) }
        };
        let year = num(9999)?;
        let month = num(12)?;
        let day = num(31)?;
        if it.next().is_some() || month == 0 || day == 0 {
            return Err(bad());
        }
        Ok(CatalogDate {
            year: year as u16,
            month: month as u8,
            day: day as u8,
        })
    }
}

impl fmt::Display for CatalogDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for CatalogDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CatalogDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CatalogDate, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
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
mod tests {
    use super::*;

    #[test]
    fn kb_parses_every_spelling() {
        assert_eq!("KB5035849".parse::<Kb>().unwrap(), Kb(5035849));
        assert_eq!("Q300972 ".parse::<Kb>().unwrap(), Kb(300972));
        assert_eq!("q279328".parse::<Kb>().unwrap(), Kb(279328));
        assert_eq!("5002559".parse::<Kb>().unwrap(), Kb(5002559));
        assert!("CBL-Mariner Releases".parse::<Kb>().is_err());
        assert!("KB".parse::<Kb>().is_err());
        assert_eq!(Kb(300972).q_number(), "Q300972");
        assert_eq!(Kb(5035849).to_string(), "KB5035849");
    }

    #[test]
    fn versions_compare_numerically_with_zero_padding() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("10.0.17763.5576") > v("10.0.17763.999"));
        assert_eq!(v("5.0"), v("5.0.0.0"));
        assert!(v("5.0.2195.3645") < v("5.0.2195.3646"));
        assert!("10.11.6-3".parse::<Version>().is_err());
        assert!("-".parse::<Version>().is_err());
        assert!("".parse::<Version>().is_err());
        assert!("1..2".parse::<Version>().is_err());
    }

    #[test]
    fn dates_accept_both_source_spellings() {
        let d: CatalogDate = "1998/06/01".parse().unwrap();
        assert_eq!(d.to_string(), "1998-06-01");
        let d: CatalogDate = "2024-03-12T07:00:00Z".parse().unwrap();
        assert_eq!(d.to_string(), "2024-03-12");
        assert!("".parse::<CatalogDate>().is_err());
        assert!("2024/13/01".parse::<CatalogDate>().is_err());
    }

    #[test]
    fn rules_serialize_with_a_kind_tag_and_round_trip() {
        let rule = DetectionRule::Any {
            rules: vec![
                DetectionRule::KbInstalled { kb: Kb(5035849) },
                DetectionRule::BuildAtLeast {
                    build: "10.0.17763.5576".parse().unwrap(),
                },
            ],
        };
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"any","rules":[{"kind":"kb_installed","kb":"KB5035849"},{"kind":"build_at_least","build":"10.0.17763.5576"}]}"#
        );
        let back: DetectionRule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rule);
        assert_eq!(rule.kbs(), vec![Kb(5035849)]);
    }

    #[test]
    fn cannot_tell_is_seen_through_groups() {
        let ct = DetectionRule::CannotTell {
            reason: "no data".into(),
        };
        assert!(ct.is_cannot_tell());
        assert!(
            DetectionRule::All {
                rules: vec![ct.clone()]
            }
            .is_cannot_tell()
        );
        assert!(!DetectionRule::All { rules: vec![] }.is_cannot_tell());
    }

    #[test]
    fn exit_codes_default_to_failure() {
        let r = InstallerRecipe {
            kind: InstallerKind::Msu,
            arguments: vec![],
            exit_codes: BTreeMap::from([(3010, ExitMeaning::RebootRequired)]),
            chainable: true,
            needs_qchain: false,
        };
        assert_eq!(r.exit_meaning(3010), ExitMeaning::RebootRequired);
        assert_eq!(r.exit_meaning(1603), ExitMeaning::Failed);
    }
}
