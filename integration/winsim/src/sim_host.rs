//! A model host behind the [`SimHost`] seam: what the WinRM and SSH faces ask of it (addresses,
//! account, power, wire faults) and the command interpreter that answers its commands. Kept apart
//! from the model so the model does not depend on the interpreter that depends on it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::host::{BoxFuture, CommandOutcome, CommandRequest, SimHost, WireFault, WsmanOp};
use crate::model::{CURRENT_VERSION, Power, WinHost};
use crate::registry::RegValue;

impl SimHost for WinHost {
    fn name(&self) -> &str {
        &self.name
    }
    fn winrm_http_addr(&self) -> SocketAddr {
        self.http
    }
    fn winrm_https_addr(&self) -> Option<SocketAddr> {
        self.https
    }
    fn account(&self) -> (&str, &str) {
        (&self.user, &self.password)
    }
    fn cbt_hardening(&self) -> crate::fleet::CbtHardening {
        self.cbt_hardening
    }
    fn client_certificates(&self) -> &[crate::server::certmap::CertMappingSetting] {
        &self.client_certificates
    }
    fn windows_version(&self) -> (u8, u8, u16) {
        // The build moves when an update installs, so it is read where the update wrote it.
        let build = match self
            .settled()
            .registry
            .get(CURRENT_VERSION, "CurrentBuildNumber")
        {
            Some(RegValue::Sz(b)) => b.parse().unwrap_or(0),
            _ => 0,
        };
        (self.major as u8, self.minor as u8, build)
    }
    fn wsman_identity(&self) -> crate::host::WsmanIdentity {
        let (major, minor, build) = self.windows_version();
        let (sp_major, sp_minor) = self.service_pack();
        crate::host::WsmanIdentity {
            os: format!("{major}.{minor}.{build}"),
            service_pack: format!("{sp_major}.{sp_minor}"),
            stack: self.release().wsman_stack().into(),
        }
    }
    fn oem_code_page(&self) -> Option<u16> {
        Some(self.oem_code_page)
    }
    fn accepting(&self) -> bool {
        matches!(
            self.settled().power,
            Power::Up | Power::RebootScheduled { .. }
        )
    }
    fn wire_fault(&self, op: WsmanOp) -> Option<WireFault> {
        let mut st = self.settled();
        if op == WsmanOp::Command
            && st.stall_next_command
            && let Some(stall) = self.faults.winrm_stall_after_boot
        {
            st.stall_next_command = false;
            st.wire_faults_fired += 1;
            tracing::debug!(host = %self.name, ?stall, "the first Command after the boot stalls");
            return Some(WireFault::Delay(stall));
        }
        let mut fired = None;
        for (i, rule) in self.faults.wire.iter().enumerate() {
            if rule.op.is_some_and(|o| o != op) {
                continue;
            }
            st.wire_counts[i] += 1;
            let n = st.wire_counts[i];
            let hit = n >= rule.nth && (rule.times == 0 || n < rule.nth + rule.times);
            if hit && fired.is_none() {
                st.wire_faults_fired += 1;
                tracing::debug!(host = %self.name, ?op, kind = %rule.kind, n, "injecting a wire fault");
                fired = Some(match rule.kind.as_str() {
                    "reset" => WireFault::ResetConnection,
                    "soap-fault" => WireFault::SoapFault {
                        code: rule.code,
                        text: rule.text.clone(),
                    },
                    "unauthorized" => WireFault::Unauthorized,
                    "too-big" => WireFault::EnvelopeTooBig,
                    _ => WireFault::Delay(Duration::from_millis(rule.delay_ms)),
                });
            }
        }
        fired
    }
    fn run(&self, request: CommandRequest) -> BoxFuture<'_, CommandOutcome> {
        Box::pin(crate::cmd::run(self, request))
    }
}
