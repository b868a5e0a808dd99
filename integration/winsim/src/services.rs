//! Windows services on a simulated host: their state and start type, a package that breaks one
//! (the fleet fault `breaks_service`), and `sc query` / `sc qc` as sc.exe prints them.
//!
//! At every boot, each automatic service starts, except a broken one: it stays stopped and the
//! Service Control Manager logs event 7000 ("failed to start") in the System log. A package that
//! breaks a service and needs no reboot stops it at once (event 7034, "terminated
//! unexpectedly"); one that needs a reboot breaks it at the next boot, like a replaced DLL does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::eventlog::{EventLog, Level};

/// How a service starts (`sc qc`'s `START_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartType {
    #[default]
    Auto,
    /// Automatic (Delayed Start).
    DelayedAuto,
    Demand,
    Disabled,
}

impl StartType {
    /// sc.exe's `START_TYPE` value.
    fn sc(self) -> &'static str {
        match self {
            StartType::Auto => "2   AUTO_START",
            StartType::DelayedAuto => "2   AUTO_START  (DELAYED)",
            StartType::Demand => "3   DEMAND_START",
            StartType::Disabled => "4   DISABLED",
        }
    }
    fn automatic(self) -> bool {
        matches!(self, StartType::Auto | StartType::DelayedAuto)
    }
}

/// A service in the fleet file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSetting {
    /// The short name (`W3SVC`).
    pub name: String,
    /// The display name (`World Wide Web Publishing Service`); default: the short name.
    pub display_name: Option<String>,
    /// `auto` (default), `delayed-auto`, `demand`, `disabled`.
    pub start: Option<StartType>,
    /// Running now (default: running when it starts automatically).
    pub running: Option<bool>,
}

/// The fleet fault `breaks_service`: installing `package` leaves `service` unable to start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrokenBy {
    /// The package's hotfix ID (`KB5000201`).
    pub package: String,
    pub service: String,
}

/// One service's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub display_name: String,
    pub start: StartType,
    pub running: bool,
    /// A package broke it: it cannot start.
    pub broken: bool,
}

/// Services every simulated Windows has, besides those the fleet file adds.
const STANDARD: &[(&str, &str)] = &[
    ("EventLog", "Windows Event Log"),
    ("LanmanServer", "Server"),
    ("WinRM", "Windows Remote Management (WS-Management)"),
];

/// A host's services by lower-cased name.
#[derive(Debug, Clone, Default)]
pub struct Services {
    by_name: BTreeMap<String, Service>,
}

impl Services {
    pub fn new(configured: &[ServiceSetting]) -> Services {
        let mut s = Services::default();
        for (name, display) in STANDARD {
            s.insert(Service {
                name: name.to_string(),
                display_name: display.to_string(),
                start: StartType::Auto,
                running: true,
                broken: false,
            });
        }
        for c in configured {
            let start = c.start.unwrap_or_default();
            s.insert(Service {
                name: c.name.clone(),
                display_name: c.display_name.clone().unwrap_or_else(|| c.name.clone()),
                start,
                running: c.running.unwrap_or(start.automatic()),
                broken: false,
            });
        }
        s
    }

    fn insert(&mut self, svc: Service) {
        self.by_name.insert(svc.name.to_ascii_lowercase(), svc);
    }

    pub fn get(&self, name: &str) -> Option<&Service> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    /// Every automatic service that should run is running.
    pub fn all_automatic_running(&self) -> Result<(), String> {
        match self
            .by_name
            .values()
            .find(|s| s.start.automatic() && !s.running)
        {
            Some(s) => Err(format!("service {} is not running", s.name)),
            None => Ok(()),
        }
    }

    /// A package landed: the services it breaks are broken; without a reboot to wait for, they
    /// stop now.
    pub fn package_installed(
        &mut self,
        package: &str,
        faults: &[BrokenBy],
        reboot_pending: bool,
        log: &mut EventLog,
    ) {
        for f in faults
            .iter()
            .filter(|f| f.package.eq_ignore_ascii_case(package))
        {
            let Some(svc) = self.by_name.get_mut(&f.service.to_ascii_lowercase()) else {
                continue;
            };
            svc.broken = true;
            if !reboot_pending && svc.running {
                svc.running = false;
                log.write(
                    "Service Control Manager",
                    7034,
                    Level::Error,
                    vec![svc.display_name.clone(), "1".into()],
                );
            }
        }
    }

    /// The host booted: automatic services start, broken ones fail (7000).
    pub fn boot(&mut self, log: &mut EventLog) {
        for svc in self.by_name.values_mut() {
            svc.running = svc.start.automatic() && !svc.broken;
            if svc.start.automatic() && svc.broken {
                log.write(
                    "Service Control Manager",
                    7000,
                    Level::Error,
                    vec![svc.display_name.clone(), "%%1053".into()],
                );
            }
        }
    }

