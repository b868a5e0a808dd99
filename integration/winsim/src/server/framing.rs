//! MS-WSMV 2.2.9.1 `multipart/encrypted` bodies (sans-IO): the envelope sealed with the NTLM session
//! key travels as a two-part MIME body whose second part is `u32 LE signature length`, the
//! signature, then the sealed SOAP bytes.

/// The Content-Type of an encrypted WinRM body, as Windows sends it.
pub const ENCRYPTED_CONTENT_TYPE: &str = r#"multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary""#;

/// The Content-Type of a body sealed under a Kerberos context (pywinrm `kerberos`, hive).
pub const KERBEROS_CONTENT_TYPE: &str = r#"multipart/encrypted;protocol="application/HTTP-Kerberos-session-encrypted";boundary="Encrypted Boundary""#;
/// The protocol a body sealed under NTLM (or SPNEGO) names.
pub const SPNEGO_PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
/// The protocol a body sealed under a raw Kerberos context names.
pub const KERBEROS_PROTOCOL: &str = "application/HTTP-Kerberos-session-encrypted";

const BOUNDARY: &[u8] = b"--Encrypted Boundary";
const OCTET_HEADER: &[u8] = b"\tContent-Type: application/octet-stream\r\n";
/// The data part's header without its folding whitespace: Windows reads it either way, and the
/// Ruby WinRM library (Vagrant, Chef, Test Kitchen) sends it without the TAB.
const OCTET_HEADER_LINE: &[u8] = b"Content-Type: application/octet-stream\r\n";

/// One sealed message pulled out of a body: the NTLM signature, the sealed bytes and the length the
/// sender declared for the plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPart<'a> {
    pub signature: &'a [u8],
    pub sealed: &'a [u8],
    pub declared_length: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("the encrypted body has no '--Encrypted Boundary' parts")]
    NoParts,
    #[error("the encrypted body's header part has no Length=")]
    NoLength,
    #[error("the encrypted body's data part is shorter than its signature header")]
    Truncated,
    #[error(
        "the encrypted body uses a protocol other than HTTP-SPNEGO- or HTTP-Kerberos-session-encrypted: {0}"
    )]
    WrongProtocol(String),
}

/// True when a request's Content-Type says its body is sealed.
pub fn is_encrypted(content_type: &str) -> bool {
    content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/encrypted")
}

