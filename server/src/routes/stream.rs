//! `GET /v1/stream`: Server-Sent Events of the caller's ledger. Each event's
//! `id` is its ledger `seq`; a client that reconnects with `Last-Event-ID`
//! (or `?after=`) resumes exactly after the last entry it saw.

use super::pull::read_query;
use crate::auth::Principal;
use crate::db::PullQuery;
use crate::error::AppError;
use crate::notify::EVERYONE;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

struct Cursor {
    state: AppState,
    query: PullQuery,
    queue: VecDeque<Event>,
    advances: broadcast::Receiver<String>,
    closing: watch::Receiver<bool>,
    /// Read again before waiting: the first page, or more is known to follow.
    ready: bool,
}

impl Drop for Cursor {
    fn drop(&mut self) {
        self.state.metrics.stream(-1);
    }
}

/// Streams entries after `Last-Event-ID` or `after`, then as they come.
pub async fn stream(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Query(mut params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        params.insert("after".into(), last.trim().to_string());
    }
    let query = read_query(&who, &params)?;
    // Subscribe before the first read, so nothing pushed in between is missed.
    let advances = state.notify.subscribe();
    let closing = state.notify.closing();
    state.metrics.stream(1);
    let cursor = Cursor {
        state,
        query,
        queue: VecDeque::new(),
        advances,
        closing,
        ready: true,
    };
    let events = stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.queue.pop_front() {
                return Some((Ok(e), c));
            }
            if *c.closing.borrow() {
                return None;
            }
            if !c.ready {
                tokio::select! {
                    advance = c.advances.recv() => match advance {
                        Ok(tenant) if tenant != c.query.tenant && tenant != EVERYONE => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = c.closing.changed() => return None,
                }
            }
            match c.state.db.pull(&c.query).await {
                Ok(page) => {
                    c.ready = page.has_more;
                    c.query.after = page.next_after;
                    for item in page.items {
                        let id = item.entry.seq.to_string();
                        match Event::default().id(id).event("entry").json_data(&item) {
                            Ok(e) => c.queue.push_back(e),
                            Err(_) => return None,
                        }
                    }
                }
                Err(e) => {
                    eprintln!("annal-server: stream: {e}");
                    // Let the client reconnect with Last-Event-ID.
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
