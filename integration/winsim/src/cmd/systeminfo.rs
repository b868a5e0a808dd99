//! `systeminfo` in the layout of the host's release: labels padded to column 28, the OS name as
//! WMI captions it, `OS Version` with the service pack, `System Up Time` before Vista and
//! `System Boot Time` after, the processor type and the hotfixes the host lists. The hardware
//! and memory lines a real host prints between them are left out (nothing here models them).

use std::time::SystemTime;

use super::Out;
use crate::model::{CURRENT_VERSION, WinHost};
use crate::pe::Machine;
use crate::registry::RegValue;

const PRODUCT_OPTIONS: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\ProductOptions";

/// One `Label:   value` line, the value at column 28 as systeminfo aligns it.
fn field(label: &str, value: &str) -> String {
    format!("{:<27}{value}\r\n", format!("{label}:"))
}

/// `0 Days, 1 Hours, 5 Minutes, 12 Seconds`, as XP and Server 2003 count their uptime.
fn uptime(boot: SystemTime, now: SystemTime) -> String {
    let s = now.duration_since(boot).map(|d| d.as_secs()).unwrap_or(0);
    format!(
        "{} Days, {} Hours, {} Minutes, {} Seconds",
        s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

/// `systeminfo` with no options (the list layout); `/fo`, `/s` and the rest are not simulated.
pub(super) fn systeminfo(host: &WinHost, args: &[String]) -> Out {
    if !args.is_empty() {
        return Out::err(
            "winsim: systeminfo options are not simulated (see integration/winsim/COMMANDS.md)\r\n",
            1,
        );
    }
    let os = host.release();
    let st = host.settled();
    let sz = |key: &str, name: &str| match st.registry.get(key, name) {
        Some(RegValue::Sz(s)) => s.clone(),
        _ => String::new(),
    };
    let product = sz(CURRENT_VERSION, "ProductName");
    let csd = sz(CURRENT_VERSION, "CSDVersion");
    let build = sz(CURRENT_VERSION, "CurrentBuild");
    let workstation = sz(PRODUCT_OPTIONS, "ProductType").eq_ignore_ascii_case("WinNT");
    let kbs: Vec<String> = st.kbs.iter().cloned().collect();
    let boot = st.boot_time;
    drop(st);

    let mut s = String::from("\r\n");
    s.push_str(&field("Host Name", &host.name.to_ascii_uppercase()));
    s.push_str(&field("OS Name", &os.os_caption(&product)));
    let sp = if csd.trim().is_empty() {
        "N/A".to_string()
    } else {
        csd.trim().to_string()
    };
    s.push_str(&field(
        "OS Version",
        &format!("{}.{}.{build} {sp} Build {build}", host.major, host.minor),
    ));
    s.push_str(&field("OS Manufacturer", "Microsoft Corporation"));
    s.push_str(&field(
        "OS Configuration",
        if workstation {
            "Standalone Workstation"
        } else {
            "Standalone Server"
        },
    ));
    s.push_str(&field("OS Build Type", "Multiprocessor Free"));
    if os.systeminfo_counts_uptime() {
        s.push_str(&field("System Up Time", &uptime(boot, host.wall_now())));
    } else {
        s.push_str(&field("System Boot Time", &crate::clock::us_short(boot)));
    }
    s.push_str(&field(
        "System type",
        match host.machine {
            Machine::I386 => "X86-based PC",
            _ => "x64-based PC",
        },
    ));
    s.push_str(&field("Windows Directory", &host.system_root));
    let mut hotfixes = field("Hotfix(s)", &format!("{} Hotfix(s) Installed.", kbs.len()));
    for (n, kb) in kbs.iter().enumerate() {
        hotfixes.push_str(&format!("{:27}[{:02}]: {kb}\r\n", "", n + 1));
    }
    s.push_str(&hotfixes);
    Out::ok(s)
}
