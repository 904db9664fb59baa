//! Kafka: connection settings and MSK discovery (`settings`), MSK IAM authentication (`iam`),
//! the producer (`producer`) and the dead-letter writer (`dead_letters`).

mod dead_letters;
mod iam;
mod producer;
mod settings;

pub use dead_letters::{DLQ_CONSUMER_HEADER, DLQ_REASON_HEADER, DLQ_SOURCE_HEADER, KafkaDeadLetters};
pub use iam::KafkaContext;
pub use producer::{DEFAULT_DELIVERY_TIMEOUT, KafkaPublisher, headers_of};
pub use settings::{KafkaAuth, KafkaSettings, msk_bootstrap_brokers};
