//! The server side of NTLM (MS-NLMP) for one TCP connection.
//!
//! Windows binds an NTLM context to the connection that carried the handshake; every later
//! request on that connection is sealed with the session keys it produced. This type is that
//! context: NEGOTIATE → CHALLENGE → AUTHENTICATE, then seal/unseal with the connection's
//! sequence numbers.
//!
//! The acceptor is written here rather than taken from `sspi`, because what independent clients
//! need from it is exactly what a generic library got wrong for them:
//! - the CHALLENGE chooses one character set (UNICODE when offered, else OEM) instead of echoing
//!   both, which rubyntlm and gss-ntlmssp refuse;
//! - any NEGOTIATE gets a CHALLENGE, also one without REQUEST_TARGET or offering only OEM
//!   (go-ntlmssp, curl);
//! - the CHALLENGE names the host (TargetName, NetBIOS and DNS computer and domain names, the
//!   target-type flag) and carries the simulated OS's version, as Windows' does;
//! - the proof is checked and the session key derived from the client's own NTLMv2 blob (its
//!   timestamp, its AV pairs), never from one rebuilt with the server's clock.

use md4::Digest as _;

use super::sealing::{SessionSecurity, hmac_md5, rc4};
use crate::fleet::CbtHardening;

/// NTLMSSP_NEGOTIATE_UNICODE
pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
/// NTLM_NEGOTIATE_OEM
pub const NEGOTIATE_OEM: u32 = 0x0000_0002;
/// NTLMSSP_REQUEST_TARGET
pub const REQUEST_TARGET: u32 = 0x0000_0004;
/// NTLMSSP_NEGOTIATE_SIGN
pub const NEGOTIATE_SIGN: u32 = 0x0000_0010;
/// NTLMSSP_NEGOTIATE_SEAL
pub const NEGOTIATE_SEAL: u32 = 0x0000_0020;
/// NTLMSSP_NEGOTIATE_NTLM
pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
/// NTLMSSP_NEGOTIATE_ALWAYS_SIGN
pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
/// NTLMSSP_TARGET_TYPE_SERVER: the target is a computer's own account database (a workgroup host).
pub const TARGET_TYPE_SERVER: u32 = 0x0002_0000;
/// NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
/// NTLMSSP_NEGOTIATE_TARGET_INFO
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
/// NTLMSSP_NEGOTIATE_VERSION
pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;
/// NTLMSSP_NEGOTIATE_128
pub const NEGOTIATE_128: u32 = 0x2000_0000;
/// NTLMSSP_NEGOTIATE_KEY_EXCH
pub const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
/// NTLMSSP_NEGOTIATE_56
pub const NEGOTIATE_56: u32 = 0x8000_0000;

/// Flags the server keeps when the client offers them; everything else it offers (LM_KEY,
/// DATAGRAM, IDENTIFY, the OEM_*_SUPPLIED hints) Windows leaves out of its CHALLENGE.
const ECHOED: u32 = NEGOTIATE_SIGN
    | NEGOTIATE_SEAL
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_56;

/// Flags every Windows CHALLENGE carries whatever the client asked for.
const ALWAYS: u32 = REQUEST_TARGET
    | NEGOTIATE_NTLM
    | TARGET_TYPE_SERVER
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_VERSION;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const NTLMSSP_REVISION_W2K3: u8 = 15;

const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_DNS_COMPUTER_NAME: u16 = 3;
const AV_DNS_DOMAIN_NAME: u16 = 4;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
/// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
const AV_FLAG_MIC: u32 = 0x2;
/// MsvAvChannelBindings: MD5 of the client's gss_channel_bindings_struct (MS-NLMP 2.2.2.1).
const AV_CHANNEL_BINDINGS: u16 = 0x000a;
/// Where the MIC sits in an AUTHENTICATE_MESSAGE (after the Version field).
const MIC_OFFSET: usize = 72;

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
    #[error("the sealed message failed its NTLM signature check: {0}")]
    Unseal(String),
    #[error("the connection is not authenticated yet")]
    NotAuthenticated,
}

