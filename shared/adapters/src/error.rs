use std::time::Duration;

/// What can go wrong while a function starts: configuration and client construction. Always
/// permanent for the execution environment (the function fails its init and says why).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required")]
    Missing { name: &'static str },

    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },

    #[error("could not create the Kafka client")]
    Kafka(#[source] rdkafka::error::KafkaError),

    #[error("could not read the FCM service account")]
    FcmKey(#[source] Box<dyn std::error::Error + Send + Sync>),

    #[error("could not read secret {id}")]
    Secret {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("could not find the MSK cluster's brokers (GetBootstrapBrokers)")]
    Discovery(#[source] Box<dyn std::error::Error + Send + Sync>),

    #[error("could not build the HTTP client")]
    Http(#[source] reqwest::Error),
}

/// Reads a required environment variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing { name })
}

/// Reads an environment variable; unset and empty are the same.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Reads a duration in whole milliseconds (`CONNECTION_CACHE_MS`, `PRESENCE_GRACE_MS`); unset,
/// `default`. Anything else stops the function at start.
pub fn optional_millis(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    millis(name, optional(name).as_deref(), default)
}

fn millis(name: &'static str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(ms) => ms
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("{ms:?} is not a whole number of milliseconds"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Duration = Duration::from_secs(1);

    #[test]
    fn a_duration_is_read_in_milliseconds_or_refused() {
        assert_eq!(millis("CONNECTION_CACHE_MS", None, DEFAULT).unwrap(), DEFAULT);
        assert_eq!(
            millis("CONNECTION_CACHE_MS", Some("0"), DEFAULT).unwrap(),
            Duration::ZERO
        );
        assert_eq!(
            millis("CONNECTION_CACHE_MS", Some(" 250 "), DEFAULT).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            millis("PRESENCE_GRACE_MS", Some("500"), DEFAULT).unwrap(),
            Duration::from_millis(500)
        );
        let refused = millis("CONNECTION_CACHE_MS", Some("1s"), DEFAULT).unwrap_err();
        assert!(refused.to_string().contains("CONNECTION_CACHE_MS"), "{refused}");
        assert!(millis("PRESENCE_GRACE_MS", Some("3s"), DEFAULT).is_err());
    }
}
