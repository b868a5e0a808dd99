//! The host model: one simulated Windows machine behind the [`SimHost`] seam, and the fleet of them.
//!
//! State that Windows keeps in memory (registry, installed hotfixes, power state, the command log)
//! lives here; state Windows keeps on disk lives on disk, in the host's C: folder that Samba exports,
//! so a file hive copies over SMB is the file the host runs, and a DLL hive reads over SMB is the one
//! the host's installers replaced.
//!
//! Time is tokio time, so tests can pause or shorten it. Power state is evaluated lazily: a
//! scheduled reboot "happens" the first time anyone looks after its deadline, which keeps 1,000
//! idle hosts free of timers and background tasks.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::drive::DriveSetup;
use crate::fleet::{self, FaultPlan, FleetError, HostConfig};
use crate::host::SimHost;
use crate::installer::BuildChange;
use crate::pe::{self, ImageKind, Machine, PeSpec, Version};
use crate::registry::{RegValue, Registry};

pub(crate) const CURRENT_VERSION: &str = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
pub(crate) const SESSION_MANAGER: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager";
pub(crate) const PFRO: &str = "PendingFileRenameOperations";
pub(crate) const CBS_REBOOT_PENDING: &str =
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending";
pub(crate) const WU_REBOOT_REQUIRED: &str =
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired";
pub(crate) const UPDATES: &str = r"HKLM\SOFTWARE\Microsoft\Updates";

/// One command as the host ran it, for tests to check exact switches and what was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// The command line as the host saw it (command and arguments joined by spaces, as WinRS does).
    /// Shared with every other host that ran the same line (a fleet's probe is one line).
    pub command_line: Arc<str>,
    /// `powershell.exe` scripts (decoded from -EncodedCommand or read from stdin).
    pub script: Option<Arc<str>>,
    pub started: SystemTime,
    /// `None` while running, or when killed.
    pub exit_code: Option<u32>,
    /// The command's future was dropped before it finished (Signal terminate, client timeout).
    pub killed: bool,
}

/// One installer run that changed the host (its files, registry and hotfix list), in the order
/// the host applied them. Tests count these to prove an installer never ran twice: the record is
/// written when the changes land, so an installer killed before its end leaves none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRecord {
    /// The package's hotfix ID (`KB5000003`), as the manifest names it.
    pub package: String,
    /// The installer file the host ran (on this machine).
    pub program: String,
    /// Which run of this package file it was on this host (0 for the first).
    pub attempt: usize,
    pub at: SystemTime,
    pub exit_code: u32,
}

/// Where the host's power is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Power {
    Up,
    /// `shutdown /r /t N` was accepted; the host goes down at `at`.
    RebootScheduled {
        at: Instant,
    },
    /// Down since `since`; comes back at `since + downtime` unless it never returns.
    Down {
        since: Instant,
        returns: bool,
    },
}

/// Everything about a host that changes.
pub(crate) struct State {
    pub registry: Registry,
    pub kbs: BTreeSet<String>,
    pub boot_time: SystemTime,
    pub free_disk: u64,
    pub power: Power,
    pub configuring_until: Option<Instant>,
    pub pending_build: Option<BuildChange>,
    pub installing: bool,
    /// Runs per package (file path + manifest id), for exit-code sequences like 1618-then-0.
    pub attempts: HashMap<String, usize>,
    pub log: Vec<CommandRecord>,
    pub installs: Vec<InstallRecord>,
    /// What each installed package replaced, by hotfix ID: what an uninstall puts back.
    pub undo: std::collections::BTreeMap<String, crate::uninstall::Undo>,
    /// Uninstaller runs that took a package off, in order.
    pub uninstalls: Vec<InstallRecord>,
    pub wire_counts: Vec<u32>,
    /// Wire faults injected so far (all rules together).
    pub wire_faults_fired: u32,
    pub reboots: u32,
    pub temp_serial: u32,
    /// The fault `winrm_stalls_after_boot_ms`: the next Command stalls (set at each boot).
    pub stall_next_command: bool,
    pub services: crate::services::Services,
    pub events: crate::eventlog::EventLog,
    /// Requests the HTTP health endpoint answered.
    pub health_requests: u32,
    /// Boots that undid each package of the fault `reverts_at_boot`, by hotfix ID.
    pub reverted: std::collections::BTreeMap<String, u32>,
}

