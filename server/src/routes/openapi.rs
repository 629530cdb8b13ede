//! `GET /v1/openapi.json`: the OpenAPI 3.1 description in server/openapi.json.

use axum::http::header;
use axum::response::IntoResponse;

/// The spec, verbatim.
pub const SPEC: &str = include_str!("../../openapi.json");

/// Serves the spec.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SPEC)
}
