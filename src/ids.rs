//! Identifier rules: tenant, user, aggregate and event-type names, causation
//! and correlation ids, idempotency keys.

use crate::error::{Error, Result};

/// Longest id, in UTF-8 bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks an id: 1–256 UTF-8 bytes with no control characters (Unicode
/// category Cc: U+0000–U+001F and U+007F–U+009F).
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::validation(
            field,
            format!("{field} is empty; give a non-empty id"),
        ));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::validation(
            field,
            format!(
                "{field} is {} bytes long; ids are at most {MAX_ID_BYTES} bytes of UTF-8",
                id.len()
            ),
        ));
    }
    // Printable ASCII, the common case, has no control character; only
    // other text is decoded into characters to look.
    if id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(Error::validation(
            field,
            format!(
                "{field} contains the control character U+{:04X}; ids may not contain control characters",
                c as u32
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_non_ascii_ids() {
        check_id("aggregateId", "patient-42").unwrap();
        check_id("aggregateId", "Müller/日記").unwrap();
        check_id("aggregateId", &"x".repeat(MAX_ID_BYTES)).unwrap();
    }

    #[test]
    fn rejects_empty_long_and_control_ids() {
        for bad in ["", "a\nb", "tab\t", "del\u{7f}", "c1\u{85}"] {
            let e = check_id("aggregateId", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("aggregateId"));
        }
        // 256 bytes is the limit, counted in UTF-8: 129 two-byte letters is 258.
        assert!(check_id("aggregateId", &"é".repeat(129)).is_err());
    }
}
