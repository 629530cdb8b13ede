//! `POST /v1/events`: a batch of events, one result each.

use crate::auth::Principal;
use crate::error::AppError;
use crate::ingest::Submitted;
use crate::protocol::{PushRequest, PushResponse, MAX_BATCH_EVENTS};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use std::time::Instant;

/// Takes a batch. A 4xx means the request as a whole could not be read;
/// every per-event problem is that event's own result.
pub async fn push(
    State(state): State<AppState>,
    who: Principal,
    body: Bytes,
) -> Result<Json<PushResponse>, AppError> {
    let started = Instant::now();
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::bad_request("MALFORMED_JSON", "the body is not UTF-8 JSON"))?;
    let value = annal::strict_json::parse(text).map_err(|e| {
        AppError::bad_request("MALFORMED_JSON", format!("the body is not valid JSON: {e}"))
    })?;
    let request: PushRequest = serde_json::from_value(value).map_err(|e| {
        AppError::bad_request(
            "MALFORMED_REQUEST",
            format!("the body must be {{ \"events\": [...], \"atomic\"?: bool }}: {e}"),
        )
    })?;
    if request.events.is_empty() || request.events.len() > MAX_BATCH_EVENTS {
        return Err(AppError::bad_request(
            "BATCH_SIZE",
            format!("send 1 to {MAX_BATCH_EVENTS} events per request"),
        ));
    }
    let batch: Vec<Submitted> = request.events.into_iter().map(Submitted::read).collect();
    let plan = state
        .db
        .push(
            &who.tenant,
            &who.user,
            &batch,
            request.atomic,
            &state.policy,
        )
        .await?;
    if plan.committed && !plan.ledger.is_empty() {
        state.notify.advanced(&who.tenant);
    }
    state.metrics.pushed(&plan.results, started.elapsed());
    Ok(Json(PushResponse {
        committed: plan.committed,
        results: plan.results,
    }))
}
