//! Reading one WS-Management request envelope (sans-IO: bytes in, a plain struct out).
//!
//! The parser keys on local element names, not prefixes: pywinrm writes `wsman:`/`wsa:`, pypsrp writes
//! `w:`/`a:`, and hive's client may pick others. What Windows would reject (no Action, no MessageID,
//! a malformed OperationTimeout) is reported as a [`RequestError`] that the dispatcher turns into the
//! fault Windows answers with.

use std::time::Duration;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// The WS-Transfer / WinRS operations the simulator serves, keyed by their `wsa:Action` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Command,
    Send,
    Receive,
    Signal,
    Delete,
    Get,
    /// Anything else (Enumerate, Put, PSRP's Connect...): answered with ActionNotSupported.
    Other(String),
}

impl Action {
    fn from_uri(uri: &str) -> Action {
        match uri {
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create" => Action::Create,
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command" => Action::Command,
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send" => Action::Send,
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive" => Action::Receive,
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal" => Action::Signal,
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete" => Action::Delete,
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get" => Action::Get,
            other => Action::Other(other.to_string()),
        }
    }
}

/// One `rsp:Stream` element of a Send body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputChunk {
    pub name: String,
    pub command_id: Option<String>,
    pub end: bool,
    /// Still base64: decoding is the dispatcher's job so a bad chunk can be faulted precisely.
    pub data: String,
}

/// Everything the dispatcher needs from one request envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub action: Option<Action>,
    pub message_id: Option<String>,
    pub resource_uri: Option<String>,
    /// `wsman:SelectorSet/Selector[@Name="ShellId"]`.
    pub shell_id: Option<String>,
    /// `wsman:OptionSet/Option` name/value pairs (WINRS_SKIP_CMD_SHELL, WINRS_CODEPAGE...).
    pub options: Vec<(String, String)>,
    /// The raw `wsman:OperationTimeout` text, checked by [`Request::operation_timeout`].
    pub operation_timeout: Option<String>,
    pub max_envelope_size: Option<String>,
    /// Command: `rsp:Command` and each `rsp:Arguments`.
    pub command: Option<String>,
    pub arguments: Vec<String>,
    /// Send: the stdin chunks.
    pub input: Vec<InputChunk>,
    /// Receive: `rsp:DesiredStream/@CommandId`; Signal: `rsp:Signal/@CommandId`.
    pub command_id: Option<String>,
    /// Signal: `rsp:Code`.
    pub signal_code: Option<String>,
    /// Create: `rsp:Environment/rsp:Variable` name/value pairs, echoed back by Windows.
    pub environment: Vec<(String, String)>,
    /// Create: `rsp:WorkingDirectory`.
    pub working_directory: Option<String>,
    /// Create: `rsp:IdleTimeOut` as sent.
    pub idle_timeout: Option<String>,
}

/// Why an envelope could not be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the request body is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the request has no {0} header")]
    MissingHeader(&'static str),
}

