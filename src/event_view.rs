//! The JSON shape of an event as the JavaScript API returns it: camelCase
//! envelope fields plus the payload. Built as text, so a page of events
//! crosses into JavaScript as one string and one native `JSON.parse`.

use crate::envelope::Envelope;
use crate::jcs::write_string;

/// Appends one event object to `out`. `payload` is canonical JSON text.
pub fn write_event(out: &mut String, e: &Envelope, payload: &str) {
    let field = |out: &mut String, name: &str, value: &str| {
        out.push_str(name);
        write_string(out, value);
        out.push(',');
    };
    out.push('{');
    field(out, "\"eventId\":", &e.event_id);
    field(out, "\"format\":", &e.format);
    field(out, "\"tenantId\":", &e.tenant_id);
    field(out, "\"aggregateType\":", &e.aggregate_type);
    field(out, "\"aggregateId\":", &e.aggregate_id);
    field(out, "\"eventType\":", &e.event_type);
    out.push_str(&format!("\"schemaVersion\":{},", e.schema_version));
    out.push_str("\"payload\":");
    out.push_str(payload);
    out.push(',');
    field(out, "\"payloadDigest\":", &e.payload_digest);
    field(out, "\"userId\":", &e.user_id);
    field(out, "\"deviceId\":", &e.device_id);
    out.push_str(&format!("\"deviceSeq\":{},", e.device_seq));
    field(out, "\"createdAt\":", &e.created_at);
    out.push_str(&format!("\"aggregateVersion\":{},", e.aggregate_version));
    if let Some(c) = &e.causation_id {
        field(out, "\"causationId\":", c);
    }
    if let Some(c) = &e.correlation_id {
        field(out, "\"correlationId\":", c);
    }
    field(out, "\"prevHash\":", &e.prev_hash);
    out.push_str("\"hash\":");
    write_string(out, &e.hash);
    out.push('}');
}

/// A JSON array of events.
pub fn write_events<'a>(events: impl IntoIterator<Item = (&'a Envelope, &'a str)>) -> String {
    let mut out = String::from("[");
    for (i, (e, payload)) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_event(&mut out, e, payload);
    }
    out.push(']');
    out
}
