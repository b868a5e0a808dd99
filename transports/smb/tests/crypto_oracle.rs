//! The vendored `smb` crate signs with its own streamed AES-GMAC and seals with `ring`'s AES-GCM
//! (README fix 11). Both are checked here against RustCrypto's `aes-gcm` as the reference, over
//! lengths around block boundaries and messages split into updates in many ways, and against the
//! crate's published signature test vector; a sealed message is decrypted in place and refused
//! when tampered with. No server needed.

use std::io::Cursor;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use binrw::{BinRead, BinWrite};
use smb::crypto::{make_encrypting_algo, make_signing_algo};
use smb::session::{MessageDecryptor, MessageEncryptor};
use smb::transport::IoVec;
use smb::{Command, EncryptedHeader, EncryptionCipher, Header, Response, SigningAlgorithmId};

/// A LOGOFF request with its signature, from the crate's own signer test.
const SIGNED_HEADER: [u8; 64] = [
    0xfe, 0x53, 0x4d, 0x42, 0x40, 0x0, 0x1, 0x0, 0x0, 0x0, 0x0, 0x0, 0x2, 0x0, 0x1, 0x0, 0x18, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x9, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0x0, 0x53, 0x20, 0xc, 0x21, 0x0, 0x0, 0x0, 0x0, 0x76, 0x23, 0x4b, 0x3c, 0x81, 0x2f,
    0x51, 0xab, 0x8a, 0x5c, 0xf9, 0xfa, 0x43, 0xd4, 0xeb, 0x28,
];
const SIGNING_KEY: [u8; 16] = [
    0xAC, 0x36, 0xE9, 0x54, 0x3C, 0xD8, 0x88, 0xF0, 0xA8, 0x41, 0x23, 0xE4, 0x6B, 0xB2, 0xA0, 0xD7,
];

fn header() -> (Header, Vec<u8>) {
    let header = Header::read_le(&mut Cursor::new(&SIGNED_HEADER[..])).expect("header parses");
    let mut unsigned = SIGNED_HEADER.to_vec();
    unsigned[48..64].fill(0); // a signature covers the header with its signature field zeroed
    (header, unsigned)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// GMAC as AES-GCM with the whole message as associated data and nothing to encrypt.
fn reference_gmac(msg: &[u8], msg_id: u64) -> u128 {
    let oracle = Aes128Gcm::new_from_slice(&SIGNING_KEY).expect("16-byte key");
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&msg_id.to_le_bytes()); // client request, not a cancel
    let mut empty: Vec<u8> = vec![];
    let tag = oracle
        .encrypt_inout_detached(&nonce.into(), msg, empty.as_mut_slice().into())
        .expect("GMAC");
    u128::from_le_bytes(tag.into())
}

#[test]
fn gmac_signature_matches_the_published_test_vector() {
    let (header, unsigned) = header();
    let mut signer = make_signing_algo(SigningAlgorithmId::AesGmac, &SIGNING_KEY).unwrap();
    signer.start(&header);
    signer.update(&unsigned);
    signer.update(&[0x4, 0x0, 0x0, 0x0]);
    assert_eq!(signer.finalize(), 0x28ebd443faf95c8aab512f813c4b2376);
}

#[test]
fn streamed_gmac_matches_aes_gcm_for_any_length_and_split() {
    let (header, unsigned) = header();
    for body_len in [0usize, 1, 15, 16, 17, 48, 100, 4096 + 5, 1 << 16] {
        let mut msg = unsigned.clone();
        msg.extend(data(body_len, body_len as u8));
        let want = reference_gmac(&msg, header.message_id);
        for split in [1usize, 5, 16, 33, 64, 4099, usize::MAX] {
            let mut signer = make_signing_algo(SigningAlgorithmId::AesGmac, &SIGNING_KEY).unwrap();
            signer.start(&header);
            for piece in msg.chunks(split.min(msg.len()).max(1)) {
                signer.update(piece);
            }
            assert_eq!(
                signer.finalize(),
                want,
                "{body_len}-byte body in pieces of {split}"
            );
            // A signer is reused message after message: `start` must reset it.
            signer.start(&header);
            signer.update(&msg);
            assert_eq!(
                signer.finalize(),
                want,
                "reused signer, {body_len}-byte body"
            );
        }
    }
}

