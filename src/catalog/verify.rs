//! How a downloaded catalog is authenticated before hive trusts it: a pinned SHA-256, an ed25519
//! detached signature by a pinned public key, or — only when the admin says so — TLS alone.
//! Pure: the network half (fetching `<url>.sig`) lives in `fetch.rs`.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};

use super::fetch::FetchError;

/// How the downloaded document is authenticated before hive trusts it.
#[derive(Clone, PartialEq, Eq)]
pub enum Verification {
    /// The document must hash to exactly this SHA-256 (lowercase hex). Right for a file that
    /// never changes (a mirrored historical catalog); useless for one that is republished.
    Sha256(String),
    /// A detached ed25519 signature over the exact bytes, by this public key. The signature is
    /// fetched from `signature_url` (default: the document URL + `.sig`); it is 64 raw bytes or
    /// their base64. Right for a catalog the organisation republishes on its own mirror.
    Ed25519 {
        /// The pinned public key.
        public_key: [u8; 32],
        /// Where the signature is; `None` means `<url>.sig`.
        signature_url: Option<String>,
    },
    /// Trust the HTTPS server's certificate alone (MSRC publishes CVRF unsigned). Must be asked
    /// for explicitly.
    TlsOnly,
}

impl fmt::Debug for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::Sha256(h) => write!(f, "Sha256({h})"),
            Verification::Ed25519 { public_key, .. } => {
                write!(
                    f,
                    "Ed25519({})",
                    base64::engine::general_purpose::STANDARD.encode(public_key)
                )
            }
            Verification::TlsOnly => f.write_str("TlsOnly"),
        }
    }
}

impl Verification {
    /// Parses a base64 ed25519 public key (32 bytes), as `--public-key` takes it.
    pub fn ed25519_from_base64(
        key: &str,
        signature_url: Option<String>,
    ) -> Result<Verification, FetchError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|e| FetchError::Config(format!("public key is not base64: {e}")))?;
        let public_key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            FetchError::Config(format!(
                "public key has {} bytes, an ed25519 key has 32",
                b.len()
            ))
        })?;
        Ok(Verification::Ed25519 {
            public_key,
            signature_url,
        })
    }

    /// Parses a pinned SHA-256 (64 hex digits).
    pub fn sha256_from_hex(hex_digest: &str) -> Result<Verification, FetchError> {
        let h = hex_digest.trim().to_ascii_lowercase();
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FetchError::Config(format!(
                "`{hex_digest}` is not a SHA-256 (64 hex digits)"
            )));
        }
        Ok(Verification::Sha256(h))
    }
}

/// Checks a detached ed25519 signature (64 raw bytes, or their base64) over `body`. Pure, so the
/// rule is tested without a network.
pub fn check_signature(public_key: &[u8; 32], body: &[u8], sig: &[u8]) -> Result<(), String> {
    let key = VerifyingKey::from_bytes(public_key)
        .map_err(|e| format!("the pinned public key is not a valid ed25519 key: {e}"))?;
    let bytes: Vec<u8> = if sig.len() == 64 {
        sig.to_vec()
    } else {
        let text = std::str::from_utf8(sig).map_err(|_| {
            format!(
                "signature is {} bytes, neither raw (64) nor base64",
                sig.len()
            )
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("signature is not base64: {e}"))?
    };
    let sig = Signature::from_slice(&bytes)
        .map_err(|_| format!("signature has {} bytes, ed25519 needs 64", bytes.len()))?;
    key.verify_strict(body, &sig).map_err(|_| {
        "the ed25519 signature does not match the document and the pinned public key".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_hash_and_key_parse_strictly() {
        assert!(Verification::sha256_from_hex(&"a".repeat(64)).is_ok());
        assert!(Verification::sha256_from_hex("abc").is_err());
        assert!(Verification::ed25519_from_base64("AAAA", None).is_err());
    }
}
