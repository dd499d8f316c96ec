//! Signing keys at rest: sealed with an AEAD under a key derived from the operator's
//! secret (`SESAME_SECRET_KEY`), so that the database, or a backup of it, cannot mint
//! tokens on its own.
//!
//! A sealed key is `sesame-sealed:v1:` ‖ the secret's 8-byte id ‖ a 12-byte random nonce
//! ‖ ChaCha20-Poly1305 ciphertext of the PKCS#8 DER, with the key's `kid` and `alg` as
//! associated data (a sealed key cannot be passed off under another row). The AEAD key
//! and the id are derived from the secret with HKDF-SHA256, each under its own label.
//! A previous secret (`SESAME_SECRET_KEY_OLD`) still opens keys while `sesame keys
//! rewrap` seals them again under the current one.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

const MAGIC: &[u8] = b"sesame-sealed:v1:";
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a stored key could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("signing keys are sealed but SESAME_SECRET_KEY is not set")]
    NoSecret,
    #[error("a signing key is sealed under a secret that is neither SESAME_SECRET_KEY nor SESAME_SECRET_KEY_OLD")]
    UnknownSecret,
    #[error("a sealed signing key does not open under SESAME_SECRET_KEY (altered, or moved to another row)")]
    Corrupt,
    #[error("SESAME_SECRET_KEY must be at least {MIN_SECRET_LEN} bytes")]
    TooShort,
}

/// One secret's derived AEAD key and id.
struct SealingKey {
    id: [u8; ID_LEN],
    cipher: ChaCha20Poly1305,
}

impl SealingKey {
    fn derive(secret: &[u8]) -> Result<Self, SealError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SealError::TooShort);
        }
        let hkdf = Hkdf::<Sha256>::new(Some(b"sesame signing keys at rest"), secret);
        let mut key = [0u8; 32];
        let mut id = [0u8; ID_LEN];
        // Both lengths are far below HKDF-SHA256's limit of 8160 bytes.
        if hkdf.expand(b"aead key v1", &mut key).is_err() || hkdf.expand(b"secret id v1", &mut id).is_err() {
            return Err(SealError::TooShort);
        }
        Ok(Self {
            id,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }
}

/// Seals and opens signing keys. Without a current secret, keys are stored as they are.
#[derive(Default)]
pub struct Sealer {
    current: Option<SealingKey>,
    old: Option<SealingKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.as_ref().map(|_| "[secret]"))
            .field("old", &self.old.as_ref().map(|_| "[secret]"))
            .finish()
    }
}

fn associated_data(kid: &str, alg: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(kid.len() + alg.len() + 1);
    aad.extend_from_slice(kid.as_bytes());
    aad.push(0);
    aad.extend_from_slice(alg.as_bytes());
    aad
}

impl Sealer {
    /// A sealer for the current secret and, during a rotation, the previous one.
    pub fn new(current: Option<&[u8]>, old: Option<&[u8]>) -> Result<Self, SealError> {
        Ok(Self {
            current: current.map(SealingKey::derive).transpose()?,
            old: old.map(SealingKey::derive).transpose()?,
        })
    }

    /// Whether new keys are sealed.
    pub fn is_enabled(&self) -> bool {
        self.current.is_some()
    }

    /// Whether `stored` is sealed at all.
    pub fn is_sealed(stored: &[u8]) -> bool {
        stored.starts_with(MAGIC)
    }

    /// Whether `stored` is sealed under the current secret (nothing to rewrap).
    pub fn is_current(&self, stored: &[u8]) -> bool {
        match (&self.current, stored.strip_prefix(MAGIC)) {
            (Some(current), Some(rest)) => rest.starts_with(&current.id),
            (None, None) => true,
            _ => false,
        }
    }