    /// `sc query NAME` / `sc qc NAME`: (stdout, exit code).
    pub fn sc(&self, verb: &str, name: &str) -> (String, u32) {
        let Some(svc) = self.get(name) else {
            let what = if verb == "qc" {
                "OpenService"
            } else {
                "EnumQueryServicesStatus:OpenService"
            };
            return (
                format!(
                    "[SC] {what} FAILED 1060:\r\n\r\nThe specified service does not exist as an installed service.\r\n\r\n"
                ),
                1060,
            );
        };
        if verb == "qc" {
            return (
                format!(
                    "[SC] QueryServiceConfig SUCCESS\r\n\r\nSERVICE_NAME: {}\r\n        TYPE               : 20  WIN32_SHARE_PROCESS\r\n        START_TYPE         : {}\r\n        ERROR_CONTROL      : 1   NORMAL\r\n        BINARY_PATH_NAME   : C:\\Windows\\system32\\svchost.exe -k netsvcs\r\n        LOAD_ORDER_GROUP   :\r\n        TAG                : 0\r\n        DISPLAY_NAME       : {}\r\n        DEPENDENCIES       :\r\n        SERVICE_START_NAME : LocalSystem\r\n",
                    svc.name,
                    svc.start.sc(),
                    svc.display_name
                ),
                0,
            );
        }
        let (state, flags, exit) = if svc.running {
            (
                "4  RUNNING",
                "(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)",
                "0  (0x0)",
            )
        } else if svc.broken {
            ("1  STOPPED", "", "1067  (0x42b)")
        } else {
            ("1  STOPPED", "", "1077  (0x435)")
        };
        let mut out = format!(
            "\r\nSERVICE_NAME: {}\r\n        TYPE               : 20  WIN32_SHARE_PROCESS\r\n        STATE              : {state}\r\n",
            svc.name
        );
        if !flags.is_empty() {
            out.push_str(&format!("                                {flags}\r\n"));
        }
        out.push_str(&format!(
            "        WIN32_EXIT_CODE    : {exit}\r\n        SERVICE_EXIT_CODE  : 0  (0x0)\r\n        CHECKPOINT         : 0x0\r\n        WAIT_HINT          : 0x0\r\n"
        ));
        (out, 0)
    }
}

/// A package's changes landed on `host`: the update client logs it (19), and the services the
/// fleet file says it breaks break.
pub(crate) fn installed(
    host: &crate::model::WinHost,
    st: &mut crate::model::State,
    m: &crate::installer::PackageManifest,
    code: u32,
) {
    let reboot_pending = m.reboot_required || code == 3010 || code == 1641;
    let crate::model::State {
        services, events, ..
    } = st;
    events.write(
        "Microsoft-Windows-WindowsUpdateClient",
        19,
        Level::Information,
        vec![m.id.clone()],
    );
    services.package_installed(&m.id, &host.faults.breaks_service, reboot_pending, events);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn w3svc() -> Vec<ServiceSetting> {
        vec![ServiceSetting {
            name: "W3SVC".into(),
            display_name: Some("World Wide Web Publishing Service".into()),
            start: None,
            running: None,
        }]
    }

    #[test]
    fn a_breaking_package_needing_a_reboot_breaks_the_service_at_the_boot() {
        let mut log = EventLog::new(SystemTime::now());
        let mut s = Services::new(&w3svc());
        let faults = vec![BrokenBy {
            package: "KB1".into(),
            service: "w3svc".into(),
        }];
        s.package_installed("KB2", &faults, true, &mut log);
        s.package_installed("KB1", &faults, true, &mut log);
        assert!(
            s.get("W3SVC").unwrap().running,
            "still running until the boot"
        );
        assert!(s.all_automatic_running().is_ok());
        s.boot(&mut log);
        assert!(!s.get("W3SVC").unwrap().running);
        assert!(s.all_automatic_running().unwrap_err().contains("W3SVC"));
        let (out, code) = s.sc("query", "w3svc");
        assert_eq!(code, 0);
        assert!(out.contains("STATE              : 1  STOPPED"), "{out}");
        let (out, _) = s.sc("qc", "W3SVC");
        assert!(
            out.contains("START_TYPE         : 2   AUTO_START\r\n"),
            "{out}"
        );
        assert_eq!(s.sc("query", "nope").1, 1060);
        let last = log.events().last().unwrap().clone();
        assert_eq!(
            (last.provider.as_str(), last.id),
            ("Service Control Manager", 7000)
        );
    }

    #[test]
    fn without_a_reboot_the_service_stops_at_once() {
        let mut log = EventLog::new(SystemTime::now());
        let mut s = Services::new(&w3svc());
        let faults = vec![BrokenBy {
            package: "KB1".into(),
            service: "W3SVC".into(),
        }];
        s.package_installed("kb1", &faults, false, &mut log);
        assert!(!s.get("W3SVC").unwrap().running);
        assert_eq!(log.events().last().unwrap().id, 7034);
    }
}
