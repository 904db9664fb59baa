//! Secrets Manager: read once at start-up, never from the template or the code.

use aws_config::SdkConfig;

use crate::ConfigError;

/// The secret string of a Secrets Manager secret.
pub async fn secret_string(config: &SdkConfig, secret_id: &str) -> Result<String, ConfigError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            id: secret_id.to_owned(),
            source: Box::new(e),
        })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::Secret {
            id: secret_id.to_owned(),
            source: "the secret has no string value".into(),
        })
}