/// Split an encrypted body into its sealed part. Windows and its clients send one part per
/// message over NTLM (the 16 KiB chunking is CredSSP only).
pub fn parse(body: &[u8]) -> Result<SealedPart<'_>, FramingError> {
    // The header part cannot contain the boundary; the sealed bytes can (they are RC4 noise), so
    // the data part runs from the second boundary to the closing one at the very end.
    let first = find(body, BOUNDARY, 0).ok_or(FramingError::NoParts)?;
    let second = find(body, BOUNDARY, first + BOUNDARY.len()).ok_or(FramingError::NoParts)?;
    let header = &body[first + BOUNDARY.len()..second];
    let payload = &body[second + BOUNDARY.len()..];
    let payload = payload
        .strip_suffix(b"--Encrypted Boundary--\r\n")
        .unwrap_or(payload);
    let header_text = String::from_utf8_lossy(header);
    if !header_text.contains(SPNEGO_PROTOCOL) && !header_text.contains(KERBEROS_PROTOCOL) {
        return Err(FramingError::WrongProtocol(header_text.trim().to_string()));
    }
    let declared_length = header_text
        .split("Length=")
        .nth(1)
        .and_then(|rest| {
            rest.trim()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .ok_or(FramingError::NoLength)?;
    // The payload starts with "\r\n" (after the boundary) and its octet-stream header.
    let payload = payload.strip_prefix(b"\r\n").unwrap_or(payload);
    let start = payload
        .iter()
        .position(|b| *b != b'\t' && *b != b' ')
        .unwrap_or(payload.len());
    let payload = payload[start..]
        .strip_prefix(OCTET_HEADER_LINE)
        .ok_or(FramingError::Truncated)?;
    if payload.len() < 4 {
        return Err(FramingError::Truncated);
    }
    let sig_len = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    let rest = &payload[4..];
    if rest.len() < sig_len {
        return Err(FramingError::Truncated);
    }
    let (signature, sealed) = rest.split_at(sig_len);
    Ok(SealedPart {
        signature,
        sealed,
        declared_length,
    })
}

/// Build the body Windows sends: header part, data part, closing boundary.
pub fn build(signature: &[u8], sealed: &[u8], plaintext_len: usize) -> Vec<u8> {
    build_as(SPNEGO_PROTOCOL, signature, sealed, plaintext_len)
}

/// [`build`] naming `protocol` in the header part.
pub fn build_as(protocol: &str, signature: &[u8], sealed: &[u8], plaintext_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(sealed.len() + 256);
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(format!("\r\n\tContent-Type: {protocol}\r\n").as_bytes());
    out.extend_from_slice(
        format!(
            "\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={plaintext_len}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(OCTET_HEADER);
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    out.extend_from_slice(signature);
    out.extend_from_slice(sealed);
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(b"--\r\n");
    out
}

/// The position of `needle` in `data` at or after `from`.
fn find(data: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes pywinrm's Encryption._encrypt_message produces (signature and payload faked).
    fn pywinrm_body(sig: &[u8], sealed: &[u8], len: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n");
        b.extend_from_slice(
            format!("\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len}\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(
            b"--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
        );
        b.extend_from_slice(&(sig.len() as i32).to_le_bytes());
        b.extend_from_slice(sig);
        b.extend_from_slice(sealed);
        b.extend_from_slice(b"--Encrypted Boundary--\r\n");
        b
    }

    #[test]
    fn reads_what_pywinrm_writes() {
        let body = pywinrm_body(&[7u8; 16], b"\x01\x02sealed", 8);
        let part = parse(&body).unwrap();
        assert_eq!(part.signature, [7u8; 16]);
        assert_eq!(part.sealed, b"\x01\x02sealed");
        assert_eq!(part.declared_length, 8);
    }

    #[test]
    fn builds_what_pywinrm_reads() {
        assert_eq!(
            build(&[7u8; 16], b"abc", 3),
            pywinrm_body(&[7u8; 16], b"abc", 3)
        );
        // Sealed bytes are RC4 noise and may contain the boundary itself.
        let body = build(&[1u8; 16], b"x--Encrypted Boundary\r\ny", 24);
        let round = parse(&body).unwrap();
        assert_eq!(round.sealed, b"x--Encrypted Boundary\r\ny");
    }

    /// The Ruby WinRM library writes the data part's header with no TAB before it.
    #[test]
    fn reads_what_ruby_winrm_writes() {
        let mut body = Vec::new();
        body.extend_from_slice(b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n");
        body.extend_from_slice(
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=5\r\n",
        );
        body.extend_from_slice(
            b"--Encrypted Boundary\r\nContent-Type: application/octet-stream\r\n",
        );
        body.extend_from_slice(&16u32.to_le_bytes());
        body.extend_from_slice(&[3u8; 16]);
        body.extend_from_slice(b"rc4!!");
        body.extend_from_slice(b"--Encrypted Boundary--\r\n");
        let part = parse(&body).unwrap();
        assert_eq!(part.signature, vec![3u8; 16]);
        assert_eq!(part.sealed, b"rc4!!".to_vec());
        assert_eq!(part.declared_length, 5);
    }

    #[test]
    fn refuses_bodies_without_parts() {
        assert_eq!(parse(b"plain soap"), Err(FramingError::NoParts));
        assert!(is_encrypted("multipart/encrypted;protocol=\"x\""));
        assert!(!is_encrypted("application/soap+xml;charset=UTF-8"));
    }
}
