//! The simulator's envelopes against real Windows Server's, recorded in
//! `shared/fixtures/winrm-recorded`: every recorded request must parse, and for every recorded
//! response of a kind the simulator produces, the simulator's rendering of the same content must
//! have the same canonical shape (elements, prefixes, attributes, constant texts and order), with
//! only ids, addresses and payloads masked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use quick_xml::Reader;
use quick_xml::events::Event;
use winsim::server::request::{Action, Request};
use winsim::server::response::{self, Fault, ReceiveChunk, ShellInfo};

fn fixtures() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("../shared/fixtures/winrm-recorded");
    assert!(
        dir.is_dir(),
        "recorded WinRM fixtures not found at {}",
        dir.display()
    );
    dir
}

/// (file, request, response) for every recorded message.
fn recorded() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut request = None;
        for line in text.lines() {
            if let Some(r) = line.strip_prefix("- request: ") {
                request = Some(yaml_scalar(r));
            } else if let Some(r) = line.strip_prefix("  response: ") {
                out.push((name.clone(), request.take().unwrap(), yaml_scalar(r)));
            }
        }
    }
    assert!(
        out.len() > 80,
        "expected the recorded exchanges, found {}",
        out.len()
    );
    out
}

/// A one-line YAML scalar: plain, or single-quoted with '' for a quote.
fn yaml_scalar(raw: &str) -> String {
    match raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => raw.to_string(),
    }
}

/// Elements whose text is per-exchange data, not shape.
const MASKED_TEXT: &[&str] = &[
    "MessageID",
    "RelatesTo",
    "ShellId",
    "CommandId",
    "Selector",
    "Address",
    "ClientIP",
    "Owner",
    "Stream",
    "ExitCode",
];
const MASKED_ATTRS: &[&str] = &["CommandId", "Machine"];

/// A canonical event list: prefixed names, sorted attributes, masked data, Windows' optional
/// p:ActivityId dropped, and runs of same-named output Streams collapsed (Windows splits output
/// into as many chunks as the process wrote; one chunk is equally valid).
fn canonical(xml: &str, skeleton_only: bool) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut out: Vec<String> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut skip = 0usize;
    loop {
        match reader.read_event().unwrap() {
            // Windows adds p:ActivityId to some headers; it carries nothing a client reads.
            Event::Start(_) if skip > 0 => skip += 1,
            Event::End(_) if skip > 0 => skip -= 1,
            _ if skip > 0 => {}
            Event::Start(e) if e.local_name().as_ref() == b"ActivityId" => skip = 1,
            Event::Empty(e) if e.local_name().as_ref() == b"ActivityId" => {}
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let mut attrs: Vec<String> = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let k = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                        let local =
                            String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                        let v = a.unescape_value().unwrap().into_owned();
                        let v = if MASKED_ATTRS.contains(&local.as_str()) {
                            "*".into()
                        } else {
                            v
                        };
                        // The recorded Windows dropped backslashes from environment variable
                        // *names* (not values); the simulator echoes names unchanged.
                        let v = if e.local_name().as_ref() == b"Variable" {
                            v.replace('\\', "")
                        } else {
                            v
                        };
                        format!("{k}={v}")
                    })
                    .collect();
                attrs.sort();
                out.push(format!("<{name} {}>", attrs.join(" ")));
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                out.push(format!("<{name}>"));
                out.push(format!("</{name}>"));
            }
            Event::Text(t) => {
                let text = t.decode().unwrap().into_owned();
                let local = stack
                    .last()
                    .map(|n| n.rsplit(':').next().unwrap_or(n).to_string())
                    .unwrap_or_default();
                if !text.trim().is_empty() {
                    if skeleton_only || MASKED_TEXT.contains(&local.as_str()) {
                        out.push("#*".into());
                    } else {
                        out.push(format!("#{text}"));
                    }
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                stack.pop();
                out.push(format!("</{name}>"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    collapse_streams(out)
}

fn collapse_streams(events: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let is_data_stream = |j: usize| {
            events
                .get(j)
                .is_some_and(|e| e.starts_with("<rsp:Stream ") && !e.contains("End="))
                && events.get(j + 1).is_some_and(|e| e == "#*")
                && events.get(j + 2).is_some_and(|e| e == "</rsp:Stream>")
        };
        if is_data_stream(i)
            && out.len() >= 3
            && out[out.len() - 3] == events[i]
            && out[out.len() - 2] == "#*"
        {
            i += 3;
            continue;
        }
        out.push(events[i].clone());
        i += 1;
    }
    out
}

fn streams(xml: &str) -> (Vec<u8>, Vec<u8>) {
    let mut reader = Reader::from_str(xml);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) if e.local_name().as_ref() == b"Stream" => {
                current = e
                    .attributes()
                    .map(|a| a.unwrap())
                    .find(|a| a.key.local_name().as_ref() == b"Name")
                    .map(|a| a.unescape_value().unwrap().into_owned());
            }
            Event::Text(t) if current.is_some() => {
                let bytes = B64.decode(t.decode().unwrap().trim()).unwrap();
                if current.as_deref() == Some("stdout") {
                    out.extend(bytes)
                } else {
                    err.extend(bytes)
                }
            }
            Event::End(_) => current = None,
            Event::Eof => break,
            _ => {}
        }
    }
    (out, err)
}

