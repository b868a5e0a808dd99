//! NTLMv2 authentication and message sealing (MS-NLMP), pure and sans-IO.
//!
//! Windows' default WinRM listener (HTTP 5985) accepts only Negotiate with message-level
//! encryption: every SOAP body is RC4-sealed with keys derived from the NTLM exchange. We implement
//! the client side ourselves (about as long as the glue an external crate would need) so the
//! sealing state is ours to reset on reconnect, and the exact bytes are tested against the
//! MS-NLMP examples and an independent acceptor (pyspnego) in `integration/winrm_peer`.
//!
//! Only NTLMv2 with extended session security, 128-bit keys and key exchange is offered: that is
//! what every Windows version since Vista negotiates, and older variants are broken.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;

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

/// The flags we offer.
pub const CLIENT_FLAGS: u32 = NEGOTIATE_56
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_128
    | NEGOTIATE_VERSION
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_NTLM
    | NEGOTIATE_SEAL
    | NEGOTIATE_SIGN
    | REQUEST_TARGET
    | NEGOTIATE_OEM
    | NEGOTIATE_UNICODE;

/// Flags without which we refuse to continue: message encryption needs all of them.
const REQUIRED_FLAGS: u32 = NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_SEAL
    | NEGOTIATE_SIGN
    | NEGOTIATE_UNICODE;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// Version field we send: Windows 10.0 build 20348, NTLMSSP revision 15.
const VERSION: [u8; 8] = [10, 0, 0x7c, 0x4f, 0, 0, 0, 15];

const AV_EOL: u16 = 0;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
const AV_CHANNEL_BINDINGS: u16 = 10;
const AV_FLAG_MIC: u32 = 0x2;

/// Why NTLM could not proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// The server's CHALLENGE message is malformed.
    #[error("malformed NTLM challenge: {0}")]
    BadChallenge(String),
    /// The server did not agree to what message encryption needs.
    #[error("server does not support NTLMv2 message encryption (flags 0x{0:08X})")]
    WeakServer(u32),
    /// A sealed message failed its integrity check (wrong key, tampering, or lost sync).
    #[error("sealed message signature does not verify (sequence {0})")]
    BadSignature(u32),
    /// A sealed message is too short to hold a signature.
    #[error("sealed message has a {0}-byte signature, expected 16")]
    BadSignatureLength(usize),
    /// No random bytes from the operating system.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// A user's NTLM credentials. The password never appears in Debug output.
#[derive(Clone)]
pub struct NtlmCredentials {
    /// NetBIOS domain (or empty for a local account / UPN).
    pub domain: String,
    /// User name.
    pub user: String,
    password: String,
}

impl NtlmCredentials {
    /// Credentials from a user as admins write it: `DOMAIN\user`, `user@domain` (kept whole, as
    /// Windows accepts a UPN with an empty domain), or a local `user`.
    pub fn new(user: &str, password: &str) -> Self {
        let (domain, user) = match user.split_once('\\') {
            Some((d, u)) => (d.to_string(), u.to_string()),
            None => (String::new(), user.to_string()),
        };
        NtlmCredentials {
            domain,
            user,
            password: password.to_string(),
        }
    }

    /// The `domain\user` form for messages (never the password).
    pub fn display_user(&self) -> String {
        if self.domain.is_empty() {
            self.user.clone()
        } else {
            format!("{}\\{}", self.domain, self.user)
        }
    }
}

impl fmt::Debug for NtlmCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtlmCredentials")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// NTOWFv2: the NTLMv2 response key from password, user and domain.
pub fn ntowf_v2(creds: &NtlmCredentials) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16le(&creds.password)).into();
    let ident = format!("{}{}", creds.user.to_uppercase(), creds.domain);
    hmac_md5(&nt_hash, &[&utf16le(&ident)])
}

