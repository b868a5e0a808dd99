//! The server side of NTLM for one TCP connection, over `sspi`'s acceptor.
//!
//! Windows binds an NTLM context to the connection that carried the handshake; every later
//! request on that connection is sealed with the session keys it produced. This type is that
//! context: the handshake steps, then seal/unseal with the connection's sequence numbers.

use md4::Digest as _;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, CredentialUse, DataRepresentation, Ntlm,
    SecurityBuffer, SecurityStatus, ServerRequestFlags, Sspi, Username,
};

use super::sealing::{SessionSecurity, hmac_md5};

/// What the server must answer after one handshake token.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Answer 401 with this CHALLENGE_MESSAGE.
    Challenge(Vec<u8>),
    /// The AUTHENTICATE_MESSAGE proved the password: the connection is authenticated.
    Authenticated,
}

/// Why the handshake or a sealed message was refused. Never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum NtlmError {
    #[error("the account name {0:?} is not a valid Windows user name")]
    BadAccount(String),
    #[error("NTLM handshake token refused: {0}")]
    Handshake(String),
    #[error("NTLM logon failed for user {user:?}: {reason}")]
    LogonFailed { user: String, reason: String },
    #[error("NTLM sealing failed: {0}")]
    Seal(String),
    #[error("the sealed message failed its NTLM signature check: {0}")]
    Unseal(String),
    #[error("the connection is not authenticated yet")]
    NotAuthenticated,
}

/// One connection's NTLM acceptor.
pub struct NtlmAcceptor {
    ntlm: Ntlm,
    credentials: Option<AuthIdentityBuffers>,
    account: String,
    /// Kept to check the NTLMv2 proof ourselves: sspi only checks the password through the MIC,
    /// and a client that sends no MIC would otherwise get in with any password.
    password: String,
    /// The CHALLENGE_MESSAGE we sent (its server challenge is bytes 24..32).
    challenge: Vec<u8>,
    /// Signing and sealing, once authenticated.
    security: Option<SessionSecurity>,
    /// Under SPNEGO: the client's DER MechTypeList, which both mechListMICs cover.
    mech_types: Option<Vec<u8>>,
    authenticated: bool,
    started: bool,
}

impl std::fmt::Debug for NtlmAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmAcceptor")
            .field("account", &self.account)
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

