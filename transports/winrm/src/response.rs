//! Reading WS-Management responses (pure: text in, typed values out).
//!
//! Everything is looked up by namespace URI and local name; Windows uses `a:`/`w:`/`p:` prefixes,
//! other servers (and our own test peer) pick others. Every reply's `RelatesTo` is checked against
//! the MessageID we sent, so a reply that belongs to another request (a confused proxy or a
//! desynchronised connection) is an error, not silently wrong output.

use std::fmt;

use base64::Engine as _;

use crate::ns;
use crate::xml::{self, Element};

/// Fault code: the operation did not finish within OperationTimeout (a Receive with nothing new).
pub const CODE_TIMED_OUT: u32 = 2_150_858_793;
/// Fault code: the shell or command named by the selectors does not exist (anymore).
pub const CODE_INVALID_SELECTORS: u32 = 2_150_858_843;
/// Fault code: the user has too many shells open (MaxShellsPerUser).
pub const CODE_SHELL_QUOTA: u32 = 2_150_859_173;
/// Fault code: the shell has run too many operations (MaxConcurrentOperationsPerUser).
pub const CODE_OPERATION_QUOTA: u32 = 2_150_859_174;
/// Fault code: a WS-Management quota other than shells or operations was exceeded
/// (ERROR_WSMAN_QUOTA_LIMIT), e.g. a shell's MaxMemoryPerShellMB.
pub const CODE_QUOTA_LIMIT: u32 = 2_150_858_815;
/// Fault code: a SOAP header has an invalid value.
pub const CODE_INVALID_HEADER: u32 = 2_150_858_767;
/// Fault code: the request or reply exceeds MaxEnvelopeSize.
pub const CODE_ENVELOPE_TOO_BIG: u32 = 2_150_858_817;
/// Win32 ERROR_ACCESS_DENIED.
pub const CODE_ACCESS_DENIED: u32 = 5;
/// Win32 ERROR_INVALID_PARAMETER.
pub const CODE_INVALID_PARAMETER: u32 = 87;

/// A SOAP fault as Windows sends it, with its detail in either form Windows uses: the
/// `f:WSManFault` element, or (current Windows, e.g. for quota faults) a CIM `MSFT_WmiError`
/// instance whose `error_Code` and `Message` carry the same facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsmanFault {
    /// `s:Code/s:Value` local part (`Sender` or `Receiver`).
    pub code: String,
    /// `s:Subcode/s:Value` local part, e.g. `TimedOut`, `InvalidSelectors`.
    pub subcode: Option<String>,
    /// `s:Reason/s:Text`.
    pub reason: String,
    /// `f:WSManFault/@Code` or `MSFT_WmiError/error_Code`, a Win32 or WinRM error number.
    pub wsman_code: Option<u32>,
    /// `f:WSManFault/@Machine`.
    pub machine: Option<String>,
    /// `f:Message` or `MSFT_WmiError/Message` text, including provider fault text (often the
    /// most useful line).
    pub message: Option<String>,
    /// `w:FaultDetail` URI.
    pub detail: Option<String>,
}

/// What a fault means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Nothing happened within OperationTimeout: resend the Receive.
    TimedOut,
    /// The shell or command is gone (idle timeout, reboot, or a wrong id).
    InvalidSelectors,
    /// Too many shells for this user (MaxShellsPerUser): delete ours, or wait for others' to close.
    ShellQuota,
    /// Too many operations on this shell: recycle it.
    OperationQuota,
    /// A command's shell ran out of its MaxMemoryPerShellMB: waiting does not help; the quota
    /// must be raised or the work made smaller.
    MemoryQuota,
    /// An envelope exceeded MaxEnvelopeSize.
    EnvelopeTooBig,
    /// The user may not do this (not an administrator, or remote shell access off).
    AccessDenied,
    /// A SOAP header was rejected (bad timeout, bad option).
    InvalidHeader,
    /// A parameter was rejected.
    InvalidParameter,
    /// Anything else; see the code and text.
    Other,
}

