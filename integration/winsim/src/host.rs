//! The seam between winsim's network faces (the WinRM server, the SSH login shell) and its host model.
//!
//! The faces know the protocols and nothing of Windows; the model knows Windows (registry, files,
//! installers, reboots, faults) and nothing of the protocols. Both sides code against this trait, so
//! the WinRM server can be proven with pywinrm/pypsrp while the model is proven by its own unit tests.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

/// One command as a client delivered it to the host.
///
/// WinRS hands `command` and `arguments` to `cmd.exe /c` unless the client set
/// `WINRS_SKIP_CMD_SHELL`; the model decides what that means (e.g. `powershell.exe -` reads its
/// script from `stdin`). `stdin` holds everything the client sent with `Send` before the first
/// `Receive` (the server starts the command then).
#[derive(Debug, Clone, Default)]
pub struct CommandRequest {
    pub command: String,
    pub arguments: Vec<String>,
    pub stdin: Vec<u8>,
    pub skip_cmd_shell: bool,
}

/// What a finished command left behind, exactly as a Windows process would report it.
///
/// `exit_code` is a u32 because Windows exit codes are DWORDs: HRESULTs such as 0x80240017 must
/// survive the trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: u32,
}

/// The WS-Management operation a request carries, so that faults can target one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsmanOp {
    Create,
    Command,
    Send,
    Receive,
    Signal,
    Delete,
    Get,
}

/// A fault the host model asks the network face to inject into one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireFault {
    /// Close the TCP connection without answering (a NIC reset, a crash mid-Receive).
    ResetConnection,
    /// Answer HTTP 500 with a SOAP fault carrying this WS-Man error code and text.
    SoapFault { code: u32, text: String },
    /// Answer HTTP 401 as if the authentication context had been dropped mid-session.
    Unauthorized,
    /// Answer HTTP 413: the envelope was bigger than the host's MaxEnvelopeSizekb.
    EnvelopeTooBig,
    /// Answer normally, but only after this delay.
    Delay(Duration),
}

/// The parts of WinRM's `ProductVersion` (`OS: 5.2.3790 SP: 2.0 Stack: 1.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsmanIdentity {
    pub os: String,
    pub service_pack: String,
    /// The WS-Management stack version: 1.1 (XP/2003/Vista/2008), 2.0 (7/2008 R2), 3.0 (8/2012 on).
    pub stack: String,
}

/// A boxed future, so the trait stays object-safe (`Arc<dyn SimHost>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One simulated Windows host as its network faces see it.
pub trait SimHost: Send + Sync + 'static {
    /// The computer name (`HOSTNAME`), used in logs and SOAP addresses.
    fn name(&self) -> &str;
    /// Where this host's WinRM HTTP listener binds (its own 127.x.y.z address).
    fn winrm_http_addr(&self) -> SocketAddr;
    /// Where this host's WinRM HTTPS listener binds, if it has one.
    fn winrm_https_addr(&self) -> Option<SocketAddr>;
    /// The local administrator account (user, password) the host accepts.
    fn account(&self) -> (&str, &str);
    /// Whether NTLM over HTTPS must carry the TLS channel binding (`CbtHardeningLevel`).
    fn cbt_hardening(&self) -> crate::fleet::CbtHardening {
        crate::fleet::CbtHardening::Relaxed
    }
    /// The certificate-mapping table of the HTTPS listener; empty: certificate authentication is
    /// off (Windows' default), and the listener asks no client for a certificate.
    fn client_certificates(&self) -> &[crate::server::certmap::CertMappingSetting] {
        &[]
    }
    /// The Windows version (major, minor, build) the host reports to network clients, e.g. in
    /// its NTLM CHALLENGE; Windows Server 2022 unless the model says otherwise.
    fn windows_version(&self) -> (u8, u8, u16) {
        (10, 0, 20348)
    }
    /// What the host's WinRM service says in an Identify answer: `OS: 10.0.17763 SP: 0.0 Stack:
    /// 3.0` when the request was authenticated. Windows Server 2022 with WinRM 3.0 unless the
    /// model says otherwise.
    fn wsman_identity(&self) -> WsmanIdentity {
        let (major, minor, build) = self.windows_version();
        WsmanIdentity {
            os: format!("{major}.{minor}.{build}"),
            service_pack: "0.0".into(),
            stack: "3.0".into(),
        }
    }
    /// The console's OEM code page (see [`crate::codepage`]): the SSH face converts a command's
    /// stdin and output with it. `None`: UTF-8 both ways.
    fn oem_code_page(&self) -> Option<u16> {
        None
    }
    /// False while the host is down (rebooting, powered off): the faces refuse connections then.
    fn accepting(&self) -> bool;
    /// A fault to inject into the next request of this kind, if the fault plan says so.
    fn wire_fault(&self, op: WsmanOp) -> Option<WireFault>;
    /// Run one command to completion. Dropping the future kills the process (Signal terminate,
    /// a client timeout): the model records that it was killed.
    fn run(&self, request: CommandRequest) -> BoxFuture<'_, CommandOutcome>;
}