    /// Seals a key's DER under the current secret (as it is without one).
    pub fn seal(&self, kid: &str, alg: &str, der: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some(current) = &self.current else {
            return Ok(der.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        sesame_domain::random::fill(&mut nonce);
        let aad = associated_data(kid, alg);
        let ciphertext = current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: der, aad: &aad })
            .map_err(|_| SealError::Corrupt)?;
        let mut sealed = Vec::with_capacity(MAGIC.len() + ID_LEN + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&current.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// A stored key's DER: opened with whichever secret sealed it, or as it is if it was
    /// stored unsealed.
    pub fn open(&self, kid: &str, alg: &str, stored: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some(rest) = stored.strip_prefix(MAGIC) else {
            return Ok(stored.to_vec());
        };
        if self.current.is_none() && self.old.is_none() {
            return Err(SealError::NoSecret);
        }
        if rest.len() < ID_LEN + NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (id, rest) = rest.split_at(ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = [&self.current, &self.old]
            .into_iter()
            .flatten()
            .find(|key| key.id == id)
            .ok_or(SealError::UnknownSecret)?;
        let aad = associated_data(kid, alg);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"an operator's secret of at least thirty-two bytes";
    const B: &[u8] = b"the next secret, also at least thirty-two bytes long";
    const DER: &[u8] = b"\x30\x2e private key bytes";

    #[test]
    fn a_sealed_key_opens_under_its_secret_only() {
        let sealer = Sealer::new(Some(A), None).unwrap();
        let sealed = sealer.seal("kid1", "EdDSA", DER).unwrap();
        assert!(Sealer::is_sealed(&sealed));
        assert!(
            !sealed.windows(DER.len()).any(|w| w == DER),
            "the key is not in the clear"
        );
        assert_eq!(sealer.open("kid1", "EdDSA", &sealed).unwrap(), DER);
        let other = Sealer::new(Some(B), None).unwrap();
        assert_eq!(other.open("kid1", "EdDSA", &sealed), Err(SealError::UnknownSecret));
        assert_eq!(
            Sealer::default().open("kid1", "EdDSA", &sealed),
            Err(SealError::NoSecret)
        );
    }

    #[test]
    fn a_sealed_key_is_bound_to_its_row_and_its_bytes() {
        let sealer = Sealer::new(Some(A), None).unwrap();
        let sealed = sealer.seal("kid1", "EdDSA", DER).unwrap();
        assert_eq!(sealer.open("kid2", "EdDSA", &sealed), Err(SealError::Corrupt));
        assert_eq!(sealer.open("kid1", "ES256", &sealed), Err(SealError::Corrupt));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open("kid1", "EdDSA", &altered), Err(SealError::Corrupt));
        assert_eq!(
            sealer.open("kid1", "EdDSA", &sealed[..MAGIC.len() + 3]),
            Err(SealError::Corrupt)
        );
    }

    #[test]
    fn the_old_secret_opens_while_keys_are_rewrapped_under_the_new() {
        let before = Sealer::new(Some(A), None).unwrap();
        let sealed = before.seal("kid1", "EdDSA", DER).unwrap();
        let rotating = Sealer::new(Some(B), Some(A)).unwrap();
        assert!(!rotating.is_current(&sealed));
        let opened = rotating.open("kid1", "EdDSA", &sealed).unwrap();
        let resealed = rotating.seal("kid1", "EdDSA", &opened).unwrap();
        assert!(rotating.is_current(&resealed));
        let after = Sealer::new(Some(B), None).unwrap();
        assert_eq!(after.open("kid1", "EdDSA", &resealed).unwrap(), DER);
    }

    #[test]
    fn without_a_secret_keys_are_stored_as_they_are_and_plain_keys_still_open() {
        let plain = Sealer::default();
        assert_eq!(plain.seal("kid1", "EdDSA", DER).unwrap(), DER);
        let sealer = Sealer::new(Some(A), None).unwrap();
        assert_eq!(sealer.open("kid1", "EdDSA", DER).unwrap(), DER);
        assert!(!sealer.is_current(DER));
        assert!(matches!(Sealer::new(Some(b"short"), None), Err(SealError::TooShort)));
    }
}