impl WsmanFault {
    /// Classify by WSManFault code first, then by subcode.
    pub fn kind(&self) -> FaultKind {
        match self.wsman_code {
            Some(CODE_TIMED_OUT) => return FaultKind::TimedOut,
            Some(CODE_INVALID_SELECTORS) => return FaultKind::InvalidSelectors,
            Some(CODE_SHELL_QUOTA) => return FaultKind::ShellQuota,
            Some(CODE_OPERATION_QUOTA) => return FaultKind::OperationQuota,
            Some(CODE_QUOTA_LIMIT) if self.mentions("memory") => return FaultKind::MemoryQuota,
            Some(CODE_ENVELOPE_TOO_BIG) => return FaultKind::EnvelopeTooBig,
            Some(CODE_ACCESS_DENIED) => return FaultKind::AccessDenied,
            Some(CODE_INVALID_HEADER) => return FaultKind::InvalidHeader,
            Some(CODE_INVALID_PARAMETER) => return FaultKind::InvalidParameter,
            _ => {}
        }
        match self.subcode.as_deref() {
            Some("TimedOut") => FaultKind::TimedOut,
            Some("InvalidSelectors") => FaultKind::InvalidSelectors,
            Some("AccessDenied") => FaultKind::AccessDenied,
            Some("EncodingLimit")
                if self
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.ends_with("MaxEnvelopeSize")) =>
            {
                FaultKind::EnvelopeTooBig
            }
            Some("InvalidMessageInformationHeader") | Some("InvalidHeader") => {
                FaultKind::InvalidHeader
            }
            Some("InvalidParameter") => FaultKind::InvalidParameter,
            Some("QuotaLimit") if self.mentions("concurrent shells") => FaultKind::ShellQuota,
            Some("QuotaLimit") if self.mentions("concurrent operations") => {
                FaultKind::OperationQuota
            }
            Some("QuotaLimit") if self.mentions("memory") => FaultKind::MemoryQuota,
            _ => FaultKind::Other,
        }
    }

    /// True when a quota of the WinRM service was hit (shells, operations, memory).
    pub fn is_quota(&self) -> bool {
        matches!(
            self.kind(),
            FaultKind::ShellQuota | FaultKind::OperationQuota | FaultKind::MemoryQuota
        ) || self.subcode.as_deref() == Some("QuotaLimit")
    }

    /// True when the message or reason contains `words` (ASCII case-insensitive).
    fn mentions(&self, words: &str) -> bool {
        let words = words.to_ascii_lowercase();
        [self.message.as_deref(), Some(self.reason.as_str())]
            .into_iter()
            .flatten()
            .any(|t| t.to_ascii_lowercase().contains(&words))
    }
}

impl fmt::Display for WsmanFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.subcode.as_deref().unwrap_or(&self.code))?;
        if let Some(c) = self.wsman_code {
            write!(f, " (code {c}, 0x{c:08X})")?;
        }
        let text = self.message.as_deref().unwrap_or(&self.reason);
        write!(f, ": {}", text.trim())
    }
}

/// Why a response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The server answered with a SOAP fault.
    #[error("WinRM fault {0}")]
    Fault(Box<WsmanFault>),
    /// The reply is not the WS-Man document we expected.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The reply answers another request.
    #[error("reply relates to {got:?}, but we sent {expected}")]
    WrongRelatesTo {
        /// Our MessageID.
        expected: String,
        /// The reply's RelatesTo, if any.
        got: Option<String>,
    },
}

fn malformed(s: impl Into<String>) -> ResponseError {
    ResponseError::Malformed(s.into())
}

/// A parsed reply envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    root: Element,
}

impl Envelope {
    /// Parse a reply; a SOAP fault in the body becomes `Err(Fault)`.
    pub fn parse(doc: &str) -> Result<Envelope, ResponseError> {
        let root = xml::parse(doc).map_err(|e| malformed(e.to_string()))?;
        if !root.is(ns::SOAP, "Envelope") {
            return Err(malformed(format!(
                "root element is {{{}}}{}, not a SOAP 1.2 Envelope",
                root.name.ns, root.name.local
            )));
        }
        let env = Envelope { root };
        if let Some(fault) = env.body()?.child(ns::SOAP, "Fault") {
            return Err(ResponseError::Fault(Box::new(read_fault(fault))));
        }
        Ok(env)
    }

    /// `s:Body`.
    pub fn body(&self) -> Result<&Element, ResponseError> {
        self.root
            .child(ns::SOAP, "Body")
            .ok_or_else(|| malformed("no s:Body"))
    }

    /// `wsa:Action` of the reply.
    pub fn action(&self) -> Option<&str> {
        self.header_text(ns::ADDRESSING, "Action")
    }

    /// `wsa:RelatesTo` of the reply.
    pub fn relates_to(&self) -> Option<&str> {
        self.header_text(ns::ADDRESSING, "RelatesTo")
    }

