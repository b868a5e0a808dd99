//! Detection rules: the small boolean language a scan evaluates against a host's facts.

use serde::{Deserialize, Serialize};

use super::values::{Kb, Version};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