/// How the host names itself in its CHALLENGE (MS-NLMP 2.2.1.2).
///
/// The simulated hosts are workgroup members: on such a host the local account database is the
/// authority, so Windows names the computer as its NetBIOS and DNS "domain" too (what
/// `nmap --script ntlm-info` shows for any stand-alone Windows server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The computer name (`HOSTNAME`).
    pub computer: String,
    /// The Windows version the CHALLENGE's Version field reports: major, minor, build.
    pub os_version: (u8, u8, u16),
}

impl Default for ServerIdentity {
    fn default() -> ServerIdentity {
        ServerIdentity {
            computer: "WINSIM".to_string(),
            os_version: (10, 0, 20348),
        }
    }
}

impl ServerIdentity {
    /// The NetBIOS form: upper case, at most 15 characters.
    fn netbios(&self) -> String {
        self.computer.to_uppercase().chars().take(15).collect()
    }
}

/// Where the handshake stands.
enum Phase {
    /// Waiting for a NEGOTIATE_MESSAGE.
    Fresh,
    /// CHALLENGE sent; the MIC covers both messages, so both are kept.
    Challenged {
        negotiate: Vec<u8>,
        challenge: Vec<u8>,
    },
    /// Logged on; sealing keys are ready.
    Authenticated(Box<SessionSecurity>),
}

/// One connection's NTLM acceptor.
pub struct NtlmAcceptor {
    account: String,
    /// The NTLMv2 proof is computed from the password (NTOWFv2); it never leaves this struct.
    password: String,
    identity: ServerIdentity,
    phase: Phase,
    /// The exported session key, kept for the tests that prove its derivation.
    #[cfg(test)]
    session_key: [u8; 16],
    /// Under SPNEGO: the client's DER MechTypeList, which both mechListMICs cover.
    mech_types: Option<Vec<u8>>,
    /// Over HTTPS: the channel binding of this connection's certificate, and whether a logon
    /// must carry it (`CbtHardeningLevel=Strict`) or is only checked when it does (`Relaxed`).
    channel: Option<([u8; 16], CbtHardening)>,
}

impl std::fmt::Debug for NtlmAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmAcceptor")
            .field("account", &self.account)
            .field("authenticated", &self.is_authenticated())
            .finish_non_exhaustive()
    }
}

impl NtlmAcceptor {
    /// An acceptor that admits exactly `user` with `password` (the host's local administrator).
    pub fn new(user: &str, password: &str) -> Result<NtlmAcceptor, NtlmError> {
        // The characters Windows refuses in a user name (a `DOMAIN\` prefix is allowed).
        const REFUSED: [char; 14] = [
            '"', '/', '[', ']', ':', '|', '<', '>', '+', '=', ';', ',', '?', '*',
        ];
        if user.trim().is_empty() || user.contains(REFUSED) {
            return Err(NtlmError::BadAccount(user.to_string()));
        }
        Ok(NtlmAcceptor {
            account: user.to_string(),
            password: password.to_string(),
            identity: ServerIdentity::default(),
            phase: Phase::Fresh,
            #[cfg(test)]
            session_key: [0; 16],
            mech_types: None,
            channel: None,
        })
    }

    /// Name the host this acceptor answers for (its CHALLENGE carries these names and version).
    pub fn for_host(mut self, identity: ServerIdentity) -> NtlmAcceptor {
        self.identity = identity;
        self
    }

    /// Check the client's MsvAvChannelBindings against `expected` (a TLS connection's
    /// `tls-server-end-point` binding), as Windows does with Extended Protection.
    pub fn bound_to_channel(mut self, expected: [u8; 16], level: CbtHardening) -> NtlmAcceptor {
        self.channel = Some((expected, level));
        self
    }

    /// Remember the SPNEGO mech list this handshake started with.
    pub fn set_mech_types(&mut self, mech_types: Vec<u8>) {
        self.mech_types = Some(mech_types);
    }