    fn header_text(&self, ns: &str, local: &str) -> Option<&str> {
        self.root
            .child(ns::SOAP, "Header")?
            .child(ns, local)
            .map(|e| e.text.trim())
    }

    /// Fail unless RelatesTo names our MessageID (compared case-insensitively: uuids).
    pub fn check_relates_to(&self, message_id: &str) -> Result<(), ResponseError> {
        match self.relates_to() {
            Some(got) if got.eq_ignore_ascii_case(message_id) => Ok(()),
            got => Err(ResponseError::WrongRelatesTo {
                expected: message_id.to_string(),
                got: got.map(str::to_string),
            }),
        }
    }
}

/// Parse a reply to the request with `message_id`, checking RelatesTo and faults.
pub fn parse_reply(doc: &str, message_id: &str) -> Result<Envelope, ResponseError> {
    // A fault is reported even if its RelatesTo is off: its content matters more than the id.
    let env = Envelope::parse(doc)?;
    env.check_relates_to(message_id)?;
    Ok(env)
}

/// Extract a SOAP fault from any document, if it contains one.
pub fn parse_fault(doc: &str) -> Option<WsmanFault> {
    let root = xml::parse(doc).ok()?;
    root.find(ns::SOAP, "Fault").map(read_fault)
}

fn qname_local(v: &str) -> String {
    let v = v.trim();
    v.rsplit_once(':').map_or(v, |(_, l)| l).to_string()
}

fn read_fault(fault: &Element) -> WsmanFault {
    let code_el = fault.child(ns::SOAP, "Code");
    let code = code_el
        .and_then(|c| c.child(ns::SOAP, "Value"))
        .map(|v| qname_local(&v.text))
        .unwrap_or_default();
    let subcode = code_el
        .and_then(|c| c.child(ns::SOAP, "Subcode"))
        .and_then(|s| s.child(ns::SOAP, "Value"))
        .map(|v| qname_local(&v.text));
    let reason = fault
        .child(ns::SOAP, "Reason")
        .and_then(|r| r.child(ns::SOAP, "Text"))
        .map(|t| t.text.trim().to_string())
        .unwrap_or_default();
    let detail_el = fault.child(ns::SOAP, "Detail");
    let wsf = detail_el.and_then(|d| d.find(ns::WSMAN_FAULT, "WSManFault"));
    // Current Windows sends some faults (quotas among them) as a CIM error instead; its
    // namespace names the WMI class path, so it is found by local name.
    let cim = detail_el.and_then(|d| d.find_local("MSFT_WmiError"));
    let cim_field = |name: &str| {
        cim.and_then(|c| c.children.iter().find(|e| e.name.local == name))
            .map(|e| e.text.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let wsman_code = wsf
        .and_then(|w| w.attr("Code"))
        .and_then(parse_u32_code)
        .or_else(|| cim_field("error_Code").as_deref().and_then(parse_u32_code));
    let machine = wsf.and_then(|w| w.attr("Machine")).map(str::to_string);
    let message = wsf
        .and_then(|w| w.child(ns::WSMAN_FAULT, "Message"))
        .map(all_text)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| cim_field("Message"))
        .or_else(|| cim_field("error_WindowsErrorMessage"));
    let detail = detail_el
        .and_then(|d| d.child(ns::WSMAN, "FaultDetail"))
        .map(|d| d.text.trim().to_string());
    WsmanFault {
        code,
        subcode,
        reason,
        wsman_code,
        machine,
        message,
        detail,
    }
}

fn all_text(e: &Element) -> String {
    let mut s = e.text.clone();
    for c in &e.children {
        s.push_str(&all_text(c));
    }
    s
}

/// Parse a Win32/HRESULT number that may be written unsigned, negative (as a signed i32) or hex.
pub fn parse_u32_code(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(h, 16).ok();
    }
    if let Ok(v) = s.parse::<u32>() {
        return Some(v);
    }
    s.parse::<i32>().ok().map(|v| v as u32)
}

/// What a Create of a shell returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCreated {
    /// The shell id to put in the selectors of later requests.
    pub shell_id: String,
}

/// Parse the reply to a Create.
pub fn parse_create(doc: &str, message_id: &str) -> Result<ShellCreated, ResponseError> {
    let env = parse_reply(doc, message_id)?;
    let body = env.body()?;
    let from_shell = body
        .find(ns::SHELL, "ShellId")
        .map(|e| e.text.trim().to_string());
    let from_selector = body
        .find(ns::WSMAN, "SelectorSet")
        .and_then(|s| {
            s.children_named(ns::WSMAN, "Selector")
                .find(|e| e.attr("Name") == Some("ShellId"))
        })
        .map(|e| e.text.trim().to_string());
    let shell_id = from_shell
        .or(from_selector)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("Create reply has no ShellId"))?;
    Ok(ShellCreated { shell_id })
}