fn text_of(xml: &str, local: &str) -> Option<String> {
    let open = format!(":{local}>");
    let start = xml.find(&open)? + open.len();
    Some(xml[start..start + xml[start..].find('<')?].to_string())
}

/// What the simulator renders for the same content as a recorded response, if it renders that kind.
fn ours(request: &Request, recorded: &str) -> Option<(&'static str, String, bool)> {
    let relates = request.message_id.clone().unwrap_or_default();
    let action = text_of(recorded, "Action")?;
    let kind = action.rsplit('/').next().unwrap_or_default().to_string();
    let id = "4283CBDC-3706-415B-88BD-B385F3E51A53";
    Some(match kind.as_str() {
        "CreateResponse"
            if request
                .resource_uri
                .as_deref()
                .is_some_and(|u| u.ends_with("/shell/cmd")) =>
        {
            let idle = request
                .idle_timeout
                .as_deref()
                .and_then(winsim::server::request::parse_duration);
            let shell = ShellInfo {
                shell_id: id,
                address: "x",
                owner: "x",
                client_ip: "x",
                environment: &request.environment,
                working_directory: request.working_directory.as_deref(),
                idle_timeout_secs: idle.map_or(7200.0, |d| d.as_secs_f64()),
            };
            ("Create", response::create_response(&relates, &shell), false)
        }
        "CommandResponse" => ("Command", response::command_response(&relates, id), false),
        "SendResponse" => ("Send", response::send_response(&relates), false),
        "SignalResponse" => ("Signal", response::signal_response(&relates), false),
        "DeleteResponse" => ("Delete", response::delete_response(&relates), false),
        "ReceiveResponse"
            if request
                .resource_uri
                .as_deref()
                .is_some_and(|u| u.ends_with("/shell/cmd")) =>
        {
            let (stdout, stderr) = streams(recorded);
            let exit = text_of(recorded, "ExitCode").map(|c| c.parse::<u32>().unwrap());
            let chunk = ReceiveChunk {
                command_id: id,
                stdout: &stdout,
                stderr: &stderr,
                exit_code: exit,
            };
            (
                "Receive",
                response::receive_response(&relates, &chunk),
                false,
            )
        }
        "GetResponse" if recorded.contains("cfg:Config") => {
            let kb = text_of(recorded, "MaxEnvelopeSizekb")
                .unwrap()
                .parse()
                .unwrap();
            ("Get config", response::config_response(&relates, kb), true)
        }
        "fault" => {
            let code: u64 = recorded
                .split("Code=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()?;
            let fault = match code {
                2_150_858_793 => Fault::timed_out(),
                2_150_858_843 if recorded.contains("command identifier") => {
                    Fault::unknown_command()
                }
                2_150_858_767 => Fault::bad_header(
                    "The XML contains an invalid timeout field in the SOAP header: PT-1S.",
                ),
                87 => Fault::invalid_parameter(),
                _ => return None,
            };
            ("fault", fault.render(Some(&relates), "x"), false)
        }
        _ => return None,
    })
}

#[test]
fn every_recorded_request_parses() {
    for (file, request, _) in recorded() {
        let parsed =
            Request::parse(request.as_bytes()).unwrap_or_else(|e| panic!("{file}: {e}\n{request}"));
        assert!(
            parsed
                .message_id
                .as_deref()
                .is_some_and(|m| m.starts_with("uuid:")),
            "{file}"
        );
        if parsed.action == Some(Action::Command) {
            assert!(parsed.command.is_some(), "{file}: no command in {request}");
        }
    }
}

#[test]
fn responses_have_the_recorded_windows_shapes() {
    let mut compared: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (file, request, recorded) in recorded() {
        let parsed = Request::parse(request.as_bytes()).unwrap();
        let Some((kind, mine, skeleton)) = ours(&parsed, &recorded) else {
            continue;
        };
        assert_eq!(
            canonical(&mine, skeleton),
            canonical(&recorded, skeleton),
            "{file}: {kind} differs from Windows'\nours:     {mine}\nrecorded: {recorded}"
        );
        assert_eq!(
            text_of(&mine, "RelatesTo"),
            parsed.message_id,
            "{file}: RelatesTo must echo the MessageID"
        );
        *compared.entry(kind).or_default() += 1;
    }
    for kind in [
        "Create",
        "Command",
        "Send",
        "Receive",
        "Signal",
        "Delete",
        "Get config",
        "fault",
    ] {
        assert!(
            compared.get(kind).copied().unwrap_or(0) > 0,
            "no recorded {kind} was compared: {compared:?}"
        );
    }
}