    pub fn mech_types(&self) -> Option<&[u8]> {
        self.mech_types.as_deref()
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.phase, Phase::Authenticated(_))
    }

    /// Feed one raw NTLMSSP token from `Authorization: Negotiate <base64>` (or `NTLM <base64>`).
    pub fn step(&mut self, token: &[u8]) -> Result<Step, NtlmError> {
        if token.len() < 12 || &token[..8] != SIGNATURE {
            return Err(NtlmError::Handshake("not an NTLMSSP message".into()));
        }
        match (read_u32(token, 8), &self.phase) {
            (Some(1), _) => {
                let challenge = self.challenge(token)?;
                self.phase = Phase::Challenged {
                    negotiate: token.to_vec(),
                    challenge: challenge.clone(),
                };
                Ok(Step::Challenge(challenge))
            }
            (Some(3), Phase::Challenged { .. }) => {
                self.authenticate(token)?;
                Ok(Step::Authenticated)
            }
            (Some(3), _) => Err(NtlmError::Handshake(
                "AUTHENTICATE message without a CHALLENGE on this connection".into(),
            )),
            (kind, _) => Err(NtlmError::Handshake(format!(
                "unexpected NTLM message type {kind:?}"
            ))),
        }
    }

    /// Answer a NEGOTIATE_MESSAGE (MS-NLMP 3.2.5.1.1) as Windows does: one character set,
    /// the echoed security flags, the host's names and version, a fresh server challenge.
    fn challenge(&self, negotiate: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let offered = read_u32(negotiate, 12).ok_or_else(|| {
            NtlmError::Handshake("NEGOTIATE message too short for its flags".into())
        })?;
        let flags = choose_flags(offered);
        let unicode = flags & NEGOTIATE_UNICODE != 0;
        let netbios = self.identity.netbios();
        let target_name = if unicode {
            utf16le(&netbios)
        } else {
            netbios.clone().into_bytes()
        };
        let mut info = Vec::new();
        for (id, value) in [
            (AV_NB_DOMAIN_NAME, &netbios),
            (AV_NB_COMPUTER_NAME, &netbios),
            (AV_DNS_DOMAIN_NAME, &self.identity.computer),
            (AV_DNS_COMPUTER_NAME, &self.identity.computer),
        ] {
            av_pair(&mut info, id, &utf16le(value));
        }
        av_pair(&mut info, AV_TIMESTAMP, &filetime_now().to_le_bytes());
        av_pair(&mut info, AV_EOL, &[]);

        let (major, minor, build) = self.identity.os_version;
        let header_len = 56;
        let mut msg = Vec::with_capacity(header_len + target_name.len() + info.len());
        msg.extend_from_slice(SIGNATURE);
        msg.extend_from_slice(&2u32.to_le_bytes());
        push_field(&mut msg, target_name.len(), header_len);
        msg.extend_from_slice(&flags.to_le_bytes());
        msg.extend_from_slice(&server_challenge());
        msg.extend_from_slice(&[0; 8]);
        push_field(&mut msg, info.len(), header_len + target_name.len());
        msg.extend_from_slice(&[major, minor]);
        msg.extend_from_slice(&build.to_le_bytes());
        msg.extend_from_slice(&[0, 0, 0, NTLMSSP_REVISION_W2K3]);
        msg.extend_from_slice(&target_name);
        msg.extend_from_slice(&info);
        Ok(msg)
    }

    /// Check an AUTHENTICATE_MESSAGE (MS-NLMP 3.2.5.1.2) and derive the session keys from what
    /// the client sent: its NTLMv2 blob, its encrypted session key, its MIC.
    fn authenticate(&mut self, msg: &[u8]) -> Result<(), NtlmError> {
        let Phase::Challenged {
            negotiate,
            challenge,
        } = &self.phase
        else {
            return Err(NtlmError::Handshake("no CHALLENGE was sent".into()));
        };
        let auth = AuthenticateMessage::parse(msg).map_err(NtlmError::Handshake)?;
        let fail = |reason: &str| NtlmError::LogonFailed {
            user: auth.user.clone(),
            reason: reason.to_string(),
        };
        let server_challenge = challenge
            .get(24..32)
            .ok_or_else(|| fail("no challenge was sent"))?;
        let session_base_key = self.verify(&auth, server_challenge)?;
        // The binding sits in the blob the NTProofStr covers, so it is checked after the proof.
        if let Some((expected, level)) = self.channel {
            match auth
                .av_pair(AV_CHANNEL_BINDINGS)
                .filter(|b| b.iter().any(|&x| x != 0))
            {
                None if level == CbtHardening::Strict => {
                    return Err(fail(
                        "no channel binding (this host requires Extended Protection, \
                         CbtHardeningLevel=Strict)",
                    ));
                }
                None => {}
                Some(b) if b == expected => {}
                Some(_) => {
                    return Err(fail(
                        "the channel binding does not match this TLS connection's certificate \
                         (a TLS-intercepting proxy in between?)",
                    ));
                }
            }
        }
        // NTLMv2: the key-exchange key is the session base key; with KEY_EXCH the client picked
        // the exported key and sent it RC4-encrypted under that key.
        let exported: [u8; 16] = if auth.flags & NEGOTIATE_KEY_EXCH != 0 {
            rc4(&session_base_key, &auth.encrypted_session_key)
                .try_into()
                .map_err(|_| fail("the encrypted session key is not 16 bytes"))?
        } else {
            session_base_key
        };
        if auth.has_mic() {
            let mic = msg
                .get(MIC_OFFSET..MIC_OFFSET + 16)
                .ok_or_else(|| fail("the message announces a MIC but has none"))?;
            let mut zeroed = msg.to_vec();
            zeroed[MIC_OFFSET..MIC_OFFSET + 16].fill(0);
            if hmac_md5(&exported, &[negotiate, challenge, &zeroed])[..] != *mic {
                return Err(fail("the MIC does not match the handshake"));
            }
        }
        #[cfg(test)]
        {
            self.session_key = exported;
        }
        self.phase = Phase::Authenticated(Box::new(SessionSecurity::server(&exported)));
        Ok(())
    }

    /// NTLMv2 (MS-NLMP 3.3.2): NTProofStr = HMAC-MD5(NTOWFv2(password, user, domain),
    /// server challenge ‖ the client's blob). Windows' default policy refuses NTLMv1 and
    /// anonymous logons, so do we. Returns the session base key.
    fn verify(
        &self,
        proof: &AuthenticateMessage,
        server_challenge: &[u8],
    ) -> Result<[u8; 16], NtlmError> {
        let fail = |reason: &str| NtlmError::LogonFailed {
            user: proof.user.clone(),
            reason: reason.to_string(),
        };
        if proof.user.is_empty() && proof.nt_response.is_empty() {
            return Err(fail("anonymous logons are refused"));
        }
        let expected = self.account.rsplit('\\').next().unwrap_or(&self.account);
        let given = proof.user.rsplit('\\').next().unwrap_or(&proof.user);
        let given = given.split('@').next().unwrap_or(given);
        if !given.eq_ignore_ascii_case(expected) {
            return Err(fail("unknown user name"));
        }
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
        Ok(hmac_md5(&ntowf, &[nt_proof]))
    }

    fn security(&mut self) -> Result<&mut SessionSecurity, NtlmError> {
        match &mut self.phase {
            Phase::Authenticated(s) => Ok(s),
            _ => Err(NtlmError::NotAuthenticated),
        }
    }

    /// Seal one outgoing message: (signature, sealed bytes).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NtlmError> {
        let (sig, sealed) = self.security()?.seal(plaintext);
        Ok((sig.to_vec(), sealed))
    }

    /// Unseal one incoming message and verify its signature and sequence number.
    pub fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        self.security()?
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
        let security = self.security()?;
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