/// Parse the reply to a Command: the command id.
pub fn parse_command(doc: &str, message_id: &str) -> Result<String, ResponseError> {
    let env = parse_reply(doc, message_id)?;
    env.body()?
        .find(ns::SHELL, "CommandId")
        .map(|e| e.text.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("Command reply has no CommandId"))
}

/// Parse a reply whose body carries nothing we need (Send, Signal, Delete).
pub fn parse_empty(doc: &str, message_id: &str) -> Result<(), ResponseError> {
    parse_reply(doc, message_id).map(|_| ())
}

/// One `rsp:Stream` of a Receive reply, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChunk {
    /// `stdout`, `stderr`, …
    pub name: String,
    /// The command it belongs to (absent for shell-level streams).
    pub command_id: Option<String>,
    /// The decoded bytes (may be empty).
    pub data: Vec<u8>,
    /// The stream has ended.
    pub end: bool,
}

/// The state of a command in a Receive reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandState {
    /// The command.
    pub command_id: Option<String>,
    /// The State URI (…/CommandState/Done, …/Running, …/Pending).
    pub state: String,
    /// Exit code once done; u32 because Windows installers exit with HRESULTs like 0x80240017.
    pub exit_code: Option<u32>,
}

impl CommandState {
    /// True once the process has exited.
    pub fn is_done(&self) -> bool {
        self.state == ns::STATE_DONE
    }
}

/// Everything one Receive reply carried.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiveOutput {
    /// Output chunks in the order the server sent them.
    pub chunks: Vec<StreamChunk>,
    /// The command state, when reported.
    pub state: Option<CommandState>,
}

impl ReceiveOutput {
    /// All bytes of one stream in this reply.
    pub fn stream(&self, name: &str) -> Vec<u8> {
        self.chunks
            .iter()
            .filter(|c| c.name == name)
            .flat_map(|c| c.data.iter().copied())
            .collect()
    }

    /// True when the command is done.
    pub fn is_done(&self) -> bool {
        self.state.as_ref().is_some_and(CommandState::is_done)
    }
}

/// Parse the reply to a Receive.
pub fn parse_receive(doc: &str, message_id: &str) -> Result<ReceiveOutput, ResponseError> {
    let env = parse_reply(doc, message_id)?;
    let body = env.body()?;
    let resp = body
        .child(ns::SHELL, "ReceiveResponse")
        .ok_or_else(|| malformed("Receive reply has no rsp:ReceiveResponse"))?;
    let mut out = ReceiveOutput::default();
    for s in resp.children_named(ns::SHELL, "Stream") {
        // An empty Name would file the bytes under no stream: the caller would drop them silently.
        let name = s
            .attr("Name")
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| malformed("rsp:Stream without Name"))?
            .to_string();
        let text: String = s.text.chars().filter(|c| !c.is_whitespace()).collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| malformed(format!("stream {name} is not base64: {e}")))?;
        out.chunks.push(StreamChunk {
            name,
            command_id: s.attr("CommandId").map(str::to_string),
            data,
            end: s
                .attr("End")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        });
    }
    if let Some(cs) = resp.child(ns::SHELL, "CommandState") {
        let exit_code = match cs.child(ns::SHELL, "ExitCode") {
            Some(e) => Some(parse_u32_code(&e.text).ok_or_else(|| {
                malformed(format!("ExitCode {:?} is not a number", e.text.trim()))
            })?),
            None => None,
        };
        out.state = Some(CommandState {
            command_id: cs.attr("CommandId").map(str::to_string),
            state: cs
                .attr("State")
                .ok_or_else(|| malformed("rsp:CommandState without State"))?
                .to_string(),
            exit_code,
        });
    }
    Ok(out)
}

/// The WinRM service limits a client cares about (from a Get of the config resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// MaxEnvelopeSizekb: the largest envelope the server accepts or sends.
    pub max_envelope_size_kb: u32,
    /// MaxTimeoutms: the largest OperationTimeout the server honours.
    pub max_timeout_ms: Option<u64>,
    /// Winrs/MaxShellsPerUser.
    pub max_shells_per_user: Option<u64>,
    /// Winrs/MaxMemoryPerShellMB.
    pub max_memory_per_shell_mb: Option<u64>,
}

