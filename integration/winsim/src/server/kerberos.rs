//! Kerberos acceptor for a simulated host: MIT GSSAPI keyed from the host's keytab (the default
//! keytab, `KRB5_KTNAME`, as `/etc/krb5.keytab` is a real host's; the harness points it at the
//! keys of the simulated hosts' `HTTP/` SPNs), taking a raw Kerberos AP-REQ (pyspnego
//! `kerberos`, hive) or SPNEGO around one (pyspnego `negotiate`), and sealing messages the way
//! MS-WSMV's `HTTP-Kerberos-session-encrypted` wants: the wrap token's header apart, then the
//! ciphertext.
//!
//! Any principal the KDC vouches for may log on: the simulated host plays a domain member whose
//! administrators group holds the test admin, and the KDC is the harness's own.

use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::util::{GssIov, GssIovFake, GssIovType};

/// DER of the Kerberos v5 mechanism OID, 1.2.840.113554.1.2.2.
const KRB5_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
];

/// MIT's `GSS_C_CHANNEL_BOUND_FLAG` (krb5 1.19 on): the initiator's bindings matched ours.
const GSS_C_CHANNEL_BOUND_FLAG: u32 = 2048;

/// True for an RFC 4121 initial context token (`[APPLICATION 0]` with the Kerberos OID first).
pub fn is_krb5_token(token: &[u8]) -> bool {
    if token.first() != Some(&0x60) || token.len() < 2 {
        return false;
    }
    let skip = match token[1] {
        n if n < 0x80 => 2,
        n => 2 + (n & 0x7f) as usize,
    };
    token
        .get(skip..)
        .is_some_and(|rest| rest.starts_with(KRB5_OID))
}

/// One connection's Kerberos context.
pub struct KerberosAcceptor {
    ctx: ServerCtx,
    /// `user@REALM` once the context is complete.
    pub client: Option<String>,
}

impl KerberosAcceptor {
    pub fn new() -> Self {
        KerberosAcceptor {
            ctx: ServerCtx::new(None),
            client: None,
        }
    }

    /// Take the client's token; returns the reply token (an AP-REP when mutual authentication was
    /// asked for) once the context is complete. Errors carry MIT's reason.
    ///
    /// Over HTTPS `binding` is the listener's `tls-server-end-point` application data: MIT then
    /// refuses an authenticator whose checksum carries another binding (GSS_S_BAD_BINDINGS) and
    /// accepts one with none; `strict` (CbtHardeningLevel=Strict) refuses that one too, as
    /// Windows does, by asking whether the context came out channel-bound.
    pub fn accept(
        &mut self,
        token: &[u8],
        binding: Option<&[u8]>,
        strict: bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let reply = self.ctx.step(token, binding).map_err(|e| e.to_string())?;
        if !self.ctx.is_complete() {
            return Err("the Kerberos context needs more than one token".into());
        }
        if strict && binding.is_some() {
            let flags = self.ctx.flags().map_err(|e| e.to_string())?;
            if flags.bits() & GSS_C_CHANNEL_BOUND_FLAG == 0 {
                return Err("the authenticator carries no channel binding \
                            (CbtHardeningLevel=Strict)"
                    .into());
            }
        }
        self.client = Some(
            self.ctx
                .source_name()
                .map_err(|e| e.to_string())?
                .to_string(),
        );
        Ok(reply.map(|b| b.to_vec()))
    }

    pub fn is_authenticated(&self) -> bool {
        self.client.is_some()
    }

    /// Seal one message: (wrap token header, ciphertext followed by any padding).
    pub fn seal(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut data = plain.to_vec();
        let mut lengths = [
            GssIovFake::new(GssIovType::Header),
            GssIov::new(GssIovType::Data, &mut data).as_fake(),
            GssIovFake::new(GssIovType::Padding),
        ];
        self.ctx
            .wrap_iov_length(true, &mut lengths)
            .map_err(|e| e.to_string())?;
        let mut header = vec![0u8; lengths[0].len()];
        let mut padding = vec![0u8; lengths[2].len()];
        {
            let mut iovs = [
                GssIov::new(GssIovType::Header, &mut header),
                GssIov::new(GssIovType::Data, &mut data),
                GssIov::new(GssIovType::Padding, &mut padding),
            ];
            self.ctx
                .wrap_iov(true, &mut iovs)
                .map_err(|e| e.to_string())?;
        }
        data.extend_from_slice(&padding);
        Ok((header, data))
    }

    /// Check and decrypt one message.
    pub fn unseal(&mut self, header: &[u8], cipher: &[u8]) -> Result<Vec<u8>, String> {
        let mut header = header.to_vec();
        let mut data = cipher.to_vec();
        {
            let mut iovs = [
                GssIov::new(GssIovType::Header, &mut header),
                GssIov::new(GssIovType::Data, &mut data),
            ];
            self.ctx.unwrap_iov(&mut iovs).map_err(|e| e.to_string())?;
        }
        Ok(data)
    }
}

impl Default for KerberosAcceptor {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_raw_kerberos_tokens_only() {
        let mut t = vec![0x60, 0x0d];
        t.extend_from_slice(KRB5_OID);
        t.extend_from_slice(&[0x01, 0x00]);
        assert!(is_krb5_token(&t));
        let spnego = [0x60, 0x08, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
        assert!(!is_krb5_token(&spnego));
        assert!(!is_krb5_token(b"NTLMSSP\0"));
        assert!(!is_krb5_token(&[0x60]));
    }
}