/// Fixed facts about a host.
pub struct WinHost {
    pub(crate) name: String,
    pub(crate) address: Ipv4Addr,
    pub(crate) http: SocketAddr,
    pub(crate) https: Option<SocketAddr>,
    pub(crate) cbt_hardening: crate::fleet::CbtHardening,
    pub(crate) client_certificates: Vec<crate::server::certmap::CertMappingSetting>,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) drive: crate::drive::Drive,
    pub(crate) system_root: String,
    pub(crate) powershell: bool,
    pub(crate) powershell_version: (u32, u32),
    pub(crate) powershell_bom: bool,
    pub(crate) language: String,
    pub(crate) oem_code_page: u16,
    /// Keys the remote account cannot open, lower-cased canonical paths (their subkeys too).
    registry_denied: Vec<String>,
    /// Files with the hidden attribute, by their case-insensitive key below the drive root
    /// ([`crate::drive::key`]).
    hidden: std::collections::HashSet<String>,
    pub(crate) machine: Machine,
    pub(crate) major: u32,
    pub(crate) minor: u32,
    downtime: Duration,
    configuring: Duration,
    never_returns: bool,
    pub(crate) faults: FaultPlan,
    /// Hotfix IDs (upper case) whose servicing package cannot be removed.
    pub(crate) permanent: BTreeSet<String>,
    wall0: SystemTime,
    inst0: Instant,
    pub(crate) state: Mutex<State>,
}

impl std::fmt::Debug for WinHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of Debug output on purpose.
        f.debug_struct("WinHost")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish()
    }
}

impl WinHost {
    /// Builds the host and lays out its C: drive under `drive` (created if missing): every file
    /// of the configuration is written now, as a real PE image, so Samba can serve it at once.
    pub fn create(config: &HostConfig, drive: &Path) -> Result<WinHost, FleetError> {
        Self::create_with(
            config,
            drive,
            &mut ImageCache::default(),
            DriveSetup::AtStart,
        )
    }

    /// [`WinHost::create`] sharing generated images between hosts (a 1,000-host fleet has a
    /// handful of distinct binaries, and generating each once keeps fleet start fast), writing
    /// the drive when `setup` says.
    fn create_with(
        config: &HostConfig,
        drive: &Path,
        cache: &mut ImageCache,
        setup: DriveSetup,
    ) -> Result<WinHost, FleetError> {
        let now = SystemTime::now();
        let mut host = WinHost {
            name: config.name.clone(),
            address: config.address,
            http: SocketAddr::new(IpAddr::V4(config.address), config.winrm_port),
            https: config
                .winrm_https_port
                .map(|p| SocketAddr::new(IpAddr::V4(config.address), p)),
            cbt_hardening: config.cbt_hardening,
            client_certificates: config.client_certificates.clone(),
            user: config.user.clone(),
            password: config.password.expose().to_string(),
            drive: crate::drive::Drive::new(drive, Vec::new(), Vec::new()),
            system_root: config.system_root.clone(),
            powershell: config.powershell,
            powershell_version: config.powershell_version,
            powershell_bom: config.powershell_bom,
            language: config.language.clone(),
            oem_code_page: config.oem_code_page,
            registry_denied: config
                .registry_denied
                .iter()
                .filter_map(|k| crate::registry::canonical_path(k).ok())
                .map(|k| k.to_ascii_lowercase())
                .collect(),
            hidden: Default::default(),
            machine: config.machine,
            major: config.major,
            minor: config.minor,
            downtime: config.reboot_downtime,
            configuring: config.configuring,
            never_returns: config.reboot_never_returns,
            faults: config.faults.clone(),
            permanent: config
                .permanent_packages
                .iter()
                .map(|k| k.to_ascii_uppercase())
                .collect(),
            wall0: now,
            inst0: Instant::now(),
            state: Mutex::new(State {
                registry: initial_registry(config),
                kbs: config.kbs.iter().map(|k| k.to_ascii_uppercase()).collect(),
                boot_time: now.checked_sub(config.uptime).unwrap_or(now),
                free_disk: config.free_disk_bytes,
                power: Power::Up,
                configuring_until: None,
                pending_build: None,
                installing: false,
                attempts: HashMap::new(),
                log: Vec::new(),
                installs: Vec::new(),
                undo: Default::default(),
                uninstalls: Vec::new(),
                wire_counts: vec![0; config.faults.wire.len()],
                wire_faults_fired: 0,
                reboots: 0,
                temp_serial: 0,
                stall_next_command: false,
                services: crate::services::Services::new(&config.services),
                events: crate::eventlog::EventLog::new(
                    now.checked_sub(config.uptime).unwrap_or(now),
                ),
                health_requests: 0,
                reverted: Default::default(),
            }),
        };
        // %SystemRoot%\Temp is where installers get staged (ADMIN$\Temp); the profile folder
        // and everything else appear when something writes there, which keeps laying out a
        // drive to a few file-system calls per host.
        let temp = host.drive_parts(&format!("{}\\Temp", host.system_root));
        let mut files = Vec::with_capacity(config.files.len());
        for f in &config.files {
            let parts = host.drive_parts(&f.path);
            let exe = parts
                .last()
                .is_some_and(|n| n.to_ascii_lowercase().ends_with(".exe"));
            let product = f.product_version.unwrap_or(f.version);
            let bytes = cache
                .entry((f.version, product, exe, host.machine))
                .or_insert_with(|| {
                    let mut spec = PeSpec::dll(f.version, host.machine, "");
                    spec.product_version = product;
                    spec.kind = if exe { ImageKind::Exe } else { ImageKind::Dll };
                    spec.strings.retain(|(k, _)| k != "OriginalFilename");
                    Arc::from(pe::build(&spec))
                });
            if f.hidden == Some(true) {
                host.hidden.insert(crate::drive::key(&parts));
            }
            files.push(crate::drive::DriveFile {
                parts,
                bytes: Arc::clone(bytes),
            });
        }
        host.drive = crate::drive::Drive::new(drive, temp, files);
        if setup == DriveSetup::AtStart {
            host.drive.lay_out(&host.name)?;
        }
        Ok(host)
    }