impl Request {
    /// Parse one SOAP envelope.
    pub fn parse(xml: &[u8]) -> Result<Request, RequestError> {
        let mut reader = Reader::from_reader(xml);
        reader.config_mut().trim_text(false);
        let mut req = Request::default();
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        // Attributes of the open element we will need when it closes.
        let mut open_attrs: Vec<Vec<(String, String)>> = Vec::new();
        loop {
            let event = reader
                .read_event()
                .map_err(|e| RequestError::Malformed(e.to_string()))?;
            match event {
                Event::Start(start) => {
                    let attrs = attributes(&start)?;
                    path.push(local(&start));
                    req.on_open(&path, &attrs);
                    open_attrs.push(attrs);
                    text.clear();
                }
                Event::Empty(start) => {
                    let attrs = attributes(&start)?;
                    path.push(local(&start));
                    req.on_open(&path, &attrs);
                    req.on_close(&path, &attrs, "");
                    path.pop();
                    text.clear();
                }
                Event::Text(t) => {
                    text.push_str(
                        &t.decode()
                            .map_err(|e| RequestError::Malformed(e.to_string()))?,
                    );
                }
                Event::CData(t) => {
                    text.push_str(
                        &t.decode()
                            .map_err(|e| RequestError::Malformed(e.to_string()))?,
                    );
                }
                Event::GeneralRef(r) => {
                    if let Some(c) = r
                        .resolve_char_ref()
                        .map_err(|e| RequestError::Malformed(e.to_string()))?
                    {
                        text.push(c);
                    } else {
                        let name = r
                            .decode()
                            .map_err(|e| RequestError::Malformed(e.to_string()))?;
                        text.push(match name.as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => {
                                return Err(RequestError::Malformed(format!(
                                    "unknown entity &{other};"
                                )));
                            }
                        });
                    }
                }
                Event::End(_) => {
                    let attrs = open_attrs.pop().unwrap_or_default();
                    req.on_close(&path, &attrs, &text);
                    path.pop();
                    text.clear();
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if req.action.is_none() {
            return Err(RequestError::MissingHeader("wsa:Action"));
        }
        if req.message_id.is_none() {
            return Err(RequestError::MissingHeader("wsa:MessageID"));
        }
        Ok(req)
    }

    fn on_open(&mut self, path: &[String], attrs: &[(String, String)]) {
        let Some(name) = path.last() else { return };
        match name.as_str() {
            "DesiredStream" | "Signal" => {
                if let Some(id) = attr(attrs, "CommandId") {
                    self.command_id = Some(id.to_string());
                }
            }
            _ => {}
        }
    }

    fn on_close(&mut self, path: &[String], attrs: &[(String, String)], text: &str) {
        let Some(name) = path.last() else { return };
        let in_header = path.get(1).is_some_and(|p| p == "Header");
        let value = text.trim().to_string();
        match (in_header, name.as_str()) {
            (true, "Action") => self.action = Some(Action::from_uri(&value)),
            (true, "MessageID") => self.message_id = Some(value),
            (true, "ResourceURI") => self.resource_uri = Some(value),
            (true, "OperationTimeout") => self.operation_timeout = Some(value),
            (true, "MaxEnvelopeSize") => self.max_envelope_size = Some(value),
            (true, "Selector") if attr(attrs, "Name") == Some("ShellId") => {
                self.shell_id = Some(value)
            }
            (true, "Option") => {
                if let Some(option) = attr(attrs, "Name") {
                    self.options.push((option.to_string(), value));
                }
            }
            (false, "Command") => self.command = Some(value),
            // Arguments keep their spaces: `Write-Host hi; Start-Sleep 30` is one argument.
            (false, "Arguments") => self.arguments.push(text.to_string()),
            (false, "Stream") if path.iter().any(|p| p == "Send") => self.input.push(InputChunk {
                name: attr(attrs, "Name").unwrap_or("stdin").to_string(),
                command_id: attr(attrs, "CommandId").map(str::to_string),
                end: attr(attrs, "End").is_some_and(|v| v.eq_ignore_ascii_case("true")),
                data: value,
            }),
            (false, "Code") if path.iter().any(|p| p == "Signal") => self.signal_code = Some(value),
            (false, "Variable") => {
                let name = attr(attrs, "Name").unwrap_or_default().to_string();
                self.environment.push((name, text.to_string()));
            }
            (false, "WorkingDirectory") => self.working_directory = Some(value),
            (false, "IdleTimeOut") => self.idle_timeout = Some(value),
            _ => {}
        }
    }

    /// The value of a WinRS option, if the client set it.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The OperationTimeout: `Ok(None)` when absent, `Err(raw)` when Windows would refuse it
    /// (negative, or not an `xs:duration` it understands).
    pub fn operation_timeout(&self) -> Result<Option<Duration>, String> {
        match &self.operation_timeout {
            None => Ok(None),
            Some(raw) => parse_duration(raw).map(Some).ok_or_else(|| raw.clone()),
        }
    }
}

/// Parse the `xs:duration` forms WS-Man clients send (`PT20S`, `PT60.000S`, `PT1M30S`, `P0DT0H0M5S`).
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let rest = raw.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    if !days.is_empty() {
        secs += days.strip_suffix('D')?.parse::<f64>().ok()? * 86_400.0;
    }
    let mut number = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let n: f64 = number.parse().ok()?;
                secs += n * match c {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
                number.clear();
            }
            _ => return None,
        }
    }
    if !number.is_empty() || !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

