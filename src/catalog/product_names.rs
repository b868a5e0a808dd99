//! What MSRC's product names say beyond the name: the processor architecture
//! (`... for x64-based Systems`) and, for .NET Framework products, which Framework versions on
//! which Windows (`Microsoft .NET Framework 3.5 AND 4.8.1 on Windows Server 2022`).
//!
//! CVRF has no structured field for either; the names are regular across months, and a scan
//! needs both to match a host to the one product it runs.

use std::fmt;

use super::values::Version;

/// A processor architecture, as product names and hosts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Architecture {
    /// `32-bit Systems`, `PROCESSOR_ARCHITECTURE=x86`.
    X86,
    /// `x64-based Systems`, `AMD64`.
    X64,
    /// `ARM64-based Systems`, `ARM64`.
    Arm64,
    /// `Itanium-based Systems`, `IA64`.
    Itanium,
}

impl Architecture {
    /// The architecture a product name states, if any (`Windows Server 2019` states none).
    pub fn of_product(name: &str) -> Option<Architecture> {
        let lower = name.to_ascii_lowercase();
        let for_part = lower.rsplit_once(" for ")?.1;
        if for_part.contains("x64-based") {
            Some(Architecture::X64)
        } else if for_part.contains("32-bit") || for_part.contains("x86-based") {
            Some(Architecture::X86)
        } else if for_part.contains("arm64-based") {
            Some(Architecture::Arm64)
        } else if for_part.contains("itanium-based") {
            Some(Architecture::Itanium)
        } else {
            None
        }
    }

    /// Windows' `PROCESSOR_ARCHITECTURE` value (`AMD64`, `x86`, `ARM64`, `IA64`).
    pub fn from_processor(value: &str) -> Option<Architecture> {
        match value.trim().to_ascii_uppercase().as_str() {
            "AMD64" | "X64" | "EM64T" => Some(Architecture::X64),
            "X86" => Some(Architecture::X86),
            "ARM64" => Some(Architecture::Arm64),
            "IA64" => Some(Architecture::Itanium),
            _ => None,
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Architecture::X86 => "x86",
            Architecture::X64 => "x64",
            Architecture::Arm64 => "ARM64",
            Architecture::Itanium => "Itanium",
        })
    }
}

/// A .NET Framework product: the Framework versions it names, on which Windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotNetProduct {
    /// `3.5` and `4.8.1` for `3.5 AND 4.8.1`; `4.6.2`, `4.7`, `4.7.1`, `4.7.2` for
    /// `4.6.2/4.7/4.7.1/4.7.2`.
    pub versions: Vec<Version>,
    /// The Windows product it is on (`Windows Server 2022 (Server Core installation)`).
    pub windows: String,
}

impl DotNetProduct {
    /// Parses `Microsoft .NET Framework <versions> on <Windows product>`.
    pub fn of_product(name: &str) -> Option<DotNetProduct> {
        const PREFIX: &str = "microsoft .net framework ";
        let name = name.trim();
        if name.len() <= PREFIX.len()
            || !name.is_char_boundary(PREFIX.len())
            || !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        {
            return None;
        }
        let (versions, windows) = name[PREFIX.len()..].split_once(" on ")?;
        let versions: Vec<Version> = versions
            .split(" AND ")
            .flat_map(|v| v.split('/'))
            .filter_map(|v| v.split_whitespace().next())
            .filter_map(|v| v.parse().ok())
            .collect();
        if versions.is_empty() || !windows.trim_start().starts_with("Windows") {
            return None;
        }
        Some(DotNetProduct {
            versions,
            windows: windows.trim().to_string(),
        })
    }

    /// The 4.x versions it names: the Framework 4 line is one in-place installation, so a host
    /// has exactly one of them.
    pub fn v4(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(|v| v.0.first() == Some(&4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_come_from_the_for_part() {
        let a = Architecture::of_product;
        assert_eq!(
            a("Windows 10 Version 21H2 for x64-based Systems"),
            Some(Architecture::X64)
        );
        assert_eq!(
            a("Windows 10 Version 21H2 for 32-bit Systems"),
            Some(Architecture::X86)
        );
        assert_eq!(
            a("Windows 11 Version 23H2 for ARM64-based Systems"),
            Some(Architecture::Arm64)
        );
        assert_eq!(a("Windows Server 2019"), None);
        assert_eq!(
            Architecture::from_processor("AMD64"),
            Some(Architecture::X64)
        );
        assert_eq!(Architecture::from_processor("unknown"), None);
    }

    #[test]
    fn dotnet_names_split_into_versions_and_windows() {
        let p = DotNetProduct::of_product(
            "Microsoft .NET Framework 3.5 AND 4.8.1 on Windows Server 2022 (Server Core installation)",
        )
        .unwrap();
        assert_eq!(p.windows, "Windows Server 2022 (Server Core installation)");
        let v: Vec<String> = p.versions.iter().map(|v| v.to_string()).collect();
        assert_eq!(v, ["3.5", "4.8.1"]);
        assert_eq!(p.v4().count(), 1);
        let p = DotNetProduct::of_product(
            "Microsoft .NET Framework 4.6.2/4.7/4.7.1/4.7.2 on Windows Server 2012 R2",
        )
        .unwrap();
        assert_eq!(p.v4().count(), 4);
        assert!(DotNetProduct::of_product("Microsoft .NET 8.0").is_none());
        assert!(DotNetProduct::of_product("Windows Server 2022").is_none());
    }
}
