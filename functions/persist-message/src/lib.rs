//! persist-message: `chat-messages` → DynamoDB (the message, the conversation's last message and
//! the recipients' unread counts; edits and deletions), exactly once per message however often
//! it is delivered.

use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaDeadLetters;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::Error;
use relaychat_core::batch::{EachEvent, run_batch};
use relaychat_core::function::KafkaFunction;
use relaychat_core::persist::persist_event;
use relaychat_core::ports::{DeadLetters, MessageStore};
use relaychat_schema::MskEvent;
use relaychat_schema::{ChatEvent, KafkaBatchResponse};

/// The function's name: its consumer group, and its dead-letter topic `persist-message-dlq`.
pub const NAME: &str = "persist-message";

pub struct PersistMessage<S, D> {
    store: S,
    dead_letters: D,
}

impl<S: MessageStore, D: DeadLetters> PersistMessage<S, D> {
    pub fn new(store: S, dead_letters: D) -> Self {
        Self { store, dead_letters }
    }

    pub async fn invoke(&self, event: &MskEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S: MessageStore, D: DeadLetters> EachEvent for PersistMessage<S, D> {
    type Event = ChatEvent;

    async fn handle_event(&self, event: &ChatEvent) -> Result<(), Error> {
        persist_event(&self.store, event).await
    }
}

/// persist-message as deployed, on DynamoDB and Kafka.
pub type Deployed = PersistMessage<DynamoStore, KafkaDeadLetters>;

/// The one place persist-message is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    let dead_letters = deps.dead_letters(NAME);
    Ok(PersistMessage::new(deps.store, dead_letters))
}

impl KafkaFunction for Deployed {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send {
        PersistMessage::invoke(self, event)
    }
}
