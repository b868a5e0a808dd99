//! The server side of NTLM for one TCP connection, over `sspi`'s acceptor.
//!
//! Windows binds an NTLM context to the connection that carried the handshake; every later
//! request on that connection is sealed with the session keys it produced. This type is that
//! context: the handshake steps, then seal/unseal with the connection's sequence numbers.

use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, CredentialUse, DataRepresentation,
    EncryptionFlags, Ntlm, SecurityBuffer, SecurityBufferRef, SecurityStatus, ServerRequestFlags,
    Sspi, Username,
};

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
            authenticated: false,
            started: false,
        })
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

    /// Check the proof of the password (sspi verifies the MIC with the session key derived from
    /// it) and that the client logged on as the host's account, as Windows would.
    fn complete(&mut self) -> Result<(), NtlmError> {
        let wire_user = self
            .ntlm
            .query_context_names()
            .map(|n| n.username.account_name().to_string())
            .unwrap_or_default();
        self.ntlm
            .complete_auth_token(&mut [])
            .map_err(|e| NtlmError::LogonFailed {
                user: wire_user.clone(),
                reason: e.to_string(),
            })?;
        let expected = self.account.rsplit('\\').next().unwrap_or(&self.account);
        let given = wire_user.rsplit('\\').next().unwrap_or(&wire_user);
        let given = given.split('@').next().unwrap_or(given);
        if !given.eq_ignore_ascii_case(expected) {
            return Err(NtlmError::LogonFailed {
                user: wire_user,
                reason: "unknown user name".into(),
            });
        }
        self.authenticated = true;
        Ok(())
    }

    /// Seal one outgoing message: (signature, sealed bytes).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NtlmError> {
        if !self.authenticated {
            return Err(NtlmError::NotAuthenticated);
        }
        let mut signature = vec![0u8; 16];
        let mut data = plaintext.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut signature),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.ntlm
            .encrypt_message(EncryptionFlags::empty(), &mut buffers)
            .map_err(|e| NtlmError::Seal(e.to_string()))?;
        Ok((signature, data))
    }

    /// Unseal one incoming message and verify its signature and sequence number.
    pub fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        if !self.authenticated {
            return Err(NtlmError::NotAuthenticated);
        }
        let mut sig = signature.to_vec();
        let mut data = sealed.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut sig),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.ntlm
            .decrypt_message(&mut buffers)
            .map_err(|e| NtlmError::Unseal(e.to_string()))?;
        Ok(buffers[1].data().to_vec())
    }
}
