//! The fleet fault `reverts_at_boot`: a package whose installer ends well but whose changes are
//! undone at the next boot, as a servicing (CBS) transaction that fails while the boot commits it
//! rolls the package back, or a pending file rename that cannot be carried out leaves the old
//! file. The hotfix list, the files, the registry values and the build are what they were before
//! the install; the update client logs the failure (`WindowsUpdateClient` 20, level 2, data: the
//! package ID).
//!
//! `boots` says how many boots undo it (omitted: every boot, a package that never stays). With
//! `boots = 1` the first install is undone and a second one stays: what a patch whose first
//! attempt a leftover rename spoiled looks like.

use serde::{Deserialize, Serialize};

use crate::eventlog::Level;
use crate::model::{State, WinHost};

/// One package that the boot undoes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RevertsAtBoot {
    /// The package's hotfix ID (`KB5200003`).
    pub package: String,
    /// How many boots undo it; omitted: every one.
    pub boots: Option<u32>,
}

/// At a boot: undo each package the fault names that is installed now and has boots to undo
/// left. Runs after the pending renames, which are part of what the boot rolls back.
pub(crate) fn at_boot(host: &WinHost, st: &mut State) {
    for fault in &host.faults.reverts_at_boot {
        let id = fault.package.to_ascii_uppercase();
        let done = st.reverted.get(&id).copied().unwrap_or(0);
        if fault.boots.is_some_and(|b| done >= b) {
            continue;
        }
        let Some(mut undo) = st.undo.remove(&id) else {
            continue;
        };
        // The boot itself puts everything back: nothing waits for another one.
        for f in &mut undo.files {
            f.in_use = false;
        }
        undo.reboot_required = false;
        crate::uninstall::put_back(host, st, &undo);
        *st.reverted.entry(id.clone()).or_default() += 1;
        st.events.write(
            "Microsoft-Windows-WindowsUpdateClient",
            20,
            Level::Error,
            vec![id.clone()],
        );
        tracing::info!(host = %host.name, package = %id, "package undone at boot (fault plan)");
    }
}
