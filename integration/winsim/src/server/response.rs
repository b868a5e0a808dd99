//! Writing WS-Management responses and faults the way Windows Server writes them (sans-IO).
//!
//! Every envelope here is modelled on a recorded exchange with a real Windows Server
//! (`shared/fixtures/winrm-recorded`): the same prefixes (`s: a: x: w: rsp: p:`), the same namespace
//! declarations per action, the same element order, the same fault texts. Clients are written
//! against those bytes, so the simulator must not be "equivalent", it must be the same shape.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

const NS_S: &str = "http://www.w3.org/2003/05/soap-envelope";
const NS_A: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
const NS_X: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
const NS_E: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing";
const NS_N: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
const NS_W: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
const NS_RSP: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
const NS_P: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
const SHELL_URI: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
/// The resource URI of cmd shells, echoed in Create responses.
pub const CMD_RESOURCE_URI: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";

/// Which namespace declarations a response envelope carries; Windows varies them per action.
#[derive(Clone, Copy)]
enum Namespaces {
    /// Create, Command, Send, Signal: `s a x w rsp p`.
    TransferShell,
    /// Receive: `s a w rsp p` (no `x`).
    Receive,
    /// Delete: `s a w p`.
    Delete,
    /// Get: `s a x w p`.
    Get,
    /// Faults: `s a x e n w p`.
    Fault,
}

