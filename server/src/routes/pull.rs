//! `GET /v1/events`: pages of a ledger, with what each entry records.

use crate::auth::{Principal, Scope};
use crate::db::PullQuery;
use crate::error::AppError;
use crate::protocol::{PullResponse, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT};
use crate::AppState;
use annal::ledger::{user_ledger, TENANT_LEDGER};
use axum::extract::{Query, State};
use axum::Json;
use std::collections::HashMap;

/// The query of a pull or a stream, checked.
pub(crate) fn read_query(
    who: &Principal,
    params: &HashMap<String, String>,
) -> Result<PullQuery, AppError> {
    const KNOWN: [&str; 6] = [
        "after",
        "limit",
        "aggregateId",
        "eventType",
        "tenant",
        "omit_device",
    ];
    if let Some(k) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(AppError::bad_request(
            "BAD_QUERY",
            format!(
                "unknown parameter {k:?}; use after, limit, aggregateId, eventType, omit_device"
            ),
        ));
    }
    if let Some(t) = params.get("tenant") {
        if *t != who.tenant {
            return Err(AppError::forbidden("the token is not for that tenant"));
        }
    }
    let after = match params.get("after") {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| AppError::bad_request("BAD_QUERY", "after must be a whole number ≥ 0"))?,
    };
    let limit = match params.get("limit") {
        None => DEFAULT_PULL_LIMIT,
        Some(l) => match l.parse::<i128>() {
            Ok(n) if n >= 1 => n.min(i128::from(MAX_PULL_LIMIT)) as u32,
            _ => {
                return Err(AppError::bad_request(
                    "BAD_QUERY",
                    format!(
                    "limit must be a whole number from 1 (larger than {MAX_PULL_LIMIT} is clamped)"
                ),
                ))
            }
        },
    };
    let text = |name: &str| -> Result<Option<String>, AppError> {
        match params.get(name) {
            None => Ok(None),
            Some(v) => {
                annal::ids::check_id(name, v)
                    .map_err(|e| AppError::bad_request("BAD_QUERY", e.message))?;
                Ok(Some(v.clone()))
            }
        }
    };
    Ok(PullQuery {
        tenant: who.tenant.clone(),
        ledger: match who.scope {
            Scope::Own => user_ledger(&who.user),
            Scope::Tenant => TENANT_LEDGER.to_string(),
        },
        after,
        limit,
        aggregate_id: text("aggregateId")?,
        event_type: text("eventType")?,
        omit_device: text("omit_device")?,
    })
}

/// One page: `own` tokens follow their user ledger, `tenant` tokens the
/// tenant ledger.
pub async fn pull(
    State(state): State<AppState>,
    who: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<PullResponse>, AppError> {
    let q = read_query(&who, &params)?;
    Ok(Json(state.db.pull(&q).await?))
}
