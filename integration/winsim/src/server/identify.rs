//! WS-Management Identify (DSP0226 section 11): the one request a WinRM listener answers without
//! authentication. It has no `wsa:Action`; its body is an empty `wsmid:Identify`. Windows answers
//! an anonymous Identify without its product version details (`OS: 0.0.0 SP: 0.0`) and an
//! authenticated one with the host's OS, service pack and WS-Management stack.

use crate::host::WsmanIdentity;

const NS_WSMID: &str = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd";
const NS_S: &str = "http://www.w3.org/2003/05/soap-envelope";
/// The DMTF WS-Management 1.x namespace every WinRM version from 1.1 on reports.
const PROTOCOL: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";

/// True if `body` is an Identify request: a SOAP envelope whose body holds `Identify` in the
/// WS-Management identity namespace.
pub fn is_identify(body: &[u8]) -> bool {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    // Every request is asked this; an element name cannot be escaped, so a body without the
    // word is no Identify, and the scan's probe (tens of kilobytes) is not parsed twice.
    if memchr::memmem::find(body, b"Identify").is_none() {
        return false;
    }
    let mut reader = quick_xml::NsReader::from_reader(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    loop {
        let Ok((ns, event)) = reader.read_resolved_event() else {
            return false;
        };
        let in_body = path.len() == 2 && path[1] == b"Body";
        match event {
            Event::Start(e) | Event::Empty(e) if in_body => {
                return e.local_name().as_ref() == b"Identify"
                    && matches!(ns, ResolveResult::Bound(n) if n.as_ref() == NS_WSMID.as_bytes());
            }
            Event::Start(e) => path.push(e.local_name().as_ref().to_vec()),
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => return false,
            _ => {}
        }
    }
}

/// The IdentifyResponse envelope. `authenticated`: the request came on an authenticated
/// connection, so the OS and service pack are shown.
pub fn response(identity: &WsmanIdentity, authenticated: bool) -> String {
    let (os, sp) = if authenticated {
        (identity.os.as_str(), identity.service_pack.as_str())
    } else {
        ("0.0.0", "0.0")
    };
    format!(
        "<s:Envelope xml:lang=\"en-US\" xmlns:s=\"{NS_S}\"><s:Header/><s:Body>\
         <wsmid:IdentifyResponse xmlns:wsmid=\"{NS_WSMID}\">\
         <wsmid:ProtocolVersion>{PROTOCOL}</wsmid:ProtocolVersion>\
         <wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>\
         <wsmid:ProductVersion>OS: {os} SP: {sp} Stack: {}</wsmid:ProductVersion>\
         </wsmid:IdentifyResponse></s:Body></s:Envelope>",
        identity.stack
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTIFY: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"#;

    #[test]
    fn recognises_identify_and_nothing_else() {
        assert!(is_identify(IDENTIFY.as_bytes()));
        assert!(!is_identify(b"<s:Envelope/>"));
        assert!(!is_identify(
            IDENTIFY.replace("identity/1", "identity/2").as_bytes()
        ));
    }

    #[test]
    fn anonymous_answers_hide_the_os() {
        let id = WsmanIdentity {
            os: "5.2.3790".into(),
            service_pack: "2.0".into(),
            stack: "1.1".into(),
        };
        assert!(response(&id, false).contains("OS: 0.0.0 SP: 0.0 Stack: 1.1"));
        assert!(response(&id, true).contains("OS: 5.2.3790 SP: 2.0 Stack: 1.1"));
    }
}
