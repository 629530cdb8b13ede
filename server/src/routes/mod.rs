//! HTTP handlers, one file per endpoint.

pub mod health;
pub mod metrics;
pub mod openapi;
pub mod pull;
pub mod push;
pub mod schema;
pub mod stream;
