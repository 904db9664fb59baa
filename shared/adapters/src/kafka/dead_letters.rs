//! The dead-letter topic writer: a consumer's failed records, whole, with the reason.

use relaychat_core::Error;
use relaychat_core::ports::DeadLetters;
use relaychat_schema::kafka::RawRecord;
use relaychat_schema::topics::dead_letter_topic;

use super::KafkaPublisher;
use crate::optional;

/// Headers a dead-lettered record carries besides its own.
pub const DLQ_REASON_HEADER: &str = "x-relaychat-dlq-reason";
pub const DLQ_SOURCE_HEADER: &str = "x-relaychat-dlq-source";
pub const DLQ_CONSUMER_HEADER: &str = "x-relaychat-dlq-consumer";

/// Writes a consumer's failed records to its dead-letter topic (`<consumer>-dlq`): the original key,
/// value and headers, plus the reason, the source `topic-partition@offset` and the consumer.
#[derive(Clone)]
pub struct KafkaDeadLetters {
    publisher: KafkaPublisher,
    consumer: String,
    topic: String,
}

impl KafkaDeadLetters {
    pub fn new(publisher: KafkaPublisher, consumer: impl Into<String>) -> Self {
        let consumer = consumer.into();
        let topic = optional("KAFKA_DLQ_TOPIC").unwrap_or_else(|| dead_letter_topic(&consumer));
        Self::to_topic(publisher, consumer, topic)
    }

    /// Dead letters to a given topic (an event-source mapping's on-failure destination).
    pub fn to_topic(publisher: KafkaPublisher, consumer: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            publisher,
            consumer: consumer.into(),
            topic: topic.into(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl DeadLetters for KafkaDeadLetters {
    async fn dead_letter(&self, record: &RawRecord, reason: &str) -> Result<(), Error> {
        let source = record.id.to_string();
        let mut headers: Vec<(&str, &[u8])> = record.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        headers.push((DLQ_REASON_HEADER, reason.as_bytes()));
        headers.push((DLQ_SOURCE_HEADER, source.as_bytes()));
        headers.push((DLQ_CONSUMER_HEADER, self.consumer.as_bytes()));
        self.publisher
            .send(&self.topic, record.key.as_deref(), &record.value, &headers)
            .await
            .map(|_| ())
    }
}