impl NtlmAcceptor {
    /// An acceptor that admits exactly `user` with `password` (the host's local administrator).
    pub fn new(user: &str, password: &str) -> Result<NtlmAcceptor, NtlmError> {
        let identity = AuthIdentity {
            username: Username::parse(user).map_err(|_| NtlmError::BadAccount(user.to_string()))?,
            password: password.to_string().into(),
        };
        let mut ntlm = Ntlm::new();
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| NtlmError::Handshake(e.to_string()))?;
        Ok(NtlmAcceptor {
            ntlm,
            credentials: acquired.credentials_handle,
            account: user.to_string(),
            password: password.to_string(),
            challenge: Vec::new(),
            security: None,
            mech_types: None,
            authenticated: false,
            started: false,
        })
    }

    /// Remember the SPNEGO mech list this handshake started with.
    pub fn set_mech_types(&mut self, mech_types: Vec<u8>) {
        self.mech_types = Some(mech_types);
    }

    pub fn mech_types(&self) -> Option<&[u8]> {
        self.mech_types.as_deref()
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// True once a NEGOTIATE_MESSAGE was accepted (a new NEGOTIATE then means "start over").
    pub fn started(&self) -> bool {
        self.started
    }

    /// Feed one raw NTLMSSP token from `Authorization: Negotiate <base64>`.
    pub fn step(&mut self, token: &[u8]) -> Result<Step, NtlmError> {
        if token.get(8..12) == Some(&3u32.to_le_bytes()[..]) {
            // Check the proof before sspi derives keys from it: a wrong password fails here.
            let proof = authenticate_proof(token).map_err(NtlmError::Handshake)?;
            self.verify(&proof)?;
        }
        let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let result = self
            .ntlm
            .accept_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output)
            .execute(&mut self.ntlm)
            .map_err(|e| NtlmError::Handshake(e.to_string()))?
            .resolve_to_result()
            .map_err(|e| NtlmError::Handshake(e.to_string()))?;
        self.started = true;
        match result.status {
            SecurityStatus::ContinueNeeded => {
                let challenge = output
                    .into_iter()
                    .next()
                    .map(|b| b.buffer)
                    .unwrap_or_default();
                self.challenge = challenge.clone();
                Ok(Step::Challenge(challenge))
            }
            SecurityStatus::CompleteNeeded
            | SecurityStatus::CompleteAndContinue
            | SecurityStatus::Ok => {
                self.complete()?;
                Ok(Step::Authenticated)
            }
            other => Err(NtlmError::Handshake(format!(
                "unexpected SSPI status {other:?}"
            ))),
        }
    }

    /// NTLMv2 (MS-NLMP 3.3.2): NTProofStr = HMAC-MD5(NTOWFv2(password, user, domain),
    /// server challenge ‖ client blob). Windows' default policy refuses NTLMv1, so do we.
    fn verify(&self, proof: &AuthenticateProof) -> Result<(), NtlmError> {
        let fail = |reason: &str| NtlmError::LogonFailed {
            user: proof.user.clone(),
            reason: reason.to_string(),
        };
        let expected = self.account.rsplit('\\').next().unwrap_or(&self.account);
        let given = proof.user.rsplit('\\').next().unwrap_or(&proof.user);
        let given = given.split('@').next().unwrap_or(given);
        if !given.eq_ignore_ascii_case(expected) {
            return Err(fail("unknown user name"));
        }
        let server_challenge = self
            .challenge
            .get(24..32)
            .ok_or_else(|| fail("no challenge was sent"))?;
        if proof.nt_response.len() <= 24 {
            return Err(fail("NTLMv1 responses are refused"));
        }
        let (nt_proof, blob) = proof.nt_response.split_at(16);
        let nt_hash = md4::Md4::digest(utf16le(&self.password));
        let identity = utf16le(&(proof.user.to_uppercase() + &proof.domain));
        let ntowf = hmac_md5(&nt_hash, &[&identity]);
        if hmac_md5(&ntowf, &[server_challenge, blob])[..] != *nt_proof {
            return Err(fail("wrong password"));
        }
        Ok(())
    }

    /// Let sspi finish (it derives the session keys and checks the MIC when there is one).
    fn complete(&mut self) -> Result<(), NtlmError> {
        self.ntlm
            .complete_auth_token(&mut [])
            .map_err(|e| NtlmError::LogonFailed {
                user: self.account.clone(),
                reason: e.to_string(),
            })?;
        let keys = self
            .ntlm
            .query_context_session_key()
            .map_err(|e| NtlmError::LogonFailed {
                user: self.account.clone(),
                reason: e.to_string(),
            })?;
        self.security = Some(SessionSecurity::server(keys.session_key.as_ref()));
        self.authenticated = true;
        Ok(())
    }

    /// Seal one outgoing message: (signature, sealed bytes).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NtlmError> {
        let security = self.security.as_mut().ok_or(NtlmError::NotAuthenticated)?;
        let (sig, sealed) = security.seal(plaintext);
        Ok((sig.to_vec(), sealed))
    }

    /// Unseal one incoming message and verify its signature and sequence number.
    pub fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let security = self.security.as_mut().ok_or(NtlmError::NotAuthenticated)?;
        security
            .unseal(signature, sealed)
            .map_err(|e| NtlmError::Unseal(e.to_string()))
    }

    /// The SPNEGO mechListMIC exchange: check the client's MIC over the mech list, answer with
    /// ours, then restart both RC4 streams as RFC 4178 peers (Windows, pyspnego) do.
    pub fn exchange_mech_list_mic(
        &mut self,
        mech_types: &[u8],
        client_mic: Option<&[u8]>,
    ) -> Result<Vec<u8>, NtlmError> {
        let security = self.security.as_mut().ok_or(NtlmError::NotAuthenticated)?;
        if let Some(mic) = client_mic {
            security
                .verify(mech_types, mic)
                .map_err(|e| NtlmError::Unseal(format!("mechListMIC: {e}")))?;
            security.reset(false);
        }
        let ours = security.sign(mech_types);
        security.reset(true);
        Ok(ours.to_vec())
    }
}

