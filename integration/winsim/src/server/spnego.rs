//! SPNEGO (RFC 4178) around NTLM, acceptor side, just enough DER for what Windows clients and
//! pyspnego's `negotiate` send when Kerberos is not available: NegTokenInit carrying an NTLM
//! NEGOTIATE, NegTokenResp carrying the AUTHENTICATE and a mechListMIC (sans-IO).

/// 1.3.6.1.4.1.311.2.2.10, NTLMSSP.
pub const NTLM_OID: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
];
/// 1.3.6.1.5.5.2, SPNEGO.
const SPNEGO_OID: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpnegoError {
    #[error("malformed SPNEGO token: {0}")]
    Malformed(&'static str),
    #[error("the client offers no NTLM in its SPNEGO mechanisms")]
    NoNtlm,
}

/// The client's first token.
#[derive(Debug, PartialEq, Eq)]
pub struct NegTokenInit {
    /// The DER `MechTypeList` exactly as sent: the mechListMIC is computed over these bytes.
    pub mech_types: Vec<u8>,
    pub mech_token: Option<Vec<u8>>,
}

/// A later token from the client.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct NegTokenResp {
    pub response_token: Option<Vec<u8>>,
    pub mech_list_mic: Option<Vec<u8>>,
}

/// negState values.
pub const ACCEPT_COMPLETED: u8 = 0;
pub const ACCEPT_INCOMPLETE: u8 = 1;

/// One DER TLV: (tag, contents, rest).
fn tlv(data: &[u8]) -> Result<(u8, &[u8], &[u8]), SpnegoError> {
    let (&tag, rest) = data.split_first().ok_or(SpnegoError::Malformed("empty"))?;
    let (&first, rest) = rest
        .split_first()
        .ok_or(SpnegoError::Malformed("no length"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(SpnegoError::Malformed("bad length"));
        }
        (
            rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize),
            &rest[n..],
        )
    };
    if rest.len() < len {
        return Err(SpnegoError::Malformed("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The [n] context fields of a SEQUENCE: (n, contents).
fn fields(seq: &[u8]) -> Result<Vec<(u8, &[u8])>, SpnegoError> {
    let (tag, mut body, _) = tlv(seq)?;
    if tag != 0x30 {
        return Err(SpnegoError::Malformed("expected a SEQUENCE"));
    }
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tag, contents, rest) = tlv(body)?;
        if tag & 0xe0 != 0xa0 {
            return Err(SpnegoError::Malformed("expected a context tag"));
        }
        out.push((tag & 0x1f, contents));
        body = rest;
    }
    Ok(out)
}

fn octets(field: &[u8]) -> Result<Vec<u8>, SpnegoError> {
    let (tag, contents, _) = tlv(field)?;
    if tag != 0x04 {
        return Err(SpnegoError::Malformed("expected an OCTET STRING"));
    }
    Ok(contents.to_vec())
}

/// True when a token looks like SPNEGO rather than raw NTLMSSP.
pub fn is_spnego(token: &[u8]) -> bool {
    matches!(token.first(), Some(0x60) | Some(0xa1))
}

/// Parse the GSS-wrapped NegTokenInit.
pub fn parse_init(token: &[u8]) -> Result<NegTokenInit, SpnegoError> {
    let (tag, body, _) = tlv(token)?;
    if tag != 0x60 {
        return Err(SpnegoError::Malformed(
            "expected the GSS-API application tag",
        ));
    }
    let oid = body
        .get(..SPNEGO_OID.len())
        .ok_or(SpnegoError::Malformed("no mechanism OID"))?;
    if oid != SPNEGO_OID {
        return Err(SpnegoError::Malformed("not SPNEGO"));
    }
    let (tag, init, _) = tlv(&body[SPNEGO_OID.len()..])?;
    if tag != 0xa0 {
        return Err(SpnegoError::Malformed("expected NegTokenInit"));
    }
    let mut out = NegTokenInit {
        mech_types: Vec::new(),
        mech_token: None,
    };
    for (n, contents) in fields(init)? {
        match n {
            0 => out.mech_types = contents.to_vec(),
            2 => out.mech_token = Some(octets(contents)?),
            _ => {}
        }
    }
    let (_, mechs, _) = tlv(&out.mech_types)?;
    if !mechs.windows(NTLM_OID.len()).any(|w| w == NTLM_OID) {
        return Err(SpnegoError::NoNtlm);
    }
    Ok(out)
}

/// Parse a NegTokenResp from the client.
pub fn parse_resp(token: &[u8]) -> Result<NegTokenResp, SpnegoError> {
    let (tag, body, _) = tlv(token)?;
    if tag != 0xa1 {
        return Err(SpnegoError::Malformed("expected NegTokenResp"));
    }
    let mut out = NegTokenResp::default();
    for (n, contents) in fields(body)? {
        match n {
            2 => out.response_token = Some(octets(contents)?),
            3 => out.mech_list_mic = Some(octets(contents)?),
            _ => {}
        }
    }
    Ok(out)
}

fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// The acceptor's NegTokenResp: negState, NTLM as the chosen mech (first reply only), the
/// NTLM token, the mechListMIC.
pub fn build_resp(
    neg_state: u8,
    choose_ntlm: bool,
    token: Option<&[u8]>,
    mic: Option<&[u8]>,
) -> Vec<u8> {
    let mut seq = der(0xa0, &der(0x0a, &[neg_state]));
    if choose_ntlm {
        seq.extend(der(0xa1, NTLM_OID));
    }
    if let Some(t) = token {
        seq.extend(der(0xa2, &der(0x04, t)));
    }
    if let Some(m) = mic {
        seq.extend(der(0xa3, &der(0x04, m)));
    }
    der(0xa1, &der(0x30, &seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_with(token: &[u8]) -> Vec<u8> {
        let mech_types = der(0x30, NTLM_OID);
        let mut seq = der(0xa0, &mech_types);
        seq.extend(der(0xa2, &der(0x04, token)));
        let mut body = SPNEGO_OID.to_vec();
        body.extend(der(0xa0, &der(0x30, &seq)));
        der(0x60, &body)
    }

    #[test]
    fn reads_an_init_and_keeps_the_exact_mech_list() {
        let token = init_with(b"NTLMSSP\0\x01\0\0\0");
        assert!(is_spnego(&token));
        let init = parse_init(&token).unwrap();
        assert_eq!(
            init.mech_token.as_deref(),
            Some(&b"NTLMSSP\0\x01\0\0\0"[..])
        );
        assert_eq!(init.mech_types, der(0x30, NTLM_OID));
    }

    #[test]
    fn writes_a_resp_the_parser_reads_back_and_long_lengths() {
        let big = vec![0x55u8; 300];
        let resp = build_resp(ACCEPT_INCOMPLETE, true, Some(&big), Some(&[1; 16]));
        let parsed = parse_resp(&resp).unwrap();
        assert_eq!(parsed.response_token, Some(big));
        assert_eq!(parsed.mech_list_mic, Some(vec![1; 16]));
    }

    #[test]
    fn refuses_garbage_and_kerberos_only() {
        assert!(parse_init(b"\x60\x05abc").is_err());
        let krb = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
        ];
        let mut seq = der(0xa0, &der(0x30, &krb));
        seq.extend(der(0xa2, &der(0x04, b"krb")));
        let mut body = SPNEGO_OID.to_vec();
        body.extend(der(0xa0, &der(0x30, &seq)));
        assert_eq!(parse_init(&der(0x60, &body)), Err(SpnegoError::NoNtlm));
    }
}
