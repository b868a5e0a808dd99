//! Settings an admin declares per group of hosts (`[group.web]`) and for every host
//! (`[group_defaults]`): how a host is judged healthy, when and how it may be worked on.
//!
//! A setting is looked up in layers: the host's groups that declare it (in group-name order, so the
//! answer does not depend on the order groups are listed in), then `[group_defaults]`. Each setting
//! is resolved on its own, so a group may override the health checks and inherit the window.
//!
//! ```toml
//! [group_defaults]
//! # settings every host gets unless one of its groups says otherwise
//! health = [{ port = 5985 }]
//!
//! [group.web]
//! # settings for hosts in group "web"
//! health = [{ service = "W3SVC" }, { http = "https://{address}/health" }]
//! health_interval = 30
//! window = ["Sat 02:00-06:00", "patch-tuesday+3 22:00-02:00"]   # see crate::window
//! window_zone = "Europe/Berlin"                                 # IANA, "local" or "host" (default)
//!
//! [group.web.hooks]                                             # see crate::hooks
//! pre_host_local = "/usr/local/bin/lb drain"                    # HIVE_HOST_NAME, HIVE_HOST_ADDRESS
//! post_host_local = "/usr/local/bin/lb undrain"
//! pre_host = "net stop W3SVC"                                   # cmd.exe on the host
//! post_host = "net start W3SVC"
//! timeout = "5m"
//! ```
//!
//! The settings are kept here as written (texts); the modules that use them parse and check them
//! when a run starts, with errors naming the group and field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Host;

/// What one `[group.NAME]` table (or `[group_defaults]`) declares. Every field is optional: an
/// absent one falls through to the next layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// What "healthy" means for these hosts (see [`super::health`]); checked after their
    /// patches and polled during the soak.
    pub health: Option<Vec<super::health::HealthCheckSpec>>,
    /// Seconds between two polls of the health checks during a wave's soak.
    pub health_interval: Option<u64>,
    /// Maintenance windows (`"Sat 02:00-06:00"`, `"2026-12-24 22:00 - 2026-12-25 04:00"`,
    /// `"patch-tuesday+3 02:00-06:00"`): a host starts only inside one. Parsed by `crate::window`.
    pub window: Option<Vec<String>>,
    /// The time zone the windows' times are in: an IANA name, `"local"` (this machine's) or
    /// `"host"` (each host's own, read from its registry; the default).
    pub window_zone: Option<String>,
    /// Commands run around each host and each wave.
    pub hooks: Option<HookSettings>,
    /// The Kerberos service principal of these hosts, `{name}` and `{address}` filled in per
    /// host (`"HTTP/{name}.corp.example"`); a host's own `spn` wins. See `super::kerberos`.
    pub spn: Option<String>,
}

/// `[group.NAME.hooks]`: commands run around the work on each host and each wave. Each hook is
/// resolved on its own through the layers, like a setting. Run by `crate::hooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    /// cmd.exe command line run on the host before anything is installed.
    pub pre_host: Option<String>,
    /// cmd.exe command line run on the host after its work, whatever the install did.
    pub post_host: Option<String>,
    /// Command run on this machine before the host (`sh -c`), with the host's name and address
    /// in the environment.
    pub pre_host_local: Option<String>,
    /// Command run on this machine after the host, whatever the install did.
    pub post_host_local: Option<String>,
    /// Command run on this machine before each wave.
    pub pre_wave: Option<String>,
    /// Command run on this machine after each wave.
    pub post_wave: Option<String>,
    /// How long one hook may run (`"90s"`, `"5m"`) before it is killed and counted failed.
    pub timeout: Option<String>,
}

/// Every group's settings and the defaults, as the inventory file declared them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPolicy {
    /// `[group_defaults]`.
    pub defaults: GroupSettings,
    /// `[group.NAME]`, by group name.
    pub groups: BTreeMap<String, GroupSettings>,
}

impl GroupPolicy {
    /// The layers that apply to `host`, most specific first: its groups that have a table (in
    /// group-name order), then the defaults. Resolve a setting with
    /// `policy.layers(host).find_map(|s| s.field.as_ref())`.
    pub fn layers<'a>(&'a self, host: &'a Host) -> impl Iterator<Item = &'a GroupSettings> + 'a {
        host.groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .chain(std::iter::once(&self.defaults))
    }
}
