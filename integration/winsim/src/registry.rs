//! One host's registry: keys, typed values, and the reg.exe view of them.
//!
//! Detection reads the registry (build, UBR, hotfix keys, pending-reboot markers) and installers
//! write it, so the model keeps one tree per host as the single source of truth: the probe, `reg
//! query` and the installers all go through it, and what one writes the others see. Key and value
//! names are case-insensitive and case-preserving, as on Windows.

use std::collections::BTreeMap;

use thiserror::Error;

/// A registry value with its type, as `RegQueryValueEx` would return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegValue {
    Sz(String),
    ExpandSz(String),
    MultiSz(Vec<String>),
    Dword(u32),
    Qword(u64),
    Binary(Vec<u8>),
}

impl RegValue {
    /// The type name reg.exe prints (`REG_SZ`, `REG_DWORD`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            RegValue::Sz(_) => "REG_SZ",
            RegValue::ExpandSz(_) => "REG_EXPAND_SZ",
            RegValue::MultiSz(_) => "REG_MULTI_SZ",
            RegValue::Dword(_) => "REG_DWORD",
            RegValue::Qword(_) => "REG_QWORD",
            RegValue::Binary(_) => "REG_BINARY",
        }
    }

    /// The data column of `reg query`: DWORD/QWORD as `0x` lowercase hex, binary as uppercase hex
    /// digits, multi-strings joined by a literal `\0`.
    pub fn reg_exe_data(&self) -> String {
        match self {
            RegValue::Sz(s) | RegValue::ExpandSz(s) => s.clone(),
            RegValue::MultiSz(items) => items.join("\\0"),
            RegValue::Dword(v) => format!("0x{v:x}"),
            RegValue::Qword(v) => format!("0x{v:x}"),
            RegValue::Binary(b) => b.iter().map(|x| format!("{x:02X}")).collect(),
        }
    }
}

/// A registry path that names no known root key.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a registry path (expected HKLM\\..., HKEY_LOCAL_MACHINE\\..., HKCU, HKCR, HKU or HKCC)"
)]
pub struct BadRegistryPath(pub String);

/// `HKLM\Software\x\` → `HKEY_LOCAL_MACHINE\Software\x`: the form reg.exe prints.
pub fn canonical_path(path: &str) -> Result<String, BadRegistryPath> {
    let trimmed = path.trim().trim_end_matches('\\');
    let (root, rest) = match trimmed.split_once('\\') {
        Some((r, rest)) => (r, Some(rest)),
        None => (trimmed, None),
    };
    let root = match root.to_ascii_uppercase().as_str() {
        "HKLM" | "HKEY_LOCAL_MACHINE" => "HKEY_LOCAL_MACHINE",
        "HKCU" | "HKEY_CURRENT_USER" => "HKEY_CURRENT_USER",
        "HKCR" | "HKEY_CLASSES_ROOT" => "HKEY_CLASSES_ROOT",
        "HKU" | "HKEY_USERS" => "HKEY_USERS",
        "HKCC" | "HKEY_CURRENT_CONFIG" => "HKEY_CURRENT_CONFIG",
        _ => return Err(BadRegistryPath(path.to_string())),
    };
    if rest.is_some_and(|r| r.split('\\').any(str::is_empty)) {
        return Err(BadRegistryPath(path.to_string()));
    }
    Ok(match rest {
        Some(rest) => format!("{root}\\{rest}"),
        None => root.to_string(),
    })
}

#[derive(Debug, Clone, Default)]
struct Key {
    /// The path as first created (case preserved).
    path: String,
    /// Values in creation order; the default value has the empty name.
    values: Vec<(String, RegValue)>,
}

