//! `EventStore.open(...)` options.

use super::idb::txn::Durability;
use crate::crypto::keyring::{DEFAULT_MAX_RECORDS_PER_KEY, MIN_MAX_RECORDS_PER_KEY};
use crate::error::{Error, Result};
use crate::ids::check_id;
use serde_json::Value;

/// Validated open options.
#[derive(Debug, Clone)]
pub(crate) struct OpenOptions {
    pub(crate) name: String,
    /// Needed to create a store; an existing store is checked against it.
    pub(crate) user_id: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) durability: Durability,
    pub(crate) blind_indexes: Option<bool>,
    pub(crate) max_records_per_key: Option<u64>,
}

const FIELDS: [&str; 10] = [
    "name",
    "userId",
    "tenantId",
    "durability",
    "passphrase",
    "keyEncryptionKey",
    "recoverySecret",
    "sessionKey",
    "blindIndexes",
    "maxRecordsPerKey",
];

impl OpenOptions {
    pub(crate) fn from_value(value: &Value) -> Result<OpenOptions> {
        let Value::Object(map) = value else {
            return Err(Error::validation(
                "options",
                "open() takes an object: { name, userId, tenantId?, durability? }",
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::validation(
                unknown.as_str(),
                format!(
                    "unknown open() option {unknown}; the options are {}",
                    FIELDS.join(", ")
                ),
            ));
        }
        let text = |field: &str, required: bool| -> Result<Option<String>> {
            match map.get(field) {
                None if required => Err(Error::validation(field, format!("{field} is required"))),
                None => Ok(None),
                Some(Value::String(s)) => {
                    check_id(field, s)?;
                    Ok(Some(s.clone()))
                }
                Some(other) => Err(Error::validation(
                    field,
                    format!("{field} must be a string, got {other}"),
                )),
            }
        };
        let durability = match text("durability", false)?.as_deref() {
            None | Some("strict") => Durability::Strict,
            Some("relaxed") => Durability::Relaxed,
            Some(other) => {
                return Err(Error::validation(
                    "durability",
                    format!("durability must be 'strict' or 'relaxed', got {other:?}"),
                ))
            }
        };
        let blind_indexes = match map.get("blindIndexes") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(Error::validation(
                    "blindIndexes",
                    format!("blindIndexes must be true or false, got {other}"),
                ))
            }
        };
        let max_records_per_key = match map.get("maxRecordsPerKey") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|n| (MIN_MAX_RECORDS_PER_KEY..=DEFAULT_MAX_RECORDS_PER_KEY).contains(n))
                    .ok_or_else(|| {
                        Error::validation(
                            "maxRecordsPerKey",
                            format!(
                                "maxRecordsPerKey must be a whole number from {MIN_MAX_RECORDS_PER_KEY} to {DEFAULT_MAX_RECORDS_PER_KEY}, got {v}"
                            ),
                        )
                    })?,
            ),
        };
        Ok(OpenOptions {
            blind_indexes,
            max_records_per_key,
            name: text("name", true)?.unwrap_or_default(),
            user_id: text("userId", false)?,
            tenant_id: text("tenantId", false)?,
            durability,
        })
    }
}
