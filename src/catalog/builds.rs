//! Windows versions and the build numbers they run: the table a FixedBuild is checked against.
//!
//! MSRC data carries errors: a month lists FixedBuild `10.0.19041.x` for Windows 10 Version 21H2
//! (whose builds are 19044.x) and `10.0.22621.x` for Windows 11 Version 23H2 (22631.x). Taken at
//! face value, such a value gives a build range no real host is in, or — compared by number with
//! a host of another build — "proves" a patch installed that is not. Every product name is
//! therefore matched to its build family here, and only a FixedBuild of that family is used as a
//! build.
//!
//! Source: Microsoft Learn, "Windows 10 release information", "Windows 11 release information"
//! and "Windows Server release information" (learn.microsoft.com/windows/release-health/), which
//! list each version's OS build; the pre-Windows 10 builds are the service-pack builds those
//! versions have been serviced on since (7601, 9200, 9600).
//!
//! Versions of one *servicing branch* (Windows 10 2004 to 22H2; Windows 11 22H2 and 23H2; 24H2
//! and 25H2; Windows 10 1903 and 1909) are the same code switched by an enablement package and
//! receive the same cumulative update with the same revision (UBR): there, a FixedBuild written
//! with a sibling's build number still says which revision fixes the product.

use super::model::BuildRange;
use super::values::Version;

/// One Windows version and its build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildFamily {
    /// How MSRC's product names begin (`Windows 10 Version 21H2`), matched case-insensitively.
    pub name: &'static str,
    /// Major version (10 for Windows 10/11 and Server 2016+).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// The build number every release of this version carries (`19044`).
    pub build: u32,
    /// The build of the first version of its servicing branch (`19041` for 2004..22H2).
    pub branch: u32,
}

impl BuildFamily {
    /// `major.minor.build` as a version prefix.
    pub fn prefix(&self) -> Version {
        Version(vec![self.major, self.minor, self.build])
    }

    /// The family's builds as a range, `[10.0.19044.0, 10.0.19045.0)`: how a scan maps a host's
    /// build to a product.
    pub fn range(&self) -> BuildRange {
        BuildRange {
            min: Version(vec![self.major, self.minor, self.build, 0]),
            below: Version(vec![
                self.major,
                self.minor,
                self.build.saturating_add(1),
                0,
            ]),
        }
    }

    /// Whether a four-part build belongs to this family.
    pub fn contains(&self, build: &Version) -> bool {
        build.0.len() >= 3 && build.0[..3] == [self.major, self.minor, self.build]
    }

    /// The same revision (UBR) in this family, when `build` is a sibling version of the same
    /// servicing branch: `10.0.19041.3803` → `10.0.19044.3803` for 21H2.
    pub fn sibling_revision(&self, build: &Version) -> Option<Version> {
        let [major, minor, b, ubr] = build.0[..] else {
            return None;
        };
        let same_branch = (major, minor) == (self.major, self.minor)
            && FAMILIES
                .iter()
                .any(|f| f.build == b && f.branch == self.branch && f.major == major);
        same_branch.then(|| Version(vec![self.major, self.minor, self.build, ubr]))
    }
}

