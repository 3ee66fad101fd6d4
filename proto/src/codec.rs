//! The one codec for everything that crosses a process boundary: serde values encoded with
//! bincode 2 (standard config, little-endian varints) in frames prefixed by a 4-byte big-endian
//! length. Decoding is bounded by [`MAX_FRAME_BYTES`] and returns an error on garbage, never
//! panicking or allocating past the bound.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest frame accepted or produced (payload bytes, without the 4-byte length).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("malformed frame: {0}")]
    Decode(String),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// Encodes `value` without a length prefix.
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Encodes `value` as a whole frame: length prefix, then payload.
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let payload = encode_payload(value)?;
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Reads a frame's length prefix, refusing lengths over the limit before anything is allocated.
pub fn frame_length(prefix: [u8; LENGTH_PREFIX_BYTES]) -> Result<usize, CodecError> {
    let length = u32::from_be_bytes(prefix) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(length));
    }
    Ok(length)
}

/// Decodes a payload (the bytes after the length prefix); every byte must be used.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    if payload.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(payload.len()));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config()).map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(CodecError::Trailing(payload.len() - used));
    }
    Ok(value)
}

/// Decodes a whole frame (length prefix included) held in memory.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, CodecError> {
    let Some((prefix, payload)) = frame.split_first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Err(CodecError::Decode(format!("{} bytes is shorter than a length prefix", frame.len())));
    };
    let length = frame_length(*prefix)?;
    if payload.len() != length {
        return Err(CodecError::Decode(format!("length prefix says {length} bytes, frame holds {}", payload.len())));
    }
    decode_payload(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Command, JoinToken, NodeInfo};

    #[test]
    fn golden_bytes_pin_the_wire_format() {
        // If this changes, nodes of different versions cannot talk: bump the ALPN version.
        let frame = encode_frame(&Command::RevokeJoinToken { id: "t1".into() }).expect("encode");
        assert_eq!(frame, [0, 0, 0, 4, 4, 2, b't', b'1']);
        let node = NodeInfo {
            id: 3,
            name: "n3".into(),
            zone: "c".into(),
            fabric: "127.0.3.1:7000".into(),
            admin: "127.0.3.1:9900".into(),
            gossip: "127.0.3.1:7001".into(),
        };
        let payload = encode_payload(&node).expect("encode");
        let mut expected = vec![3, 2, b'n', b'3', 1, b'c', 14];
        expected.extend_from_slice(b"127.0.3.1:7000");
        expected.push(14);
        expected.extend_from_slice(b"127.0.3.1:9900");
        expected.push(14);
        expected.extend_from_slice(b"127.0.3.1:7001");
        assert_eq!(payload, expected);
        let token = JoinToken { secret_sha256: [7; 32], expires_at_unix_ms: 300, revoked: false };
        let payload = encode_payload(&token).expect("encode");
        assert_eq!(payload.len(), 32 + 3 + 1);
        assert_eq!(&payload[32..], &[251, 44, 1, 0]);
        // Batch is the last variant (8): older variants keep their numbers.
        let batch = Command::Batch(vec![Command::RemoveNode { id: 5 }]);
        assert_eq!(encode_payload(&batch).expect("encode"), [8, 1, 7, 5]);
    }

    #[test]
    fn round_trip() {
        let command =
            Command::ApplyConfig { config_json: "{\"routes\":[]}".into(), if_revision: Some(4), at_unix_ms: 99 };
        let frame = encode_frame(&command).expect("encode");
        assert_eq!(decode_frame::<Command>(&frame).expect("decode"), command);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // Deterministic pseudo-random garbage of every length up to 300.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode_payload::<Command>(&bytes);
            let _ = decode_frame::<Command>(&bytes);
        }
        // A length field claiming 4 GiB is refused before any allocation.
        assert!(matches!(frame_length([0xff; 4]), Err(CodecError::TooLarge(_))));
        // A string claiming a huge length inside a small frame is refused too.
        let huge_string = [4u8, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_payload::<Command>(&huge_string).is_err());
        // Truncated and padded frames.
        let frame = encode_frame(&Command::RevokeJoinToken { id: "abc".into() }).expect("encode");
        assert!(decode_frame::<Command>(&frame[..frame.len() - 1]).is_err());
        let mut padded = frame.clone();
        padded.push(0);
        assert!(decode_frame::<Command>(&padded).is_err());
    }
}
