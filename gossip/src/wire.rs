//! The sealed datagram format: what travels on the gossip port. Pure functions (no sockets, no
//! state): `seal` turns one chitchat envelope into one or more datagrams, `open` checks and
//! decrypts one datagram or says why it must be dropped. It never panics on input.
//!
//! ```text
//! offset  len  field
//!      0    1  version (1)
//!      1    4  key id: SHA-256("gantry-gossip key-id v1" || key)[..4]
//!      5    8  sender Raft node id, big endian
//!     13    8  send time, unix milliseconds, big endian
//!     21    4  message id (same for every fragment of one envelope)
//!     25    1  fragment index
//!     26    1  fragment count (1 for an unfragmented envelope, at most 4)
//!     27   12  random nonce
//!     39    n  ChaCha20-Poly1305 ciphertext of the (fragment of the) envelope
//!   39+n   16  Poly1305 tag
//! ```
//!
//! The whole 39-byte header is the AEAD's associated data, so none of it can be altered. An
//! envelope whose sealed form would not fit one UDP datagram (65,507 bytes: chitchat fills its
//! deltas up to that size and knows nothing of our 55 bytes) is split into fragments, each
//! sealed on its own.

use ring::aead::{Aad, Nonce, NONCE_LEN};
use ring::rand::SecureRandom;

use crate::key::KeyRing;
use crate::NodeId;

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 1 + 4 + 8 + 8 + 4 + 1 + 1 + NONCE_LEN;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed datagram adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Largest UDP payload over IPv4 (65,535 − 20 IP − 8 UDP). Larger datagrams (possible over IPv6)
/// are dropped as oversized.
pub const MAX_DATAGRAM_LEN: usize = 65_507;
/// Largest payload of one fragment.
pub const MAX_FRAGMENT_PAYLOAD: usize = MAX_DATAGRAM_LEN - OVERHEAD;
/// A bound on fragments per envelope: two suffice for chitchat's 65,507-byte envelopes.
pub const MAX_FRAGMENTS: u8 = 4;
/// Largest envelope `seal` accepts.
pub const MAX_PLAINTEXT_LEN: usize = MAX_FRAGMENT_PAYLOAD * MAX_FRAGMENTS as usize;

/// Why a datagram (or a piece of the transport's loopback plumbing) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// Too short, unknown version or inconsistent fragment fields.
    Malformed,
    /// Longer than [`MAX_DATAGRAM_LEN`] (received), or an envelope too large to seal (sent).
    Oversized,
    /// Sealed with a key this node does not hold (not a member, or a rotation left it behind).
    UnknownKey,
    /// Send time more than the allowed skew in the past or in the future ("replayed-stale").
    Stale,
    /// Sender's node id is not in the current member set.
    UnknownSender,
    /// Authentication failed: garbled or forged.
    AuthFailed,
    /// A nonce seen before within the freshness window: a replayed datagram.
    Replayed,
    /// Fragments of an envelope that did not all arrive in time, or evicted to bound memory.
    Incomplete,
    /// A datagram on one of the transport's loopback sockets from an address that is not ours:
    /// another local process tried to inject plaintext.
    LoopbackForeign,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::Oversized,
        DropReason::UnknownKey,
        DropReason::Stale,
        DropReason::UnknownSender,
        DropReason::AuthFailed,
        DropReason::Replayed,
        DropReason::Incomplete,
        DropReason::LoopbackForeign,
    ];

    /// A stable snake_case label, e.g. for a Prometheus `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Oversized => "oversized",
            DropReason::UnknownKey => "unknown_key",
            DropReason::Stale => "replayed_stale",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replayed => "replayed",
            DropReason::Incomplete => "incomplete",
            DropReason::LoopbackForeign => "loopback_foreign",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The clear-text header of a sealed datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub key_id: [u8; 4],
    pub sender: NodeId,
    pub sent_at_unix_ms: u64,
    pub message_id: u32,
    pub fragment_index: u8,
    pub fragment_count: u8,
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.extend_from_slice(&self.sent_at_unix_ms.to_be_bytes());
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.push(self.fragment_index);
        out.push(self.fragment_count);
        out.extend_from_slice(&self.nonce);
    }

    /// Parses the header of `datagram` (its length was checked by the caller).
    fn parse(h: &[u8; HEADER_LEN]) -> Result<Self, DropReason> {
        if h[0] != VERSION {
            return Err(DropReason::Malformed);
        }
        let header = Header {
            key_id: array(&h[1..5]),
            sender: u64::from_be_bytes(array(&h[5..13])),
            sent_at_unix_ms: u64::from_be_bytes(array(&h[13..21])),
            message_id: u32::from_be_bytes(array(&h[21..25])),
            fragment_index: h[25],
            fragment_count: h[26],
            nonce: array(&h[27..39]),
        };
        if header.fragment_count == 0
            || header.fragment_count > MAX_FRAGMENTS
            || header.fragment_index >= header.fragment_count
        {
            return Err(DropReason::Malformed);
        }
        Ok(header)
    }
}