fn envelope(ns: Namespaces, action: &str, relates_to: &str, body: &str) -> String {
    let decls: &[(&str, &str)] = match ns {
        Namespaces::TransferShell => &[
            ("a", NS_A),
            ("x", NS_X),
            ("w", NS_W),
            ("rsp", NS_RSP),
            ("p", NS_P),
        ],
        Namespaces::Receive => &[("a", NS_A), ("w", NS_W), ("rsp", NS_RSP), ("p", NS_P)],
        Namespaces::Delete => &[("a", NS_A), ("w", NS_W), ("p", NS_P)],
        Namespaces::Get => &[("a", NS_A), ("x", NS_X), ("w", NS_W), ("p", NS_P)],
        Namespaces::Fault => &[
            ("a", NS_A),
            ("x", NS_X),
            ("e", NS_E),
            ("n", NS_N),
            ("w", NS_W),
            ("p", NS_P),
        ],
    };
    let mut out = String::with_capacity(900 + body.len());
    out.push_str(&format!(r#"<s:Envelope xml:lang="en-US" xmlns:s="{NS_S}""#));
    for (prefix, uri) in decls {
        out.push_str(&format!(r#" xmlns:{prefix}="{uri}""#));
    }
    out.push_str(&format!(
        "><s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{}</a:MessageID><a:To>{ANONYMOUS}</a:To><a:RelatesTo>{}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>",
        new_id(),
        escape(relates_to)
    ));
    out
}

/// A fresh upper-case GUID, as Windows prints ShellIds, CommandIds and MessageIDs.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase()
}

/// Escape text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// What a shell looks like in a CreateResponse.
pub struct ShellInfo<'a> {
    pub shell_id: &'a str,
    /// The `a:Address` Windows echoes: the URL the client posted to.
    pub address: &'a str,
    pub owner: &'a str,
    pub client_ip: &'a str,
    /// The environment the client asked for, echoed as Windows does.
    pub environment: &'a [(String, String)],
    pub working_directory: Option<&'a str>,
    /// IdleTimeOut in seconds (Windows' default is 7200).
    pub idle_timeout_secs: f64,
}

/// `x:ResourceCreated` + `rsp:Shell`, exactly as Windows answers a shell Create.
pub fn create_response(relates_to: &str, shell: &ShellInfo<'_>) -> String {
    let id = escape(shell.shell_id);
    let body = format!(
        r#"<x:ResourceCreated><a:Address>{address}</a:Address><a:ReferenceParameters><w:ResourceURI>{CMD_RESOURCE_URI}</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated><rsp:Shell xmlns:rsp="{NS_RSP}"><rsp:ShellId>{id}</rsp:ShellId><rsp:ResourceUri>{CMD_RESOURCE_URI}</rsp:ResourceUri><rsp:Owner>{owner}</rsp:Owner><rsp:ClientIP>{ip}</rsp:ClientIP>{environment}{workdir}<rsp:IdleTimeOut>PT{idle:.3}S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"#,
        address = escape(shell.address),
        owner = escape(shell.owner),
        ip = escape(shell.client_ip),
        environment = environment_xml(shell.environment),
        workdir = shell
            .working_directory
            .map(|w| format!("<rsp:WorkingDirectory>{}</rsp:WorkingDirectory>", escape(w)))
            .unwrap_or_default(),
        idle = shell.idle_timeout_secs,
    );
    envelope(
        Namespaces::TransferShell,
        &format!("{NS_X}/CreateResponse"),
        relates_to,
        &body,
    )
}

fn environment_xml(vars: &[(String, String)]) -> String {
    if vars.is_empty() {
        return String::new();
    }
    let mut out = String::from("<rsp:Environment>");
    for (name, value) in vars {
        out.push_str(&format!(
            r#"<rsp:Variable Name="{}">{}</rsp:Variable>"#,
            escape(name),
            escape(value)
        ));
    }
    out.push_str("</rsp:Environment>");
    out
}

pub fn command_response(relates_to: &str, command_id: &str) -> String {
    let body = format!(
        "<rsp:CommandResponse><rsp:CommandId>{}</rsp:CommandId></rsp:CommandResponse>",
        escape(command_id)
    );
    envelope(
        Namespaces::TransferShell,
        &format!("{SHELL_URI}/CommandResponse"),
        relates_to,
        &body,
    )
}

pub fn send_response(relates_to: &str) -> String {
    envelope(
        Namespaces::TransferShell,
        &format!("{SHELL_URI}/SendResponse"),
        relates_to,
        "<rsp:SendResponse/>",
    )
}

pub fn signal_response(relates_to: &str) -> String {
    envelope(
        Namespaces::TransferShell,
        &format!("{SHELL_URI}/SignalResponse"),
        relates_to,
        "<rsp:SignalResponse/>",
    )
}

pub fn delete_response(relates_to: &str) -> String {
    envelope(
        Namespaces::Delete,
        &format!("{NS_X}/DeleteResponse"),
        relates_to,
        "",
    )
}

/// One Receive answer: output chunks, then (when the command finished) the End markers and ExitCode.
pub struct ReceiveChunk<'a> {
    pub command_id: &'a str,
    pub stdout: &'a [u8],
    pub stderr: &'a [u8],
    /// `Some(code)` when this answer completes the command.
    pub exit_code: Option<u32>,
}

pub fn receive_response(relates_to: &str, chunk: &ReceiveChunk<'_>) -> String {
    let id = escape(chunk.command_id);
    let mut body = String::from("<rsp:ReceiveResponse>");
    for (name, data) in [("stdout", chunk.stdout), ("stderr", chunk.stderr)] {
        if !data.is_empty() {
            body.push_str(&format!(
                r#"<rsp:Stream Name="{name}" CommandId="{id}">{}</rsp:Stream>"#,
                B64.encode(data)
            ));
        }
    }
    match chunk.exit_code {
        Some(code) => {
            body.push_str(&format!(
                r#"<rsp:Stream Name="stdout" CommandId="{id}" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="{id}" End="true"></rsp:Stream><rsp:CommandState CommandId="{id}" State="{SHELL_URI}/CommandState/Done"><rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState>"#
            ));
        }
        None => body.push_str(&format!(
            r#"<rsp:CommandState CommandId="{id}" State="{SHELL_URI}/CommandState/Running"></rsp:CommandState>"#
        )),
    }
    body.push_str("</rsp:ReceiveResponse>");
    envelope(
        Namespaces::Receive,
        &format!("{SHELL_URI}/ReceiveResponse"),
        relates_to,
        &body,
    )
}

/// The WinRM service configuration (`wsman/1/config` Get); clients read MaxEnvelopeSizekb from it.
pub fn config_response(relates_to: &str, max_envelope_size_kb: u32) -> String {
    let body = format!(
        r#"<cfg:Config xmlns:cfg="http://schemas.microsoft.com/wbem/wsman/1/config"><cfg:MaxEnvelopeSizekb>{max_envelope_size_kb}</cfg:MaxEnvelopeSizekb><cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems><cfg:MaxProviderRequests>4294967295</cfg:MaxProviderRequests><cfg:Client><cfg:NetworkDelayms>5000</cfg:NetworkDelayms><cfg:URLPrefix>wsman</cfg:URLPrefix><cfg:AllowUnencrypted>false</cfg:AllowUnencrypted><cfg:Auth><cfg:Basic>true</cfg:Basic><cfg:Digest>true</cfg:Digest><cfg:Kerberos>true</cfg:Kerberos><cfg:Negotiate>true</cfg:Negotiate><cfg:Certificate>true</cfg:Certificate><cfg:CredSSP>false</cfg:CredSSP></cfg:Auth><cfg:DefaultPorts><cfg:HTTP>5985</cfg:HTTP><cfg:HTTPS>5986</cfg:HTTPS></cfg:DefaultPorts><cfg:TrustedHosts></cfg:TrustedHosts></cfg:Client><cfg:Service><cfg:RootSDDL>O:NSG:BAD:P(A;;GA;;;BA)(A;;GR;;;IU)S:P(AU;FA;GA;;;WD)(AU;SA;GXGW;;;WD)</cfg:RootSDDL><cfg:MaxConcurrentOperations>4294967295</cfg:MaxConcurrentOperations><cfg:MaxConcurrentOperationsPerUser>1500</cfg:MaxConcurrentOperationsPerUser><cfg:EnumerationTimeoutms>240000</cfg:EnumerationTimeoutms><cfg:MaxConnections>300</cfg:MaxConnections><cfg:MaxPacketRetrievalTimeSeconds>120</cfg:MaxPacketRetrievalTimeSeconds><cfg:AllowUnencrypted>false</cfg:AllowUnencrypted><cfg:Auth><cfg:Basic>true</cfg:Basic><cfg:Kerberos>true</cfg:Kerberos><cfg:Negotiate>true</cfg:Negotiate><cfg:Certificate>false</cfg:Certificate><cfg:CredSSP>false</cfg:CredSSP><cfg:CbtHardeningLevel>Relaxed</cfg:CbtHardeningLevel></cfg:Auth><cfg:DefaultPorts><cfg:HTTP>5985</cfg:HTTP><cfg:HTTPS>5986</cfg:HTTPS></cfg:DefaultPorts><cfg:IPv4Filter>*</cfg:IPv4Filter><cfg:IPv6Filter>*</cfg:IPv6Filter><cfg:EnableCompatibilityHttpListener>false</cfg:EnableCompatibilityHttpListener><cfg:EnableCompatibilityHttpsListener>false</cfg:EnableCompatibilityHttpsListener><cfg:CertificateThumbprint></cfg:CertificateThumbprint><cfg:AllowRemoteAccess>true</cfg:AllowRemoteAccess></cfg:Service><cfg:Winrs><cfg:AllowRemoteShellAccess>true</cfg:AllowRemoteShellAccess><cfg:IdleTimeout>7200000</cfg:IdleTimeout><cfg:MaxConcurrentUsers>2147483647</cfg:MaxConcurrentUsers><cfg:MaxShellRunTime>2147483647</cfg:MaxShellRunTime><cfg:MaxProcessesPerShell>2147483647</cfg:MaxProcessesPerShell><cfg:MaxMemoryPerShellMB>2147483647</cfg:MaxMemoryPerShellMB><cfg:MaxShellsPerUser>30</cfg:MaxShellsPerUser></cfg:Winrs></cfg:Config>"#
    );
    envelope(
        Namespaces::Get,
        &format!("{NS_X}/GetResponse"),
        relates_to,
        &body,
    )
}

/// A WS-Management fault as Windows words it. The `code` is what clients match on
/// (2150858793 TimedOut is "poll again", 2150858843 is "shell gone").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `s:Sender` or `s:Receiver`.
    pub sender: bool,
    /// The subcode with its prefix, e.g. `w:InvalidSelectors`.
    pub subcode: String,
    pub reason: String,
    /// `w:FaultDetail` URI, when Windows sends one.
    pub detail: Option<String>,
    pub code: u32,
    pub message: String,
    /// `a:Action` of the fault envelope: WS-Man faults use the wsman one, addressing faults their own.
    pub action: &'static str,
    /// How the detail carries `code` and `message`.
    pub form: DetailForm,
}

