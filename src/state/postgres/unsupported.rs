//! What a run over the database does not do yet, refused by name when `hive rollout --state` or
//! `hive worker` starts: a coordinated run that silently ignored a window, a wave hook or a
//! quarantine would patch hosts the operator meant to protect.
//!
//! What works is not refused: soaks (see [`super::soak`]), budgets and canary gates (the
//! coordinator), pre-flight, health checks and host hooks (each worker runs them on its hosts).

use thiserror::Error;

use crate::inventory::{GroupPolicy, GroupSettings, Host};
use crate::rollout::plan::Stage;

/// A feature of the plan, the inventory or the command line that coordinated mode does not
/// carry out, with what the operator can do instead.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Unsupported {
    #[error(
        "--pause-after-canary is not available with --state yet: give the canaries a plan of their own run"
    )]
    PauseAfterCanary,
    #[error(
        "--wait-for-window is not available with --state yet (maintenance windows are not kept by coordinated runs): start the run when the window opens, or run without --state"
    )]
    WaitForWindow,
    #[error(
        "maintenance windows (`window` in the inventory's {layer}, host {host}) are not kept with --state yet: hosts would be patched outside them; start the run inside the window without the `window` setting, or run without --state"
    )]
    Window { layer: String, host: String },
    #[error(
        "wave hooks (`hooks.{field}` in the inventory's {layer}) are not run with --state yet: run the command yourself around the run, or run without --state (host hooks do run on the workers)"
    )]
    WaveHook { layer: String, field: &'static str },
    #[error(
        "quarantine_after (plan stage `{stage}`) is not available with --state yet: a failing patch would not be withheld from later waves; use max_failed to stop the run instead, or run without --state"
    )]
    Quarantine { stage: String },
}

/// The plan's stages and the run's flags (the coordinator's part).
pub fn check_run(
    stages: &[Stage],
    pause_after_canary: bool,
    wait_for_window: bool,
) -> Result<(), Unsupported> {
    if pause_after_canary {
        return Err(Unsupported::PauseAfterCanary);
    }
    check_flags(wait_for_window)?;
    if let Some(s) = stages.iter().find(|s| s.quarantine_after.is_some()) {
        return Err(Unsupported::Quarantine {
            stage: s.name.clone(),
        });
    }
    Ok(())
}

/// A worker's flags.
pub fn check_flags(wait_for_window: bool) -> Result<(), Unsupported> {
    if wait_for_window {
        return Err(Unsupported::WaitForWindow);
    }
    Ok(())
}

/// The settings of the inventory that apply to `hosts` (both sides: a worker may be given
/// another inventory file than the coordinator).
pub fn check_inventory(policy: &GroupPolicy, hosts: &[Host]) -> Result<(), Unsupported> {
    for h in hosts {
        for (layer, s) in layers(policy, h) {
            if s.window.is_some() {
                return Err(Unsupported::Window {
                    layer,
                    host: h.name.clone(),
                });
            }
            if let Some(hooks) = &s.hooks {
                for (field, set) in [
                    ("pre_wave", hooks.pre_wave.is_some()),
                    ("post_wave", hooks.post_wave.is_some()),
                ] {
                    if set {
                        return Err(Unsupported::WaveHook { layer, field });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The layers that apply to `host`, named as the inventory file names them.
fn layers<'a>(
    policy: &'a GroupPolicy,
    host: &'a Host,
) -> impl Iterator<Item = (String, &'a GroupSettings)> + 'a {
    host.groups
        .iter()
        .filter_map(|g| policy.groups.get(g).map(|s| (format!("[group.{g}]"), s)))
        .chain(std::iter::once((
            "[group_defaults]".to_string(),
            &policy.defaults,
        )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use crate::rollout::plan::parse_plan;
    use std::path::Path;

    fn inventory(extra: &str) -> Inventory {
        let text = format!(
            "[defaults]\ncredential = \"env:HIVE_PW\"\n\n\
             [[host]]\nname = \"WEB01\"\naddress = \"10.0.0.1\"\ngroups = [\"web\"]\n\n\
             [[host]]\nname = \"DB01\"\naddress = \"10.0.0.2\"\n\n{extra}"
        );
        Inventory::parse(&text, Path::new("inv.toml")).expect("inventory")
    }

    fn check(extra: &str) -> Result<(), Unsupported> {
        let inv = inventory(extra);
        check_inventory(&inv.policy, &inv.hosts)
    }

    fn stages(plan: &str) -> Vec<Stage> {
        parse_plan(plan).expect("plan")
    }

    #[test]
    fn windows_are_refused_naming_where_they_are() {
        let e = check("[group.web]\nwindow = [\"Sat 02:00-06:00\"]\nwindow_zone = \"UTC\"\n")
            .unwrap_err();
        assert_eq!(
            e,
            Unsupported::Window {
                layer: "[group.web]".into(),
                host: "WEB01".into()
            }
        );
        assert!(e.to_string().contains("maintenance windows"), "{e}");
        let e = check("[group_defaults]\nwindow = [\"Sat 02:00-06:00\"]\n").unwrap_err();
        assert!(matches!(e, Unsupported::Window { layer, .. } if layer == "[group_defaults]"));
    }

    #[test]
    fn a_window_of_a_group_without_selected_hosts_is_not_refused() {
        check("[group.sql]\nwindow = [\"Sat 02:00-06:00\"]\n").unwrap();
    }

    #[test]
    fn wave_hooks_are_refused_and_host_hooks_are_not() {
        let e = check("[group.web.hooks]\npost_wave = \"echo done\"\n").unwrap_err();
        assert_eq!(
            e,
            Unsupported::WaveHook {
                layer: "[group.web]".into(),
                field: "post_wave"
            }
        );
        assert!(e.to_string().contains("hooks.post_wave"), "{e}");
        let e = check("[group_defaults.hooks]\npre_wave = \"echo start\"\n").unwrap_err();
        assert!(matches!(
            e,
            Unsupported::WaveHook {
                field: "pre_wave",
                ..
            }
        ));
        check(
            "[group.web.hooks]\npre_host = \"net stop W3SVC\"\npost_host_local = \"./undrain.sh\"\n",
        )
        .unwrap();
        check("[group_defaults]\nhealth = [{ service = \"W3SVC\" }]\nhealth_interval = 5\n")
            .unwrap();
    }

    #[test]
    fn quarantine_after_is_refused_naming_its_stage() {
        let e = check_run(
            &stages("canary(group=canary) -> 50%(quarantine_after=1) -> 100%"),
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e,
            Unsupported::Quarantine {
                stage: "50%".into()
            }
        );
        assert!(e.to_string().contains("quarantine_after"), "{e}");
    }

    #[test]
    fn flags_are_refused_and_a_soak_is_not() {
        let soak = stages("canary(group=canary, soak=30m) -> 100%");
        check_run(&soak, false, false).unwrap();
        assert_eq!(
            check_run(&soak, false, true),
            Err(Unsupported::WaitForWindow)
        );
        assert_eq!(
            check_run(&soak, true, false),
            Err(Unsupported::PauseAfterCanary)
        );
        assert_eq!(check_flags(true), Err(Unsupported::WaitForWindow));
        check_flags(false).unwrap();
    }
}
