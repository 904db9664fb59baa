//! Connect tokens: HS256 JWTs (`sub` = user id, `name` = display name, `exp`, optional `nbf`,
//! `iss`, `aud`). Only HS256 is accepted (so `alg: none` and RS/ES tokens are refused), the
//! signature must match a secret of at least 32 bytes, `exp` is required and checked, `nbf` is
//! checked when present, and issuer and audience are required when configured
//! (`RELAYCHAT_JWT_ISSUER`, `RELAYCHAT_JWT_AUDIENCE`).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use relaychat_core::ports::{AuthError, Authenticator, Identity};
use relaychat_schema::{DisplayName, UserId};
use serde::Deserialize;

use crate::{ConfigError, optional};

/// The secret's name in the environment (local), or the Secrets Manager secret that holds it (AWS).
pub const SECRET_ENV: &str = "RELAYCHAT_JWT_SECRET";
pub const SECRET_ARN_ENV: &str = "RELAYCHAT_JWT_SECRET_ARN";
pub const ISSUER_ENV: &str = "RELAYCHAT_JWT_ISSUER";
pub const AUDIENCE_ENV: &str = "RELAYCHAT_JWT_AUDIENCE";
/// Shorter HS256 secrets can be brute-forced from one token (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    exp: u64,
}

/// What a token must say besides a good signature and expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRules {
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl TokenRules {
    /// From `RELAYCHAT_JWT_ISSUER` and `RELAYCHAT_JWT_AUDIENCE` (each optional).
    pub fn from_env() -> Self {
        Self {
            issuer: optional(ISSUER_ENV),
            audience: optional(AUDIENCE_ENV),
        }
    }
}

pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
}

impl JwtAuthenticator {
    /// Refuses a secret shorter than 32 bytes.
    pub fn new(secret: &[u8], rules: &TokenRules) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: SECRET_ENV,
                reason: format!(
                    "an HS256 secret needs at least {MIN_SECRET_BYTES} bytes; this one has {}",
                    secret.len()
                ),
            });
        }
        let mut validation = Validation::new(Algorithm::HS256);
        let mut required = vec!["exp", "sub"];
        validation.validate_nbf = true;
        validation.leeway = 5;
        if let Some(issuer) = &rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &rules.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            key: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// The secret from `RELAYCHAT_JWT_SECRET`, or from the Secrets Manager secret named by
    /// `RELAYCHAT_JWT_SECRET_ARN` (the secret string itself is the key); rules from the environment.
    pub async fn from_env(config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let rules = TokenRules::from_env();
        if let Some(secret) = optional(SECRET_ENV) {
            return Self::new(secret.as_bytes(), &rules);
        }
        let arn = optional(SECRET_ARN_ENV).ok_or(ConfigError::Missing { name: SECRET_ENV })?;
        Self::new(crate::secrets::secret_string(config, &arn).await?.as_bytes(), &rules)
    }
}

impl Authenticator for JwtAuthenticator {
    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.into()))?;
        let user = UserId::parse(data.claims.sub).map_err(|e| AuthError::Invalid(e.into()))?;
        let name = DisplayName::parse(data.claims.name.unwrap_or_else(|| user.to_string()))
            .map_err(|e| AuthError::Invalid(e.into()))?;
        let expires_at = i64::try_from(data.claims.exp)
            .ok()
            .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0));
        Ok(Identity { user, name, expires_at })
    }
}

#[cfg(any(test, feature = "dev"))]
mod dev;
#[cfg(any(test, feature = "dev"))]
pub use dev::{DEV_SECRET, mint_token};

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!";

    fn b64(v: serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn open() -> JwtAuthenticator {
        JwtAuthenticator::new(SECRET, &TokenRules::default()).unwrap()
    }

    #[test]
    fn a_valid_token_names_the_user_and_when_it_expires() {
        let identity = open()
            .verify(&mint_token(SECRET, "alice", "Alice", 60, &TokenRules::default()).unwrap())
            .unwrap();
        assert_eq!((identity.user.as_str(), identity.name.as_str()), ("alice", "Alice"));
        let left = identity.expires_at.unwrap().timestamp() - now();
        assert!((55..=60).contains(&left), "{left}");
    }

    #[test]
    fn short_secrets_are_refused_the_dev_default_included_only_if_short() {
        assert!(JwtAuthenticator::new(b"relaychat-dev-secret", &TokenRules::default()).is_err());
        assert!(JwtAuthenticator::new(&[7; 31], &TokenRules::default()).is_err());
        assert!(JwtAuthenticator::new(DEV_SECRET.as_bytes(), &TokenRules::default()).is_ok());
    }

    #[test]
    fn wrong_key_expired_none_and_garbage_are_refused() {
        let auth = open();
        assert!(
            auth.verify(
                &mint_token(
                    b"another-secret-of-at-least-32-bytes",
                    "alice",
                    "Alice",
                    60,
                    &TokenRules::default()
                )
                .unwrap()
            )
            .is_err()
        );
        assert!(
            auth.verify(&signed(serde_json::json!({"sub": "alice", "exp": 1_000})))
                .is_err()
        );
        let far = now() + 3600;
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg":"none","typ":"JWT"})),
            b64(serde_json::json!({"sub":"alice","exp":far}))
        );
        assert!(auth.verify(&none).is_err(), "alg none");
        assert!(
            auth.verify(&signed(serde_json::json!({"sub": "alice"}))).is_err(),
            "exp is required"
        );
        assert!(matches!(auth.verify(""), Err(AuthError::Missing)));
        assert!(auth.verify("a.b.c").is_err());
        let bad_user = mint_token(SECRET, "al ice", "Alice", 60, &TokenRules::default()).unwrap();
        assert!(auth.verify(&bad_user).is_err());
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let auth = open();
        let later = signed(serde_json::json!({"sub": "alice", "exp": now() + 3600, "nbf": now() + 600}));
        assert!(auth.verify(&later).is_err(), "nbf in the future");
        let valid = signed(serde_json::json!({"sub": "alice", "exp": now() + 3600, "nbf": now() - 10}));
        assert!(auth.verify(&valid).is_ok());
    }

    #[test]
    fn issuer_and_audience_are_required_when_configured() {
        let rules = TokenRules {
            issuer: Some("https://id.example".into()),
            audience: Some("relaychat".into()),
        };
        let auth = JwtAuthenticator::new(SECRET, &rules).unwrap();
        let exp = now() + 3600;
        let good = signed(serde_json::json!({"sub": "a", "exp": exp, "iss": "https://id.example", "aud": "relaychat"}));
        assert!(auth.verify(&good).is_ok());
        for claims in [
            serde_json::json!({"sub": "a", "exp": exp, "iss": "https://evil.example", "aud": "relaychat"}),
            serde_json::json!({"sub": "a", "exp": exp, "iss": "https://id.example", "aud": "other"}),
            serde_json::json!({"sub": "a", "exp": exp, "aud": "relaychat"}),
            serde_json::json!({"sub": "a", "exp": exp, "iss": "https://id.example"}),
        ] {
            assert!(auth.verify(&signed(claims.clone())).is_err(), "{claims}");
        }
        // Without configured rules, iss and aud are not required (and not checked).
        assert!(open().verify(&good).is_ok());
    }
}