/// The two shapes of a fault's `s:Detail` that Windows sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailForm {
    /// `f:WSManFault Code=… Machine=…` with an `f:Message` (most faults, every Windows version).
    WsmanFault,
    /// A CIM `MSFT_WmiError` instance with `error_Code` and `Message` (current Windows' form for
    /// quota faults: clients that read only `f:WSManFault` find no code in it).
    CimError,
}

const WSMAN_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
/// ERROR_WSMAN_QUOTA_MAX_SHELLS (0x803381A5): MaxShellsPerUser.
pub const CODE_QUOTA_MAX_SHELLS: u32 = 2_150_859_173;
/// ERROR_WSMAN_QUOTA_LIMIT (0x8033803F): any other quota, e.g. MaxMemoryPerShellMB.
pub const CODE_QUOTA_LIMIT: u32 = 2_150_858_815;

/// The quota faults current Windows reports as CIM errors: MaxShellsPerUser and the shell memory
/// quota. Others (MaxConcurrentOperationsPerUser among them) keep the WSManFault form.
fn is_quota_code(code: u32) -> bool {
    matches!(code, CODE_QUOTA_MAX_SHELLS | CODE_QUOTA_LIMIT)
}

/// The CIM `MSFT_WmiError` detail current Windows sends for quota faults: the error code in
/// `error_Code` (and as `HRESULT 0x…` in MessageID), the text in `Message` and
/// `error_WindowsErrorMessage`; CIMStatusCode 27 is CIM_ERR_SERVER_LIMITS_EXCEEDED.
fn cim_error(code: u32, message: &str) -> String {
    format!(
        r#"<p:MSFT_WmiError b:IsCIM_Error="true" xmlns:b="http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/windows/winrm/MSFT_WmiError" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xsi:type="p:MSFT_WmiError_Type" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><p:CIMStatusCode xsi:type="cim:cimUnsignedInt">27</p:CIMStatusCode><p:CIMStatusCodeDescription xsi:type="cim:cimString" xsi:nil="true" /><p:ErrorSource xsi:type="cim:cimString" xsi:nil="true" /><p:ErrorSourceFormat xsi:type="cim:cimUnsignedShort">0</p:ErrorSourceFormat><p:ErrorType xsi:type="cim:cimUnsignedShort">0</p:ErrorType><p:Message xsi:type="cim:cimString">{message}</p:Message><p:MessageID xsi:type="cim:cimString">HRESULT 0x{code:08x}</p:MessageID><p:OtherErrorSourceFormat xsi:type="cim:cimString" xsi:nil="true" /><p:OtherErrorType xsi:type="cim:cimString" xsi:nil="true" /><p:OwningEntity xsi:type="cim:cimString" xsi:nil="true" /><p:PerceivedSeverity xsi:type="cim:cimUnsignedShort">0</p:PerceivedSeverity><p:ProbableCause xsi:type="cim:cimUnsignedShort">0</p:ProbableCause><p:ProbableCauseDescription xsi:type="cim:cimString" xsi:nil="true" /><p:error_Category xsi:type="cim:cimUnsignedInt">30</p:error_Category><p:error_Code xsi:type="cim:cimUnsignedInt">{code}</p:error_Code><p:error_Type xsi:type="cim:cimString">HRESULT</p:error_Type><p:error_WindowsErrorMessage xsi:type="cim:cimString">{message}</p:error_WindowsErrorMessage></p:MSFT_WmiError>"#
    )
}
const ADDRESSING_FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";