/// RC4, as NTLM sealing uses it: one keystream per direction that runs across messages.
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// Key schedule.
    pub fn new(key: &[u8]) -> Self {
        let mut s = [0u8; 256];
        for (i, v) in s.iter_mut().enumerate() {
            *v = i as u8;
        }
        let mut j: u8 = 0;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, j as usize);
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// XOR the keystream into `data`, four bytes a round. Writing the keystream of a round before
    /// touching `data` lets the table reads of one byte overlap the swap of the one before: the
    /// stream runs about 1.5 times as fast as one byte a round, and a fleet scan seals and
    /// unseals tens of kilobytes per host.
    pub fn apply(&mut self, data: &mut [u8]) {
        #[inline(always)]
        fn next(s: &mut [u8; 256], i: &mut u8, j: &mut u8) -> u8 {
            *i = i.wrapping_add(1);
            let si = s[*i as usize];
            *j = j.wrapping_add(si);
            let sj = s[*j as usize];
            s[*i as usize] = sj;
            s[*j as usize] = si;
            s[si.wrapping_add(sj) as usize]
        }
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        let mut quads = data.chunks_exact_mut(4);
        for q in &mut quads {
            let k = [
                next(s, &mut i, &mut j),
                next(s, &mut i, &mut j),
                next(s, &mut i, &mut j),
                next(s, &mut i, &mut j),
            ];
            for (b, k) in q.iter_mut().zip(k) {
                *b ^= k;
            }
        }
        for b in quads.into_remainder() {
            *b ^= next(s, &mut i, &mut j);
        }
        self.i = i;
        self.j = j;
    }
}

/// RC4K: one-shot RC4 with a fresh key.
pub fn rc4k(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    Rc4::new(key).apply(&mut out);
    out
}

/// The NEGOTIATE message (type 1) we start with.
pub fn negotiate_message() -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    m.extend_from_slice(&[0u8; 16]); // domain and workstation: empty, no offsets needed
    m.extend_from_slice(&VERSION);
    m
}

/// The parts of a CHALLENGE message (type 2) the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Flags the server agreed to.
    pub flags: u32,
    /// The 8-byte server challenge.
    pub server_challenge: [u8; 8],
    /// The raw AV pairs (TargetInfo).
    pub target_info: Vec<u8>,
    /// The whole message, needed for the MIC.
    pub raw: Vec<u8>,
}

fn field(msg: &[u8], at: usize) -> Result<&[u8], NtlmError> {
    let hdr = msg
        .get(at..at + 8)
        .ok_or_else(|| NtlmError::BadChallenge("truncated header".into()))?;
    let len = u16::from_le_bytes([hdr[0], hdr[1]]) as usize;
    let off = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
    msg.get(off..off + len)
        .ok_or_else(|| NtlmError::BadChallenge(format!("field at {at} points outside the message")))
}

/// Parse a CHALLENGE message.
pub fn parse_challenge(msg: &[u8]) -> Result<Challenge, NtlmError> {
    if msg.len() < 32 || &msg[..8] != SIGNATURE {
        return Err(NtlmError::BadChallenge("not an NTLMSSP message".into()));
    }
    let ty = u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]);
    if ty != 2 {
        return Err(NtlmError::BadChallenge(format!(
            "message type {ty}, expected 2"
        )));
    }
    let flags = u32::from_le_bytes([msg[20], msg[21], msg[22], msg[23]]);
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(&msg[24..32]);
    let target_info = if flags & NEGOTIATE_TARGET_INFO != 0 {
        field(msg, 40)?.to_vec()
    } else {
        Vec::new()
    };
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
        raw: msg.to_vec(),
    })
}

fn av_pairs(info: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, NtlmError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= info.len() {
        let id = u16::from_le_bytes([info[i], info[i + 1]]);
        let len = u16::from_le_bytes([info[i + 2], info[i + 3]]) as usize;
        let v = info
            .get(i + 4..i + 4 + len)
            .ok_or_else(|| NtlmError::BadChallenge("truncated AV pair".into()))?;
        if id == AV_EOL {
            return Ok(out);
        }
        out.push((id, v.to_vec()));
        i += 4 + len;
    }
    Err(NtlmError::BadChallenge("AV pairs without MsvAvEOL".into()))
}

fn encode_av_pairs(pairs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, v) in pairs {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// The NTLMv2 response computation (MS-NLMP 3.3.2), exposed for the test vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Response {
    /// NtChallengeResponse (NTProofStr + temp).
    pub nt_response: Vec<u8>,
    /// LmChallengeResponse.
    pub lm_response: Vec<u8>,
    /// SessionBaseKey (= KeyExchangeKey for NTLMv2).
    pub session_base_key: [u8; 16],
}

/// Compute the NTLMv2 responses for a challenge.
pub fn compute_v2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    timestamp: &[u8; 8],
    target_info: &[u8],
    lm_zero: bool,
) -> V2Response {
    let mut temp = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
    temp.extend_from_slice(timestamp);
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0, 0, 0, 0]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0, 0, 0, 0]);
    let proof = hmac_md5(response_key, &[server_challenge, &temp]);
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&temp);
    let lm_response = if lm_zero {
        vec![0u8; 24]
    } else {
        let mut lm = hmac_md5(response_key, &[server_challenge, client_challenge]).to_vec();
        lm.extend_from_slice(client_challenge);
        lm
    };
    V2Response {
        nt_response,
        lm_response,
        session_base_key: hmac_md5(response_key, &[&proof]),
    }
}

