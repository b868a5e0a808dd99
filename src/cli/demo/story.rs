//! What distinguishes one demo story from another: the kinds of host, the catalog, the approved
//! installers. Everything else (fleet start, scan, triage, canary and waves, the faulty hosts) is
//! the same for every story and lives in the demo's runner.

use hive::catalog::model::{Catalog, InstallerRecipe};

use super::DemoOptions;

/// One installer the demo approves before it scans.
pub struct Approval {
    /// The repository id it is approved under: a bulletin (`MS08-067`) or, for an MSRC month,
    /// the KB (`KB5035849`).
    pub id: String,
    /// The installer's file name, as the vendor names it.
    pub file_name: String,
    /// The simulated package: what running it does to a host.
    pub package: winsim::installer::Package,
    pub recipe: InstallerRecipe,
    /// One line for the admin: what it is and how it runs.
    pub describe: String,
}

/// A demo story.
pub struct Story {
    /// Printed under the demo's first line.
    pub intro: String,
    /// `[template.NAME]` tables of the winsim fleet file, one per kind of host.
    pub templates: String,
    /// The template of host `i` (canaries first).
    pub template_of: fn(usize, &DemoOptions) -> &'static str,
    /// Inventory groups of host `i` besides `canary`/`web`, e.g. `ws2019`.
    pub groups_of: fn(usize, &DemoOptions) -> Vec<&'static str>,
    pub catalog: Catalog,
    pub approvals: Vec<Approval>,
    /// The health gate the story shows, if any.
    pub health: Option<HealthGate>,
}

/// A health check every host gets, and the fault that makes one canary fail it: the demo shows a
/// patch that installs cleanly but leaves a service down being stopped at the canaries.
pub struct HealthGate {
    /// `[group_defaults]` lines of the inventory.
    pub inventory: &'static str,
    /// winsim fleet lines (a `faults = ...`) for the first canary.
    pub canary_fault: &'static str,
    /// What the admin is told to expect.
    pub describe: &'static str,
}

/// The demo's faulty hosts, the same in every story: by index among the non-canary hosts.
pub fn fault_of(web_index: usize) -> Option<&'static str> {
    match web_index {
        13 => Some("faults = { installers_hang = true }\n"),
        29 => Some("reboot = { never_returns = true }\n"),
        47 => Some("faults = { wire = [{ kind = \"reset\", op = \"Command\", times = 0 }] }\n"),
        _ => None,
    }
}