/// The parts of an AUTHENTICATE_MESSAGE the proof check needs.
#[derive(Debug)]
struct AuthenticateProof {
    nt_response: Vec<u8>,
    user: String,
    domain: String,
}

/// Read NtChallengeResponse, DomainName and UserName from an AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3).
fn authenticate_proof(msg: &[u8]) -> Result<AuthenticateProof, String> {
    let field = |at: usize| -> Result<&[u8], String> {
        let h = msg
            .get(at..at + 8)
            .ok_or("AUTHENTICATE message too short")?;
        let len = u16::from_le_bytes([h[0], h[1]]) as usize;
        let off = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        msg.get(off..off + len)
            .ok_or_else(|| format!("AUTHENTICATE field at {at} points outside the message"))
    };
    let flags = msg
        .get(60..64)
        .map(|f| u32::from_le_bytes([f[0], f[1], f[2], f[3]]))
        .unwrap_or(0);
    let text = |b: &[u8]| -> String {
        if flags & 1 != 0 {
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    };
    Ok(AuthenticateProof {
        nt_response: field(20)?.to_vec(),
        domain: text(field(28)?),
        user: text(field(36)?),
    })
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-NLMP 4.2.4.1.1: NTOWFv2("Password", "User", "Domain").
    #[test]
    fn ntowfv2_matches_the_ms_nlmp_vector() {
        let nt_hash = md4::Md4::digest(utf16le("Password"));
        let ntowf = hmac_md5(&nt_hash, &[&utf16le(&("User".to_uppercase() + "Domain"))]);
        assert_eq!(
            ntowf,
            [
                0x0c, 0x86, 0x8a, 0x40, 0x3b, 0xfd, 0x7a, 0x93, 0xa3, 0x00, 0x1e, 0xf2, 0x2e, 0xf0,
                0x2e, 0x3f
            ]
        );
    }

    /// MS-NLMP 4.2.4.2.2: the NTLMv2 response for User/Domain/Password and server challenge
    /// 0123456789abcdef. The proof is checked without any MIC, so a client that sends none
    /// still cannot log on with a wrong password.
    #[test]
    fn ntlmv2_proof_is_checked_without_a_mic() {
        let mut temp = vec![1u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        temp.extend([0xaa; 8]);
        temp.extend([0; 4]);
        temp.extend([2, 0, 12, 0]);
        temp.extend(utf16le("Domain"));
        temp.extend([1, 0, 12, 0]);
        temp.extend(utf16le("Server"));
        temp.extend([0; 8]);
        let mut nt_response = vec![
            0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5, 0x1c, 0x96, 0xaa, 0xbc, 0x92, 0x7b, 0xeb, 0xef,
            0x6a, 0x1c,
        ];
        nt_response.extend(temp);
        let proof = AuthenticateProof {
            nt_response,
            user: "User".into(),
            domain: "Domain".into(),
        };
        let mut challenge = vec![0u8; 24];
        challenge.extend([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);

        let mut right = NtlmAcceptor::new("User", "Password").unwrap();
        right.challenge = challenge.clone();
        right.verify(&proof).unwrap();

        let mut wrong = NtlmAcceptor::new("User", "Passw0rd").unwrap();
        wrong.challenge = challenge.clone();
        assert!(matches!(
            wrong.verify(&proof),
            Err(NtlmError::LogonFailed { .. })
        ));

        let mut other = NtlmAcceptor::new("Administrator", "Password").unwrap();
        other.challenge = challenge;
        assert!(matches!(
            other.verify(&proof),
            Err(NtlmError::LogonFailed { .. })
        ));
    }
}