    /// The host's C: drive on this machine (what Samba exports as C$), laid out if it was not.
    pub fn drive_root(&self) -> &Path {
        self.drive.ensure(&self.name);
        self.drive.root()
    }

    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// `C:\Users\<user>`: the working directory of remote shells.
    pub(crate) fn profile_dir(&self) -> String {
        format!(r"C:\Users\{}", self.user)
    }

    /// Maps a Windows path on C: to the file on this machine, resolving each component
    /// case-insensitively against what exists (as NTFS and Samba do). `%SystemRoot%`/`%windir%`
    /// expand; relative paths are relative to the profile folder; `..` cannot leave the drive.
    pub fn host_path(&self, windows_path: &str) -> PathBuf {
        self.drive.ensure(&self.name);
        self.drive.resolve(&self.drive_parts(windows_path))
    }

    /// The components of a Windows path on C: below the drive root, as [`WinHost::host_path`]
    /// reads it (environment expanded, relative to the profile folder, `..` kept on the drive).
    fn drive_parts(&self, windows_path: &str) -> Vec<String> {
        let expanded = self.expand_env(windows_path.trim().trim_matches('"'));
        let mut p = expanded.replace('/', "\\");
        if let Some(rest) = p.strip_prefix(r"\\?\").or_else(|| p.strip_prefix(r"\??\")) {
            p = rest.to_string();
        }
        let rel = if p.len() >= 2 && p.as_bytes()[1] == b':' {
            p[2..].to_string()
        } else if p.starts_with('\\') {
            p
        } else {
            format!("{}\\{}", &self.profile_dir()[2..], p)
        };
        let mut parts: Vec<String> = Vec::new();
        for c in rel.split('\\') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c.to_string()),
            }
        }
        parts
    }

    /// A file's bytes, as a program on the host reads them; `None` when there is no such file.
    /// An untouched drive answers from the files it was configured with, without being laid out.
    pub(crate) fn read_file(&self, windows_path: &str) -> Option<Arc<[u8]>> {
        if self.drive.untouched() {
            let parts = self.drive_parts(windows_path);
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            return self.drive.configured(&parts);
        }
        let path = self.host_path(windows_path);
        if !path.is_file() {
            return None;
        }
        std::fs::read(path).ok().map(Arc::from)
    }

    /// True if `windows_path` names a drive other than C: (which the simulated host does not have).
    pub(crate) fn foreign_drive(windows_path: &str) -> bool {
        let p = windows_path.trim().trim_matches('"');
        let b = p.as_bytes();
        b.len() >= 2 && b[1] == b':' && !b[0].eq_ignore_ascii_case(&b'C')
    }

    fn expand_env(&self, s: &str) -> String {
        let mut out = s.to_string();
        for var in ["%SystemRoot%", "%windir%"] {
            while let Some(at) = out.to_ascii_lowercase().find(&var.to_ascii_lowercase()) {
                out.replace_range(at..at + var.len(), &self.system_root);
            }
        }
        out
    }

    /// True if `windows_path` has the hidden attribute.
    pub(crate) fn is_hidden(&self, windows_path: &str) -> bool {
        self.hidden
            .contains(&crate::drive::key(&self.drive_parts(windows_path)))
    }

    /// True if the remote account may not open `key` (it or a parent is denied).
    pub(crate) fn registry_denied(&self, key: &str) -> bool {
        let Ok(canon) = crate::registry::canonical_path(key) else {
            return false;
        };
        let canon = canon.to_ascii_lowercase();
        self.registry_denied
            .iter()
            .any(|d| canon == *d || canon.starts_with(&format!("{d}\\")))
    }

    /// The PE file version of a file on the host, read from disk as hive would read it over SMB.
    pub fn file_version(&self, windows_path: &str) -> Option<Version> {
        let bytes = self.read_file(windows_path)?;
        pe::read_version(&bytes).ok().map(|v| v.file_version)
    }

    /// Every command run so far, oldest first.
    pub fn command_log(&self) -> Vec<CommandRecord> {
        self.lock().log.clone()
    }

    /// Every installer run that applied its changes, oldest first.
    pub fn install_log(&self) -> Vec<InstallRecord> {
        self.lock().installs.clone()
    }

    /// A registry value as the host has it now.
    pub fn registry_value(&self, key: &str, name: &str) -> Option<RegValue> {
        self.settled().registry.get(key, name).cloned()
    }

    /// Runs `f` on the registry (tests seed or inspect state with it).
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.settled().registry)
    }

    /// Uninstaller runs that took a package off (`package` is the hotfix ID), in order.
    pub fn uninstall_log(&self) -> Vec<InstallRecord> {
        self.lock().uninstalls.clone()
    }

    /// The servicing package names `dism /Online /Get-Packages` lists.
    pub fn dism_package_names(&self) -> Vec<String> {
        crate::uninstall::dism_packages(&self.settled())
            .into_keys()
            .collect()
    }

    pub fn installed_kbs(&self) -> Vec<String> {
        self.settled().kbs.iter().cloned().collect()
    }

    pub fn boot_time(&self) -> SystemTime {
        self.settled().boot_time
    }

    /// How many reboots completed.
    pub fn reboot_count(&self) -> u32 {
        self.settled().reboots
    }

    /// True while servicing is still "configuring updates" after a reboot.
    pub fn configuring(&self) -> bool {
        let st = self.settled();
        st.configuring_until.is_some()
    }

    /// The host's own clock: the real one, moved by the `clock_skew_s` fault.
    pub fn clock_now(&self) -> std::time::SystemTime {
        let now = std::time::SystemTime::now();
        let skew = std::time::Duration::from_secs(self.faults.clock_skew_s.unsigned_abs());
        if self.faults.clock_skew_s >= 0 {
            now + skew
        } else {
            now.checked_sub(skew).unwrap_or(now)
        }
    }

    pub fn free_disk_bytes(&self) -> u64 {
        self.settled().free_disk
    }

    /// How many wire faults the WinRM face was told to inject so far: a test proves its fault
    /// really happened, not just that it was planned.
    pub fn wire_faults_fired(&self) -> u32 {
        self.lock().wire_faults_fired
    }

    /// The host loses power now and stays off (a crash mid-copy, a pulled plug): the network
    /// faces refuse it from now on.
    pub fn power_cut(&self) {
        let mut st = self.lock();
        tracing::info!(host = %self.name, "power cut");
        self.power_off(&mut st);
    }

    /// The fault plan, including the items only the SMB harness can act on
    /// (`smb_disconnect_after_bytes`).
    /// Whether a service exists and runs now (`None`: no such service).
    pub fn service_running(&self, name: &str) -> Option<bool> {
        self.settled().services.get(name).map(|s| s.running)
    }

    /// The System event log as it is now.
    pub fn event_log(&self) -> Vec<crate::eventlog::LogEvent> {
        self.settled().events.events().to_vec()
    }

    pub fn fault_plan(&self) -> &FaultPlan {
        &self.faults
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state, with any reboot whose time has come carried out.
    pub(crate) fn settled(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        self.settle(&mut st, Instant::now());
        st
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.wall0 + at.saturating_duration_since(self.inst0)
    }

    fn settle(&self, st: &mut State, now: Instant) {
        if let Power::RebootScheduled { at } = st.power
            && now >= at
        {
            tracing::info!(host = %self.name, returns = !self.never_returns, "going down for a reboot");
            st.power = Power::Down {
                since: at,
                returns: !self.never_returns,
            };
        }
        if let Power::Down {
            since,
            returns: true,
        } = st.power
        {
            let up_at = since + self.downtime;
            if now >= up_at {
                self.come_back(st, up_at);
            }
        }
        if let Some(until) = st.configuring_until
            && now >= until
        {
            st.configuring_until = None;
            st.registry.delete_key(CBS_REBOOT_PENDING);
        }
    }

    /// The boot: pending renames happen, pending-reboot markers clear, the boot time moves on.
    fn come_back(&self, st: &mut State, up_at: Instant) {
        self.apply_pending_renames(st);
        if let Some(b) = st.pending_build.take() {
            set_build(&mut st.registry, b);
        }
        crate::reverts::at_boot(self, st);
        st.registry.delete_key(WU_REBOOT_REQUIRED);
        st.registry.delete_value(UPDATES, "UpdateExeVolatile");
        // A boot is always more than two minutes after the previous one (shutting down and
        // starting take that long on real hardware): hive counts a boot time that moved by a
        // minute or less as a clock step, not a reboot, and hosts that report their boot time to
        // the minute (Windows 2000) show two boots 61 s apart as one minute apart.
        let earliest = st.boot_time + Duration::from_secs(121);
        st.boot_time = self.wall(up_at).max(earliest);
        st.power = Power::Up;
        st.reboots += 1;
        let boot = st.boot_time;
        let State {
            services, events, ..
        } = &mut *st;
        events.boot(boot);
        services.boot(events);
        tracing::info!(host = %self.name, reboots = st.reboots, "back up after a reboot");
        if self.configuring.is_zero() {
            st.registry.delete_key(CBS_REBOOT_PENDING);
        } else {
            st.configuring_until = Some(up_at + self.configuring);
        }
        st.stall_next_command = self.faults.winrm_stall_after_boot.is_some();
        // Fault: whatever asked for this reboot asks again once the host is up.
        for marker in &self.faults.pending_after_reboot {
            set_pending_marker(&mut st.registry, marker);
        }
    }

    fn apply_pending_renames(&self, st: &mut State) {
        let Some(RegValue::MultiSz(items)) = st.registry.get(SESSION_MANAGER, PFRO).cloned() else {
            return;
        };
        for pair in items.chunks(2) {
            let src = self.host_path(pair[0].trim_start_matches('!'));
            match pair.get(1).map(|d| d.trim_start_matches('!')) {
                Some(dst) if !dst.is_empty() => {
                    // The boot-time rename replaces the file whatever its version: last writer wins.
                    let _ = std::fs::rename(&src, self.host_path(dst));
                }
                _ => {
                    let _ = std::fs::remove_file(&src);
                }
            }
        }
        st.registry.delete_value(SESSION_MANAGER, PFRO);
    }

    /// Schedules a reboot `delay` from now; `Err(1190)` if one is already scheduled or running.
    pub(crate) fn schedule_reboot(&self, st: &mut State, delay: Duration) -> Result<(), u32> {
        match st.power {
            Power::Up => {
                st.power = Power::RebootScheduled {
                    at: Instant::now() + delay,
                };
                Ok(())
            }
            Power::RebootScheduled { .. } => Err(1190),
            Power::Down { .. } => Err(1115),
        }
    }

    /// `shutdown /a`.
    pub(crate) fn abort_reboot(&self, st: &mut State) -> bool {
        if let Power::RebootScheduled { .. } = st.power {
            st.power = Power::Up;
            true
        } else {
            false
        }
    }

    /// Powers the host off for good (`shutdown /s`).
    pub(crate) fn power_off(&self, st: &mut State) {
        st.power = Power::Down {
            since: Instant::now(),
            returns: false,
        };
    }

    /// The host's Windows release (what `ver`, `ipconfig`, the tool set and WinRM's Identify
    /// answer follow).
    pub fn release(&self) -> crate::os::Release {
        crate::os::Release::of(self.major, self.minor)
    }

    /// The host's service pack from `CSDVersion`, as WinRM's Identify shows it (`SP: 2.0`).
    pub(crate) fn service_pack(&self) -> (u32, u32) {
        match self.settled().registry.get(CURRENT_VERSION, "CSDVersion") {
            Some(RegValue::Sz(s)) => crate::os::service_pack(s),
            _ => (0, 0),
        }
    }

    /// True if the host's Windows is at least `major.minor` (tools arrived with releases: wmic
    /// with XP/5.1, `certutil -hashfile` with Server 2003/5.2).
    pub(crate) fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    pub(crate) fn wall_now(&self) -> SystemTime {
        self.wall(Instant::now())
    }
}

