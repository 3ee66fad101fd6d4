//! The cluster gossip key and the key ring the transport seals and opens with. A key never
//! prints: `Debug` shows only its public key id.

use std::fmt;

use ring::aead::{self, LessSafeKey, UnboundKey};
use ring::{digest, hkdf};

use crate::GossipError;

/// Length of a gossip key in bytes.
pub const KEY_LEN: usize = 32;

/// Domain separation: the key id and the AEAD key are different functions of the shared secret,
/// so publishing the id says nothing usable about the encryption key.
const KEY_ID_CONTEXT: &[u8] = b"gantry-gossip key-id v1";
const HKDF_SALT: &[u8] = b"gantry-gossip v1";
const HKDF_INFO_AEAD: &[u8] = b"aead chacha20-poly1305";

/// A 32-byte cluster gossip key (it lives in Raft; every member holds it).
#[derive(Clone, PartialEq, Eq)]
pub struct GossipKey([u8; KEY_LEN]);

impl GossipKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, GossipError> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| GossipError::KeyLength(bytes.len()))?;
        Ok(Self(bytes))
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, GossipError> {
        let mut bytes = [0u8; KEY_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| GossipError::Key("the system random generator failed"))?;
        Ok(Self(bytes))
    }

    /// The raw secret, for storing it (in Raft). Never log it.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The 4-byte public identifier carried in every sealed datagram's header.
    pub fn key_id(&self) -> [u8; 4] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_ID_CONTEXT);
        ctx.update(&self.0);
        let hash = ctx.finish();
        let mut id = [0u8; 4];
        id.copy_from_slice(&hash.as_ref()[..4]);
        id
    }
}

impl fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GossipKey(id={})", hex(&self.key_id()))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One key ready for use: its id and the derived AEAD key.
pub(crate) struct SealingKey {
    pub(crate) id: [u8; 4],
    pub(crate) aead: LessSafeKey,
}

impl SealingKey {
    fn derive(key: &GossipKey) -> Result<Self, GossipError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&key.0);
        let okm = prk
            .expand(&[HKDF_INFO_AEAD], &aead::CHACHA20_POLY1305)
            .map_err(|_| GossipError::Key("hkdf expansion failed"))?;
        Ok(Self { id: key.key_id(), aead: LessSafeKey::new(UnboundKey::from(okm)) })
    }
}

/// The keys a node accepts: it seals with `current` and opens with `current` or `previous`, so a
/// rotation can roll through the cluster without a partition: first every node learns the new
/// key as current (keeping the old one as previous), later the old one is dropped.
pub struct KeyRing {
    current: SealingKey,
    previous: Option<SealingKey>,
}

impl KeyRing {
    pub fn new(current: &GossipKey, previous: Option<&GossipKey>) -> Result<Self, GossipError> {
        let current = SealingKey::derive(current)?;
        let previous = previous.map(SealingKey::derive).transpose()?;
        Ok(Self { current, previous })
    }

    pub(crate) fn current(&self) -> &SealingKey {
        &self.current
    }

    /// The keys whose id matches, current first (two keys sharing a 4-byte id is a 2^-32
    /// accident, so trying both costs nothing in practice and keeps it correct).
    pub(crate) fn candidates(&self, id: [u8; 4]) -> impl Iterator<Item = &SealingKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref()).filter(move |k| k.id == id)
    }

    /// Ids of the accepted keys, current first.
    pub fn key_ids(&self) -> Vec<[u8; 4]> {
        std::iter::once(&self.current).chain(self.previous.as_ref()).map(|k| k.id).collect()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &hex(&self.current.id))
            .field("previous", &self.previous.as_ref().map(|k| hex(&k.id)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let key = GossipKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.starts_with("GossipKey(id="));
    }

    #[test]
    fn key_ids_differ_between_keys_and_are_stable() {
        let a = GossipKey::from_bytes([1; 32]);
        let b = GossipKey::from_bytes([2; 32]);
        assert_ne!(a.key_id(), b.key_id());
        assert_eq!(a.key_id(), GossipKey::from_bytes([1; 32]).key_id());
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(matches!(GossipKey::from_slice(&[0; 31]), Err(GossipError::KeyLength(31))));
        assert!(GossipKey::from_slice(&[0; 32]).is_ok());
    }
}
