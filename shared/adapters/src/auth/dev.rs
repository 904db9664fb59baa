//! Development tokens (the `dev` feature): the local runtime's default secret and its token
//! endpoint, and the tests' tokens. Never in a Lambda build.

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::TokenRules;

/// The development default the local runtime uses when no secret is configured.
pub const DEV_SECRET: &str = "relaychat-local-development-secret";

/// Mints a token (the local runtime's dev endpoint, tests), with the issuer and audience the
/// rules ask for.
pub fn mint_token(
    secret: &[u8],
    user: &str,
    name: &str,
    ttl_seconds: u64,
    rules: &TokenRules,
) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = chrono::Utc::now().timestamp().max(0) as u64 + ttl_seconds;
    let mut claims = serde_json::json!({"sub": user, "name": name, "exp": exp});
    if let Some(issuer) = &rules.issuer {
        claims["iss"] = issuer.as_str().into();
    }
    if let Some(audience) = &rules.audience {
        claims["aud"] = audience.as_str().into();
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}
