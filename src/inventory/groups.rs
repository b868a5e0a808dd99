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
//! ```

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
