//! Decoding PowerShell's `#< CLIXML` error records on stderr into readable text.
//!
//! When powershell.exe runs non-interactively with redirected stderr, errors and progress come out
//! as serialized objects (`#< CLIXML` then `<Objs>…`), with control characters escaped as
//! `_x000D__x000A_`. Admins need the message, not the XML.

use crate::xml::{self, Element};

const PS_NS: &str = "http://schemas.microsoft.com/powershell/2004/04";
const MARKER: &str = "#< CLIXML";

/// Turn stderr text into readable text: CLIXML blocks become their Error (and Warning) strings,
/// progress records are dropped, anything else passes through unchanged.
pub fn decode_stderr(stderr: &str) -> String {
    let Some(at) = stderr.find(MARKER) else {
        return stderr.to_string();
    };
    let mut out = stderr[..at].to_string();
    let mut rest = &stderr[at + MARKER.len()..];
    loop {
        rest = rest.trim_start_matches(['\r', '\n']);
        let (block, tail) = match rest.find(MARKER) {
            Some(n) => (&rest[..n], Some(&rest[n + MARKER.len()..])),
            None => (rest, None),
        };
        let block = block.trim_end();
        match xml::parse(block) {
            Ok(root) => out.push_str(&messages(&root)),
            Err(_) => out.push_str(block), // not CLIXML after all: keep it verbatim
        }
        match tail {
            Some(t) => rest = t,
            None => return out,
        }
    }
}

fn messages(root: &Element) -> String {
    let mut out = String::new();
    for s in root.children_named(PS_NS, "S") {
        if matches!(s.attr("S"), Some("Error") | Some("Warning")) {
            out.push_str(&unescape(&s.text));
        }
    }
    out
}

/// Undo CLIXML's `_xHHHH_` escapes (UTF-16 code units, surrogate pairs included).
pub fn unescape(s: &str) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let escape = (b[i] == b'_' && i + 7 <= s.len() && b[i + 1] == b'x' && b[i + 6] == b'_')
            .then(|| s.get(i + 2..i + 6))
            .flatten()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok());
        if let Some(v) = escape {
            units.push(v);
            i += 7;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        let mut buf = [0u16; 2];
        units.extend_from_slice(ch.encode_utf16(&mut buf));
        i += ch.len_utf8();
    }
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj><S S=\"Error\">Get-Item : Cannot find path 'C:\\nope' because it does not exist._x000D__x000A_</S><S S=\"Error\">At line:1 char:1_x000D__x000A_</S><S S=\"Error\">+ Get-Item C:\\nope_x000D__x000A_</S></Objs>";

    #[test]
    fn errors_become_text_and_progress_is_dropped() {
        assert_eq!(
            decode_stderr(SAMPLE),
            "Get-Item : Cannot find path 'C:\\nope' because it does not exist.\r\nAt line:1 char:1\r\n+ Get-Item C:\\nope\r\n"
        );
    }

    #[test]
    fn plain_stderr_passes_through() {
        assert_eq!(
            decode_stderr("Access is denied.\r\n"),
            "Access is denied.\r\n"
        );
    }

    #[test]
    fn escapes_and_surrogates() {
        assert_eq!(unescape("a_x0009_b_xD83D__xDE00_c_x_"), "a\tb😀c_x_");
    }
}