impl Fault {
    /// Receive found no output within OperationTimeout: the client must simply poll again.
    pub fn timed_out() -> Fault {
        let text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ";
        Fault {
            sender: false,
            subcode: "w:TimedOut".into(),
            reason: text.into(),
            detail: None,
            code: 2_150_858_793,
            message: text.into(),
            action: WSMAN_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// The command id in the request names no command of this shell.
    pub fn unknown_command() -> Fault {
        Fault {
            sender: true,
            subcode: "w:InvalidSelectors".into(),
            reason: "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ".into(),
            detail: Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors".into()),
            code: 2_150_858_843,
            message: "The Windows Remote Shell received a request to perform an operation on a command identifier that does not exist. Either the command has completed execution or the client specified an invalid command identifier. ".into(),
            action: WSMAN_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// The ShellId selector names no open shell (deleted, or lost in a reboot).
    pub fn unknown_shell() -> Fault {
        Fault {
            sender: true,
            subcode: "w:InvalidSelectors".into(),
            reason: "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ".into(),
            detail: Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors".into()),
            code: 2_150_858_843,
            message: "The request for the Windows Remote Shell with ShellId {id} failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation. ".into(),
            action: WSMAN_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// Like [`Fault::unknown_shell`] with the id filled into the message as Windows does.
    pub fn unknown_shell_id(id: &str) -> Fault {
        let mut f = Fault::unknown_shell();
        f.message = f.message.replace("{id}", &escape(id));
        f
    }

    /// MaxShellsPerUser exceeded: the user must close shells (or raise the quota).
    pub fn too_many_shells(limit: usize) -> Fault {
        let text = format!(
            "The WS-Management service cannot process the request. This user is allowed a maximum number of {limit} concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. "
        );
        Fault {
            sender: false,
            subcode: "w:QuotaLimit".into(),
            reason: text.clone(),
            detail: None,
            code: CODE_QUOTA_MAX_SHELLS,
            message: escape(&text),
            action: WSMAN_FAULT,
            form: DetailForm::CimError,
        }
    }

    /// A SOAP header Windows cannot accept (negative OperationTimeout, missing MessageID...).
    pub fn bad_header(what: &str) -> Fault {
        Fault {
            sender: true,
            subcode: "a:InvalidMessageInformationHeader".into(),
            reason: "The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers. ".into(),
            detail: None,
            code: 2_150_858_767,
            message: format!("The WS-Management service cannot process the request. {what} "),
            action: ADDRESSING_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// The body is not XML Windows can read.
    pub fn malformed(what: &str) -> Fault {
        Fault {
            sender: true,
            subcode: "w:SchemaValidationError".into(),
            reason: "The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and retry. ".into(),
            detail: None,
            code: 2_150_858_817,
            message: format!("The WS-Management service cannot process the request because the XML is invalid. {what} "),
            action: WSMAN_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// An action the simulated service does not implement.
    pub fn action_not_supported(action: &str) -> Fault {
        Fault {
            sender: true,
            subcode: "a:ActionNotSupported".into(),
            reason: "The action is not supported by the service. ".into(),
            detail: Some(action.to_string()),
            code: 2_150_858_771,
            message: format!(
                "The WS-Management service cannot process the request because the action {action} is not supported. "
            ),
            action: ADDRESSING_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// No plugin serves this resource URI (e.g. a PowerShell remoting pool: winsim speaks WinRS
    /// cmd shells only).
    pub fn unknown_resource(uri: &str) -> Fault {
        Fault {
            sender: true,
            subcode: "w:DestinationUnreachable".into(),
            reason: "The WS-Management service cannot process the request because the resource URI was not found. ".into(),
            detail: Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI".into()),
            code: 2_150_858_752,
            message: format!(
                "The WS-Management service cannot process the request. The resource URI ({}) was not found in the WS-Management catalog. ",
                escape(uri)
            ),
            action: WSMAN_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// Error 87 from the shell plugin (a malformed Send chunk, a Receive without CommandId).
    pub fn invalid_parameter() -> Fault {
        Fault {
            sender: true,
            subcode: "w:InvalidParameter".into(),
            reason: "The parameter is incorrect. ".into(),
            detail: Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue".into()),
            code: 87,
            message: r#"<f:ProviderFault provider="Shell cmd plugin" path="%systemroot%\system32\winrscmd.dll">The parameter is incorrect. </f:ProviderFault>"#.into(),
            action: WSMAN_FAULT,
            form: DetailForm::WsmanFault,
        }
    }

    /// A fault the host model's plan asked for, with its own code and text. The shell and memory
    /// quota codes come in the form current Windows sends them (subcode QuotaLimit, a CIM error
    /// detail).
    pub fn injected(code: u32, text: &str) -> Fault {
        let quota = is_quota_code(code);
        Fault {
            sender: false,
            subcode: if quota {
                "w:QuotaLimit"
            } else {
                "w:InternalError"
            }
            .into(),
            reason: format!("{text} "),
            detail: None,
            code,
            message: escape(text),
            action: WSMAN_FAULT,
            form: if quota {
                DetailForm::CimError
            } else {
                DetailForm::WsmanFault
            },
        }
    }

    /// The whole fault envelope, relating to the request's MessageID when it had one.
    pub fn render(&self, relates_to: Option<&str>, machine: &str) -> String {
        let detail = self
            .detail
            .as_ref()
            .map(|d| format!("<w:FaultDetail>{}</w:FaultDetail>", escape(d)))
            .unwrap_or_default();
        // `message` may carry markup (ProviderFault) exactly as Windows nests it; the other
        // constructors escape what they take from outside.
        let error = match self.form {
            DetailForm::WsmanFault => format!(
                r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}" Machine="{machine}"><f:Message>{message}</f:Message></f:WSManFault>"#,
                code = self.code,
                machine = escape(machine),
                message = self.message,
            ),
            DetailForm::CimError => cim_error(self.code, &self.message),
        };
        let body = format!(
            r#"<s:Fault><s:Code><s:Value>{side}</s:Value><s:Subcode><s:Value>{sub}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason><s:Detail>{detail}{error}</s:Detail></s:Fault>"#,
            side = if self.sender {
                "s:Sender"
            } else {
                "s:Receiver"
            },
            sub = self.subcode,
            reason = escape(&self.reason),
        );
        let relates = relates_to.unwrap_or("");
        envelope(Namespaces::Fault, self.action, relates, &body)
    }
}