/// Result of the client's last leg: the AUTHENTICATE message and the sealing state.
pub struct Authenticated {
    /// The AUTHENTICATE message (type 3) to send.
    pub message: Vec<u8>,
    /// Sealing state for the connection that carried this exchange.
    pub sealer: NtlmSealer,
}

fn random<const N: usize>() -> Result<[u8; N], NtlmError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| NtlmError::Random(e.to_string()))?;
    Ok(b)
}

fn filetime_now() -> [u8; 8] {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ticks = (since_unix.as_nanos() / 100) as u64 + 116_444_736_000_000_000;
    ticks.to_le_bytes()
}

/// Inputs of the AUTHENTICATE message that are random or time-dependent, fixed in tests.
#[derive(Debug, Clone)]
pub struct AuthenticateNonces {
    /// ClientChallenge.
    pub client_challenge: [u8; 8],
    /// ExportedSessionKey before RC4 wrapping.
    pub exported_session_key: [u8; 16],
    /// Timestamp used when the server sent none.
    pub timestamp: [u8; 8],
}

impl AuthenticateNonces {
    /// Fresh random nonces and the current time.
    pub fn fresh() -> Result<Self, NtlmError> {
        Ok(AuthenticateNonces {
            client_challenge: random()?,
            exported_session_key: random()?,
            timestamp: filetime_now(),
        })
    }
}

/// Build the AUTHENTICATE message for `challenge`, following our `negotiate` message.
///
/// `channel_bindings` is the MD5 of the gss_channel_bindings_struct for HTTPS (all zeros when
/// there are none).
pub fn authenticate(
    creds: &NtlmCredentials,
    negotiate: &[u8],
    challenge: &Challenge,
    channel_bindings: [u8; 16],
    nonces: &AuthenticateNonces,
) -> Result<Authenticated, NtlmError> {
    if challenge.flags & REQUIRED_FLAGS != REQUIRED_FLAGS {
        return Err(NtlmError::WeakServer(challenge.flags));
    }
    let flags = CLIENT_FLAGS & challenge.flags & !NEGOTIATE_OEM | NEGOTIATE_UNICODE;

    let mut pairs = av_pairs(&challenge.target_info)?;
    let server_time = pairs
        .iter()
        .find(|(id, _)| *id == AV_TIMESTAMP)
        .and_then(|(_, v)| <[u8; 8]>::try_from(v.as_slice()).ok());
    // With a server timestamp we must send a MIC and flag it; without one (very old servers) a MIC
    // is optional and we keep the LMv2 response for them.
    let with_mic = server_time.is_some();
    if with_mic {
        match pairs.iter_mut().find(|(id, _)| *id == AV_FLAGS) {
            Some((_, v)) if v.len() == 4 => {
                let f = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) | AV_FLAG_MIC;
                *v = f.to_le_bytes().to_vec();
            }
            _ => pairs.push((AV_FLAGS, AV_FLAG_MIC.to_le_bytes().to_vec())),
        }
    }
    pairs.push((AV_CHANNEL_BINDINGS, channel_bindings.to_vec()));
    let target_info = encode_av_pairs(&pairs);

    let key = ntowf_v2(creds);
    let timestamp = server_time.unwrap_or(nonces.timestamp);
    let v2 = compute_v2_response(
        &key,
        &challenge.server_challenge,
        &nonces.client_challenge,
        &timestamp,
        &target_info,
        with_mic,
    );
    let exported = nonces.exported_session_key;
    let encrypted_key = rc4k(&v2.session_base_key, &exported);

    let domain = utf16le(&creds.domain);
    let user = utf16le(&creds.user);
    let workstation: Vec<u8> = Vec::new();
    let payloads: [&[u8]; 6] = [
        &v2.lm_response,
        &v2.nt_response,
        &domain,
        &user,
        &workstation,
        &encrypted_key,
    ];
    const HEADER: usize = 88; // fixed fields + version + MIC
    let mut msg = Vec::with_capacity(HEADER + payloads.iter().map(|p| p.len()).sum::<usize>());
    msg.extend_from_slice(SIGNATURE);
    msg.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = HEADER;
    for p in &payloads {
        msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
        msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
        msg.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += p.len();
    }
    msg.extend_from_slice(&flags.to_le_bytes());
    msg.extend_from_slice(&VERSION);
    msg.extend_from_slice(&[0u8; 16]); // MIC, filled below
    for p in &payloads {
        msg.extend_from_slice(p);
    }
    if with_mic {
        let mic = hmac_md5(&exported, &[negotiate, &challenge.raw, &msg]);
        msg[72..88].copy_from_slice(&mic);
    }
    Ok(Authenticated {
        message: msg,
        sealer: NtlmSealer::new(&exported, Role::Client),
    })
}