/// Generated PE images by (file version, product version, is-exe, machine).
type ImageCache = HashMap<(Version, Version, bool, Machine), Arc<[u8]>>;

/// Sets one pending-reboot marker by its fleet-file name (`cbs`, `windows-update`, `update-exe`,
/// `file-renames`).
fn set_pending_marker(r: &mut Registry, marker: &str) {
    let _ = match marker {
        "cbs" => r.create_key(CBS_REBOOT_PENDING),
        "windows-update" => r.create_key(WU_REBOOT_REQUIRED),
        "update-exe" => r.set(UPDATES, "UpdateExeVolatile", RegValue::Dword(1)),
        // One rename pending: delete a temporary file at boot (an empty list means nothing).
        _ => r.set(
            SESSION_MANAGER,
            PFRO,
            RegValue::MultiSz(vec![
                r"\??\C:\Windows\Temp\~hive-pending.tmp".into(),
                String::new(),
            ]),
        ),
    };
}

/// Sets build and UBR the way a cumulative update leaves them.
pub(crate) fn set_build(reg: &mut Registry, b: BuildChange) {
    let build = b.build.to_string();
    let _ = reg.set(CURRENT_VERSION, "CurrentBuild", RegValue::Sz(build.clone()));
    let _ = reg.set(CURRENT_VERSION, "CurrentBuildNumber", RegValue::Sz(build));
    let _ = reg.set(CURRENT_VERSION, "UBR", RegValue::Dword(b.ubr));
}