/// Parse the reply to a Get of [`ns::RESOURCE_CONFIG`].
pub fn parse_config(doc: &str, message_id: &str) -> Result<ServiceConfig, ResponseError> {
    let env = parse_reply(doc, message_id)?;
    let cfg = env
        .body()?
        .child(ns::CONFIG, "Config")
        .ok_or_else(|| malformed("Get reply has no cfg:Config"))?;
    let num = |parent: Option<&Element>, name: &str| -> Option<u64> {
        parent?.child(ns::CONFIG, name)?.text.trim().parse().ok()
    };
    let max_env = num(Some(cfg), "MaxEnvelopeSizekb")
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| malformed("cfg:MaxEnvelopeSizekb missing or not a number"))?;
    let winrs = cfg.child(ns::CONFIG, "Winrs");
    Ok(ServiceConfig {
        max_envelope_size_kb: max_env,
        max_timeout_ms: num(Some(cfg), "MaxTimeoutms"),
        max_shells_per_user: num(winrs, "MaxShellsPerUser"),
        max_memory_per_shell_mb: num(winrs, "MaxMemoryPerShellMB"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hresult_exit_codes_survive() {
        assert_eq!(parse_u32_code("2149842967"), Some(0x8024_0017));
        assert_eq!(parse_u32_code("-2145124329"), Some(0x8024_0017));
        assert_eq!(parse_u32_code("0x80240017"), Some(0x8024_0017));
        let doc = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:RelatesTo>uuid:1</a:RelatesTo></s:Header><s:Body><rsp:ReceiveResponse><rsp:CommandState CommandId="C" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>2149842967</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse></s:Body></s:Envelope>"#;
        let out = parse_receive(doc, "uuid:1").unwrap();
        assert_eq!(out.state.unwrap().exit_code, Some(0x8024_0017));
    }

    fn fault_doc(subcode: &str, code: u32, text: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:RelatesTo>uuid:9</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{text}</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}" Machine="srv01"><f:Message>{text}</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#
        )
    }

    #[test]
    fn faults_are_classified() {
        let cases = [
            (
                "w:AccessDenied",
                5,
                "Access is denied. ",
                FaultKind::AccessDenied,
            ),
            (
                "w:QuotaLimit",
                CODE_SHELL_QUOTA,
                "too many shells",
                FaultKind::ShellQuota,
            ),
            (
                "w:QuotaLimit",
                CODE_OPERATION_QUOTA,
                "too many ops",
                FaultKind::OperationQuota,
            ),
            (
                "w:EncodingLimit",
                CODE_ENVELOPE_TOO_BIG,
                "too big",
                FaultKind::EnvelopeTooBig,
            ),
            (
                "w:TimedOut",
                CODE_TIMED_OUT,
                "timed out",
                FaultKind::TimedOut,
            ),
            (
                "w:InternalError",
                1603,
                "Fatal error during installation.",
                FaultKind::Other,
            ),
        ];
        for (sub, code, text, kind) in cases {
            let Err(ResponseError::Fault(f)) = parse_empty(&fault_doc(sub, code, text), "uuid:9")
            else {
                panic!("{sub}: not a fault");
            };
            assert_eq!(f.kind(), kind, "{sub} {code}");
            assert_eq!(f.wsman_code, Some(code));
            assert_eq!(f.machine.as_deref(), Some("srv01"));
            assert!(f.to_string().contains(text.trim()), "{f}");
        }
    }

    /// The shell quota as current Windows sends it: subcode QuotaLimit and a CIM MSFT_WmiError
    /// detail (no f:WSManFault), its code in error_Code.
    const CIM_SHELL_QUOTA: &str = r#"<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:RelatesTo>uuid:9</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:QuotaLimit</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the request. This user is allowed a maximum number of 30 concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. </s:Text></s:Reason><s:Detail><p:MSFT_WmiError b:IsCIM_Error="true" xmlns:b="http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/windows/winrm/MSFT_WmiError" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:MSFT_WmiError_Type"><p:CIMStatusCode xsi:type="cim:cimUnsignedInt">27</p:CIMStatusCode><p:CIMStatusCodeDescription xsi:type="cim:cimString" xsi:nil="true"/><p:ErrorSource xsi:type="cim:cimString" xsi:nil="true"/><p:ErrorSourceFormat xsi:type="cim:cimUnsignedShort">0</p:ErrorSourceFormat><p:ErrorType xsi:type="cim:cimUnsignedShort">0</p:ErrorType><p:Message xsi:type="cim:cimString">The WS-Management service cannot process the request. This user is allowed a maximum number of 30 concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. </p:Message><p:MessageID xsi:type="cim:cimString">HRESULT 0x803381a5</p:MessageID><p:PerceivedSeverity xsi:type="cim:cimUnsignedShort">0</p:PerceivedSeverity><p:ProbableCause xsi:type="cim:cimUnsignedShort">0</p:ProbableCause><p:error_Category xsi:type="cim:cimUnsignedInt">30</p:error_Category><p:error_Code xsi:type="cim:cimUnsignedInt">2150859173</p:error_Code><p:error_Type xsi:type="cim:cimString">HRESULT</p:error_Type><p:error_WindowsErrorMessage xsi:type="cim:cimString">The WS-Management service cannot process the request. This user is allowed a maximum number of 30 concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. </p:error_WindowsErrorMessage></p:MSFT_WmiError></s:Detail></s:Fault></s:Body></s:Envelope>"#;

    #[test]
    fn a_cim_error_fault_gives_its_code_and_message() {
        let Err(ResponseError::Fault(f)) = parse_empty(CIM_SHELL_QUOTA, "uuid:9") else {
            panic!("not a fault");
        };
        assert_eq!(f.wsman_code, Some(CODE_SHELL_QUOTA));
        assert_eq!(f.subcode.as_deref(), Some("QuotaLimit"));
        assert!(
            f.message
                .as_deref()
                .is_some_and(|m| m.contains("maximum number of 30 concurrent shells")),
            "{f:?}"
        );
        assert_eq!(f.kind(), FaultKind::ShellQuota);
        assert!(f.is_quota());
        assert!(f.to_string().contains("0x803381A5"), "{f}");
    }

    #[test]
    fn quota_faults_are_told_apart_by_code_or_by_text() {
        // The CIM form without error_Code: the subcode and the text still say which quota.
        let no_code = CIM_SHELL_QUOTA.replace(
            r#"<p:error_Code xsi:type="cim:cimUnsignedInt">2150859173</p:error_Code>"#,
            "",
        );
        let Err(ResponseError::Fault(f)) = parse_empty(&no_code, "uuid:9") else {
            panic!("not a fault");
        };
        assert_eq!(f.wsman_code, None);
        assert_eq!(f.kind(), FaultKind::ShellQuota);

        let memory = "The WS-Management service cannot process the request. The shell exceeded its memory quota (MaxMemoryPerShellMB = 1024). ";
        let Err(ResponseError::Fault(f)) = parse_empty(
            &fault_doc("w:QuotaLimit", CODE_QUOTA_LIMIT, memory),
            "uuid:9",
        ) else {
            panic!("not a fault");
        };
        assert_eq!(f.kind(), FaultKind::MemoryQuota);
        assert!(f.is_quota());
    }

    /// Regression (found by tests/fuzz_winrm.rs): `Name=""` was accepted, and the stream's bytes
    /// belonged to no stream the client reads.
    #[test]
    fn a_stream_without_a_name_is_malformed() {
        for attr in ["", " Name=\"\"", " Name=\" \""] {
            let doc = format!(
                r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:RelatesTo>uuid:1</a:RelatesTo></s:Header><s:Body><rsp:ReceiveResponse><rsp:Stream{attr} CommandId="C">aGk=</rsp:Stream></rsp:ReceiveResponse></s:Body></s:Envelope>"#
            );
            let err = parse_receive(&doc, "uuid:1").unwrap_err();
            assert_eq!(err, malformed("rsp:Stream without Name"), "{attr:?}");
        }
    }

    #[test]
    fn other_prefixes_and_wrong_relates_to() {
        let doc = r#"<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><RelatesTo xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">uuid:2</RelatesTo></Header><Body><x:CommandResponse xmlns:x="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><x:CommandId>ABC</x:CommandId></x:CommandResponse></Body></Envelope>"#;
        assert_eq!(parse_command(doc, "uuid:2").unwrap(), "ABC");
        assert!(matches!(
            parse_command(doc, "uuid:3"),
            Err(ResponseError::WrongRelatesTo { .. })
        ));
        // Same local names in a foreign namespace are not accepted.
        let fake = doc.replace("windows/shell", "windows/other");
        assert!(matches!(
            parse_command(&fake, "uuid:2"),
            Err(ResponseError::Malformed(_))
        ));
    }
}
