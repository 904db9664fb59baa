//! analytics: `chat-messages` and `analytics-events` → DynamoDB counters per day, per
//! conversation and per user; each record counted once by its message or event id.

use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaDeadLetters;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::Error;
use relaychat_core::analytics::{Countable, count_events};
use relaychat_core::batch::{Parsed, RecordHandler, run_batch};
use relaychat_core::function::KafkaFunction;
use relaychat_core::ports::{AnalyticsStore, DeadLetters};
use relaychat_schema::KafkaBatchResponse;
use relaychat_schema::MskEvent;

/// The function's name: its consumer group, and its dead-letter topic `analytics-dlq`.
pub const NAME: &str = "analytics";

pub struct Analytics<S, D> {
    pub store: S,
    pub dead_letters: D,
}

impl<S: AnalyticsStore, D: DeadLetters> Analytics<S, D> {
    pub async fn invoke(&self, event: &MskEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S: AnalyticsStore, D: DeadLetters> RecordHandler for Analytics<S, D> {
    type Event = Countable;

    async fn handle(&self, events: &[Parsed<'_, Countable>]) -> Result<(), (usize, Error)> {
        count_events(&self.store, events).await
    }
}

/// analytics as deployed, on DynamoDB and Kafka.
pub type Deployed = Analytics<DynamoStore, KafkaDeadLetters>;

/// The one place analytics is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(Analytics {
        dead_letters: deps.dead_letters(NAME),
        store: deps.store,
    })
}

impl KafkaFunction for Deployed {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send {
        Analytics::invoke(self, event)
    }
}