fn local(start: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
}

fn attributes(start: &BytesStart<'_>) -> Result<Vec<(String, String)>, RequestError> {
    let mut out = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| RequestError::Malformed(e.to_string()))?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|e| RequestError::Malformed(e.to_string()))?;
        out.push((key, value.into_owned()));
    }
    Ok(out)
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMAND: &str = r#"<s:Envelope xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><wsa:Action s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command</wsa:Action><wsa:MessageID>uuid:109656EA-8D8A-46E9-BE22-5AA2199C7A7A</wsa:MessageID><wsman:OperationTimeout>PT20S</wsman:OperationTimeout><wsman:OptionSet s:mustUnderstand="true"><wsman:Option Name="WINRS_SKIP_CMD_SHELL">False</wsman:Option></wsman:OptionSet><wsman:SelectorSet><wsman:Selector Name="ShellId">4283CBDC</wsman:Selector></wsman:SelectorSet></s:Header><s:Body><rsp:CommandLine><rsp:Command>cmd.exe</rsp:Command><rsp:Arguments>/c</rsp:Arguments><rsp:Arguments>echo a &amp; b &#x41;</rsp:Arguments></rsp:CommandLine></s:Body></s:Envelope>"#;

    #[test]
    fn reads_a_command_request() {
        let r = Request::parse(COMMAND.as_bytes()).unwrap();
        assert_eq!(r.action, Some(Action::Command));
        assert_eq!(
            r.message_id.as_deref(),
            Some("uuid:109656EA-8D8A-46E9-BE22-5AA2199C7A7A")
        );
        assert_eq!(r.shell_id.as_deref(), Some("4283CBDC"));
        assert_eq!(r.command.as_deref(), Some("cmd.exe"));
        assert_eq!(
            r.arguments,
            vec!["/c".to_string(), "echo a & b A".to_string()]
        );
        assert_eq!(r.option("winrs_skip_cmd_shell"), Some("False"));
        assert_eq!(r.operation_timeout(), Ok(Some(Duration::from_secs(20))));
    }

    #[test]
    fn reads_send_chunks_and_signal() {
        let send = r#"<s:Envelope xmlns:s="x" xmlns:a="y" xmlns:rsp="z"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send</a:Action><a:MessageID>uuid:1</a:MessageID></s:Header><s:Body><rsp:Send><rsp:Stream CommandId="C1" End="True" Name="stdin">aGk=</rsp:Stream></rsp:Send></s:Body></s:Envelope>"#;
        let r = Request::parse(send.as_bytes()).unwrap();
        assert_eq!(
            r.input,
            vec![InputChunk {
                name: "stdin".into(),
                command_id: Some("C1".into()),
                end: true,
                data: "aGk=".into()
            }]
        );
        let signal = r#"<s:Envelope xmlns:s="x" xmlns:a="y" xmlns:rsp="z"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal</a:Action><a:MessageID>uuid:2</a:MessageID></s:Header><s:Body><rsp:Signal CommandId="C9"><rsp:Code>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate</rsp:Code></rsp:Signal></s:Body></s:Envelope>"#;
        let r = Request::parse(signal.as_bytes()).unwrap();
        assert_eq!(r.command_id.as_deref(), Some("C9"));
        assert!(r.signal_code.unwrap().ends_with("/terminate"));
    }

    #[test]
    fn refuses_envelopes_without_action_or_garbage() {
        assert_eq!(
            Request::parse(b"<s:Envelope xmlns:s=\"x\"><s:Header/></s:Envelope>"),
            Err(RequestError::MissingHeader("wsa:Action"))
        );
        assert!(matches!(
            Request::parse(b"<a><b></a>"),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn durations_as_windows_reads_them() {
        assert_eq!(parse_duration("PT60.000S"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("P0DT0H0M5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("PT-1S"), None);
        assert_eq!(parse_duration("20"), None);
    }
}
