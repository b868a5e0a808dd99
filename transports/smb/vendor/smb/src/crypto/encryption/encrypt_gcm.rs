// hive fix: AES-GCM through `ring`, whose implementation uses the CPU's AES and carry-less
// multiply instructions (VAES/VPCLMULQDQ where present) with several blocks in flight. RustCrypto's
// `aes-gcm` (kept as the test oracle below) hashed one block at a time and made sealing the
// largest cost of an upload to an encrypting share in hive's profile.
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, Algorithm, LessSafeKey, Nonce, Tag, UnboundKey};

use crate::crypto::CryptoError;

use super::*;

/// AES-128-GCM (SMB 3.1.1 cipher 2).
pub struct Aes128GcmEncryptor;
/// AES-256-GCM (SMB 3.1.1 cipher 4).
pub struct Aes256GcmEncryptor;

impl Aes128GcmEncryptor {
    pub fn build(encrypting_key: &[u8]) -> Result<Box<dyn EncryptingAlgo>, CryptoError> {
        AesGcmEncryptor::build(&AES_128_GCM, encrypting_key)
    }
}

impl Aes256GcmEncryptor {
    pub fn build(encrypting_key: &[u8]) -> Result<Box<dyn EncryptingAlgo>, CryptoError> {
        AesGcmEncryptor::build(&AES_256_GCM, encrypting_key)
    }
}

#[derive(Clone)]
pub struct AesGcmEncryptor {
    key: LessSafeKey,
}

impl AesGcmEncryptor {
    fn build(
        algorithm: &'static Algorithm,
        encrypting_key: &[u8],
    ) -> Result<Box<dyn EncryptingAlgo>, CryptoError> {
        let key = UnboundKey::new(algorithm, encrypting_key)
            .map_err(|_| CryptoError::InvalidLength(crypto_common::InvalidLength))?;
        Ok(Box::new(Self {
            key: LessSafeKey::new(key),
        }))
    }

    fn nonce(nonce: &EncryptionNonce) -> Result<Nonce, CryptoError> {
        // Sanity: the rest of the nonce is expected to be zero.
        debug_assert!(nonce[12..].iter().all(|&x| x == 0));
        Nonce::try_assume_unique_for_key(&nonce[..12]).map_err(|_| CryptoError::AeadFailed)
    }
}

impl EncryptingAlgo for AesGcmEncryptor {
    fn encrypt(
        &mut self,
        payload: &mut [u8],
        header_data: &[u8],
        nonce: &EncryptionNonce,
    ) -> Result<EncryptionResult, CryptoError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Self::nonce(nonce)?, Aad::from(header_data), payload)
            .map_err(|_| CryptoError::AeadFailed)?;
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(tag.as_ref());
        Ok(EncryptionResult {
            signature: u128::from_le_bytes(bytes),
        })
    }

    fn decrypt(
        &mut self,
        payload: &mut [u8],
        header_data: &[u8],
        nonce: &EncryptionNonce,
        signature: u128,
    ) -> Result<(), CryptoError> {
        self.key
            .open_in_place_separate_tag(
                Self::nonce(nonce)?,
                Aad::from(header_data),
                Tag::from(signature.to_le_bytes()),
                payload,
                0..,
            )
            .map_err(|_| CryptoError::AeadFailed)?;
        Ok(())
    }

    fn nonce_size(&self) -> usize {
        12
    }

    fn clone_box(&self) -> Box<dyn EncryptingAlgo> {
        Box::new(self.clone())
    }
}

impl std::fmt::Debug for AesGcmEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AesGcmEncrypter({:?})", self.key.algorithm())
    }
}
