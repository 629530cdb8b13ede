//! The default transport: `fetch` through gloo-net.

use crate::sync::backoff::parse_retry_after;
use crate::sync::transport::{Request, Response, Transport, TransportError};
use gloo_net::http::{Method, RequestBuilder};

/// Sends requests to one annal-server.
#[derive(Debug, Clone)]
pub(crate) struct FetchTransport {
    pub(crate) base_url: String,
}

impl Transport for FetchTransport {
    async fn send(&self, req: Request) -> Result<Response, TransportError> {
        let url = format!("{}{}", self.base_url.trim_end_matches('/'), req.path);
        let method = if req.method == "POST" {
            Method::POST
        } else {
            Method::GET
        };
        let mut builder = RequestBuilder::new(&url).method(method);
        if let Some(token) = &req.token {
            builder = builder.header("Authorization", &format!("Bearer {token}"));
        }
        let request = match req.body {
            Some(body) => builder
                .header("Content-Type", "application/json")
                .body(body),
            None => builder.build(),
        }
        .map_err(|e| TransportError::Network(e.to_string()))?;
        let response = request
            .send()
            .await
            .map_err(|e| TransportError::Network(e.to_string()))?;
        let status = response.status();
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .and_then(|v| parse_retry_after(&v));
        let body = response
            .text()
            .await
            .map_err(|e| TransportError::Network(e.to_string()))?;
        Ok(Response {
            status,
            retry_after_ms,
            body,
        })
    }
}
