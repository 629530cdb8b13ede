//! annal-server: the sync server of annal. Devices push their hash-chained
//! events; the server enters every one in a tenant ledger and a user ledger
//! of its own, hash-chained too, and never drops an event. Runs on embedded
//! SQLite by default and on PostgreSQL at scale. See docs/FORMAT.md §11.

pub mod auth;
pub mod db;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod routes;

/// The protocol's JSON shapes live in the core, shared with the client.
pub use annal::protocol;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tower_http::cors::CorsLayer;

/// Everything a request handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: db::Db,
    /// Token checking.
    pub auth: Arc<auth::Auth>,
    /// What events are accepted.
    pub policy: Arc<ingest::Policy>,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Ledger advances, for streams.
    pub notify: notify::Notifier,
    /// Origins allowed by CORS.
    pub cors_origins: Vec<String>,
}

/// Every route, as `(method, path)`; the OpenAPI test checks each is documented.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/events"),
    ("get", "/v1/events"),
    ("get", "/v1/stream"),
    ("get", "/v1/schema"),
    ("get", "/v1/health"),
    ("get", "/v1/openapi.json"),
    ("get", "/metrics"),
];

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let origins: Vec<HeaderValue> = state
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("last-event-id"),
        ])
        // Browsers otherwise ask again every 5 s (Chromium's default),
        // before a push of a long drain.
        .max_age(std::time::Duration::from_secs(600));
    Router::new()
        .route(
            "/v1/events",
            post(routes::push::push)
                .layer(DefaultBodyLimit::max(protocol::MAX_BODY_BYTES))
                .get(routes::pull::pull),
        )
        .route("/v1/stream", get(routes::stream::stream))
        .route("/v1/schema", get(routes::schema::schema))
        .route("/v1/health", get(routes::health::health))
        .route("/v1/openapi.json", get(routes::openapi::openapi))
        .route("/metrics", get(routes::metrics::metrics))
        .layer(cors)
        .with_state(state)
}
