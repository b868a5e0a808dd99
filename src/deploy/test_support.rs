//! What deploy's unit tests share: a host, short timeouts, and a [`FakeTarget`] with an event
//! recorder, wired into a [`HostContext`].

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::{DeployOptions, HostContext, HostPlan, PlannedInstall, ScanInputs};
use crate::catalog::model::{
    Catalog, DetectionRule, InstallerRecipe, Patch, PatchTarget, Product, Restart,
};
use crate::deploy::plan::ApprovedInstaller;
use crate::events::{Recorder, Step, StepOutcome, StepState};
use crate::fake::FakeTarget;
use crate::inventory::{Host, Inventory};
use crate::scan::run::{FileSource, PreparedProbe};
use hive_probe::{ProbeFacts, RegistryFact};

pub(crate) const RUN: &str = "r1";

pub(crate) fn host() -> Host {
    let inv = Inventory::parse(
        "[[host]]\nname = \"H1\"\naddress = \"127.0.0.1\"\ncredential = \"env:HIVE_TEST_PW\"\n",
        Path::new("inv.toml"),
    )
    .expect("test inventory");
    inv.hosts[0].clone()
}

/// Deadlines in real time, short: the fake host answers at once, so only a host that never
/// does what is awaited meets them.
pub(crate) fn options() -> DeployOptions {
    DeployOptions {
        shutdown_delay_s: 0,
        install_timeout: Duration::from_millis(300),
        command_timeout: Duration::from_millis(200),
        busy_attempts: 3,
        busy_backoff: Duration::from_millis(1),
        poll_interval: Duration::from_millis(1),
        down_timeout: Duration::from_millis(300),
        port_timeout: Duration::from_millis(300),
        login_timeout: Duration::from_millis(300),
        settle_timeout: Duration::from_millis(300),
        verify_timeout: Duration::from_millis(300),
        ..Default::default()
    }
}

/// A fake host, the events deploy emitted for it, and the context to run deploy code in.
pub(crate) struct Bench {
    pub host: Host,
    pub options: DeployOptions,
    pub events: Recorder,
    /// hive's handle on the host; `fake` is the test's.
    pub target: FakeTarget,
    pub fake: FakeTarget,
}

impl Bench {
    pub fn new(fake: FakeTarget) -> Bench {
        Bench {
            host: host(),
            options: options(),
            events: Recorder::default(),
            target: fake.clone(),
            fake,
        }
    }

    pub fn ctx(&mut self) -> HostContext<'_> {
        let port = self.target.port_probe();
        HostContext::new(
            RUN,
            &self.host,
            &mut self.target,
            &self.events,
            None,
            &self.options,
        )
        .with_port_probe(port)
    }

    /// Each finished step: the step, ok, its outcome and the boot time it recorded.
    pub fn ends(&self) -> Vec<(Step, bool, StepOutcome, Option<String>)> {
        self.events
            .0
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| match e.state {
                StepState::Finished {
                    ok,
                    outcome,
                    boot_time,
                    ..
                } => Some((e.step, ok, outcome, boot_time)),
                _ => None,
            })
            .collect()
    }

    /// Every started step has an end.
    pub fn all_closed(&self) -> bool {
        let events = self.events.0.lock().map(|v| v.clone()).unwrap_or_default();
        let started = events
            .iter()
            .filter(|e| e.state == StepState::Started)
            .count();
        let ended = events
            .iter()
            .filter(|e| matches!(e.state, StepState::Finished { .. }))
            .count();
        started == ended
    }
}

/// A plan of one installer at `path` (a file the test wrote), with `sha256` as the catalog's.
pub(crate) fn plan_of(path: &Path, bytes: &[u8], expected_sha256: &str) -> HostPlan {
    use sha2::Digest as _;
    let installer = ApprovedInstaller {
        bulletin: "MS01-033".into(),
        path: path.to_path_buf(),
        file_name: "Q300972.exe".into(),
        recipe: InstallerRecipe::update_exe(),
        bytes: bytes.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
        companions: vec![],
    };
    HostPlan {
        host: "H1".into(),
        installs: vec![PlannedInstall {
            patch: "MS01-033".into(),
            bulletin: "MS01-033".into(),
            installer,
            expected_sha256: expected_sha256.to_string(),
            servicing_stack: false,
            restart: Some(Restart::Yes),
        }],
        unplanned: Vec::new(),
        qchain: false,
        expected_reboot: Restart::Yes,
        bytes: bytes.len() as u64,
    }
}

const KEY: &str = r"HKLM\SOFTWARE\Hive\MS01-033";

/// The host's probe answer, with the patch's registry value set to `data`.
pub(crate) fn registry_facts(data: &str) -> ProbeFacts {
    ProbeFacts {
        computer_name: "H1".into(),
        registry: vec![RegistryFact {
            key: KEY.into(),
            value: "Installed".into(),
            found: true,
            kind: Some("REG_SZ".into()),
            data: Some(serde_json::Value::String(data.into())),
            error: None,
        }],
        ..FakeTarget::plain_facts()
    }
}

/// One patch, installed when its registry value is `1`, on the product the host runs.
pub(crate) fn registry_catalog() -> Catalog {
    let mut c = Catalog::default();
    let probe_request = crate::scan::probe::request_for(&c);
    let os = crate::scan::probe::facts_from(&registry_facts("0"), &probe_request).products[0]
        .name
        .clone();
    c.products.insert(
        "p:os".into(),
        Product {
            id: "p:os".into(),
            name: os,
            family: None,
            cpe: None,
            applicability: Default::default(),
        },
    );
    c.patches.insert(
        "MS01-033".into(),
        Patch {
            id: "MS01-033".into(),
            kb: None,
            file_name: None,
            download_url: None,
            sha256: None,
            subtype: None,
            restart: Some(Restart::Yes),
            bulletins: vec!["MS01-033".into()],
            targets: vec![PatchTarget {
                product: "p:os".into(),
                service_packs: vec![],
                fixed_in_sp: None,
                fixed_build: None,
                detection: DetectionRule::RegistryValue {
                    key: KEY.into(),
                    value: "Installed".into(),
                    data: "1".into(),
                },
            }],
            supersedes: BTreeSet::new(),
            superseded_by: BTreeSet::new(),
            installer: None,
        },
    );
    c
}

/// The test plan for steps that never read the installer (verify, settle).
pub(crate) fn plan_without_installer() -> HostPlan {
    plan_of(Path::new("unused"), b"", "")
}

/// A catalog and its prepared probe, for tests that scan through the fake host.
pub(crate) struct ScanFixture {
    catalog: Catalog,
    probe: PreparedProbe,
}

impl ScanFixture {
    pub fn new(catalog: Catalog) -> ScanFixture {
        let probe = PreparedProbe::new(&catalog);
        ScanFixture { catalog, probe }
    }

    pub fn inputs(&self) -> ScanInputs<'_> {
        ScanInputs {
            catalog: &self.catalog,
            probe: &self.probe,
            files: FileSource::Probe,
        }
    }
}