/// The flags of the CHALLENGE answering a NEGOTIATE that offered `offered`.
///
/// Windows picks UNICODE whenever the client offers it (also with OEM), OEM only when that is
/// all the client speaks, and answers whether or not the client set REQUEST_TARGET.
pub fn choose_flags(offered: u32) -> u32 {
    let charset = if offered & NEGOTIATE_UNICODE != 0 || offered & NEGOTIATE_OEM == 0 {
        NEGOTIATE_UNICODE
    } else {
        NEGOTIATE_OEM
    };
    charset | ALWAYS | (offered & ECHOED)
}

/// The parts of an AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3) the acceptor needs.
#[derive(Debug)]
struct AuthenticateMessage {
    nt_response: Vec<u8>,
    user: String,
    domain: String,
    encrypted_session_key: Vec<u8>,
    flags: u32,
}

impl AuthenticateMessage {
    fn parse(msg: &[u8]) -> Result<AuthenticateMessage, String> {
        let field = |at: usize, name: &str| -> Result<&[u8], String> {
            let h = msg
                .get(at..at + 8)
                .ok_or_else(|| format!("AUTHENTICATE message too short for its {name} field"))?;
            let len = u16::from_le_bytes([h[0], h[1]]) as usize;
            let off = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if len == 0 {
                return Ok(&[]);
            }
            msg.get(off..off.saturating_add(len))
                .ok_or_else(|| format!("AUTHENTICATE {name} field points outside the message"))
        };
        let flags = read_u32(msg, 60).ok_or("AUTHENTICATE message too short for its flags")?;
        let text = |b: &[u8]| -> String {
            if flags & NEGOTIATE_UNICODE != 0 {
                let units: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(b).into_owned()
            }
        };
        Ok(AuthenticateMessage {
            nt_response: field(20, "NtChallengeResponse")?.to_vec(),
            domain: text(field(28, "DomainName")?),
            user: text(field(36, "UserName")?),
            encrypted_session_key: field(52, "EncryptedRandomSessionKey")?.to_vec(),
            flags,
        })
    }