/// Copies a slice whose length the caller has fixed into an array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// Why `seal` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("envelope of {0} bytes is larger than the {MAX_PLAINTEXT_LEN}-byte limit")]
    TooLarge(usize),
    #[error("the system random generator failed")]
    Random,
    #[error("encryption failed")]
    Crypto,
}

/// Seals `plaintext` with the ring's current key into one datagram per fragment.
pub fn seal(
    keys: &KeyRing,
    rng: &dyn SecureRandom,
    sender: NodeId,
    sent_at_unix_ms: u64,
    message_id: u32,
    plaintext: &[u8],
) -> Result<Vec<Vec<u8>>, SealError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(SealError::TooLarge(plaintext.len()));
    }
    let count = plaintext.len().div_ceil(MAX_FRAGMENT_PAYLOAD).max(1);
    // Even split, so that neither fragment is needlessly close to the limit.
    let chunk_len = plaintext.len().div_ceil(count).max(1);
    let key = keys.current();
    let mut datagrams = Vec::with_capacity(count);
    let mut chunks: Vec<&[u8]> = plaintext.chunks(chunk_len).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (index, chunk) in chunks.iter().enumerate() {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let header = Header {
            key_id: key.id,
            sender,
            sent_at_unix_ms,
            message_id,
            fragment_index: u8::try_from(index).map_err(|_| SealError::TooLarge(plaintext.len()))?,
            fragment_count: u8::try_from(chunks.len()).map_err(|_| SealError::TooLarge(plaintext.len()))?,
            nonce,
        };
        let mut out = Vec::with_capacity(OVERHEAD + chunk.len());
        header.write(&mut out);
        out.extend_from_slice(chunk);
        let (head, body) = out.split_at_mut(HEADER_LEN);
        let tag = key
            .aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&*head), body)
            .map_err(|_| SealError::Crypto)?;
        out.extend_from_slice(tag.as_ref());
        debug_assert!(out.len() <= MAX_DATAGRAM_LEN);
        datagrams.push(out);
    }
    Ok(datagrams)
}

