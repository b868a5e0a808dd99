//! What each simulated Windows release answers where releases differ: the `ver` banner,
//! `ipconfig`'s layout, which console tools ship with it, and what its WinRM service says about
//! itself (WS-Management stack version) in an Identify answer.
//!
//! The host model knows only major/minor/build; this module is the one place that turns them
//! into a release, so a test or the README can name what each profile is faithful to.

/// A Windows release as an administrator names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Release {
    /// Windows NT 4.0.
    Nt4,
    /// Windows 2000 (5.0).
    Windows2000,
    /// Windows XP (5.1).
    WindowsXp,
    /// Windows Server 2003 / 2003 R2 (5.2; also XP x64).
    Server2003,
    /// Windows Vista / Server 2008 (6.0).
    Vista,
    /// Windows 7 / Server 2008 R2 (6.1).
    Windows7,
    /// Windows 8 / 8.1 / Server 2012 / 2012 R2 (6.2, 6.3).
    Windows8,
    /// Windows 10 / 11 / Server 2016 and later (10.0).
    Windows10,
}

impl Release {
    /// The release of a host reporting `major.minor`.
    pub fn of(major: u32, minor: u32) -> Release {
        match (major, minor) {
            (0..=4, _) => Release::Nt4,
            (5, 0) => Release::Windows2000,
            (5, 1) => Release::WindowsXp,
            (5, _) => Release::Server2003,
            (6, 0) => Release::Vista,
            (6, 1) => Release::Windows7,
            (6, _) => Release::Windows8,
            _ => Release::Windows10,
        }
    }

    /// What `ver` prints (without the blank line before it). Windows 2000 wrote its minor version
    /// with two digits and its own name; XP its name; later releases only "Microsoft Windows", and
    /// Windows 10 adds the update build revision.
    pub fn ver_banner(self, major: u32, minor: u32, build: &str, ubr: Option<u32>) -> String {
        match self {
            Release::Nt4 => format!("Windows NT Version {major}.{minor}"),
            Release::Windows2000 => {
                format!("Microsoft Windows 2000 [Version {major}.{minor:02}.{build}]")
            }
            Release::WindowsXp => format!("Microsoft Windows XP [Version {major}.{minor}.{build}]"),
            Release::Windows10 => match ubr {
                Some(u) => format!("Microsoft Windows [Version {major}.{minor}.{build}.{u}]"),
                None => format!("Microsoft Windows [Version {major}.{minor}.{build}]"),
            },
            _ => format!("Microsoft Windows [Version {major}.{minor}.{build}]"),
        }
    }

    /// Whether `whoami.exe` ships with the release: from Server 2003 on. Windows 2000 had it only
    /// in the Resource Kit and XP only in the Support Tools, so a stock host answers 9009.
    pub fn has_whoami(self) -> bool {
        self >= Release::Server2003
    }

    /// Whether `systeminfo.exe` ships with the release: from XP Professional on (Windows 2000
    /// had it only in the Resource Kit).
    pub fn has_systeminfo(self) -> bool {
        self >= Release::WindowsXp
    }

    /// `systeminfo`'s boot line: before Vista it counts `System Up Time`, from Vista on it gives
    /// the `System Boot Time`.
    pub fn systeminfo_counts_uptime(self) -> bool {
        self < Release::Vista
    }

    /// The OS name WMI gives (`Win32_OperatingSystem.Caption`, what `systeminfo` prints as `OS
    /// Name`) for a host whose `ProductName` is `product`: XP's registry says only "Microsoft
    /// Windows XP", its caption names the edition (a workstation with WinRM is Professional; XP
    /// Home could not join a domain and had no `systeminfo`). Other releases print their
    /// `ProductName`.
    pub fn os_caption(self, product: &str) -> String {
        match self {
            Release::WindowsXp if product.trim_end().ends_with("Windows XP") => {
                format!("{} Professional", product.trim_end())
            }
            _ => product.to_string(),
        }
    }