#[test]
fn gcm_sealing_matches_aes_gcm_and_refuses_tampering() {
    let cases: [(EncryptionCipher, Vec<u8>); 2] = [
        (EncryptionCipher::Aes128Gcm, data(16, 1)),
        (EncryptionCipher::Aes256Gcm, data(32, 2)),
    ];
    for (cipher, key) in cases {
        let mut ours = make_encrypting_algo(cipher, &key).unwrap();
        assert_eq!(ours.nonce_size(), 12);
        let mut nonce = [0u8; 16];
        nonce[..12].copy_from_slice(&data(12, 7));
        let aad = data(32, 9);
        for len in [0usize, 1, 15, 16, 17, 255, 256, 257, 4096 + 3, 1 << 20] {
            let plain = data(len, len as u8);
            let mut a = plain.clone();
            let mut b = plain.clone();
            let sig = ours.encrypt(&mut a, &aad, &nonce).unwrap().signature;
            let n12: [u8; 12] = nonce[..12].try_into().unwrap();
            let tag = match cipher {
                EncryptionCipher::Aes128Gcm => Aes128Gcm::new_from_slice(&key)
                    .unwrap()
                    .encrypt_inout_detached(&n12.into(), &aad, b.as_mut_slice().into()),
                _ => Aes256Gcm::new_from_slice(&key)
                    .unwrap()
                    .encrypt_inout_detached(&n12.into(), &aad, b.as_mut_slice().into()),
            }
            .unwrap();
            assert_eq!(a, b, "{cipher:?}: ciphertext of {len} bytes");
            assert_eq!(
                sig,
                u128::from_le_bytes(tag.into()),
                "{cipher:?}: tag of {len} bytes"
            );
            if len > 0 {
                let mut tampered = b.clone();
                tampered[len / 2] ^= 1;
                assert!(
                    ours.decrypt(&mut tampered, &aad, &nonce, sig).is_err(),
                    "{cipher:?}: tampered {len} bytes accepted"
                );
            }
            let mut wrong_tag = b.clone();
            assert!(
                ours.decrypt(&mut wrong_tag, &aad, &nonce, sig ^ 1).is_err(),
                "{cipher:?}: bad tag accepted ({len} bytes)"
            );
            ours.decrypt(&mut b, &aad, &nonce, sig).unwrap();
            assert_eq!(b, plain, "{cipher:?}: round trip of {len} bytes");
        }
    }
}

/// A LOGOFF response: [`SIGNED_HEADER`] turned into a server's answer, unsigned, and its 4-byte body.
fn logoff_response() -> Vec<u8> {
    let mut msg = SIGNED_HEADER.to_vec();
    msg[16..20].copy_from_slice(&1u32.to_le_bytes()); // SMB2_FLAGS_SERVER_TO_REDIR only
    msg[48..64].fill(0);
    msg.extend([0x4, 0x0, 0x0, 0x0]);
    msg
}

/// A sealed response is decrypted in place in the buffer it arrived in (transform header and
/// all): the message comes out byte for byte, and a flipped bit anywhere the tag covers, a wrong
/// key or a message cut short is refused, never parsed.
#[test]
fn sealed_response_decrypts_in_place_and_refuses_tampering() {
    for (cipher, key) in [
        (EncryptionCipher::Aes128Gcm, data(16, 3)),
        (EncryptionCipher::Aes256Gcm, data(32, 4)),
    ] {
        let plain = logoff_response();
        let mut encryptor = MessageEncryptor::new(make_encrypting_algo(cipher, &key).unwrap());
        let mut decryptor = MessageDecryptor::new(make_encrypting_algo(cipher, &key).unwrap());
        let mut body = IoVec::from(plain.clone());
        let header = encryptor
            .encrypt_message(&mut body, 0x3000_2400_0055)
            .unwrap();
        let mut wire = Vec::new();
        header.write(&mut Cursor::new(&mut wire)).unwrap();
        assert_eq!(wire.len(), EncryptedHeader::STRUCTURE_SIZE);
        for piece in body.iter() {
            wire.extend_from_slice(piece);
        }
        let parsed = EncryptedHeader::read(&mut Cursor::new(&wire)).unwrap();

        let (response, raw) = decryptor.decrypt_message(&parsed, wire.clone()).unwrap();
        assert_eq!(raw, plain, "{cipher:?}: the decrypted message");
        match response {
            Response::Plain(msg) => assert_eq!(msg.header.command, Command::Logoff),
            other => panic!("{cipher:?}: parsed as {other:?}"),
        }

        // Every byte after the magic is covered: the header's nonce, size and session id (as
        // associated data, with the signature as the tag) and the ciphertext.
        for at in [
            4,
            20,
            36,
            44,
            EncryptedHeader::STRUCTURE_SIZE,
            wire.len() - 1,
        ] {
            let mut tampered = wire.clone();
            tampered[at] ^= 0x10;
            let header = EncryptedHeader::read(&mut Cursor::new(&tampered)).unwrap();
            assert!(
                decryptor.decrypt_message(&header, tampered).is_err(),
                "{cipher:?}: byte {at} flipped and accepted"
            );
        }
        let mut stranger =
            MessageDecryptor::new(make_encrypting_algo(cipher, &data(key.len(), 99)).unwrap());
        assert!(
            stranger.decrypt_message(&parsed, wire.clone()).is_err(),
            "{cipher:?}: wrong key"
        );
        for cut in [EncryptedHeader::STRUCTURE_SIZE - 1, wire.len() - 1] {
            assert!(
                decryptor
                    .decrypt_message(&parsed, wire[..cut].to_vec())
                    .is_err(),
                "{cipher:?}: cut to {cut} bytes and accepted"
            );
        }
    }
}
