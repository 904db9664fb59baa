//! Connect tokens: HS256 JWTs (`sub` = user id, `name` = display name, `exp`). Only HS256 is
//! accepted (so `alg: none` and RS/ES tokens are refused), the signature must match the secret,
//! and `exp` is required and checked.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use relaychat_core::ports::{AuthError, Authenticator, Identity};
use relaychat_schema::{DisplayName, UserId};
use serde::{Deserialize, Serialize};

use crate::{ConfigError, optional};

/// The secret's name in the environment (local), or the Secrets Manager secret that holds it (AWS).
pub const SECRET_ENV: &str = "RELAYCHAT_JWT_SECRET";
pub const SECRET_ARN_ENV: &str = "RELAYCHAT_JWT_SECRET_ARN";
/// The development default the local runtime uses when no secret is configured.
pub const DEV_SECRET: &str = "relaychat-dev-secret";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    exp: u64,
}

pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
}

impl JwtAuthenticator {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// The secret from `RELAYCHAT_JWT_SECRET`, or from the Secrets Manager secret named by
    /// `RELAYCHAT_JWT_SECRET_ARN` (the secret string itself is the key).
    pub async fn from_env(config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        if let Some(secret) = optional(SECRET_ENV) {
            return Ok(Self::new(secret.as_bytes()));
        }
        let arn = optional(SECRET_ARN_ENV).ok_or(ConfigError::Missing { name: SECRET_ENV })?;
        Ok(Self::new(crate::secrets::secret_string(config, &arn).await?.as_bytes()))
    }
}

impl Authenticator for JwtAuthenticator {
    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let user = UserId::parse(data.claims.sub).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let name = DisplayName::parse(data.claims.name.unwrap_or_else(|| user.to_string()))
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(Identity { user, name })
    }
}

/// Mints a token (the local runtime's dev endpoint, tests).
pub fn mint_token(
    secret: &[u8],
    user: &str,
    name: &str,
    ttl_seconds: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = chrono::Utc::now().timestamp().max(0) as u64 + ttl_seconds;
    let claims = Claims {
        sub: user.to_owned(),
        name: Some(name.to_owned()),
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const SECRET: &[u8] = b"test-secret";

    fn b64(v: serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_valid_token_names_the_user() {
        let auth = JwtAuthenticator::new(SECRET);
        let identity = auth.verify(&mint_token(SECRET, "alice", "Alice", 60).unwrap()).unwrap();
        assert_eq!((identity.user.as_str(), identity.name.as_str()), ("alice", "Alice"));
    }

    #[test]
    fn wrong_key_expired_none_and_garbage_are_refused() {
        let auth = JwtAuthenticator::new(SECRET);
        assert!(
            auth.verify(&mint_token(b"other-secret", "alice", "Alice", 60).unwrap())
                .is_err()
        );
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                name: None,
                exp: 1_000,
            },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(auth.verify(&expired).is_err());
        let far = chrono::Utc::now().timestamp() + 3600;
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg":"none","typ":"JWT"})),
            b64(serde_json::json!({"sub":"alice","exp":far}))
        );
        assert!(auth.verify(&none).is_err(), "alg none");
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "alice"}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(auth.verify(&no_exp).is_err(), "exp is required");
        assert!(matches!(auth.verify(""), Err(AuthError::Missing)));
        assert!(auth.verify("a.b.c").is_err());
        let bad_user = mint_token(SECRET, "al ice", "Alice", 60).unwrap();
        assert!(auth.verify(&bad_user).is_err());
    }
}