/// Which side of the connection a sealer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Seals with client-to-server keys, unseals server-to-client.
    Client,
    /// Seals with server-to-client keys, unseals client-to-server (for test servers/simulators).
    Server,
}

/// NTLM message confidentiality and integrity for one authenticated connection.
///
/// The RC4 keystreams and sequence numbers run across all messages of the connection, which is
/// why the connection must be pinned: a message sealed for one connection cannot be read on
/// another, and a new connection needs a new authentication (and a new sealer).
pub struct NtlmSealer {
    out_sign: [u8; 16],
    in_sign: [u8; 16],
    out_rc4: Rc4,
    in_rc4: Rc4,
    out_seq: u32,
    in_seq: u32,
}

impl fmt::Debug for NtlmSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtlmSealer")
            .field("out_seq", &self.out_seq)
            .field("in_seq", &self.in_seq)
            .finish_non_exhaustive()
    }
}

const C2S_SIGN: &[u8] = b"session key to client-to-server signing key magic constant\0";
const S2C_SIGN: &[u8] = b"session key to server-to-client signing key magic constant\0";
const C2S_SEAL: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const S2C_SEAL: &[u8] = b"session key to server-to-client sealing key magic constant\0";

impl NtlmSealer {
    /// Derive the four keys (MS-NLMP 3.4.5) from the exported session key.
    pub fn new(exported_session_key: &[u8; 16], role: Role) -> Self {
        let k = exported_session_key;
        let c2s_sign = md5(&[k, C2S_SIGN]);
        let s2c_sign = md5(&[k, S2C_SIGN]);
        let c2s_seal = Rc4::new(&md5(&[k, C2S_SEAL]));
        let s2c_seal = Rc4::new(&md5(&[k, S2C_SEAL]));
        match role {
            Role::Client => NtlmSealer {
                out_sign: c2s_sign,
                in_sign: s2c_sign,
                out_rc4: c2s_seal,
                in_rc4: s2c_seal,
                out_seq: 0,
                in_seq: 0,
            },
            Role::Server => NtlmSealer {
                out_sign: s2c_sign,
                in_sign: c2s_sign,
                out_rc4: s2c_seal,
                in_rc4: c2s_seal,
                out_seq: 0,
                in_seq: 0,
            },
        }
    }

    fn checksum(sign_key: &[u8; 16], rc4: &mut Rc4, seq: u32, plain: &[u8]) -> [u8; 16] {
        let mac = hmac_md5(sign_key, &[&seq.to_le_bytes(), plain]);
        let mut check = [0u8; 8];
        check.copy_from_slice(&mac[..8]);
        rc4.apply(&mut check);
        let mut sig = [0u8; 16];
        sig[..4].copy_from_slice(&1u32.to_le_bytes());
        sig[4..12].copy_from_slice(&check);
        sig[12..].copy_from_slice(&seq.to_le_bytes());
        sig
    }

    /// Seal one message: returns the 16-byte signature and the ciphertext.
    pub fn seal(&mut self, plain: &[u8]) -> ([u8; 16], Vec<u8>) {
        let seq = self.out_seq;
        self.out_seq = self.out_seq.wrapping_add(1);
        let mut cipher = plain.to_vec();
        self.out_rc4.apply(&mut cipher);
        let sig = Self::checksum(&self.out_sign, &mut self.out_rc4, seq, plain);
        (sig, cipher)
    }

