//! The operator's command (`relaychat`), on the same Kafka configuration as the functions
//! (`KAFKA_BROKERS`, MSK IAM, SCRAM, TLS: `relaychat_adapters::kafka::KafkaSettings`):
//! - `dlq`: the functions' dead letters listed with their reason, source and age, one shown whole,
//!   and redriven to the topic they came from after a fix;
//! - `topics apply`: the topic catalogue's topics created where missing, and any that differ from
//!   it reported.

use relaychat_adapters::kafka::KafkaSettings;

pub mod dlq;
pub mod topics;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("configuration: {0}")]
    Config(#[from] relaychat_adapters::ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
    #[error("redriving {letter}: {source}")]
    Redrive {
        letter: String,
        #[source]
        source: relaychat_core::Error,
    },
}

/// The functions' Kafka settings: `KAFKA_BROKERS` (with the SASL / TLS variables) when given, else
/// the brokers of `MSK_CLUSTER_ARN` looked up with the AWS configuration.
pub async fn settings() -> Result<KafkaSettings, AdminError> {
    if std::env::var("KAFKA_BROKERS").is_ok_and(|b| !b.is_empty()) {
        return Ok(KafkaSettings::from_env()?);
    }
    let aws = relaychat_adapters::aws::load_config().await;
    Ok(KafkaSettings::discover(&aws).await?)
}

/// The consumers with a dead-letter topic (`<consumer>-dlq`): every function behind an event
/// source mapping.
pub const CONSUMERS: [&str; 7] = [
    "persist-message",
    "deliver-message",
    "analytics",
    "update-status",
    "relay-typing",
    "update-presence",
    "push-notification",
];
