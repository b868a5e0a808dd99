//! Message encryption/decryption implementation.

use binrw::prelude::*;
use rand::RngCore;
use rand::rngs::OsRng;
use std::io::Cursor;

use crate::crypto;
use smb_msg::{Response, encrypted::*};
use smb_transport::IoVec;

#[derive(Debug)]
pub struct MessageEncryptor {
    algo: Box<dyn crypto::EncryptingAlgo>,
}

impl MessageEncryptor {
    pub fn new(algo: Box<dyn crypto::EncryptingAlgo>) -> MessageEncryptor {
        MessageEncryptor { algo }
    }

    /// Encrypts message in-place.
    pub fn encrypt_message(
        &mut self,
        message: &mut IoVec,
        session_id: u64,
    ) -> crate::Result<EncryptedHeader> {
        debug_assert!(session_id != 0);

        // Serialize message:
        let mut header = EncryptedHeader {
            signature: 0,
            nonce: self.gen_nonce(),
            original_message_size: message.total_size() as u32,
            session_id,
        };

        message.consolidate();

        let result = self.algo.encrypt(
            message.first_mut().unwrap(),
            &header.aead_bytes(),
            &header.nonce,
        )?;

        header.signature = result.signature;

        log::debug!("Encrypted message with signature: {:?}", header.signature);

        Ok(header)
    }

    fn gen_nonce(&self) -> [u8; 16] {
        let mut nonce = [0; 16];
        // Generate self.algo.nonce_size() random bytes:
        OsRng.fill_bytes(&mut nonce[..self.algo.nonce_size()]);
        nonce
    }
}

impl Clone for MessageEncryptor {
    fn clone(&self) -> Self {
        MessageEncryptor {
            algo: self.algo.clone_box(),
        }
    }
}

#[derive(Debug)]
pub struct MessageDecryptor {
    algo: Box<dyn crypto::EncryptingAlgo>,
}

impl MessageDecryptor {
    pub fn new(algo: Box<dyn crypto::EncryptingAlgo>) -> MessageDecryptor {
        MessageDecryptor { algo }
    }

    /// Decrypts `data`, a whole encrypted message (transform header included) whose header is
    /// `header`, in place, and parses the message it carried. Returns the message and its bytes
    /// (the header removed).
    pub fn decrypt_message(
        &mut self,
        header: &EncryptedHeader,
        mut data: Vec<u8>,
    ) -> crate::Result<(Response, Vec<u8>)> {
        let payload = data
            .get_mut(EncryptedHeader::STRUCTURE_SIZE..)
            .ok_or_else(|| {
                binrw::Error::AssertFail {
                    pos: 0,
                    message: "encrypted message shorter than its transform header".to_string(),
                }
            })?;
        self.algo
            .decrypt(payload, &header.aead_bytes(), &header.nonce, header.signature)?;
        data.drain(..EncryptedHeader::STRUCTURE_SIZE);
        let result = Response::read(&mut Cursor::new(&data))?;
        log::debug!("Decrypted with signature {}", header.signature);
        Ok((result, data))
    }
}

impl Clone for MessageDecryptor {
    fn clone(&self) -> Self {
        MessageDecryptor {
            algo: self.algo.clone_box(),
        }
    }
}