    /// The value of one AV pair of the client's NTLMv2 blob.
    fn av_pair(&self, wanted: u16) -> Option<&[u8]> {
        let mut pairs = self.nt_response.get(16 + 28..).unwrap_or(&[]);
        while pairs.len() >= 4 {
            let id = u16::from_le_bytes([pairs[0], pairs[1]]);
            let len = u16::from_le_bytes([pairs[2], pairs[3]]) as usize;
            let value = pairs.get(4..4 + len)?;
            if id == AV_EOL {
                return None;
            }
            if id == wanted {
                return Some(value);
            }
            pairs = &pairs[4 + len..];
        }
        None
    }

    /// True when the client's blob says a MIC follows the Version field (MsvAvFlags bit 2).
    fn has_mic(&self) -> bool {
        // NTProofStr (16) then the blob: 28 fixed bytes before its AV pairs.
        let mut pairs = self.nt_response.get(16 + 28..).unwrap_or(&[]);
        while pairs.len() >= 4 {
            let id = u16::from_le_bytes([pairs[0], pairs[1]]);
            let len = u16::from_le_bytes([pairs[2], pairs[3]]) as usize;
            let Some(value) = pairs.get(4..4 + len) else {
                return false;
            };
            if id == AV_EOL {
                return false;
            }
            if id == AV_FLAGS && len == 4 {
                let f = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                return f & AV_FLAG_MIC != 0;
            }
            pairs = &pairs[4 + len..];
        }
        false
    }
}

fn read_u32(msg: &[u8], at: usize) -> Option<u32> {
    msg.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A security buffer header: length, maximum length, offset.
fn push_field(msg: &mut Vec<u8>, len: usize, offset: usize) {
    let len = len as u16;
    msg.extend_from_slice(&len.to_le_bytes());
    msg.extend_from_slice(&len.to_le_bytes());
    msg.extend_from_slice(&(offset as u32).to_le_bytes());
}

fn av_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

/// Eight fresh random bytes (a v4 UUID is drawn from the OS's generator).
fn server_challenge() -> [u8; 8] {
    // Bytes 6 and 8 of a v4 UUID carry its version and variant; the others are random.
    let b = *uuid::Uuid::new_v4().as_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5], b[10], b[11]]
}

