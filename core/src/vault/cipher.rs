//! AES-256-GCM with the secret's name as associated data.
//!
//! The associated data is a canonical encoding of (owner, kind, version): a format tag, then
//! each string as a 4-byte big-endian length and its bytes, then the version as 4 big-endian
//! bytes. Distinct names always encode differently, so a ciphertext moved to another owner,
//! kind or version fails authentication. Each encryption draws a fresh 96-bit nonce from the
//! OS RNG; at the rate secrets are written, random nonces stay far below the collision bound.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroize;

use super::{MasterKey, SecretRef, VaultError};

/// Identifies the encoding of the associated data; bump it if the encoding changes.
const AAD_TAG: &[u8] = b"portico.vault.v1\0";

/// A nonce and the ciphertext (tag appended) it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sealed {
    pub(super) nonce: [u8; 12],
    pub(super) ciphertext: Vec<u8>,
}

/// The AEAD, keyed once with the master key.
pub(super) struct Cipher {
    aead: Aes256Gcm,
}

impl Cipher {
    pub(super) fn new(key: &MasterKey) -> Self {
        let key = Key::<Aes256Gcm>::from_slice(key.as_bytes());
        Cipher { aead: Aes256Gcm::new(key) }
    }

    /// Encrypts `plaintext` for `secret` under a fresh random nonce.
    pub(super) fn seal(&self, secret: &SecretRef, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(VaultError::Random)?;
        let aad = associated_data(secret);
        let ciphertext = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| VaultError::Encrypt {
                owner: secret.owner.clone(),
                kind: secret.kind.clone(),
                version: secret.version,
            })?;
        Ok(Sealed { nonce, ciphertext })
    }

    /// Decrypts and authenticates `ciphertext` as the secret `secret`. The caller owns the
    /// returned plaintext and must zeroize it (wrap it in a `SecretString`).
    pub(super) fn open(
        &self,
        secret: &SecretRef,
        nonce: &[u8; 12],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut aad = associated_data(secret);
        let result =
            self.aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad });
        aad.zeroize();
        result.map_err(|_| VaultError::Decrypt {
            owner: secret.owner.clone(),
            kind: secret.kind.clone(),
            version: secret.version,
        })
    }
}

/// The canonical, unambiguous encoding of a secret's name.
pub(super) fn associated_data(secret: &SecretRef) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_TAG.len() + 12 + secret.owner.len() + secret.kind.len());
    aad.extend_from_slice(AAD_TAG);
    push_str(&mut aad, &secret.owner);
    push_str(&mut aad, &secret.kind);
    aad.extend_from_slice(&secret.version.to_be_bytes());
    aad
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Names are validated to at most `MAX_NAME_LEN` bytes; saturate rather than wrap so that an
    // unvalidated giant name can never alias a short one.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> Cipher {
        Cipher::new(&MasterKey::from_bytes([byte; 32]))
    }

    #[test]
    fn aad_is_unambiguous() {
        let a = associated_data(&SecretRef::new("ab", "c", 1));
        let b = associated_data(&SecretRef::new("a", "bc", 1));
        let c = associated_data(&SecretRef::new("ab", "c", 2));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with(AAD_TAG));
    }

    #[test]
    fn seal_then_open() {
        let c = cipher(7);
        let name = SecretRef::new("server:a", "auth_credentials", 1);
        let sealed = c.seal(&name, b"token-123").unwrap();
        assert_eq!(sealed.ciphertext.len(), b"token-123".len() + 16);
        assert_eq!(c.open(&name, &sealed.nonce, &sealed.ciphertext).unwrap(), b"token-123");
    }

    #[test]
    fn nonces_are_fresh() {
        let c = cipher(7);
        let name = SecretRef::new("server:a", "auth_credentials", 1);
        let one = c.seal(&name, b"same").unwrap();
        let two = c.seal(&name, b"same").unwrap();
        assert_ne!(one.nonce, two.nonce);
        assert_ne!(one.ciphertext, two.ciphertext);
    }

    #[test]
    fn other_name_tamper_or_key_fails() {
        let c = cipher(7);
        let name = SecretRef::new("server:a", "auth_credentials", 1);
        let sealed = c.seal(&name, b"token-123").unwrap();
        for other in [
            SecretRef::new("server:b", "auth_credentials", 1),
            SecretRef::new("server:a", "client_secret", 1),
            SecretRef::new("server:a", "auth_credentials", 2),
        ] {
            let err = c.open(&other, &sealed.nonce, &sealed.ciphertext).unwrap_err();
            assert!(matches!(err, VaultError::Decrypt { .. }), "{err}");
        }
        let mut tampered = sealed.ciphertext.clone();
        tampered[0] ^= 1;
        assert!(c.open(&name, &sealed.nonce, &tampered).is_err());
        assert!(cipher(8).open(&name, &sealed.nonce, &sealed.ciphertext).is_err());
    }
}
