//! Query filters for `events()`, `iterate()` and `aggregate()`.

use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::payload::MAX_SAFE_INTEGER;
use crate::timestamp;
use serde_json::{Map, Value};

/// Which events to return. All conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this aggregate.
    pub aggregate_id: Option<String>,
    /// Only this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// `device_seq` ≥ this.
    pub from_seq: Option<u64>,
    /// `device_seq` ≤ this.
    pub to_seq: Option<u64>,
    /// `created_at` ≥ this (Unix ms).
    pub since_ms: Option<i64>,
    /// `created_at` < this (Unix ms).
    pub until_ms: Option<i64>,
    /// At most this many events.
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

const FIELDS: [&str; 9] = [
    "aggregateId",
    "aggregateType",
    "eventType",
    "fromSeq",
    "toSeq",
    "since",
    "until",
    "limit",
    "reverse",
];

impl Filter {
    /// Reads a filter from its JSON object form (camelCase). `since` and
    /// `until` are Unix milliseconds or `YYYY-MM-DDTHH:MM:SS.sssZ` strings.
    pub fn from_value(value: &Value) -> Result<Filter> {
        let map = match value {
            Value::Null => return Ok(Filter::default()),
            Value::Object(map) => map,
            _ => return Err(Error::validation("filter", "a filter must be an object")),
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::validation(
                unknown.as_str(),
                format!(
                    "unknown filter field {unknown}; the fields are {}",
                    FIELDS.join(", ")
                ),
            ));
        }
        let string = |field: &str| -> Result<Option<String>> {
            match map.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(Error::validation(
                    field,
                    format!("{field} must be a string, got {other}"),
                )),
            }
        };
        let reverse = match map.get("reverse") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::validation(
                    "reverse",
                    format!("reverse must be a boolean, got {other}"),
                ))
            }
        };
        Ok(Filter {
            aggregate_id: string("aggregateId")?,
            aggregate_type: string("aggregateType")?,
            event_type: string("eventType")?,
            from_seq: count(map, "fromSeq")?,
            to_seq: count(map, "toSeq")?,
            since_ms: instant(map, "since")?,
            until_ms: instant(map, "until")?,
            limit: count(map, "limit")?.map(|n| n as usize),
            reverse,
        })
    }

    /// Whether `e` passes every condition except `limit`.
    pub fn matches(&self, e: &Envelope) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.aggregate_id, &e.aggregate_id)
            && eq(&self.aggregate_type, &e.aggregate_type)
            && eq(&self.event_type, &e.event_type)
            && self.seq_in_range(e.device_seq)
            && self.time_in_range(&e.created_at)
    }

    /// Whether `device_seq` is within `fromSeq..=toSeq`.
    pub fn seq_in_range(&self, device_seq: u64) -> bool {
        self.from_seq.is_none_or(|f| device_seq >= f) && self.to_seq.is_none_or(|t| device_seq <= t)
    }

    fn time_in_range(&self, created_at: &str) -> bool {
        if self.since_ms.is_none() && self.until_ms.is_none() {
            return true;
        }
        let Some(ms) = timestamp::parse_ms(created_at) else {
            return false;
        };
        self.since_ms.is_none_or(|s| ms >= s) && self.until_ms.is_none_or(|u| ms < u)
    }
}

fn count(map: &Map<String, Value>, field: &str) -> Result<Option<u64>> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = crate::payload::safe_count(v);
            n.map(Some).ok_or_else(|| {
                Error::validation(
                    field,
                    format!("{field} must be a non-negative integer, got {v}"),
                )
            })
        }
    }
}

fn instant(map: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => timestamp::parse_ms(s).map(Some).ok_or_else(|| {
            Error::validation(field, format!("{field} must be a Date, Unix milliseconds or YYYY-MM-DDTHH:MM:SS.sssZ, got {s:?}"))
        }),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() <= MAX_SAFE_INTEGER as f64)
            .map(|f| Some(f.floor() as i64))
            .ok_or_else(|| Error::validation(field, format!("{field} is out of range"))),
        Some(other) => Err(Error::validation(field, format!("{field} must be a Date, a number or a string, got {other}"))),
    }
}