/// Longer names first, so `Windows Server 2022, 23H2 Edition` is not read as Server 2022.
const FAMILIES: &[BuildFamily] = &[
    fam("Windows 10 Version 1511", 10, 0, 10586, 10586),
    fam("Windows 10 Version 1607", 10, 0, 14393, 14393),
    fam("Windows 10 Version 1703", 10, 0, 15063, 15063),
    fam("Windows 10 Version 1709", 10, 0, 16299, 16299),
    fam("Windows 10 Version 1803", 10, 0, 17134, 17134),
    fam("Windows 10 Version 1809", 10, 0, 17763, 17763),
    fam("Windows 10 Version 1903", 10, 0, 18362, 18362),
    fam("Windows 10 Version 1909", 10, 0, 18363, 18362),
    fam("Windows 10 Version 2004", 10, 0, 19041, 19041),
    fam("Windows 10 Version 20H2", 10, 0, 19042, 19041),
    fam("Windows 10 Version 21H1", 10, 0, 19043, 19041),
    fam("Windows 10 Version 21H2", 10, 0, 19044, 19041),
    fam("Windows 10 Version 22H2", 10, 0, 19045, 19041),
    fam("Windows 10 for ", 10, 0, 10240, 10240),
    fam("Windows 11 Version 21H2", 10, 0, 22000, 22000),
    fam("Windows 11 for ", 10, 0, 22000, 22000),
    fam("Windows 11 Version 22H2", 10, 0, 22621, 22621),
    fam("Windows 11 Version 23H2", 10, 0, 22631, 22621),
    fam("Windows 11 Version 24H2", 10, 0, 26100, 26100),
    fam("Windows 11 Version 25H2", 10, 0, 26200, 26100),
    fam("Windows Server 2025", 10, 0, 26100, 26100),
    fam("Windows Server 2022, 23H2 Edition", 10, 0, 25398, 25398),
    fam("Windows Server 2022", 10, 0, 20348, 20348),
    fam("Windows Server 2019", 10, 0, 17763, 17763),
    fam("Windows Server 2016", 10, 0, 14393, 14393),
    fam("Windows Server, version 1903", 10, 0, 18362, 18362),
    fam("Windows Server, version 1909", 10, 0, 18363, 18362),
    fam("Windows Server, version 2004", 10, 0, 19041, 19041),
    fam("Windows Server, version 20H2", 10, 0, 19042, 19041),
    fam("Windows Server 2012 R2", 6, 3, 9600, 9600),
    fam("Windows Server 2012", 6, 2, 9200, 9200),
    fam("Windows RT 8.1", 6, 3, 9600, 9600),
    fam("Windows 8.1", 6, 3, 9600, 9600),
    fam("Windows Server 2008 R2", 6, 1, 7601, 7601),
    fam("Windows 7", 6, 1, 7601, 7601),
];

const fn fam(name: &'static str, major: u32, minor: u32, build: u32, branch: u32) -> BuildFamily {
    BuildFamily {
        name,
        major,
        minor,
        build,
        branch,
    }
}

/// The build family of a Windows product, from its MSRC name; `None` for anything else
/// (`Microsoft .NET Framework 4.8 on Windows Server 2016` is not Windows Server 2016).
pub fn family_of(product_name: &str) -> Option<&'static BuildFamily> {
    let name = product_name.trim();
    FAMILIES.iter().find(|f| {
        name.len() >= f.name.len()
            && name.is_char_boundary(f.name.len())
            && name[..f.name.len()].eq_ignore_ascii_case(f.name)
            && name[f.name.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == ',' || c == '(' || f.name.ends_with(' '))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn msrc_names_map_to_their_builds() {
        let build = |n: &str| family_of(n).map(|f| f.build);
        assert_eq!(
            build("Windows 10 Version 21H2 for x64-based Systems"),
            Some(19044)
        );
        assert_eq!(
            build("Windows 11 version 21H2 for ARM64-based Systems"),
            Some(22000)
        );
        assert_eq!(
            build("Windows 11 Version 23H2 for x64-based Systems"),
            Some(22631)
        );
        assert_eq!(
            build("Windows Server 2022, 23H2 Edition (Server Core installation)"),
            Some(25398)
        );
        assert_eq!(build("Windows Server 2022"), Some(20348));
        assert_eq!(
            build("Windows Server 2012 R2 (Server Core installation)"),
            Some(9600)
        );
        assert_eq!(build("Windows Server 2012"), Some(9200));
        assert_eq!(build("Windows 10 for 32-bit Systems"), Some(10240));
        assert_eq!(
            build("Microsoft .NET Framework 4.8 on Windows Server 2016"),
            None
        );
        assert_eq!(
            build("Windows Server 2008 for 32-bit Systems Service Pack 2"),
            None
        );
    }

    #[test]
    fn a_sibling_build_of_the_same_branch_keeps_its_revision() {
        let w21h2 = family_of("Windows 10 Version 21H2 for x64-based Systems").unwrap();
        assert!(w21h2.contains(&v("10.0.19044.3803")));
        assert!(!w21h2.contains(&v("10.0.19041.3803")));
        assert_eq!(
            w21h2.sibling_revision(&v("10.0.19041.3803")),
            Some(v("10.0.19044.3803"))
        );
        assert_eq!(w21h2.sibling_revision(&v("10.0.17763.3803")), None);
        let w23h2 = family_of("Windows 11 Version 23H2 for x64-based Systems").unwrap();
        assert_eq!(
            w23h2.sibling_revision(&v("10.0.22621.2861")),
            Some(v("10.0.22631.2861"))
        );
    }
}
