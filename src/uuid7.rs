//! UUIDv7 (RFC 9562 §5.7) event and device ids: 48 bits of Unix milliseconds,
//! then random bits, printed lowercase and hyphenated.

use crate::hex;

/// Builds a UUIDv7 from a millisecond timestamp and 10 random bytes.
pub fn from_parts(unix_ms: i64, random: [u8; 10]) -> String {
    let ms = (unix_ms.max(0) as u64) & 0xffff_ffff_ffff;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&random);
    b[6] = 0x70 | (b[6] & 0x0f); // version 7
    b[8] = 0x80 | (b[8] & 0x3f); // RFC 9562 variant
    let h = hex::encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `id` is a lowercase, hyphenated UUID of version 7.
pub fn is_uuid7(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        })
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_time_version_and_variant() {
        let id = from_parts(0x0189_1234_5678, [0xff; 10]);
        assert_eq!(id, "01891234-5678-7fff-bfff-ffffffffffff");
        assert!(is_uuid7(&id));
        assert!(!is_uuid7("01891234-5678-4fff-bfff-ffffffffffff"));
        assert!(!is_uuid7("01891234-5678-7FFF-bfff-ffffffffffff"));
    }
}