/// Now as a Windows FILETIME (100 ns ticks since 1601-01-01).
fn filetime_now() -> u64 {
    const UNIX_TO_1601: u64 = 11_644_473_600;
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (since_unix.as_secs() + UNIX_TO_1601) * 10_000_000 + u64::from(since_unix.subsec_nanos() / 100)
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "Administrator";
    const PASSWORD: &str = "Sim-Passw0rd!";

    /// go-ntlmssp's NEGOTIATE flags: UNICODE only, no REQUEST_TARGET, no NTLM, no SIGN/SEAL.
    const GO_NTLMSSP: u32 = 0xa088_0001;
    /// curl's NEGOTIATE flags: OEM only (OEM, REQUEST_TARGET, NTLM, ALWAYS_SIGN, ESS).
    const CURL: u32 = 0x0008_8206;
    /// What pywinrm/pyspnego, rubyntlm, gss-ntlmssp and hive offer: both character sets.
    const BOTH: u32 = 0xe208_8237;

    fn negotiate(flags: u32) -> Vec<u8> {
        let mut m = SIGNATURE.to_vec();
        m.extend(1u32.to_le_bytes());
        m.extend(flags.to_le_bytes());
        m.extend([0u8; 16]);
        m
    }

    /// An AV pair list as a parsed map (id → value).
    fn av_pairs(mut data: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while data.len() >= 4 {
            let id = u16::from_le_bytes([data[0], data[1]]);
            let len = u16::from_le_bytes([data[2], data[3]]) as usize;
            out.push((id, data[4..4 + len].to_vec()));
            if id == AV_EOL {
                break;
            }
            data = &data[4 + len..];
        }
        out
    }

    fn field(msg: &[u8], at: usize) -> Vec<u8> {
        let len = u16::from_le_bytes([msg[at], msg[at + 1]]) as usize;
        let off = read_u32(msg, at + 4).unwrap() as usize;
        msg[off..off + len].to_vec()
    }

    fn target_info(challenge: &[u8]) -> Vec<(u16, Vec<u8>)> {
        av_pairs(&field(challenge, 40))
    }

    /// A client's AUTHENTICATE in the shape pywinrm and Windows send: NTLMv2 with the client's
    /// own blob (timestamp `client_time`, MsvAvFlags announcing a MIC when `mic`), key exchange
    /// of `exported`.
    fn authenticate(
        negotiate: &[u8],
        challenge: &[u8],
        password: &str,
        client_time: u64,
        exported: [u8; 16],
        mic: bool,
    ) -> Vec<u8> {
        let server_challenge = &challenge[24..32];
        let mut pairs = target_info(challenge);
        pairs.retain(|(id, _)| *id != AV_EOL);
        if mic {
            pairs.push((AV_FLAGS, AV_FLAG_MIC.to_le_bytes().to_vec()));
        }
        let mut blob = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
        blob.extend(client_time.to_le_bytes());
        blob.extend([0x77; 8]);
        blob.extend([0; 4]);
        for (id, v) in &pairs {
            av_pair(&mut blob, *id, v);
        }
        av_pair(&mut blob, AV_EOL, &[]);
        blob.extend([0; 4]);
        let nt_hash = md4::Md4::digest(utf16le(password));
        let ntowf = hmac_md5(
            &nt_hash,
            &[&utf16le(&(USER.to_uppercase() + "WORKSTATION"))],
        );
        let proof = hmac_md5(&ntowf, &[server_challenge, &blob]);
        let base = hmac_md5(&ntowf, &[&proof]);
        let mut nt = proof.to_vec();
        nt.extend(&blob);
        let encrypted = rc4(&base, &exported);
        let flags = read_u32(challenge, 20).unwrap();

        let payload_at = 88;
        let lm = vec![0u8; 24];
        let domain = utf16le("WORKSTATION");
        let user = utf16le(USER);
        let mut m = SIGNATURE.to_vec();
        m.extend(3u32.to_le_bytes());
        let mut payload = Vec::new();
        let mut header = Vec::new();
        for part in [&lm, &nt, &domain, &user, &Vec::new(), &encrypted] {
            push_field(&mut header, part.len(), payload_at + payload.len());
            payload.extend_from_slice(part);
        }
        m.extend(header);
        m.extend(flags.to_le_bytes());
        m.extend([10, 0, 0x61, 0x4a, 0, 0, 0, 15]);
        m.extend([0u8; 16]);
        m.extend(payload);
        if mic {
            let value = hmac_md5(&exported, &[negotiate, challenge, &m]);
            m[MIC_OFFSET..MIC_OFFSET + 16].copy_from_slice(&value);
        }
        m
    }

    fn challenged(flags: u32) -> (NtlmAcceptor, Vec<u8>, Vec<u8>) {
        let mut acceptor = NtlmAcceptor::new(USER, PASSWORD)
            .unwrap()
            .for_host(ServerIdentity {
                computer: "srv2012r2-07".into(),
                os_version: (6, 3, 9600),
            });
        let negotiate = negotiate(flags);
        let Step::Challenge(challenge) = acceptor.step(&negotiate).unwrap() else {
            panic!("no CHALLENGE")
        };
        (acceptor, negotiate, challenge)
    }

    #[test]
    fn both_character_sets_offered_gets_unicode_only() {
        let (_, _, challenge) = challenged(BOTH);
        let flags = read_u32(&challenge, 20).unwrap();
        assert_eq!(
            flags & (NEGOTIATE_UNICODE | NEGOTIATE_OEM),
            NEGOTIATE_UNICODE
        );
        assert_eq!(
            flags & (NEGOTIATE_SIGN | NEGOTIATE_SEAL | NEGOTIATE_KEY_EXCH | NEGOTIATE_128),
            NEGOTIATE_SIGN | NEGOTIATE_SEAL | NEGOTIATE_KEY_EXCH | NEGOTIATE_128
        );
    }

    #[test]
    fn go_ntlmssp_and_curl_negotiates_get_a_challenge() {
        let (_, _, go) = challenged(GO_NTLMSSP);
        let flags = read_u32(&go, 20).unwrap();
        assert_eq!(
            flags & (NEGOTIATE_UNICODE | NEGOTIATE_OEM),
            NEGOTIATE_UNICODE
        );
        assert_ne!(flags & REQUEST_TARGET, 0);
        assert_eq!(
            flags & (NEGOTIATE_SIGN | NEGOTIATE_SEAL),
            0,
            "nothing the client did not offer"
        );

        let (_, _, curl) = challenged(CURL);
        let flags = read_u32(&curl, 20).unwrap();
        assert_eq!(flags & (NEGOTIATE_UNICODE | NEGOTIATE_OEM), NEGOTIATE_OEM);
        assert_eq!(
            field(&curl, 12),
            b"SRV2012R2-07",
            "an OEM TargetName for an OEM client"
        );
    }

    #[test]
    fn challenge_names_the_host_and_its_windows_version() {
        let (_, _, challenge) = challenged(BOTH);
        let flags = read_u32(&challenge, 20).unwrap();
        assert_ne!(flags & TARGET_TYPE_SERVER, 0);
        assert_ne!(flags & NEGOTIATE_TARGET_INFO, 0);
        assert_ne!(flags & NEGOTIATE_VERSION, 0);
        assert_eq!(field(&challenge, 12), utf16le("SRV2012R2-07"));
        let info = target_info(&challenge);
        let name = |id| info.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone());
        assert_eq!(name(AV_NB_COMPUTER_NAME), Some(utf16le("SRV2012R2-07")));
        assert_eq!(name(AV_NB_DOMAIN_NAME), Some(utf16le("SRV2012R2-07")));
        assert_eq!(name(AV_DNS_COMPUTER_NAME), Some(utf16le("srv2012r2-07")));
        assert_eq!(name(AV_DNS_DOMAIN_NAME), Some(utf16le("srv2012r2-07")));
        assert_eq!(name(AV_TIMESTAMP).map(|t| t.len()), Some(8));
        // Windows Server 2012 R2: 6.3 build 9600 (0x2580), NTLMSSP revision 15.
        assert_eq!(&challenge[48..56], &[6, 3, 0x80, 0x25, 0, 0, 0, 15]);
    }

    #[test]
    fn session_key_comes_from_the_clients_own_blob() {
        let (mut acceptor, negotiate, challenge) = challenged(BOTH);
        let info = target_info(&challenge);
        let server_time = info
            .iter()
            .find(|(i, _)| *i == AV_TIMESTAMP)
            .map(|(_, v)| u64::from_le_bytes(v[..8].try_into().unwrap()))
            .unwrap();
        // A client whose clock is an hour behind the server's.
        let client_time = server_time - 36_000_000_000;
        let exported = [0x5a; 16];
        let auth = authenticate(
            &negotiate,
            &challenge,
            PASSWORD,
            client_time,
            exported,
            true,
        );
        assert_eq!(acceptor.step(&auth).unwrap(), Step::Authenticated);
        assert_eq!(acceptor.session_key, exported);
    }

    #[test]
    fn wrong_password_and_tampered_mic_are_refused() {
        let (mut acceptor, negotiate, challenge) = challenged(BOTH);
        let auth = authenticate(&negotiate, &challenge, "Passw0rd", 1, [1; 16], true);
        assert!(matches!(
            acceptor.step(&auth),
            Err(NtlmError::LogonFailed { .. })
        ));

        let (mut acceptor, negotiate, challenge) = challenged(BOTH);
        let mut auth = authenticate(&negotiate, &challenge, PASSWORD, 1, [1; 16], true);
        auth[MIC_OFFSET] ^= 1;
        assert!(matches!(
            acceptor.step(&auth),
            Err(NtlmError::LogonFailed { .. })
        ));

        // Without a MIC (go-ntlmssp sends none) the proof alone decides.
        let (mut acceptor, negotiate, challenge) = challenged(GO_NTLMSSP);
        let auth = authenticate(&negotiate, &challenge, PASSWORD, 1, [2; 16], false);
        assert_eq!(acceptor.step(&auth).unwrap(), Step::Authenticated);
        assert!(acceptor.is_authenticated());
    }

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
    /// 0123456789abcdef; 4.2.4.1.2 gives its session base key. The proof is checked without any
    /// MIC, so a client that sends none still cannot log on with a wrong password.
    #[test]
    fn ntlmv2_proof_matches_the_ms_nlmp_vector() {
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
        let proof = AuthenticateMessage {
            nt_response,
            user: "User".into(),
            domain: "Domain".into(),
            encrypted_session_key: Vec::new(),
            flags: 0,
        };
        let challenge = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

        let right = NtlmAcceptor::new("User", "Password").unwrap();
        assert_eq!(
            right.verify(&proof, &challenge).unwrap(),
            [
                0x8d, 0xe4, 0x0c, 0xca, 0xdb, 0xc1, 0x4a, 0x82, 0xf1, 0x5c, 0xb0, 0xad, 0x0d, 0xe9,
                0x5c, 0xa3
            ]
        );
        let wrong = NtlmAcceptor::new("User", "Passw0rd").unwrap();
        assert!(matches!(
            wrong.verify(&proof, &challenge),
            Err(NtlmError::LogonFailed { .. })
        ));
        let other = NtlmAcceptor::new("Administrator", "Password").unwrap();
        assert!(matches!(
            other.verify(&proof, &challenge),
            Err(NtlmError::LogonFailed { .. })
        ));
    }
}