/// A registry tree. Keys are stored flat, indexed by their lower-cased canonical path, which keeps
/// 1,000 hosts' registries cheap and makes subkey listing an ordered range scan.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    keys: BTreeMap<String, Key>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `path` and all its parents; existing keys are left as they are.
    pub fn create_key(&mut self, path: &str) -> Result<(), BadRegistryPath> {
        let canon = canonical_path(path)?;
        let mut prefix = String::new();
        for (i, part) in canon.split('\\').enumerate() {
            if i > 0 {
                prefix.push('\\');
            }
            prefix.push_str(part);
            self.keys
                .entry(prefix.to_ascii_lowercase())
                .or_insert_with(|| Key {
                    path: prefix.clone(),
                    values: Vec::new(),
                });
        }
        Ok(())
    }

    /// Sets a value, creating the key if needed (like `reg add /f`).
    pub fn set(&mut self, path: &str, name: &str, value: RegValue) -> Result<(), BadRegistryPath> {
        self.create_key(path)?;
        let key = self
            .key_mut(path)
            .ok_or_else(|| BadRegistryPath(path.to_string()))?;
        match key
            .values
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => key.values.push((name.to_string(), value)),
        }
        Ok(())
    }

    pub fn get(&self, path: &str, name: &str) -> Option<&RegValue> {
        self.key(path)?
            .values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn key_exists(&self, path: &str) -> bool {
        self.key(path).is_some()
    }

    /// Removes one value; true if it was there.
    pub fn delete_value(&mut self, path: &str, name: &str) -> bool {
        let Some(key) = self.key_mut(path) else {
            return false;
        };
        let before = key.values.len();
        key.values.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before != key.values.len()
    }

    /// Removes a key and everything below it; true if it was there.
    pub fn delete_key(&mut self, path: &str) -> bool {
        let Ok(canon) = canonical_path(path) else {
            return false;
        };
        let lower = canon.to_ascii_lowercase();
        let below = format!("{lower}\\");
        let before = self.keys.len();
        self.keys
            .retain(|k, _| *k != lower && !k.starts_with(&below));
        before != self.keys.len()
    }

    /// The key's path as stored (case preserved), if it exists.
    pub fn display_path(&self, path: &str) -> Option<&str> {
        self.key(path).map(|k| k.path.as_str())
    }

    /// The values of a key in creation order.
    pub fn values(&self, path: &str) -> Option<&[(String, RegValue)]> {
        self.key(path).map(|k| k.values.as_slice())
    }

    /// Full paths of the direct subkeys, sorted case-insensitively as regedit shows them.
    pub fn subkeys(&self, path: &str) -> Vec<String> {
        let Ok(canon) = canonical_path(path) else {
            return Vec::new();
        };
        let below = format!("{}\\", canon.to_ascii_lowercase());
        self.keys
            .range(below.clone()..)
            .take_while(|(k, _)| k.starts_with(&below))
            .filter(|(k, _)| !k[below.len()..].contains('\\'))
            .map(|(_, key)| key.path.clone())
            .collect()
    }

    fn key(&self, path: &str) -> Option<&Key> {
        let canon = canonical_path(path).ok()?;
        self.keys.get(&canon.to_ascii_lowercase())
    }

    fn key_mut(&mut self, path: &str) -> Option<&mut Key> {
        let canon = canonical_path(path).ok()?;
        self.keys.get_mut(&canon.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_case_insensitive_and_case_preserving() {
        let mut r = Registry::new();
        r.set(
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion",
            "CurrentBuild",
            RegValue::Sz("2195".into()),
        )
        .unwrap();
        assert_eq!(
            r.get(
                r"hkey_local_machine\software\microsoft\windows nt\currentversion\",
                "currentbuild"
            ),
            Some(&RegValue::Sz("2195".into()))
        );
        assert_eq!(
            r.display_path(r"HKLM\software\microsoft"),
            Some(r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft")
        );
        assert_eq!(
            r.subkeys(r"HKLM\SOFTWARE\Microsoft"),
            vec![r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT"]
        );
        assert!(canonical_path(r"HKXX\foo").is_err());
        assert!(canonical_path(r"HKLM\a\\b").is_err());
    }

    #[test]
    fn deleting_a_key_takes_its_subtree_but_not_its_siblings() {
        let mut r = Registry::new();
        r.create_key(r"HKLM\A\B\C").unwrap();
        r.create_key(r"HKLM\A\BB").unwrap();
        assert!(r.delete_key(r"HKLM\A\B"));
        assert!(!r.key_exists(r"HKLM\A\B\C"));
        assert!(r.key_exists(r"HKLM\A\BB"));
    }

    #[test]
    fn reg_exe_data_formats() {
        assert_eq!(RegValue::Dword(1).reg_exe_data(), "0x1");
        assert_eq!(RegValue::Qword(0x1F).reg_exe_data(), "0x1f");
        assert_eq!(RegValue::Binary(vec![0xAB, 1]).reg_exe_data(), "AB01");
        assert_eq!(
            RegValue::MultiSz(vec!["a".into(), "b".into()]).reg_exe_data(),
            r"a\0b"
        );
    }
}
