//! What every write carries: a valid gantry config document of exactly `size` bytes, different
//! for every marker (so each write is a new revision), and the same bytes as etcd's value.
//!
//! The document serves one http listener and one service; it is padded with filler routes
//! (`path_prefix: /pad/NNN/`) and the last route's name carries the marker, stretched with `x`
//! to land on the exact size. Real content, not a YAML comment: gantry stores the parsed
//! document (as JSON), so padding that parsing drops would make its entries smaller than etcd's.

/// The smallest document [`document`] can produce (the fixed part plus a marker route).
pub const MIN_SIZE: usize = 256;

const HEAD: &str = "listeners:
  - { name: public, protocol: http }
services:
  - name: web
    endpoints: [ { address: \"127.0.0.1:1\" } ]
routes:
";

fn filler_route(index: usize) -> String {
    format!("  - {{ name: pad-{index:03}, match: {{ path_prefix: /pad/{index:03}/ }}, to: [ {{ service: web }} ] }}\n")
}

fn marker_route(marker: u64, stretch: usize) -> String {
    format!("  - {{ name: \"r{marker:010}{}\", to: [ {{ service: web }} ] }}\n", "x".repeat(stretch))
}

/// The document for write `marker`, exactly `size` bytes long (`size` at least [`MIN_SIZE`]).
pub fn document(marker: u64, size: usize) -> String {
    let size = size.max(MIN_SIZE);
    let mut text = String::with_capacity(size);
    text.push_str(HEAD);
    let marker_min = marker_route(marker, 0).len();
    // Filler routes while a marker route still fits after them (its name can stretch to any
    // length, so only a gap shorter than the marker route itself needs care).
    let mut index = 0;
    loop {
        let filler = filler_route(index);
        if text.len() + filler.len() + marker_min > size {
            break;
        }
        text.push_str(&filler);
        index += 1;
    }
    let stretch = size - text.len() - marker_min;
    text.push_str(&marker_route(marker, stretch));
    text
}

/// Standard base64 with padding (RFC 4648 §4), as etcd's JSON gateway expects for keys and values.
pub fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_have_the_exact_size_and_parse() {
        for size in [MIN_SIZE, 300, 511, 1024, 1536, 2048, 4000] {
            for marker in [0, 7, 123_456, u64::from(u32::MAX)] {
                let text = document(marker, size);
                assert_eq!(text.len(), size, "marker {marker}, size {size}");
                let parsed = gantry_proto::config::parse_document(&text);
                assert!(parsed.is_ok(), "size {size}: {parsed:?}\n{text}");
            }
        }
    }

    #[test]
    fn markers_make_different_documents() {
        assert_ne!(document(1, 1536), document(2, 1536));
        let parsed = gantry_proto::config::parse_document(&document(42, 1536)).expect("valid");
        let again = gantry_proto::config::parse_document(&document(42, 1536)).expect("valid");
        assert_eq!(parsed, again);
    }

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
