//! Building WS-Management requests (pure: strings in, strings out, no IO).
//!
//! The header layout follows what Windows itself accepts from pypsrp (see the recorded exchanges in
//! `shared/fixtures/winrm-recorded`): `wsman:OptionSet` lives INSIDE `s:Header` (one Rust client puts
//! it in the body, which Windows silently ignores: code page and no-profile options are lost).

use std::time::Duration;

use base64::Engine as _;

use crate::ns;
use crate::xml::escape;

/// The per-endpoint values every request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// The endpoint URL (`http://host:5985/wsman`), sent as `wsa:To`.
    pub to: String,
    /// The resource the request addresses (the cmd shell for WinRS).
    pub resource_uri: String,
    /// Largest response we accept, in bytes (Windows default 153600; servers allow 150–4096 KB).
    pub max_envelope_size: u32,
    /// How long the server may hold a request (a Receive waits this long for output before it
    /// answers with a TimedOut fault). Our HTTP read timeout must be longer than this.
    pub operation_timeout: Duration,
    /// Locale for messages and data (`xml:lang`).
    pub locale: String,
    /// Optional `wsmv:SessionId` (`uuid:…`), which lets the server group requests in its logs.
    pub session_id: Option<String>,
}

impl Headers {
    /// Defaults as Windows' own client sends them: cmd shell, 150 KiB envelopes, 20 s timeout.
    pub fn new(to: impl Into<String>) -> Self {
        Headers {
            to: to.into(),
            resource_uri: ns::RESOURCE_CMD.to_string(),
            max_envelope_size: 153_600,
            operation_timeout: Duration::from_secs(20),
            locale: "en-US".to_string(),
            session_id: None,
        }
    }

    /// The same headers addressing another resource (e.g. the WinRM configuration).
    pub fn with_resource(&self, uri: &str) -> Self {
        Headers {
            resource_uri: uri.to_string(),
            ..self.clone()
        }
    }
}

/// A `wsman:Option` of an `OptionSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsOption {
    /// Option name, e.g. `WINRS_CODEPAGE`.
    pub name: String,
    /// Option value as text.
    pub value: String,
    /// Ask the server to fail rather than ignore an option it does not know.
    pub must_comply: bool,
}

impl WsOption {
    /// An option the server may ignore.
    pub fn new(name: &str, value: &str) -> Self {
        WsOption {
            name: name.into(),
            value: value.into(),
            must_comply: false,
        }
    }
}

/// What to ask for when creating a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSpec {
    /// Input stream names (`stdin`; PowerShell remoting adds `pr`).
    pub input_streams: String,
    /// Output stream names (`stdout stderr`).
    pub output_streams: String,
    /// A client-chosen shell id (PowerShell remoting only).
    pub shell_id: Option<String>,
    /// Idle time after which the server deletes the shell.
    pub idle_timeout: Option<Duration>,
    /// Maximum life of the shell.
    pub lifetime: Option<Duration>,
    /// A display name.
    pub name: Option<String>,
    /// Environment variables set for every command of the shell.
    pub environment: Vec<(String, String)>,
    /// Initial working directory.
    pub working_directory: Option<String>,
    /// Do not load the user profile (`WINRS_NOPROFILE`): faster, and avoids profile scripts.
    pub no_profile: bool,
    /// Console code page (`WINRS_CODEPAGE`); 65001 makes cmd.exe output UTF-8.
    pub codepage: Option<u32>,
    /// Further options, sent after the ones above.
    pub extra_options: Vec<WsOption>,
    /// PowerShell remoting's base64 `creationXml` (kept so PSRP exchanges can be expressed).
    pub creation_xml: Option<String>,
}

impl Default for ShellSpec {
    fn default() -> Self {
        ShellSpec {
            input_streams: "stdin".into(),
            output_streams: "stdout stderr".into(),
            shell_id: None,
            idle_timeout: None,
            lifetime: None,
            name: None,
            environment: Vec::new(),
            working_directory: None,
            no_profile: false,
            codepage: None,
            extra_options: Vec::new(),
            creation_xml: None,
        }
    }
}