/// Checks and decrypts one datagram in place. Returns its header and the plaintext (a slice of
/// `datagram`), or why it must be dropped. Cheap checks run before the AEAD so that junk costs
/// little; the replay check is the caller's (it needs state).
pub fn open<'a>(
    keys: &KeyRing,
    datagram: &'a mut [u8],
    now_unix_ms: u64,
    max_skew_ms: u64,
    is_member: impl Fn(NodeId) -> bool,
) -> Result<(Header, &'a [u8]), DropReason> {
    if datagram.len() > MAX_DATAGRAM_LEN {
        return Err(DropReason::Oversized);
    }
    if datagram.len() < OVERHEAD {
        return Err(DropReason::Malformed);
    }
    let (head, body) = datagram.split_at_mut(HEADER_LEN);
    let head: &[u8; HEADER_LEN] = (&*head).try_into().map_err(|_| DropReason::Malformed)?;
    let header = Header::parse(head)?;
    let candidates: Vec<_> = keys.candidates(header.key_id).collect();
    if candidates.is_empty() {
        return Err(DropReason::UnknownKey);
    }
    if header.sent_at_unix_ms.abs_diff(now_unix_ms) > max_skew_ms {
        return Err(DropReason::Stale);
    }
    if !is_member(header.sender) {
        return Err(DropReason::UnknownSender);
    }
    // A failed open leaves the buffer unspecified; keep a copy in the (2^-32) case of two keys
    // sharing an id.
    let backup = (candidates.len() > 1).then(|| body.to_vec());
    for (i, key) in candidates.iter().enumerate() {
        if i > 0 {
            if let Some(backup) = &backup {
                body.copy_from_slice(backup);
            }
        }
        let nonce = Nonce::assume_unique_for_key(header.nonce);
        if let Ok(plaintext) = key.aead.open_in_place(nonce, Aad::from(&head[..]), body) {
            let len = plaintext.len();
            return Ok((header, &body[..len]));
        }
    }
    Err(DropReason::AuthFailed)
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;
    use crate::key::GossipKey;

    const NOW: u64 = 1_800_000_000_000;
    const SKEW: u64 = 30_000;

    fn ring_of(byte: u8) -> KeyRing {
        KeyRing::new(&GossipKey::from_bytes([byte; 32]), None).expect("key ring")
    }

    fn member(id: NodeId) -> bool {
        id < 10
    }

    fn seal_one(keys: &KeyRing, sender: NodeId, at: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut d = seal(keys, &SystemRandom::new(), sender, at, 7, plaintext).expect("seal");
        assert_eq!(d.len(), 1);
        d.remove(0)
    }

    #[test]
    fn roundtrip() {
        let keys = ring_of(1);
        let mut d = seal_one(&keys, 3, NOW, b"hello chitchat");
        assert_eq!(d.len(), OVERHEAD + 14);
        let (header, plaintext) = open(&keys, &mut d, NOW + 5, SKEW, member).expect("open");
        assert_eq!(plaintext, b"hello chitchat");
        assert_eq!((header.sender, header.sent_at_unix_ms, header.message_id), (3, NOW, 7));
        assert_eq!((header.fragment_index, header.fragment_count), (0, 1));
    }

    #[test]
    fn empty_plaintext_roundtrips() {
        let keys = ring_of(1);
        let mut d = seal_one(&keys, 3, NOW, b"");
        assert_eq!(open(&keys, &mut d, NOW, SKEW, member).expect("open").1, b"");
    }

    #[test]
    fn largest_chitchat_envelope_is_split_in_two_fitting_datagrams() {
        let keys = ring_of(1);
        let plaintext: Vec<u8> = (0..65_507u32).map(|i| i as u8).collect();
        let datagrams = seal(&keys, &SystemRandom::new(), 3, NOW, 9, &plaintext).expect("seal");
        assert_eq!(datagrams.len(), 2);
        let mut joined = Vec::new();
        for (i, mut d) in datagrams.into_iter().enumerate() {
            assert!(d.len() <= MAX_DATAGRAM_LEN);
            let (h, p) = open(&keys, &mut d, NOW, SKEW, member).expect("open");
            assert_eq!((h.fragment_index as usize, h.fragment_count, h.message_id), (i, 2, 9));
            joined.extend_from_slice(p);
        }
        assert_eq!(joined, plaintext);
    }

    #[test]
    fn too_large_is_refused() {
        let keys = ring_of(1);
        let plaintext = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        let err = seal(&keys, &SystemRandom::new(), 3, NOW, 9, &plaintext).expect_err("too large");
        assert_eq!(err, SealError::TooLarge(MAX_PLAINTEXT_LEN + 1));
    }

    #[test]
    fn each_drop_reason() {
        let keys = ring_of(1);
        let good = seal_one(&keys, 3, NOW, b"payload");
        let reason = |mut d: Vec<u8>, now: u64| open(&keys, &mut d, now, SKEW, member).map(|_| ()).expect_err("drop");

        assert_eq!(reason(good[..OVERHEAD - 1].to_vec(), NOW), DropReason::Malformed);
        assert_eq!(reason(vec![0u8; MAX_DATAGRAM_LEN + 1], NOW), DropReason::Oversized);
        let mut bad_version = good.clone();
        bad_version[0] = 2;
        assert_eq!(reason(bad_version, NOW), DropReason::Malformed);
        let mut bad_fragment = good.clone();
        bad_fragment[25] = 1; // index 1 of 1
        assert_eq!(reason(bad_fragment, NOW), DropReason::Malformed);

        let foreign = seal_one(&ring_of(2), 3, NOW, b"payload");
        assert_eq!(reason(foreign, NOW), DropReason::UnknownKey);

        assert_eq!(reason(good.clone(), NOW + SKEW + 1), DropReason::Stale);
        assert_eq!(reason(good.clone(), NOW - SKEW - 1), DropReason::Stale);

        let stranger = seal_one(&keys, 42, NOW, b"payload");
        assert_eq!(reason(stranger, NOW), DropReason::UnknownSender);

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(reason(flipped, NOW), DropReason::AuthFailed);
        let mut body_flipped = good.clone();
        body_flipped[HEADER_LEN] ^= 0x80;
        assert_eq!(reason(body_flipped, NOW), DropReason::AuthFailed);
        // The header is authenticated too: claiming another (member) sender breaks the tag.
        let mut other_sender = good.clone();
        other_sender[12] ^= 1;
        assert_eq!(reason(other_sender, NOW), DropReason::AuthFailed);
        // Truncating the ciphertext leaves a well-formed but unauthentic datagram.
        assert_eq!(reason(good[..good.len() - 3].to_vec(), NOW), DropReason::AuthFailed);
    }

    #[test]
    fn rotation_opens_with_previous_key_and_seals_with_current() {
        let old = GossipKey::from_bytes([1; 32]);
        let new = GossipKey::from_bytes([2; 32]);
        let old_ring = KeyRing::new(&old, None).expect("ring");
        let rotating = KeyRing::new(&new, Some(&old)).expect("ring");
        let mut from_old = seal_one(&old_ring, 3, NOW, b"x");
        assert!(open(&rotating, &mut from_old, NOW, SKEW, member).is_ok());
        let mut from_new = seal_one(&rotating, 3, NOW, b"x");
        assert_eq!(from_new[1..5], new.key_id());
        assert_eq!(open(&old_ring, &mut from_new, NOW, SKEW, member).map(|_| ()), Err(DropReason::UnknownKey));
    }

    #[test]
    fn random_input_never_panics_nor_opens() {
        let keys = ring_of(1);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let len = (next() % 200) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 1 && next() % 2 == 0 {
                d[0] = VERSION;
            }
            assert!(open(&keys, &mut d, NOW, SKEW, |_| true).is_err());
        }
    }
}
