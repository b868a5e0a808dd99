//! MS-WSMV message encryption framing (`multipart/encrypted`), pure functions.
//!
//! With Negotiate/NTLM over HTTP, Windows wants each SOAP body sealed and wrapped in a two-part
//! MIME body; the first part says how long the plaintext is, the second carries a 4-byte
//! little-endian signature length, the signature and the ciphertext. Both directions use the same
//! framing, so a server (the project's simulated fleet) can reuse these functions with its own
//! sealing context: implement [`Sealing`] for it.

use crate::ntlm::{NtlmError, NtlmSealer};

/// The HTTP Content-Type of an encrypted body.
pub const CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

/// The HTTP Content-Type of a body sealed with a Kerberos (raw krb5 mech) context.
pub const KERBEROS_CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-Kerberos-session-encrypted\";boundary=\"Encrypted Boundary\"";

/// The protocol names of the first MIME part: SPNEGO (NTLM) or Kerberos.
pub const SPNEGO_PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
/// See [`SPNEGO_PROTOCOL`].
pub const KERBEROS_PROTOCOL: &str = "application/HTTP-Kerberos-session-encrypted";

const BOUNDARY: &[u8] = b"--Encrypted Boundary";
const OCTET_STREAM_HEADER: &[u8] = b"\tContent-Type: application/octet-stream\r\n";
const END: &[u8] = b"--Encrypted Boundary--\r\n";

/// A message confidentiality context (an NTLM sealer, or e.g. an sspi context on a server).
pub trait Sealing {
    /// Encrypt one message; returns (signature header, ciphertext).
    fn seal_message(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), FramingError>;
    /// Decrypt and verify one message.
    fn unseal_message(&mut self, header: &[u8], cipher: &[u8]) -> Result<Vec<u8>, FramingError>;
}

impl Sealing for NtlmSealer {
    fn seal_message(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), FramingError> {
        let (sig, cipher) = self.seal(plain);
        Ok((sig.to_vec(), cipher))
    }

    fn unseal_message(&mut self, header: &[u8], cipher: &[u8]) -> Result<Vec<u8>, FramingError> {
        self.unseal(header, cipher).map_err(FramingError::Sealing)
    }
}

/// Why an encrypted body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The body is not the MS-WSMV multipart layout.
    #[error("encrypted body is malformed: {0}")]
    Malformed(String),
    /// The decrypted length differs from the announced OriginalContent Length.
    #[error("decrypted {got} bytes but the body announced {announced}")]
    LengthMismatch {
        /// Length= from the first part.
        announced: usize,
        /// Bytes decrypted.
        got: usize,
    },
    /// The sealing layer refused the message.
    #[error(transparent)]
    Sealing(#[from] NtlmError),
    /// GSSAPI (Kerberos) refused to wrap or unwrap the message.
    #[error("Kerberos message protection failed: {0}")]
    Gss(String),
}

/// Seal a SOAP body and frame it. Returns the body; send it with [`CONTENT_TYPE`].
pub fn encrypt_body(sealing: &mut dyn Sealing, soap: &[u8]) -> Result<Vec<u8>, FramingError> {
    encrypt_body_as(sealing, soap, SPNEGO_PROTOCOL)
}

/// [`encrypt_body`] naming `protocol` ([`SPNEGO_PROTOCOL`] or [`KERBEROS_PROTOCOL`]) in the first
/// part, which must match the Content-Type's `protocol`.
pub fn encrypt_body_as(
    sealing: &mut dyn Sealing,
    soap: &[u8],
    protocol: &str,
) -> Result<Vec<u8>, FramingError> {
    let (header, cipher) = sealing.seal_message(soap)?;
    let mut out = Vec::with_capacity(soap.len() + 256);
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(format!("\r\n\tContent-Type: {protocol}\r\n").as_bytes());
    out.extend_from_slice(
        format!(
            "\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n",
            soap.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(OCTET_STREAM_HEADER);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&cipher);
    out.extend_from_slice(END);
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn bad(s: &str) -> FramingError {
    FramingError::Malformed(s.to_string())
}

/// Unframe and unseal an encrypted body; returns the SOAP text bytes.
pub fn decrypt_body(sealing: &mut dyn Sealing, body: &[u8]) -> Result<Vec<u8>, FramingError> {
    let len_key = b"Length=";
    let at = find(body, len_key, 0).ok_or_else(|| bad("no OriginalContent Length"))?;
    let digits_start = at + len_key.len();
    let digits_end = body[digits_start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map(|p| p + digits_start)
        .ok_or_else(|| bad("Length runs to the end"))?;
    let announced: usize = std::str::from_utf8(&body[digits_start..digits_end])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("Length is not a number"))?;
    let part = find(body, OCTET_STREAM_HEADER, digits_end)
        .ok_or_else(|| bad("no application/octet-stream part"))?
        + OCTET_STREAM_HEADER.len();
    if body.len() < part + 4 + END.len() || !body.ends_with(END) {
        return Err(bad("missing closing boundary"));
    }
    let payload = &body[part..body.len() - END.len()];
    let hlen = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    let rest = &payload[4..];
    if rest.len() < hlen {
        return Err(bad("signature longer than the payload"));
    }
    let plain = sealing.unseal_message(&rest[..hlen], &rest[hlen..])?;
    if plain.len() != announced {
        return Err(FramingError::LengthMismatch {
            announced,
            got: plain.len(),
        });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntlm::Role;

    #[test]
    fn round_trip_both_directions() {
        let key = [9u8; 16];
        let mut client = NtlmSealer::new(&key, Role::Client);
        let mut server = NtlmSealer::new(&key, Role::Server);
        let soap = "<s:Envelope>é --Encrypted Boundary inside</s:Envelope>".as_bytes();
        let body = encrypt_body(&mut client, soap).unwrap();
        assert!(body.starts_with(b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="));
        assert_eq!(&body[body.len() - 24..], b"--Encrypted Boundary--\r\n");
        assert_eq!(decrypt_body(&mut server, &body).unwrap(), soap);
        let reply = encrypt_body(&mut server, b"<ok/>").unwrap();
        assert_eq!(decrypt_body(&mut client, &reply).unwrap(), b"<ok/>");
    }

    #[test]
    fn truncated_and_tampered_bodies_fail() {
        let key = [3u8; 16];
        let mut client = NtlmSealer::new(&key, Role::Client);
        let body = encrypt_body(&mut client, b"hello world").unwrap();
        let mut server = NtlmSealer::new(&key, Role::Server);
        assert!(decrypt_body(&mut server, &body[..body.len() - 3]).is_err());
        let mut server = NtlmSealer::new(&key, Role::Server);
        let mut t = body.clone();
        let n = t.len() - 26;
        t[n] ^= 0x40;
        assert!(matches!(
            decrypt_body(&mut server, &t),
            Err(FramingError::Sealing(_))
        ));
        let mut server = NtlmSealer::new(&key, Role::Server);
        let at = find(&body, b"Length=11", 0).unwrap();
        let mut lie = body.clone();
        lie[at + 8] = b'2';
        assert_eq!(
            decrypt_body(&mut server, &lie),
            Err(FramingError::LengthMismatch {
                announced: 12,
                got: 11
            })
        );
    }
}
