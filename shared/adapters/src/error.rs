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
