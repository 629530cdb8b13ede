//! Bearer JWTs: HS256 with a shared secret, or EdDSA with a public key.
//! Claims: `sub` (the user), `tenant`, `exp`, `aud`, and `scope` (`own`, the
//! default, or `tenant`).

use crate::error::AppError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The user's own events (a patient's diary).
    Own,
    /// Every event of the tenant (a coordinator, an auditor).
    Tenant,
}

/// The token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The tenant.
    pub tenant: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Audience.
    pub aud: String,
    /// What the token may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Tenant.
    pub tenant: String,
    /// User.
    pub user: String,
    /// Read scope.
    pub scope: Scope,
}

/// Token checking (and, with a secret, minting).
#[derive(Clone)]
pub struct Auth {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    algorithm: Algorithm,
    audience: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("algorithm", &self.algorithm)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8], audience: &str) -> Auth {
        Auth {
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            algorithm: Algorithm::HS256,
            audience: audience.to_string(),
        }
    }

    /// EdDSA (Ed25519) with a PEM public key; such a server mints nothing.
    pub fn eddsa(public_pem: &[u8], audience: &str) -> Result<Auth, String> {
        Ok(Auth {
            decoding: DecodingKey::from_ed_pem(public_pem)
                .map_err(|e| format!("bad Ed25519 public key: {e}"))?,
            encoding: None,
            algorithm: Algorithm::EdDSA,
            audience: audience.to_string(),
        })
    }

    /// Checks a token.
    pub fn verify(&self, token: &str) -> Result<Principal, AppError> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 30;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                AppError::unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired; get a fresh one",
                    ErrorKind::InvalidAudience => "the token is for another audience",
                    _ => "the token is not valid for this server",
                })
            })?;
        let c = data.claims;
        if c.sub.is_empty() || c.tenant.is_empty() {
            return Err(AppError::unauthorized(
                "the token needs non-empty sub and tenant claims",
            ));
        }
        Ok(Principal {
            tenant: c.tenant,
            user: c.sub,
            scope: c.scope.unwrap_or(Scope::Own),
        })
    }

    /// Mints a token (HS256 servers only).
    pub fn mint(
        &self,
        tenant: &str,
        user: &str,
        scope: Scope,
        ttl_seconds: u64,
    ) -> Result<String, String> {
        let key = self
            .encoding
            .as_ref()
            .ok_or("this server verifies EdDSA tokens and cannot mint them")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            sub: user.to_string(),
            tenant: tenant.to_string(),
            exp: now + ttl_seconds,
            aud: self.audience.clone(),
            scope: Some(scope),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|e| e.to_string())
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Principal, AppError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AppError::unauthorized("send Authorization: Bearer <token>"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| AppError::unauthorized("send Authorization: Bearer <token>"))?;
        state.auth.verify(token.trim())
    }
}
