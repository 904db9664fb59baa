//! analytics: `chat-messages` and `analytics-events` → DynamoDB counters per day, per
//! conversation and per user; each record counted once by its message or event id.

use aws_lambda_events::event::kafka::KafkaEvent;
use relaychat_core::analytics::count_batch;
use relaychat_core::ports::{AnalyticsStore, DeadLetters};
use relaychat_schema::{KafkaBatchResponse, Topics};

pub const CONSUMER: &str = "analytics";

pub struct Analytics<S, D> {
    pub store: S,
    pub dead_letters: D,
    pub topics: Topics,
}

impl<S: AnalyticsStore, D: DeadLetters> Analytics<S, D> {
    pub async fn invoke(&self, event: &KafkaEvent) -> KafkaBatchResponse {
        count_batch(event, &self.topics.chat_messages, &self.store, &self.dead_letters).await
    }
}