    /// Where Update.exe packages register themselves (`HKLM\SOFTWARE\Microsoft\Updates\<this>\
    /// SP<n+1>\KB…`; an update built for service pack n files under the next one's folder, e.g.
    /// `Windows XP\SP4\KB958644` on XP SP3). `None` where updates are CBS packages instead.
    pub fn updates_product(self) -> Option<&'static str> {
        match self {
            Release::Windows2000 => Some("Windows 2000"),
            Release::WindowsXp => Some("Windows XP"),
            Release::Server2003 => Some("Windows Server 2003"),
            _ => None,
        }
    }

    /// The title line of `ipconfig`.
    pub fn ipconfig_title(self) -> &'static str {
        match self {
            Release::Nt4 => "Windows NT IP Configuration",
            Release::Windows2000 => "Windows 2000 IP Configuration",
            _ => "Windows IP Configuration",
        }
    }

    /// How far `ipconfig` indents its fields: eight spaces before Vista, three after.
    pub fn ipconfig_indent(self) -> &'static str {
        if self < Release::Vista {
            "        "
        } else {
            "   "
        }
    }

    /// The label of the adapter's address: `IP Address` before Vista (IPv4 only), `IPv4 Address`
    /// after.
    pub fn ipconfig_address_label(self) -> &'static str {
        if self < Release::Vista {
            "IP Address. . . . . . . . . . . ."
        } else {
            "IPv4 Address. . . . . . . . . . ."
        }
    }

    /// The wired adapter's default name: `Local Area Connection` until Windows 8 renamed it
    /// `Ethernet`.
    pub fn adapter_name(self) -> &'static str {
        if self < Release::Windows8 {
            "Local Area Connection"
        } else {
            "Ethernet"
        }
    }

    /// The WS-Management stack the release's WinRM reports (`Stack:` in Identify): 1.1 for
    /// XP SP2+/Server 2003 SP1+ (the WinRM 1.1 download, KB936059) and Vista/2008, 2.0 for
    /// Windows 7/2008 R2, 3.0 from Windows 8/2012 (WMF 3.0) on. Windows 2000 and NT 4 never had
    /// WinRM: the simulator still serves it to them so the 2001 catalog can be tested over the
    /// same transport, and answers with the oldest stack there was.
    pub fn wsman_stack(self) -> &'static str {
        match self {
            Release::Nt4 | Release::Windows2000 | Release::WindowsXp | Release::Server2003 => "1.1",
            Release::Vista => "1.1",
            Release::Windows7 => "2.0",
            Release::Windows8 | Release::Windows10 => "3.0",
        }
    }

    /// Whether a real host of this release can run a WinRM listener at all.
    pub fn has_winrm(self) -> bool {
        self >= Release::WindowsXp
    }
}

/// The `Updates` key's service-pack folder for updates built for service pack `sp`: `SP{sp+1}`.
pub fn updates_sp_folder(sp: u32) -> String {
    format!("SP{}", sp + 1)
}

/// "Service Pack 2" → (2, 0); none → (0, 0). WinRM's Identify prints it as `SP: 2.0`.
pub fn service_pack(csd_version: &str) -> (u32, u32) {
    let lower = csd_version.trim().to_ascii_lowercase();
    let major = lower
        .strip_prefix("service pack")
        .map(|rest| {
            rest.trim()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    (major, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ver_banners_are_each_releases_own() {
        let w2k = Release::of(5, 0);
        assert_eq!(
            w2k.ver_banner(5, 0, "2195", None),
            "Microsoft Windows 2000 [Version 5.00.2195]"
        );
        assert_eq!(
            Release::of(5, 1).ver_banner(5, 1, "2600", None),
            "Microsoft Windows XP [Version 5.1.2600]"
        );
        assert_eq!(
            Release::of(5, 2).ver_banner(5, 2, "3790", None),
            "Microsoft Windows [Version 5.2.3790]"
        );
        assert_eq!(
            Release::of(6, 1).ver_banner(6, 1, "7601", None),
            "Microsoft Windows [Version 6.1.7601]"
        );
        assert_eq!(
            Release::of(10, 0).ver_banner(10, 0, "17763", Some(5458)),
            "Microsoft Windows [Version 10.0.17763.5458]"
        );
    }

    #[test]
    fn tools_and_stacks_follow_the_release() {
        assert!(!Release::Windows2000.has_whoami());
        assert!(!Release::WindowsXp.has_whoami());
        assert!(Release::Server2003.has_whoami());
        assert_eq!(Release::Server2003.wsman_stack(), "1.1");
        assert_eq!(Release::Windows7.wsman_stack(), "2.0");
        assert_eq!(Release::Windows10.wsman_stack(), "3.0");
        assert!(!Release::Windows2000.has_winrm());
        assert_eq!(service_pack("Service Pack 2"), (2, 0));
        assert_eq!(service_pack(""), (0, 0));
    }
}
