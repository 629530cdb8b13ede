//! Tokens signed with EdDSA, and CORS.

#[path = "support/client.rs"]
mod client;

use annal_server::auth::{Auth, Scope};
use annal_server::db::Db;
use annal_server::{app, AppState};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use client::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::sync::Arc;
use tower::ServiceExt;

// A throwaway Ed25519 key pair, for these tests only.
const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIIAKfVJ+8Ag/06EetLcCEmjpHFXzJrla00wqN3xsXS4g
-----END PRIVATE KEY-----
";
const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAQRUssB9tr3E4dn7RrLmevr08t8WZb0ok1kJyH30jlHg=
-----END PUBLIC KEY-----
";

fn eddsa_token(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_pem(PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn eddsa_tokens_are_verified_with_the_public_key() {
    let file = TempSqlite::new();
    let db = Db::open(&file.url(), None).await.unwrap();
    let auth = Auth::eddsa(PUBLIC.as_bytes(), AUDIENCE).unwrap();
    assert!(
        auth.mint("t", "u", Scope::Own, 60).is_err(),
        "a public key mints nothing"
    );
    let app = app(AppState {
        auth: Arc::new(auth),
        ..state(db)
    });
    let exp = 4_000_000_000u64;
    let good = eddsa_token(json!({"sub": "p-1", "tenant": "t", "aud": AUDIENCE, "exp": exp}));
    let mut d = Device::new("t", "p-1", 1);
    let res = push(&app, &good, &d.entries("a", 1)).await;
    assert_eq!(statuses(&res), vec!["accepted"]);
    // HS256 with the public key as secret (algorithm confusion) is refused.
    let confused = Auth::hs256(PUBLIC.as_bytes(), AUDIENCE)
        .mint("t", "p-1", Scope::Tenant, 60)
        .unwrap();
    let (status, _) = call(&app, "GET", "/v1/events", Some(&confused), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for claims in [
        json!({"sub": "p-1", "tenant": "t", "aud": "other", "exp": exp}),
        json!({"sub": "p-1", "tenant": "t", "aud": AUDIENCE, "exp": 1_000_000_000u64}),
        json!({"sub": "p-1", "aud": AUDIENCE, "exp": exp}),
        json!({"sub": "", "tenant": "t", "aud": AUDIENCE, "exp": exp}),
    ] {
        let (status, v) = call(
            &app,
            "GET",
            "/v1/events",
            Some(&eddsa_token(claims.clone())),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claims}: {v}");
    }
    assert!(Auth::eddsa(b"not a key", AUDIENCE).is_err());
}

#[tokio::test]
async fn cors_allows_the_configured_origin_only() {
    let file = TempSqlite::new();
    let app = router(Db::open(&file.url(), None).await.unwrap());
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/events")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let ok = app
        .clone()
        .oneshot(preflight("http://127.0.0.1:8080"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(
        ok.headers()
            .get("access-control-max-age")
            .and_then(|v| v.to_str().ok()),
        Some("600"),
        "a preflight is kept for 10 minutes"
    );
    let other = app.oneshot(preflight("http://evil.example")).await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
