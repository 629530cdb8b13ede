//! `GET /v1/schema`: the protocol versions spoken and the schema versions
//! accepted. Public: clients check it before their first push.

use crate::protocol::{PROTOCOL_MAX, PROTOCOL_MIN};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// The protocol range and per-event-type schema limits.
pub async fn schema(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "protocol": { "min": PROTOCOL_MIN, "max": PROTOCOL_MAX },
        "max_schema_version": state.policy.max_schema,
    }))
}