    /// Unseal one message and verify its signature.
    pub fn unseal(&mut self, signature: &[u8], cipher: &[u8]) -> Result<Vec<u8>, NtlmError> {
        if signature.len() != 16 {
            return Err(NtlmError::BadSignatureLength(signature.len()));
        }
        let seq = self.in_seq;
        self.in_seq = self.in_seq.wrapping_add(1);
        let mut plain = cipher.to_vec();
        self.in_rc4.apply(&mut plain);
        let expected = Self::checksum(&self.in_sign, &mut self.in_rc4, seq, &plain);
        if expected[..] != signature[..] {
            return Err(NtlmError::BadSignature(seq));
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    //! Test vectors from MS-NLMP 4.2.1 (common values) and 4.2.4 (NTLMv2 authentication).
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn creds() -> NtlmCredentials {
        NtlmCredentials::new("Domain\\User", "Password")
    }

    /// MS-NLMP 4.2.4.1.3's AV pairs: MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server".
    fn spec_target_info() -> Vec<u8> {
        encode_av_pairs(&[(2, utf16le("Domain")), (1, utf16le("Server"))])
    }

    /// RFC 6229, key 0x0102030405, keystream bytes 0-31, taken in pieces that split the
    /// four-byte rounds: the stream must not depend on how a message is cut.
    #[test]
    fn rc4_keystream_is_the_same_however_the_data_is_cut() {
        let want: [u8; 32] = [
            0xb2, 0x39, 0x63, 0x05, 0xf0, 0x3d, 0xc0, 0x27, 0xcc, 0xc3, 0x52, 0x4a, 0x0a, 0x11,
            0x18, 0xa8, 0x69, 0x82, 0x94, 0x4f, 0x18, 0xfc, 0x82, 0xd5, 0x89, 0xc4, 0x03, 0xa4,
            0x7a, 0x0d, 0x09, 0x19,
        ];
        for cuts in [[32, 32], [3, 9], [1, 2], [4, 31], [0, 7]] {
            let mut rc4 = Rc4::new(&[1, 2, 3, 4, 5]);
            let mut data = [0u8; 32];
            let (a, rest) = data.split_at_mut(cuts[0]);
            let (b, c) = rest.split_at_mut(cuts[1] - cuts[0]);
            for piece in [a, b, c] {
                rc4.apply(piece);
            }
            assert_eq!(data, want, "cut at {cuts:?}");
        }
    }

    #[test]
    fn ntowfv2_matches_ms_nlmp() {
        assert_eq!(
            ntowf_v2(&creds()).to_vec(),
            h("0c868a403bfd7a93a3001ef22ef02e3f")
        );
    }

    #[test]
    fn v2_responses_match_ms_nlmp() {
        let key = ntowf_v2(&creds());
        let r = compute_v2_response(
            &key,
            &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            &[0xaa; 8],
            &[0; 8],
            &spec_target_info(),
            false,
        );
        assert_eq!(
            r.nt_response[..16].to_vec(),
            h("68cd0ab851e51c96aabc927bebef6a1c")
        );
        assert_eq!(
            r.lm_response,
            h("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
        );
        assert_eq!(
            r.session_base_key.to_vec(),
            h("8de40ccadbc14a82f15cb0ad0de95ca3")
        );
        assert_eq!(
            rc4k(&r.session_base_key, &[0x55; 16]),
            h("c5dad2544fc9799094ce1ce90bc9d03e")
        );
    }

    #[test]
    fn sealing_matches_ms_nlmp() {
        // 4.2.4.4: "Plaintext" in UTF-16LE sealed with the exported key 0x55 * 16.
        let mut s = NtlmSealer::new(&[0x55; 16], Role::Client);
        let (sig, cipher) = s.seal(&utf16le("Plaintext"));
        assert_eq!(cipher, h("54e50165bf1936dc996020c1811b0f06fb5f"));
        assert_eq!(sig.to_vec(), h("010000007fb38ec5c55d497600000000"));
    }

    #[test]
    fn server_unseals_what_client_sealed_and_back() {
        let key = [7u8; 16];
        let mut c = NtlmSealer::new(&key, Role::Client);
        let mut s = NtlmSealer::new(&key, Role::Server);
        for msg in [&b"first"[..], b"second message", b""] {
            let (sig, ct) = c.seal(msg);
            assert_eq!(s.unseal(&sig, &ct).unwrap(), msg);
            let (sig, ct) = s.seal(msg);
            assert_eq!(c.unseal(&sig, &ct).unwrap(), msg);
        }
        let (mut sig, ct) = c.seal(b"tampered");
        sig[5] ^= 1;
        assert_eq!(s.unseal(&sig, &ct), Err(NtlmError::BadSignature(3)));
    }

    #[test]
    fn password_is_not_in_debug() {
        let c = NtlmCredentials::new("DOM\\admin", "s3cret-Pa55");
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("admin"));
    }

    #[test]
    fn authenticate_layout_and_mic() {
        let neg = negotiate_message();
        // A challenge with a timestamp, as every modern Windows sends.
        let mut info = vec![(2, utf16le("Domain")), (1, utf16le("Server"))];
        info.push((AV_TIMESTAMP, vec![1, 2, 3, 4, 5, 6, 7, 8]));
        let ti = encode_av_pairs(&info);
        let mut chal = Vec::new();
        chal.extend_from_slice(SIGNATURE);
        chal.extend_from_slice(&2u32.to_le_bytes());
        chal.extend_from_slice(&[0, 0, 0, 0, 56, 0, 0, 0]);
        chal.extend_from_slice(&(CLIENT_FLAGS | NEGOTIATE_TARGET_INFO).to_le_bytes());
        chal.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        chal.extend_from_slice(&[0; 8]);
        chal.extend_from_slice(&(ti.len() as u16).to_le_bytes());
        chal.extend_from_slice(&(ti.len() as u16).to_le_bytes());
        chal.extend_from_slice(&56u32.to_le_bytes());
        chal.extend_from_slice(&VERSION);
        chal.extend_from_slice(&ti);
        let c = parse_challenge(&chal).unwrap();
        assert_eq!(c.target_info, ti);
        let nonces = AuthenticateNonces {
            client_challenge: [0xaa; 8],
            exported_session_key: [0x55; 16],
            timestamp: [0; 8],
        };
        let a = authenticate(&creds(), &neg, &c, [0; 16], &nonces).unwrap();
        let m = &a.message;
        assert_eq!(&m[..8], SIGNATURE);
        // LM response is zeros when a MIC is sent.
        assert_eq!(field(m, 12).unwrap(), &[0u8; 24]);
        assert_eq!(field(m, 36).unwrap(), &utf16le("User")[..]);
        // The MIC covers all three messages with the MIC field zeroed.
        let mut zeroed = m.clone();
        zeroed[72..88].fill(0);
        assert_eq!(&m[72..88], &hmac_md5(&[0x55; 16], &[&neg, &chal, &zeroed]));
        // The NT response carries the server timestamp and the MIC flag.
        let nt = field(m, 20).unwrap();
        assert_eq!(&nt[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let pairs = av_pairs(&nt[44..]).unwrap();
        assert!(pairs.contains(&(AV_FLAGS, AV_FLAG_MIC.to_le_bytes().to_vec())));
    }

    #[test]
    fn truncated_challenges_are_errors_not_panics() {
        let mut info = vec![(2, utf16le("Domain")), (AV_TIMESTAMP, vec![0; 8])];
        info.push((1, utf16le("Server")));
        let ti = encode_av_pairs(&info);
        let mut chal = Vec::new();
        chal.extend_from_slice(SIGNATURE);
        chal.extend_from_slice(&2u32.to_le_bytes());
        chal.extend_from_slice(&[0, 0, 0, 0, 56, 0, 0, 0]);
        chal.extend_from_slice(&(CLIENT_FLAGS | NEGOTIATE_TARGET_INFO).to_le_bytes());
        chal.extend_from_slice(&[1; 16]);
        chal.extend_from_slice(&(ti.len() as u16).to_le_bytes());
        chal.extend_from_slice(&(ti.len() as u16).to_le_bytes());
        chal.extend_from_slice(&56u32.to_le_bytes());
        chal.extend_from_slice(&VERSION);
        chal.extend_from_slice(&ti);
        let nonces = AuthenticateNonces::fresh().unwrap();
        for cut in 0..chal.len() {
            if let Ok(c) = parse_challenge(&chal[..cut]) {
                let _ = authenticate(&creds(), &negotiate_message(), &c, [0; 16], &nonces);
            }
        }
        // A lying AV pair length inside a well-formed message.
        let mut bad = chal.clone();
        bad[56 + 2] = 0xff;
        let c = parse_challenge(&bad).unwrap();
        assert!(authenticate(&creds(), &negotiate_message(), &c, [0; 16], &nonces).is_err());
    }

    #[test]
    fn weak_servers_are_refused() {
        let mut chal = vec![0u8; 48];
        chal[..8].copy_from_slice(SIGNATURE);
        chal[8] = 2;
        chal[20..24].copy_from_slice(&(NEGOTIATE_NTLM | NEGOTIATE_UNICODE).to_le_bytes());
        let c = parse_challenge(&chal).unwrap();
        let nonces = AuthenticateNonces::fresh().unwrap();
        assert!(matches!(
            authenticate(&creds(), &negotiate_message(), &c, [0; 16], &nonces),
            Err(NtlmError::WeakServer(_))
        ));
    }
}