/// The registry a freshly installed host of this kind has.
fn initial_registry(c: &HostConfig) -> Registry {
    let mut r = Registry::new();
    let sz = |s: &str| RegValue::Sz(s.to_string());
    let cv = CURRENT_VERSION;
    let _ = r.set(cv, "ProductName", sz(&c.product));
    if !c.edition.is_empty() {
        let _ = r.set(cv, "EditionID", sz(&c.edition));
    }
    if !c.csd_version.is_empty() {
        let _ = r.set(cv, "CSDVersion", sz(&c.csd_version));
    }
    // Windows 10 and later freeze CurrentVersion at 6.3 and carry the real numbers separately.
    let current = if c.major >= 10 {
        "6.3".to_string()
    } else {
        format!("{}.{}", c.major, c.minor)
    };
    let _ = r.set(cv, "CurrentVersion", sz(&current));
    let _ = r.set(cv, "CurrentBuild", sz(&c.build.to_string()));
    let _ = r.set(cv, "CurrentBuildNumber", sz(&c.build.to_string()));
    if c.major >= 10 {
        let _ = r.set(cv, "CurrentMajorVersionNumber", RegValue::Dword(c.major));
        let _ = r.set(cv, "CurrentMinorVersionNumber", RegValue::Dword(c.minor));
        let _ = r.set(cv, "UBR", RegValue::Dword(c.ubr));
    }
    if c.major >= 10 || (c.major == 6 && c.minor >= 1) {
        // Windows 7 / Server 2008 R2 on; Server Core hosts set `Server Core` in their registry.
        let kind = if c.product.contains("Server") {
            "Server"
        } else {
            "Client"
        };
        let _ = r.set(cv, "InstallationType", sz(kind));
    }
    let _ = r.set(cv, "SystemRoot", sz(&c.system_root));
    let _ = r.set(cv, "RegisteredOwner", sz("hive test fleet"));
    let _ = r.set(
        r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName",
        "ComputerName",
        sz(&c.name),
    );
    let _ = r.create_key(SESSION_MANAGER);
    // Vista on name the zone in TimeZoneKeyName and keep a resource reference in StandardName;
    // older Windows has only StandardName, the zone's English id.
    let tzi = r"HKLM\SYSTEM\CurrentControlSet\Control\TimeZoneInformation";
    if c.major >= 6 {
        let _ = r.set(tzi, "TimeZoneKeyName", sz(&c.time_zone));
        let _ = r.set(tzi, "StandardName", sz("@tzres.dll,-932"));
    } else {
        let _ = r.set(tzi, "StandardName", sz(&c.time_zone));
    }
    // Every Windows records its processor here; scans match "for x64-based Systems" with it.
    let arch = match c.machine {
        Machine::I386 => "x86",
        Machine::Amd64 => "AMD64",
    };
    let _ = r.set(
        &format!(r"{SESSION_MANAGER}\Environment"),
        "PROCESSOR_ARCHITECTURE",
        sz(arch),
    );
    let _ = r.create_key(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix");
    if c.major < 6 {
        // NT-era hotfixes announce themselves here; hfnetchk reads these keys.
        for kb in &c.kbs {
            let _ = r.set(
                &format!(r"{cv}\Hotfix\{kb}"),
                "Installed",
                RegValue::Dword(1),
            );
        }
    }
    for p in &c.pending_reboot {
        set_pending_marker(&mut r, p);
    }
    for (key, name, value) in &c.registry {
        let _ = match value {
            Some(v) => r.set(key, name, v.clone()),
            None => r.create_key(key),
        };
    }
    r
}

/// A started fleet: its hosts, each with its C: drive under one root folder.
#[derive(Debug)]
pub struct Fleet {
    root: PathBuf,
    hosts: Vec<Arc<WinHost>>,
}

impl Fleet {
    /// Creates the hosts; each host's C: drive is `<root>/<host name>/`, the layout the Samba
    /// `fleet` share exports (`C$` = that folder, `ADMIN$` = its `Windows` subfolder).
    pub fn start(configs: &[HostConfig], root: &Path) -> Result<Fleet, FleetError> {
        Self::start_with(configs, root, DriveSetup::AtStart)
    }

    /// [`Fleet::start`], writing the drives when `setup` says: [`DriveSetup::OnFirstUse`] for a
    /// fleet that no Samba share serves, which then starts without touching the disk.
    pub fn start_with(
        configs: &[HostConfig],
        root: &Path,
        setup: DriveSetup,
    ) -> Result<Fleet, FleetError> {
        let mut cache = ImageCache::default();
        let hosts = configs
            .iter()
            .map(|c| WinHost::create_with(c, &root.join(&c.name), &mut cache, setup).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fleet {
            root: root.to_path_buf(),
            hosts,
        })
    }

    /// Loads a fleet file and starts it.
    pub fn from_file(fleet_file: &Path, root: &Path) -> Result<Fleet, FleetError> {
        Self::start(&fleet::load(fleet_file)?, root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn hosts(&self) -> &[Arc<WinHost>] {
        &self.hosts
    }

    /// A host by name (case-insensitive, as NetBIOS names are).
    pub fn host(&self, name: &str) -> Option<&Arc<WinHost>> {
        self.hosts
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// The SMB-side fault plan for the harness: hosts whose writes should be cut after so many
    /// bytes (`faults.smb_disconnect_after_bytes`). The model cannot act on it — Samba serves the
    /// files — so the SMB service reads it from here.
    pub fn smb_disconnects(&self) -> Vec<(String, u64)> {
        self.hosts
            .iter()
            .filter_map(|h| {
                h.faults
                    .smb_disconnect_after_bytes
                    .map(|n| (h.name.clone(), n))
            })
            .collect()
    }

    /// The hosts as the network faces want them.
    pub fn sim_hosts(&self) -> Vec<Arc<dyn SimHost>> {
        self.hosts
            .iter()
            .map(|h| Arc::clone(h) as Arc<dyn SimHost>)
            .collect()
    }
}
