//! Lowercase hexadecimal, the only text form of hashes, digests and salts.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Whether `text` is the lowercase hex of `bytes`: [`encode`] and a
/// comparison, without the copy.
pub fn is_encoding_of(bytes: &[u8], text: &str) -> bool {
    let text = text.as_bytes();
    text.len() == 2 * bytes.len()
        && bytes.iter().zip(text.chunks_exact(2)).all(|(b, pair)| {
            pair[0] == DIGITS[(b >> 4) as usize] && pair[1] == DIGITS[(b & 0xf) as usize]
        })
}

/// Decodes lowercase hex into exactly `N` bytes. Uppercase is rejected, so
/// that each value has one spelling.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Whether `text` is `2 * n` lowercase hex digits.
pub fn is_lower_hex(text: &str, n: usize) -> bool {
    text.len() == 2 * n && text.bytes().all(|b| nibble(b).is_some())
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_rejects_uppercase() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(super::encode(&bytes), "0001abff");
        assert_eq!(super::decode::<4>("0001abff"), Some(bytes));
        assert_eq!(super::decode::<4>("0001ABFF"), None);
        assert_eq!(super::decode::<4>("0001abf"), None);
        assert!(super::is_encoding_of(&bytes, "0001abff"));
        for other in ["0001ABFF", "0001abfe", "0001abf", "0001abff0", ""] {
            assert!(!super::is_encoding_of(&bytes, other), "{other}");
        }
    }
}