/// A request ready to send: its MessageID (to check the reply's RelatesTo) and the XML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `uuid:…` as sent in `wsa:MessageID`.
    pub message_id: String,
    /// The `wsa:Action` URI.
    pub action: &'static str,
    /// The SOAP envelope.
    pub xml: String,
}

/// Format a duration as the xs:duration WS-Man expects (`PT20S`, `PT0.500S`).
pub fn xs_duration(d: Duration) -> String {
    let ms = d.subsec_millis();
    if ms == 0 {
        format!("PT{}S", d.as_secs())
    } else {
        format!("PT{}.{:03}S", d.as_secs(), ms)
    }
}

fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

fn envelope(
    h: &Headers,
    action: &'static str,
    options: &[WsOption],
    selectors: &[(&str, &str)],
    body: &str,
) -> Request {
    let message_id = new_message_id();
    let mut x = String::with_capacity(1600 + body.len());
    x.push_str(concat!(
        r#"<s:Envelope xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell""#,
        r#" xmlns:s="http://www.w3.org/2003/05/soap-envelope""#,
        r#" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing""#,
        r#" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd""#,
        r#" xmlns:wsmv="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header>"#
    ));
    let loc = escape(&h.locale);
    x.push_str(&format!(
        concat!(
            r#"<wsa:Action s:mustUnderstand="true">{action}</wsa:Action>"#,
            r#"<wsmv:DataLocale s:mustUnderstand="false" xml:lang="{loc}" />"#,
            r#"<wsman:Locale s:mustUnderstand="false" xml:lang="{loc}" />"#,
            r#"<wsman:MaxEnvelopeSize s:mustUnderstand="true">{max}</wsman:MaxEnvelopeSize>"#,
            r#"<wsa:MessageID>{mid}</wsa:MessageID>"#,
            r#"<wsman:OperationTimeout>{timeout}</wsman:OperationTimeout>"#,
            r#"<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">{anon}</wsa:Address></wsa:ReplyTo>"#,
            r#"<wsman:ResourceURI s:mustUnderstand="true">{res}</wsman:ResourceURI>"#,
        ),
        action = action,
        loc = loc,
        max = h.max_envelope_size,
        mid = message_id,
        timeout = xs_duration(h.operation_timeout),
        anon = ns::ANONYMOUS,
        res = escape(&h.resource_uri),
    ));
    if let Some(sid) = &h.session_id {
        x.push_str(&format!(
            r#"<wsmv:SessionId s:mustUnderstand="false">{}</wsmv:SessionId>"#,
            escape(sid)
        ));
    }
    x.push_str(&format!("<wsa:To>{}</wsa:To>", escape(&h.to)));
    if !options.is_empty() {
        x.push_str(r#"<wsman:OptionSet s:mustUnderstand="true">"#);
        for o in options {
            let mc = if o.must_comply {
                r#" MustComply="true""#
            } else {
                ""
            };
            x.push_str(&format!(
                r#"<wsman:Option{mc} Name="{}">{}</wsman:Option>"#,
                escape(&o.name),
                escape(&o.value)
            ));
        }
        x.push_str("</wsman:OptionSet>");
    }
    if !selectors.is_empty() {
        x.push_str("<wsman:SelectorSet>");
        for (k, v) in selectors {
            x.push_str(&format!(
                r#"<wsman:Selector Name="{}">{}</wsman:Selector>"#,
                escape(k),
                escape(v)
            ));
        }
        x.push_str("</wsman:SelectorSet>");
    }
    x.push_str("</s:Header>");
    if body.is_empty() {
        x.push_str("<s:Body />");
    } else {
        x.push_str("<s:Body>");
        x.push_str(body);
        x.push_str("</s:Body>");
    }
    x.push_str("</s:Envelope>");
    Request {
        message_id,
        action,
        xml: x,
    }
}

fn text_el(x: &mut String, name: &str, text: &str) {
    x.push_str(&format!("<{name}>{}</{name}>", escape(text)));
}

/// WS-Transfer Create of a shell.
pub fn create_shell(h: &Headers, spec: &ShellSpec) -> Request {
    let mut options = Vec::new();
    if spec.no_profile {
        options.push(WsOption {
            name: "WINRS_NOPROFILE".into(),
            value: "TRUE".into(),
            must_comply: true,
        });
    }
    if let Some(cp) = spec.codepage {
        options.push(WsOption::new("WINRS_CODEPAGE", &cp.to_string()));
    }
    options.extend(spec.extra_options.iter().cloned());

    let mut b = String::new();
    match &spec.shell_id {
        Some(id) => b.push_str(&format!(r#"<rsp:Shell ShellId="{}">"#, escape(id))),
        None => b.push_str("<rsp:Shell>"),
    }
    text_el(&mut b, "rsp:InputStreams", &spec.input_streams);
    text_el(&mut b, "rsp:OutputStreams", &spec.output_streams);
    if let Some(t) = spec.idle_timeout {
        text_el(&mut b, "rsp:IdleTimeOut", &xs_duration(t));
    }
    if let Some(t) = spec.lifetime {
        text_el(&mut b, "rsp:Lifetime", &xs_duration(t));
    }
    if let Some(n) = &spec.name {
        text_el(&mut b, "rsp:Name", n);
    }
    if !spec.environment.is_empty() {
        b.push_str("<rsp:Environment>");
        for (k, v) in &spec.environment {
            b.push_str(&format!(
                r#"<rsp:Variable Name="{}">{}</rsp:Variable>"#,
                escape(k),
                escape(v)
            ));
        }
        b.push_str("</rsp:Environment>");
    }
    if let Some(w) = &spec.working_directory {
        text_el(&mut b, "rsp:WorkingDirectory", w);
    }
    if let Some(c) = &spec.creation_xml {
        b.push_str(&format!(
            r#"<creationXml xmlns="{}">{}</creationXml>"#,
            ns::POWERSHELL,
            escape(c)
        ));
    }
    b.push_str("</rsp:Shell>");
    envelope(h, ns::ACTION_CREATE, &options, &[], &b)
}

/// WinRS Command: start `command` with `args` in the shell.
///
/// `skip_cmd_shell` runs the executable directly instead of through `cmd.exe /c` (then the command
/// must be a full path or on PATH, and cmd syntax such as `&&` does not work).
pub fn command(
    h: &Headers,
    shell_id: &str,
    command: &str,
    args: &[String],
    skip_cmd_shell: bool,
) -> Request {
    command_with_line(h, shell_id, &command_line(command, args), skip_cmd_shell)
}

/// The `<rsp:CommandLine>` element of a Command request, escaped: what [`command_with_line`]
/// sends. It depends on the command alone, so a command sent to many hosts is built once.
pub fn command_line(command: &str, args: &[String]) -> String {
    let mut b = String::from("<rsp:CommandLine>");
    text_el(&mut b, "rsp:Command", command);
    for a in args {
        text_el(&mut b, "rsp:Arguments", a);
    }
    b.push_str("</rsp:CommandLine>");
    b
}

/// [`command`] with its `<rsp:CommandLine>` already built by [`command_line`].
pub fn command_with_line(
    h: &Headers,
    shell_id: &str,
    command_line: &str,
    skip_cmd_shell: bool,
) -> Request {
    let options = [WsOption::new(
        "WINRS_SKIP_CMD_SHELL",
        if skip_cmd_shell { "True" } else { "False" },
    )];
    envelope(
        h,
        ns::ACTION_COMMAND,
        &options,
        &[("ShellId", shell_id)],
        command_line,
    )
}

/// WinRS Send: feed `data` to a command's input stream; `end` closes the stream.
pub fn send(
    h: &Headers,
    shell_id: &str,
    command_id: &str,
    stream: &str,
    data: &[u8],
    end: bool,
) -> Request {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let b = format!(
        r#"<rsp:Send><rsp:Stream CommandId="{}" End="{}" Name="{}">{}</rsp:Stream></rsp:Send>"#,
        escape(command_id),
        if end { "True" } else { "False" },
        escape(stream),
        b64
    );
    envelope(h, ns::ACTION_SEND, &[], &[("ShellId", shell_id)], &b)
}

/// WinRS Receive: ask for output of `streams` (space separated); without a command id the shell's
/// own output (PowerShell remoting) is read.
pub fn receive(h: &Headers, shell_id: &str, command_id: Option<&str>, streams: &str) -> Request {
    let options = [WsOption::new("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "True")];
    let b = match command_id {
        Some(id) => format!(
            r#"<rsp:Receive><rsp:DesiredStream CommandId="{}">{}</rsp:DesiredStream></rsp:Receive>"#,
            escape(id),
            escape(streams)
        ),
        None => format!(
            "<rsp:Receive><rsp:DesiredStream>{}</rsp:DesiredStream></rsp:Receive>",
            escape(streams)
        ),
    };
    envelope(
        h,
        ns::ACTION_RECEIVE,
        &options,
        &[("ShellId", shell_id)],
        &b,
    )
}

/// WinRS Signal with a code URI ([`ns::SIGNAL_TERMINATE`] or [`ns::SIGNAL_CTRL_C`]).
pub fn signal(h: &Headers, shell_id: &str, command_id: &str, code: &str) -> Request {
    let b = format!(
        r#"<rsp:Signal CommandId="{}"><rsp:Code>{}</rsp:Code></rsp:Signal>"#,
        escape(command_id),
        escape(code)
    );
    envelope(h, ns::ACTION_SIGNAL, &[], &[("ShellId", shell_id)], &b)
}

/// WS-Transfer Delete of a shell (frees it on the server; shells count against MaxShellsPerUser).
pub fn delete(h: &Headers, shell_id: &str) -> Request {
    envelope(h, ns::ACTION_DELETE, &[], &[("ShellId", shell_id)], "")
}

/// WS-Transfer Get of `h.resource_uri` (e.g. [`ns::RESOURCE_CONFIG`] to learn MaxEnvelopeSizekb).
pub fn get(h: &Headers, selectors: &[(&str, &str)]) -> Request {
    envelope(h, ns::ACTION_GET, &[], selectors, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_as_xs_duration() {
        assert_eq!(xs_duration(Duration::from_secs(20)), "PT20S");
        assert_eq!(xs_duration(Duration::from_millis(60500)), "PT60.500S");
    }

    #[test]
    fn options_go_inside_the_header() {
        let spec = ShellSpec {
            codepage: Some(65001),
            ..Default::default()
        };
        let r = create_shell(&Headers::new("http://h:5985/wsman"), &spec);
        let root = crate::xml::parse(&r.xml).unwrap();
        let header = root.child(ns::SOAP, "Header").unwrap();
        let set = header.child(ns::WSMAN, "OptionSet").unwrap();
        assert_eq!(set.children[0].attr("Name"), Some("WINRS_CODEPAGE"));
        assert_eq!(set.children[0].text, "65001");
        let body = root.child(ns::SOAP, "Body").unwrap();
        assert!(body.find(ns::WSMAN, "OptionSet").is_none());
    }

    #[test]
    fn text_is_escaped() {
        let r = command(
            &Headers::new("http://h/wsman"),
            "S",
            "cmd.exe",
            &["/c echo a && echo <b>".into()],
            false,
        );
        let root = crate::xml::parse(&r.xml).unwrap();
        let args = root.find(ns::SHELL, "Arguments").unwrap();
        assert_eq!(args.text, "/c echo a && echo <b>");
    }
}
