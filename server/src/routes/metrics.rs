//! `GET /metrics`: Prometheus text format.

use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// The counters, histogram and gauges.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
