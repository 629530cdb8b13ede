//! `EventStore.open(...)` options.

use super::idb::txn::Durability;
use crate::error::{Error, Result};
use crate::ids::check_id;
use serde_json::Value;

/// Validated open options.
#[derive(Debug, Clone)]
pub(crate) struct OpenOptions {
    pub(crate) name: String,
    pub(crate) user_id: String,
    pub(crate) tenant_id: Option<String>,
    pub(crate) durability: Durability,
}

const FIELDS: [&str; 4] = ["name", "userId", "tenantId", "durability"];

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
        Ok(OpenOptions {
            name: text("name", true)?.unwrap_or_default(),
            user_id: text("userId", true)?.unwrap_or_default(),
            tenant_id: text("tenantId", false)?,
            durability,
        })
    }
}
